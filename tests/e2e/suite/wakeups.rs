//! Wake-ups name their waker: the task that called try_to_wake_up (`sched_waking` runs in its
//! context), not the task current where `sched_wakeup` ran. Two threads pinned to different CPUs
//! wake each other over pipes; each sleeps on an otherwise idle CPU, so the kernel often completes
//! the wake-up there after an IPI, where `current` is the idle task. With `--waker-stacks`,
//! offwaketime and wakeuptime join a C program's known blocked chain with the known chain of the
//! thread that woke it, and carry the time the program measured itself blocked.
use std::{io::Write, process::Stdio};

use super::{peers::Reaped, *};

#[test]
fn every_pipe_wakeup_names_the_thread_that_woke_it() {
    require_root!();
    // Idle CPUs are the point: alone.
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched", "--segment", "60s"]);
    let mut child = Reaped(
        workload()
            .args(["--wait", "--pingpong", "2000", "--pin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    // Wake-ups of each thread of the workload (not its first, as a new task), by waker.
    let q = format!(
        "SELECT t.comm, (w.waker_tgid = {pid} AND w.waker_tid <> w.tid) AS by_other, \
         w.waker_tid = 0 AS by_idle, count(*) AS n \
         FROM sched_wakeup w JOIN tasks t ON t.tid = w.tid AND t.segment = w.segment \
         WHERE t.tgid = {pid} AND NOT w.new GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    );
    let rows = sql_rows(dir, &q);
    let count = |comm: &str, other: bool, idle: bool| -> u64 {
        rows.iter()
            .filter(|r| r["comm"] == comm && r["by_other"] == other && r["by_idle"] == idle)
            .map(|r| r["n"].as_u64().unwrap())
            .sum()
    };
    report(&format!(
        "wake-ups of the ping-pong threads by waker: {rows:?}"
    ));
    // 2000 round trips: each thread is woken by the other whenever it went to sleep before the
    // byte came (most of the time, not always: 1471 to 1999 in runs here).
    let (pong_ok, main_ok) = (
        count("pong", true, false),
        count("flightrec-workl", true, false),
    );
    assert!(pong_ok >= 1000 && main_ok >= 1000, "{rows:?}");
    assert_eq!(
        count("pong", false, true) + count("flightrec-workl", false, true),
        0,
        "{rows:?}"
    );
    // Others (the main thread woken at pong's exit by the exiting thread counts as by_other;
    // an interrupt's current task could wake one after a page fault): a handful at most.
    let others = count("pong", false, false) + count("flightrec-workl", false, false);
    assert!(others <= 5, "{rows:?}");
}

/// Folded lines of `tool` for one process: (frames, microseconds).
fn folded_of(tool: &str, cap: &str, pid: u32) -> Vec<(Vec<String>, u64)> {
    run_ok(
        "flightrec-analyze",
        &[tool, cap, "--pid", &pid.to_string(), "--folded"],
    )
    .lines()
    .filter_map(|l| {
        let (stack, v) = l.rsplit_once(' ')?;
        Some((
            stack.split(';').map(String::from).collect(),
            v.parse().ok()?,
        ))
    })
    .collect()
}

/// The position of `chain` as consecutive frames in `frames`.
fn find(frames: &[String], chain: &[&str]) -> Option<usize> {
    frames
        .windows(chain.len())
        .position(|w| w.iter().zip(chain).all(|(a, b)| a == b))
}

#[test]
fn offwaketime_and_wakeuptime_join_the_blocked_stack_with_the_wakers() {
    require_root!();
    // A recorder of its own: never beside a test that runs alone.
    let _quiet = quiet();
    let build = tempfile::tempdir().unwrap();
    let bin = build_c_program("wakeups.c", build.path(), "wakeups", &["-O2"]);
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "sched,process",
            "--waker-stacks",
            "--segment",
            "60s",
        ],
    );
    let (pid, blocked) = run_measuring(&bin, &["20", "20"], "blocked_ns");
    rec.stop();
    let c = cap.path().to_str().unwrap();
    let within = |us: u64, what: &str| {
        let ns = us * 1000;
        report(&format!(
            "{what}: {ns} ns; the program measured {blocked} ns"
        ));
        assert!(
            ns <= blocked && ns * 10 >= blocked * 9,
            "{what}: {ns} of {blocked}"
        );
    };

    // offwaketime: the reader's stack, `--`, then the writer's stack leaf first, its name last.
    let sleeper = [
        "main",
        "flightrec_sleeper_level1",
        "flightrec_sleep_on_pipe",
    ];
    let waker = [
        "flightrec_wake",
        "flightrec_waker_level1",
        "flightrec_waker_thread",
    ];
    let lines = folded_of("offwaketime", c, pid);
    let mine: Vec<_> = lines
        .iter()
        .filter(|(f, _)| find(f, &sleeper).is_some())
        .collect();
    assert_eq!(
        mine.len(),
        1,
        "one stack pair for the pipe reads: {lines:?}"
    );
    let (frames, us) = mine[0];
    let sep = frames
        .iter()
        .position(|f| f == "--")
        .expect("a -- between the stacks");
    assert!(find(&frames[..sep], &sleeper).is_some());
    assert!(find(&frames[sep..], &waker).is_some(), "{frames:?}");
    assert!(
        frames[sep..].iter().any(|f| f.contains("pipe_write")),
        "{frames:?}"
    );
    assert_eq!(frames.last().map(String::as_str), Some("wakeups"));
    within(*us, "offwaketime");
    // The waker thread's own sleeps were ended by the timer interrupt.
    assert!(lines.iter().any(|(f, _)| {
        f.last().map(String::as_str) == Some("[interrupt]")
            && f.iter().any(|x| x == "hrtimer_wakeup")
    }));

    // wakeuptime: the waker's name and stack root first, then the woken task's name.
    let lines = folded_of("wakeuptime", c, pid);
    let root_first: Vec<&str> = waker.iter().rev().copied().collect();
    let mine: Vec<_> = lines
        .iter()
        .filter(|(f, _)| find(f, &root_first).is_some())
        .collect();
    assert_eq!(mine.len(), 1, "{lines:?}");
    let (frames, us) = mine[0];
    assert_eq!(frames[0], "wakeups");
    assert_eq!(frames.last().map(String::as_str), Some("wakeups"));
    within(*us, "wakeuptime");
    let svg = run_ok(
        "flightrec-analyze",
        &[
            "flamegraph",
            c,
            "--pid",
            &pid.to_string(),
            "--kind",
            "offwake",
        ],
    );
    assert!(svg.contains("flightrec_waker_level1"));
}
