//! The incident flow on the real kernel: record, freeze, export, and analyze elsewhere after the
//! recorded program is gone; and a trigger that freezes on injected run-queue latency.
use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use super::*;

fn flightrec(args: &[&str]) -> String {
    run_ok("flightrec", args)
}

fn analyze(args: &[&str]) -> String {
    run_ok("flightrec-analyze", args)
}

/// Compiles the test program (frame pointers, debug info) into `dir`.
pub(super) fn build_shortlived(dir: &Path) -> std::path::PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/data/shortlived.c");
    let bin = dir.join("flightrec-shortlived");
    let status = Command::new("cc")
        .args(["-O1", "-g", "-fno-omit-frame-pointer", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc (gcc) is needed to build the test program");
    assert!(status.success(), "compiling {}", src.display());
    bin
}

/// Starts a recording with dense profiling, runs `bin` once to completion; returns the recording
/// (still running) and the program's pid.
fn record_one_run(cap: &Path, bin: &Path) -> (Recording, String) {
    let rec = Recording::start(
        cap,
        &[
            "--events",
            "sched,process,profile",
            "--freq",
            "199",
            "--segment",
            "1s",
        ],
    );
    let child = Command::new(bin).stdout(Stdio::null()).spawn().unwrap();
    let pid = child.id().to_string();
    assert!(child.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_millis(300));
    (rec, pid)
}

#[test]
fn short_lived_program_is_symbolized_after_export_and_deletion() {
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bin = build_shortlived(build.path());
    let (rec, pid) = record_one_run(cap.path(), &bin);
    let snap = flightrec(&[
        "snapshot",
        "--dir",
        cap.path().to_str().unwrap(),
        "--name",
        "incident",
    ]);
    let snap = snap.trim();
    assert!(snap.ends_with("snapshots/incident"), "{snap}");
    let tar = build.path().join("incident.tar");
    flightrec(&["export", snap, "-o", tar.to_str().unwrap()]);
    rec.stop();

    // Somewhere else, after the program is gone.
    std::fs::remove_file(&bin).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let copy = elsewhere.path().join("incident.tar");
    std::fs::copy(&tar, &copy).unwrap();
    drop(cap);
    let copy = copy.to_str().unwrap();
    let off = analyze(&["offcpu", copy, "--pid", &pid, "--folded"]);
    let prof = analyze(&["profile", copy, "--pid", &pid, "--folded"]);
    eprintln!("off-CPU of the deleted program:\n{off}\non-CPU:\n{prof}");
    assert!(
        off.lines()
            .any(|l| l.contains("flightrec_c_sleep_here") && l.contains("do_nanosleep")),
        "sleep function and kernel frames named"
    );
    assert!(
        prof.contains("flightrec_c_burn_here"),
        "burn function named"
    );
    assert!(
        off.lines().all(|l| l.starts_with("flightrec-short")),
        "comm of the program"
    );
    let summary = analyze(&["summary", copy]);
    assert!(
        summary.contains("frozen") && summary.contains("by request"),
        "{summary}"
    );
}

/// The one snapshot a trigger took: a cool-down of an hour allows no second one.
fn the_only_snapshot(cap: &Path) -> std::path::PathBuf {
    let snaps: Vec<_> = std::fs::read_dir(cap.join("snapshots"))
        .expect("a snapshot was taken")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        snaps.len(),
        1,
        "one freeze despite many matches (cool-down): {snaps:?}"
    );
    snaps.into_iter().next().unwrap()
}

