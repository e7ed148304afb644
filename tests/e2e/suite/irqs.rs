//! `hardirqs` and `softirqs` from a capture recorded with `--events irq`, against libbpf-tools'
//! hardirqs (counts) and softirqs (time) tracing the same interval while loopback TCP traffic and
//! disk writes raise interrupts and softirqs.
use std::{collections::BTreeMap, process::Stdio};

use super::{
    peers::{wall_now, Peer},
    *,
};

/// A libbpf-tools table `NAME VALUE` (names may hold spaces: the value is the last column).
fn table(lines: &[String]) -> BTreeMap<String, u64> {
    lines
        .iter()
        .filter_map(|l| {
            let (name, v) = l.trim().rsplit_once(char::is_whitespace)?;
            Some((name.trim().to_string(), v.parse().ok()?))
        })
        .collect()
}

#[test]
fn hardirqs_and_softirqs_agree_with_libbpf_tools() {
    require_root!();
    // Exact counts against a peer: alone.
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let rec = Recording::start(cap.path(), &["--events", "irq", "--segment", "60s"]);
    let hard = Peer::start_when("hardirqs", &["-C"], "Tracing");
    let soft = Peer::start_when("softirqs", &[], "Tracing");
    let from = wall_now();
    let out = workload()
        .args([
            "--tcp",
            "300",
            "--writes",
            "20",
            "--sleeps",
            "20",
            "--sleep-ms",
            "10",
        ])
        .arg("--dir")
        .arg(work.path())
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let to = wall_now();
    let (hard, soft) = (table(&hard.stop_lines()), table(&soft.stop_lines()));
    rec.stop();
    let c = cap.path().to_str().unwrap();
    let ours = |tool: &str| -> BTreeMap<String, (u64, u64)> {
        analyze_json(&[tool, c, "--from", &from, "--to", &to])["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let name = r["name"].as_str().unwrap().to_string();
                (
                    name,
                    (
                        r["count"].as_u64().unwrap(),
                        r["total_ns"].as_u64().unwrap(),
                    ),
                )
            })
            .collect()
    };
    let (our_hard, our_soft) = (ours("hardirqs"), ours("softirqs"));
    report(&format!(
        "hardirqs counts: flightrec {:?}, libbpf-tools {hard:?}",
        our_hard.iter().map(|(k, v)| (k, v.0)).collect::<Vec<_>>()
    ));
    report(&format!(
        "softirqs us: flightrec {:?}, libbpf-tools {soft:?}",
        our_soft
            .iter()
            .map(|(k, v)| (k, v.1 / 1000))
            .collect::<Vec<_>>()
    ));
    // The peers ran over a slightly longer interval than --from..--to: each of our counts is at
    // most theirs and close to it.
    let mut compared = 0;
    for (name, n) in &hard {
        if *n < 50 {
            continue;
        }
        let (ours, _) = our_hard.get(name).copied().unwrap_or_default();
        assert!(
            ours <= *n + 2 && ours * 10 >= *n * 7,
            "{name}: ours {ours}, theirs {n}"
        );
        compared += 1;
    }
    assert!(compared >= 1, "no busy IRQ to compare: {hard:?}");
    // Loopback TCP runs in net_rx softirqs; the timer ticks. Times agree within a factor of two
    // (both tracers add their own cost to what they time).
    for vec in ["net_rx", "timer"] {
        let theirs = soft.get(vec).copied().unwrap_or(0);
        let (n, ns) = our_soft.get(vec).copied().unwrap_or_default();
        assert!(
            n > 0 && theirs > 0,
            "{vec}: ours {n} runs, theirs {theirs} us"
        );
        let us = ns / 1000;
        assert!(
            us * 2 >= theirs && us <= theirs * 2 + 100,
            "{vec}: ours {us} us, theirs {theirs} us"
        );
    }
}
