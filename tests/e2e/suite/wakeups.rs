//! Wake-ups name their waker: the task that called try_to_wake_up (`sched_waking` runs in its
//! context), not the task current where `sched_wakeup` ran. Two threads pinned to different CPUs
//! wake each other over pipes; each sleeps on an otherwise idle CPU, so the kernel often completes
//! the wake-up there after an IPI, where `current` is the idle task.
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
    let rows = run_ok(
        "flightrec-analyze",
        &["sql", dir, "-e", &q, "--format", "json"],
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&rows).unwrap();
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
