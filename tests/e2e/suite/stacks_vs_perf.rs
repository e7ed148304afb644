//! User stacks against perf's on the same switches: code that hides its caller behind a made-up
//! frame pointer (perf's frame-pointer walk names a wrong parent, flightrec cuts), and a program
//! without frame pointers under `perf --call-graph dwarf`.
use std::path::Path;

use super::{
    stacks::{build_c, folded},
    *,
};

/// A ground-truth program run under `perf record -e sched:sched_switch PERF_ARGS` while
/// flightrec records: the build directory (holding perf.data) and the capture.
struct UnderPerf {
    build: tempfile::TempDir,
    cap: tempfile::TempDir,
}

fn under_perf(name: &str, cflags: &[&str], perf_args: &[&str], args: &[&str]) -> UnderPerf {
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bin = build_c(build.path(), name, cflags);
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &["--events", "sched,process", "--segment", "2s"],
    );
    let perf = perf_record_switches()
        .args(perf_args)
        .arg("-o")
        .arg(build.path().join("perf.data"))
        .arg("--")
        .arg(&bin)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("perf (apt-get install linux-perf)");
    assert!(perf.success());
    std::thread::sleep(Duration::from_millis(300));
    rec.stop();
    UnderPerf { build, cap }
}

/// `perf script` of a perf.data file.
fn perf_script(data: &Path, args: &[&str]) -> String {
    let out = Command::new("perf")
        .arg("script")
        .args(args)
        .arg("-i")
        .arg(data)
        .output()
        .expect("perf script");
    assert!(
        out.status.success(),
        "perf script: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_made_up_frame_pointer_in_code_without_cfi_is_cut_with_no_wrong_parent() {
    require_root!();
    // perf walks frame pointers at the same switches: it names the made-up parent, which proves
    // the trap is set.
    let t = under_perf(
        "stacks-clobber",
        &["-O2", "-fno-omit-frame-pointer"],
        &["-g"],
        &["clobber", "10", "30"],
    );
    let (cap, data) = (t.cap.path(), t.build.path().join("perf.data"));
    let script = perf_script(&data, &[]);
    assert!(
        script.contains("flightrec_wrong_parent"),
        "perf's frame-pointer walk should fall for the made-up frame:\n{script}"
    );
    let pid = script
        .lines()
        .find(|l| l.contains("stacks-clobber"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok())
        .expect("the program's pid in perf script");
    let stacks = folded(cap, "offcpu", pid);
    let cut: Vec<&(Vec<String>, u64)> = stacks
        .iter()
        .filter(|(f, _)| f.iter().any(|x| x == "flightrec_clobbered_sleep"))
        .collect();
    assert!(!cut.is_empty(), "{stacks:?}");
    for (frames, _) in &cut {
        assert_eq!(
            &frames[..2],
            &[
                "[truncated: code without unwind information]",
                "flightrec_clobbered_sleep"
            ],
            "cut at the leaf and marked: {frames:?}"
        );
    }
    assert!(
        stacks
            .iter()
            .all(|(f, _)| !f.iter().any(|x| x == "flightrec_wrong_parent")),
        "no stack names the made-up parent"
    );
    report("stacks: made-up frame pointer: perf -g names flightrec_wrong_parent; flightrec cuts at flightrec_clobbered_sleep, marked truncated");
}

#[test]
fn perf_dwarf_and_flightrec_agree_on_a_program_without_frame_pointers() {
    require_root!();
    let t = under_perf(
        "stacks-dwarf",
        &["-O2", "-fomit-frame-pointer"],
        &["--call-graph", "dwarf"],
        &["nanosleep", "5", "30"],
    );
    let (cap, data) = (t.cap.path(), t.build.path().join("perf.data"));
    let script = perf_script(&data, &["-F", "comm,pid,ip,sym"]);
    // The first sample through the sleep: its frames, leaf first, reversed to root first.
    let mut sample: Vec<String> = Vec::new();
    let mut pid = 0;
    for block in script.split("\n\n") {
        if block.contains("flightrec_block_nanosleep") {
            let mut lines = block.lines();
            pid = lines
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            sample = lines
                .filter_map(|l| l.split_whitespace().nth(1))
                .map(|s| s.split('+').next().unwrap_or(s).to_string())
                .collect();
            sample.reverse();
            break;
        }
    }
    assert!(
        !sample.is_empty(),
        "perf --call-graph dwarf found the sleep:\n{script}"
    );
    let ours = folded(cap, "offcpu", pid);
    let (frames, _) = ours
        .iter()
        .find(|(f, _)| f.iter().any(|x| x == "flightrec_block_nanosleep"))
        .expect("flightrec's sleep stack");
    // Frames both name, in order, from the root to the sleeping function.
    let app = [
        "main",
        "flightrec_level1",
        "flightrec_level2",
        "flightrec_block_nanosleep",
    ];
    let user: Vec<&String> = frames
        .iter()
        .take_while(|f| !f.starts_with("entry_SYSCALL"))
        .collect();
    let common: Vec<&String> = user
        .iter()
        .copied()
        .filter(|f| sample.contains(f))
        .collect();
    report(&format!(
        "stacks: perf --call-graph dwarf: {}; flightrec: {}; both: {}",
        sample.join(";"),
        user.iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(";"),
        common
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(";")
    ));
    for f in app {
        assert!(sample.iter().any(|s| s == f), "perf names {f}: {sample:?}");
        assert!(
            user.iter().any(|s| *s == f),
            "flightrec names {f}: {user:?}"
        );
    }
    let pos = |v: &[&String], f: &str| v.iter().position(|s| *s == f);
    let theirs: Vec<&String> = sample.iter().collect();
    for w in app.windows(2) {
        assert!(pos(&user, w[0]) < pos(&user, w[1]) && pos(&theirs, w[0]) < pos(&theirs, w[1]));
    }
}
