//! `timeline`: a workload of known steps (exec, five 20 ms sleeps, three direct writes with fsync,
//! two TCP connections, exit 0) recorded with every source, read back as one process's events in
//! time order.
use std::process::Stdio;

use super::*;

#[test]
fn timeline_shows_a_process_life_in_order_across_tables() {
    require_root!();
    let _quiet = quiet();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    // Syscalls of the workload only (its thread name), everything else machine-wide.
    let rec = Recording::start(
        cap.path(),
        &[
            "--events",
            "all",
            "--comm",
            "flightrec-workl",
            "--segment",
            "1s",
        ],
    );
    let child = workload()
        .args([
            "--sleeps",
            "5",
            "--sleep-ms",
            "20",
            "--writes",
            "3",
            "--tcp",
            "2",
        ])
        .arg("--dir")
        .arg(work.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    assert!(child.wait_with_output().unwrap().status.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    let r = analyze_json(&["timeline", dir, "--pid", &pid]);
    let lines = r["lines"].as_array().unwrap();
    let of = |event: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|l| l["event"] == event).collect()
    };
    let ts: Vec<u64> = lines.iter().map(|l| l["ts"].as_u64().unwrap()).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "not in time order");
    // Born by exec, ended by exit 0, everything else in between.
    let (exec, exit) = (of("exec"), of("exit"));
    assert!(!exec.is_empty() && !exit.is_empty(), "{r}");
    let last_exit = exit.last().unwrap();
    assert_eq!(last_exit["detail"], "0", "{last_exit}");
    let (first, last) = (
        exec[0]["ts"].as_u64().unwrap(),
        last_exit["ts"].as_u64().unwrap(),
    );
    // The five sleeps: the syscall with its duration, the switch-out asleep, the wake-up.
    let sleeps: Vec<_> = of("syscall")
        .into_iter()
        .filter(|l| {
            l["detail"]
                .as_str()
                .unwrap()
                .starts_with("clock_nanosleep = 0")
        })
        .collect();
    assert_eq!(sleeps.len(), 5, "{sleeps:?}");
    for s in &sleeps {
        let t = s["ts"].as_u64().unwrap();
        assert!(t > first && t < last, "{s}");
    }
    let asleep = of("off-cpu")
        .into_iter()
        .filter(|l| l["detail"].as_str().unwrap().starts_with("state S"))
        .count();
    assert!(asleep >= 5, "{asleep} interruptible switch-outs");
    assert!(of("woken").len() >= 5);
    // The writes reach the disk as block requests issued by the workload, and its own connects
    // are TCP state changes in its context.
    let issues = of("block")
        .into_iter()
        .filter(|l| l["detail"].as_str().unwrap().starts_with("issue"))
        .count();
    assert!(issues >= 3, "{issues} block issues");
    let syn_sent = of("tcp")
        .into_iter()
        .filter(|l| {
            l["detail"]
                .as_str()
                .unwrap()
                .starts_with("CLOSE -> SYN_SENT")
        })
        .count();
    assert_eq!(syn_sent, 2);
    // Text: one line per event, and the limit is said.
    let text = run_ok(
        "flightrec-analyze",
        &["timeline", dir, "--pid", &pid, "--limit", "3"],
    );
    assert_eq!(
        text.lines().filter(|l| l.contains(&pid)).count(),
        3,
        "{text}"
    );
    assert!(text.contains("more events (raise --limit)"), "{text}");
}
