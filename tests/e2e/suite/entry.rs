//! A program entered at code without unwind information, as static musl binaries are (Alpine's
//! containers): its stacks end at its `_start`, whole, not cut for want of CFI there.
use super::*;

#[test]
fn a_program_whose_entry_code_has_no_cfi_has_whole_stacks() {
    require_root!();
    let _quiet = quiet();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bin = build_c_program(
        "entry.c",
        build.path(),
        "entry-nocfi",
        &["-O2", "-nostartfiles"],
    );
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched,process"]);
    let (pid, measured) = run_measuring(&bin, &[], "blocked_ns");
    std::thread::sleep(std::time::Duration::from_millis(300));
    rec.stop();
    let folded = run_ok(
        "flightrec-analyze",
        &[
            "offcpu",
            cap.path().to_str().unwrap(),
            "--pid",
            &pid.to_string(),
            "--folded",
        ],
    );
    let mut under = 0u64;
    for line in folded
        .lines()
        .filter(|l| l.contains("flightrec_entry_sleep"))
    {
        let (stack, us) = line.rsplit_once(' ').unwrap();
        let frames: Vec<&str> = stack.split(';').skip(1).collect();
        assert_eq!(
            &frames[..4],
            &[
                "_start",
                "flightrec_start_c",
                "main",
                "flightrec_entry_sleep"
            ],
            "whole from the entry code, not marked truncated: {line}"
        );
        under += us.parse::<u64>().unwrap() * 1000;
    }
    assert!(
        under.abs_diff(measured) * 100 <= measured * 15,
        "{under} ns under the sleep, the program measured {measured}:\n{folded}"
    );
    // From the JSON: the text lists the busiest processes only, and the tests running beside
    // this one can be busier.
    let summary = analyze_json(&["summary", cap.path().to_str().unwrap()]);
    let p = summary["user_stacks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["pid"].as_u64() == Some(pid as u64))
        .unwrap_or_else(|| panic!("no user stacks of {pid}: {summary}"));
    // (A thread's first stack may still be cut by the copy, before its stack top is known.)
    assert!(p["truncated"].get("no_cfi").is_none(), "{p}");
    report(&format!(
        "stacks: entry code without CFI: whole to _start, {} ms under the sleep, measured {} ms",
        under / 1_000_000,
        measured / 1_000_000
    ));
}