#[test]
fn trigger_freezes_around_injected_run_queue_latency() {
    require_root!();
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "sched",
            "--segment",
            "1s",
            "--trigger",
            "runq>100ms,comm=flightrec-workl",
            "--post",
            "2s",
            "--cooldown",
            "1h",
        ],
    );
    std::thread::sleep(Duration::from_millis(2000));
    // A real-time busy loop on CPU 0 for half a second starves a normal task that sleeps and wakes
    // on that CPU: its wake-ups wait far longer than any background noise. Twice: on this VM kind
    // the switch-in that ends the wait goes unreported when the VM agent's thread ran before it
    // (see stacks.rs), and the trigger then never sees that wait end.
    let victim = Command::new("taskset")
        .args(["-c", "0"])
        .arg(env!("CARGO_BIN_EXE_flightrec-workload"))
        .args(["--sleeps", "300", "--sleep-ms", "5"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let victim_pid = victim.id();
    let mut injections = Vec::new();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(100));
        let start = monotonic_ns();
        // `timeout` stays a normal, unpinned task: an RT loop on CPU 0 would never let it run
        // there.
        let hog = Command::new("timeout")
            .args([
                "0.5",
                "chrt",
                "-f",
                "10",
                "taskset",
                "-c",
                "0",
                "sh",
                "-c",
                "while :; do :; done",
            ])
            .status()
            .expect("chrt and taskset (util-linux)");
        injections.push((start, monotonic_ns()));
        assert!(hog.code() == Some(124) || hog.success(), "hog ran: {hog}");
    }
    assert!(victim.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_secs(3));
    rec.stop();

    let snap = &the_only_snapshot(cap.path());
    assert!(
        snap.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("runq-"),
        "{snap:?}"
    );
    let m = flightrec_schemas::Manifest::read(&snap.join("manifest.json")).unwrap();
    let frozen = m.frozen.as_ref().expect("reason recorded");
    // Scoped to the victim: the kernel threads the hog starves on CPU 0 wait too, but do not count.
    assert!(
        frozen
            .reason
            .starts_with("trigger runq>100ms,comm=flightrec-workl: ")
            && frozen.reason.ends_with(&format!(" for tid {victim_pid}")),
        "{}",
        frozen.reason
    );
    let first = m
        .segments
        .iter()
        .filter_map(|s| s.first_event_ns)
        .min()
        .unwrap();
    let last = m
        .segments
        .iter()
        .filter_map(|s| s.last_event_ns)
        .max()
        .unwrap();
    eprintln!(
        "trigger: {}; injections at +{:?} ms, cause at +{} ms; snapshot holds {} ms before and {} ms after the cause",
        frozen.reason,
        injections
            .iter()
            .map(|(s, e)| ((s - first) / 1_000_000, (e - s) / 1_000_000))
            .collect::<Vec<_>>(),
        (frozen.cause_ns - first) / 1_000_000,
        (frozen.cause_ns - first) / 1_000_000,
        (last - frozen.cause_ns) / 1_000_000
    );
    assert!(
        injections
            .iter()
            .any(|(s, e)| frozen.cause_ns > *s && frozen.cause_ns <= e + 200_000_000),
        "the trigger fired on an injected latency"
    );
    assert!(
        frozen.cause_ns - first >= 1_500_000_000,
        "holds the time before the trigger"
    );
    assert!(
        last - frozen.cause_ns >= 1_500_000_000,
        "holds the --post time after it"
    );
    // The frozen capture itself shows the latency that fired it.
    let out = Command::new(workspace_bin("flightrec-analyze"))
        .args([
            "latency",
            snap.to_str().unwrap(),
            "--kind",
            "runq",
            "--json",
        ])
        .output()
        .unwrap();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let max = r["groups"][0]["percentiles"]["max"].as_u64().unwrap();
    assert!(
        max > 100_000_000,
        "max run-queue latency in the snapshot {max} ns"
    );
}

