//! `klockstat` on the real kernel against a known contention: a C program holds a pipe's mutex
//! for 300 ms (its write faults on a userfaultfd page inside the pipe write, and the program
//! supplies the page late) while a second thread's write waits for the mutex, and measures that
//! wait itself. libbpf-tools' klockstat needs kprobes, which this kernel lacks: no peer run.

use super::*;

#[test]
fn klockstat_finds_a_known_mutex_wait_with_its_caller_and_time() {
    require_root!();
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    let build = tempfile::tempdir().unwrap();
    let bin = build_c_program("klock.c", build.path(), "klock", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(
        &cap,
        &["--events", "sched,process,lock", "--segment", "60s"],
    );
    let (pid, waited) = run_measuring(&bin, &["300"], "waited_ns");
    assert!(waited > 250_000_000, "the waiter did not wait: {waited} ns");
    rec.stop();
    let c = cap.to_str().unwrap();
    let pid = pid.to_string();

    let j = analyze_json(&["klockstat", c, "--pid", &pid]);
    let callers = j["callers"].as_array().unwrap();
    // The pipe's write (anon_pipe_write since 6.16, pipe_write before) took the mutex.
    let pipe = callers
        .iter()
        .find(|c| c["caller"].as_str().unwrap().ends_with("pipe_write"))
        .unwrap_or_else(|| panic!("no wait under the pipe's write: {j}"));
    report(&format!(
        "klockstat: {} waited {} ns in {} waits ({:?}); the program measured {waited} ns",
        pipe["caller"], pipe["max_ns"], pipe["count"], pipe["kinds"]
    ));
    assert_eq!(pipe["count"], 1, "{pipe}");
    assert_eq!(pipe["kinds"], serde_json::json!(["mutex"]), "{pipe}");
    let max = pipe["max_ns"].as_u64().unwrap();
    // Within the write the program timed, and all but a little of it.
    assert!(max <= waited && max * 10 >= waited * 9, "{max} of {waited}");
    assert_eq!(pipe["max_comm"], "klock");

    // The stack of that wait, for a flame graph: the syscall down to the mutex.
    let folded = run_ok(
        "flightrec-analyze",
        &["klockstat", c, "--pid", &pid, "--folded"],
    );
    let line = folded
        .lines()
        .find(|l| l.contains("pipe_write;"))
        .unwrap_or_else(|| panic!("no folded stack through the pipe's write: {folded}"));
    let frames: Vec<&str> = line.split(';').collect();
    assert_eq!(frames[0], "klock", "{line}");
    let i = frames
        .iter()
        .position(|f| f.contains("vfs_write"))
        .expect(line);
    assert!(frames[i + 1].ends_with("pipe_write"), "{line}");
    assert!(frames[i + 2].contains("mutex"), "{line}");
    let us: u64 = line.rsplit_once(' ').unwrap().1.parse().unwrap();
    assert_eq!(us, max / 1000, "{line}");
    let svg = run_ok(
        "flightrec-analyze",
        &["flamegraph", c, "--pid", &pid, "--kind", "locks"],
    );
    assert!(svg.contains("pipe_write"));
}
