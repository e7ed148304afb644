//! `faults` on the real kernel: a C program built without frame pointers touches a known number of
//! fresh pages under a known chain of functions; every fault must be counted under exactly that
//! chain, and drawn in the page-fault flame graph.
use std::process::Command;

use super::*;

#[test]
fn faults_counts_every_page_a_program_touched_under_its_exact_stack() {
    require_root!();
    // Exact counts: alone, since every process's faults are recorded and a compiler run beside it
    // (other tests build their programs) faults fast enough to fill the ring buffer.
    let _exclusive = exclusive();
    let build = tempfile::tempdir().unwrap();
    let bin = build_c_program("faults.c", build.path(), "faulter", &["-O2"]);
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let rec = Recording::start(&cap, &["--events", "process,fault", "--segment", "60s"]);
    let pages = 3000;
    let (pid, touched) = run_measuring(&bin, &[&pages.to_string()], "touched");
    assert_eq!(touched, pages);
    rec.stop();
    let c = cap.to_str().unwrap();
    let pid = pid.to_string();

    let j = analyze_json(&["faults", c, "--pid", &pid]);
    assert_eq!(j["lost"]["total"], 0, "{}", j["lost"]);
    assert_eq!(j["unit"], "faults");
    let chain = [
        "_start",
        "__libc_start_main_impl",
        "__libc_start_call_main",
        "main",
        "flightrec_fault_level1",
        "flightrec_fault_level2",
        "flightrec_touch",
    ];
    let mut under = 0;
    for s in j["stacks"].as_array().unwrap() {
        let folded = s["folded"].as_str().unwrap();
        if folded.contains("flightrec_touch") {
            let frames: Vec<&str> = folded.split(';').skip(1).collect();
            assert_eq!(frames, chain, "{folded}");
            under += s["value"].as_u64().unwrap();
        }
    }
    report(&format!(
        "faults: {under} under flightrec_touch, the program touched {touched} pages; {} in the process",
        j["total"]
    ));
    assert_eq!(under, touched);

    // The same counts as folded lines and as a flame graph.
    let folded = run_ok(
        "flightrec-analyze",
        &["faults", c, "--pid", &pid, "--folded"],
    );
    let line = folded
        .lines()
        .find(|l| l.contains("flightrec_touch"))
        .expect("folded stack under flightrec_touch");
    assert!(line.ends_with(&format!(" {touched}")), "{line}");
    let svg = run_ok(
        "flightrec-analyze",
        &["flamegraph", c, "--pid", &pid, "--kind", "faults"],
    );
    assert!(svg.contains("flightrec_fault_level2") && svg.contains("faults"));

    // A capture without the source says how to record it.
    let out = Command::new(workspace_bin("flightrec-analyze"))
        .args(["klockstat", c])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--events ...,lock"), "{err}");
}