#[test]
fn debuginfo_dir_names_the_frames_of_a_stripped_binary() {
    require_root!();
    let build = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let bin = build_shortlived(build.path());
    let sh = |cmd: &str| {
        let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let b = bin.display();
    // Split the debug information off as distributions do, and strip the binary that runs.
    sh(&format!(
        "objcopy --only-keep-debug {b} {b}.debug && strip -s {b}"
    ));
    // Where flightrec_c_burn_here begins, as the debug file knows it.
    let burn = sh(&format!("nm {b}.debug"))
        .lines()
        .find(|l| l.ends_with(" flightrec_c_burn_here"))
        .and_then(|l| u64::from_str_radix(l.split_whitespace().next()?, 16).ok())
        .expect("the burning function in the debug file's symbols");
    let notes = sh(&format!("readelf -n {b}.debug"));
    let build_id = notes
        .lines()
        .find_map(|l| l.trim().strip_prefix("Build ID: "))
        .expect("gcc writes a build ID")
        .trim()
        .to_string();
    let debugroot = build.path().join("debug");
    let dir = debugroot.join(".build-id").join(&build_id[..2]);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::rename(
        format!("{b}.debug"),
        dir.join(format!("{}.debug", &build_id[2..])),
    )
    .unwrap();

    let cap = tempfile::tempdir().unwrap();
    let (rec, pid) = record_one_run(cap.path(), &bin);
    rec.stop();
    let c = cap.path().to_str().unwrap();

    let plain = analyze(&["profile", c, "--pid", &pid, "--folded"]);
    assert!(
        !plain.contains("flightrec_c_burn_here"),
        "a stripped binary has no names on the host:\n{plain}"
    );
    // Without a name, every sample in the burning function carries the start of its code from
    // the binary's unwind tables, which is where the debug file says the function begins; no
    // frame of the binary falls back to a bare offset (its CFI covers all its code).
    let burning = format!("[unknown:flightrec-shortlived!fun_{burn:x}]");
    let samples: u64 = plain
        .lines()
        .filter(|l| l.contains(&burning))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<u64>().ok())
        .sum();
    assert!(
        samples >= 5,
        "the 100 ms burn under {burning} ({samples} samples):\n{plain}"
    );
    assert!(
        !plain.contains("[unknown:flightrec-shortlived+0x"),
        "a frame of the binary without the start of its code:\n{plain}"
    );
    // summary says which debug file would name them.
    let summary = analyze(&["summary", c]);
    assert!(
        summary
            .lines()
            .any(|l| l.contains("flightrec-shortlived") && l.contains(&build_id)),
        "the stripped binary and its build ID among the modules without symbols:\n{summary}"
    );
    let named = analyze(&[
        "profile",
        c,
        "--pid",
        &pid,
        "--folded",
        "--debuginfo-dir",
        debugroot.to_str().unwrap(),
    ]);
    eprintln!("without debug files:\n{plain}\nwith --debuginfo-dir:\n{named}");
    assert!(
        named.contains("flightrec_c_burn_here"),
        "named from the separate debug file:\n{named}"
    );
}

#[test]
fn a_process_killed_by_a_signal_fires_the_exit_trigger() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "sched,process",
            "--segment",
            "1s",
            "--trigger",
            "exit:signal=11",
            "--post",
            "1s",
            "--cooldown",
            "1h",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    // A clean non-zero exit does not match; a SIGSEGV does.
    let three = Command::new("sh").args(["-c", "exit 3"]).status().unwrap();
    assert_eq!(three.code(), Some(3));
    let mut segv = Command::new("sh")
        .args(["-c", "kill -SEGV $$"])
        .spawn()
        .unwrap();
    let segv_pid = segv.id() as i32;
    assert!(!segv.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(2500));
    rec.stop();

    let m = flightrec_schemas::Manifest::read(&the_only_snapshot(cap.path()).join("manifest.json"))
        .unwrap();
    let reason = m.frozen.unwrap().reason;
    eprintln!("{reason}");
    assert_eq!(
        reason,
        format!("trigger exit:signal=11: process {segv_pid} killed by signal 11")
    );

    // The process table holds the wait status of every exit.
    let c = Capture::open(cap.path());
    let mut statuses = Vec::new();
    for b in c.table(flightrec_schemas::Table::Process) {
        let (ev, tid, code) = (strings(&b, "event"), i32s(&b, "tid"), i32s(&b, "exit_code"));
        for i in 0..b.num_rows() {
            if ev[i].as_deref() == Some("exit") {
                statuses.push((tid[i].unwrap(), code[i]));
            }
        }
    }
    assert!(statuses.contains(&(segv_pid, Some(11))), "{statuses:?}");
    assert!(
        statuses.iter().any(|s| s.1 == Some(3 << 8)),
        "exit 3 recorded as status 0x300: {statuses:?}"
    );
}

#[test]
fn a_slow_block_request_of_the_watched_program_fires_the_block_trigger() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "process,block",
            "--segment",
            "1s",
            "--trigger",
            "block>1us,comm=flightrec-workl",
            "--post",
            "1s",
            "--cooldown",
            "1h",
        ],
    );
    // Direct writes reach the disk: each request takes far longer than a microsecond. dd's must
    // not fire the trigger (another comm); the workload's must.
    let dd = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k", "count=8", "oflag=direct,sync"])
        .arg(format!("of={}", work.path().join("dd.dat").display()))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(dd.success());
    std::thread::sleep(Duration::from_millis(500));
    let before_workload = monotonic_ns();
    let child = workload()
        .args(["--writes", "8"])
        .arg("--dir")
        .arg(work.path())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(child.wait_with_output().unwrap().status.success());
    std::thread::sleep(Duration::from_millis(2500));
    rec.stop();
    let snap = the_only_snapshot(cap.path());
    assert!(
        snap.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("block-"),
        "{snap:?}"
    );
    let m = flightrec_schemas::Manifest::read(&snap.join("manifest.json")).unwrap();
    let frozen = m.frozen.unwrap();
    eprintln!("{}", frozen.reason);
    assert!(
        frozen
            .reason
            .starts_with("trigger block>1us,comm=flightrec-workl: ")
            && frozen
                .reason
                .ends_with(&format!("for a request issued by process {pid}")),
        "{}",
        frozen.reason
    );
    assert!(
        frozen.cause_ns > before_workload,
        "dd's requests did not fire it"
    );
    // The frozen capture holds the request that fired it: a completion at the cause's time.
    let r: serde_json::Value = serde_json::from_str(&analyze(&[
        "latency",
        snap.to_str().unwrap(),
        "--kind",
        "block",
        "--pid",
        &pid.to_string(),
        "--json",
    ]))
    .unwrap();
    assert!(r["groups"][0]["percentiles"]["max"].as_u64().unwrap() > 1_000);
}

#[test]
fn a_program_exiting_with_the_watched_code_fires_the_exit_trigger() {
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "process",
            "--segment",
            "1s",
            "--trigger",
            "exit:code=2,comm=flightrec-workl",
            "--post",
            "1s",
            "--cooldown",
            "1h",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    // Neither another program exiting 2, nor the watched one exiting 0, matches.
    let sh = Command::new("sh").args(["-c", "exit 2"]).status().unwrap();
    assert_eq!(sh.code(), Some(2));
    assert!(workload().status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    let before = monotonic_ns();
    // The workload exits 2 on an argument it does not know.
    let mut bad = workload()
        .arg("--no-such-flag")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = bad.id();
    assert_eq!(bad.wait().unwrap().code(), Some(2));
    std::thread::sleep(Duration::from_millis(2000));
    rec.stop();
    let m = flightrec_schemas::Manifest::read(&the_only_snapshot(cap.path()).join("manifest.json"))
        .unwrap();
    let frozen = m.frozen.unwrap();
    assert_eq!(
        frozen.reason,
        format!("trigger exit:code=2,comm=flightrec-workl: process {pid} exited with code 2")
    );
    assert!(frozen.cause_ns > before, "only the last exit matched");
}
