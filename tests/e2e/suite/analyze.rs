//! Record a known workload on the real kernel, then check what flightrec-analyze computes from it
//! against the workload and against libbpf-tools' runqlat and biolatency over the same interval.
use std::{
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use super::*;

fn analyze_json(args: &[&str]) -> serde_json::Value {
    let mut a = args.to_vec();
    a.push("--json");
    serde_json::from_str(&run_ok("flightrec-analyze", &a)).expect("json")
}

#[test]
fn analyses_match_the_workload_recorded_just_now() {
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    let rec = Recording::start(
        cap.path(),
        &["--events", "sched,process,block", "--segment", "1s"],
    );
    let child = workload()
        .args([
            "--sleeps",
            "20",
            "--sleep-ms",
            "25",
            "--writes",
            "32",
            "--pingpong",
            "2000",
        ])
        .arg("--dir")
        .arg(work.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    assert!(child.wait_with_output().unwrap().status.success());
    rec.stop();
    let dir = cap.path().to_str().unwrap();

    let off = analyze_json(&["offcpu", dir, "--pid", &pid, "--state", "interruptible"]);
    // All stacks through nanosleep: a sleep whose user stack walked differently is its own row.
    let sleeps: Vec<&serde_json::Value> = off["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["folded"].as_str().unwrap().contains("do_nanosleep"))
        .collect();
    let ns: u64 = sleeps.iter().map(|s| s["value"].as_u64().unwrap()).sum();
    let intervals: u64 = sleeps.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    let c = Capture::open(cap.path());
    let raw_sleeps: usize = c
        .table(flightrec_schemas::Table::SchedSwitch)
        .iter()
        .map(|b| {
            let (prev, state) = (i32s(b, "prev_tid"), i64s(b, "prev_state"));
            (0..b.num_rows())
                .filter(|&i| {
                    prev[i].map(|p| p.to_string()) == Some(pid.clone()) && state[i] == Some(1)
                })
                .count()
        })
        .sum();
    eprintln!(
        "offcpu in nanosleep: {} ms in {} intervals (want ~500 ms in 20); main thread's interruptible switch-outs in the capture: {raw_sleeps}; lost {:?}, missed {:?}, failed stack walks {:?}; stacks: {:?}",
        ns / 1_000_000,
        intervals,
        c.sum(|m| &m.lost),
        c.sum(|m| &m.missed),
        c.sum(|m| &m.stack_errors),
        sleeps
            .iter()
            .map(|s| (s["count"].as_u64(), s["folded"].as_str().map(|f| f.len())))
            .collect::<Vec<_>>()
    );
    assert!(ns.abs_diff(500_000_000) <= 50_000_000, "{ns} ns");
    assert_eq!(intervals, 20, "one interval per sleep");

    let block = analyze_json(&["latency", dir, "--kind", "block", "--pid", &pid]);
    let n = block["groups"][0]["count"].as_u64().unwrap();
    eprintln!("block requests of the workload: {n} (32 writes + their fsyncs)");
    assert!(n >= 32);

    // Run-queue latencies of the ping-pong threads = their wake-ups + preemptions in the capture.
    let runq = analyze_json(&["latency", dir, "--kind", "runq", "--pid", &pid]);
    let counted = runq["groups"][0]["count"].as_u64().unwrap();
    let mut threads = std::collections::HashSet::new();
    for b in c.table(flightrec_schemas::Table::Tasks) {
        let (tid, tgid) = (i32s(&b, "tid"), i32s(&b, "tgid"));
        for i in 0..b.num_rows() {
            if tgid[i].map(|t| t.to_string()) == Some(pid.clone()) {
                threads.insert(tid[i]);
            }
        }
    }
    let mut raw = 0u64;
    for b in c.table(flightrec_schemas::Table::SchedWakeup) {
        raw += i32s(&b, "tid")
            .iter()
            .filter(|t| threads.contains(t))
            .count() as u64;
    }
    for b in c.table(flightrec_schemas::Table::SchedSwitch) {
        let (prev, state) = (i32s(&b, "prev_tid"), i64s(&b, "prev_state"));
        raw += (0..b.num_rows())
            .filter(|&i| threads.contains(&prev[i]) && state[i] == Some(0))
            .count() as u64;
    }
    eprintln!("run-queue latencies {counted}, wake-ups + preemptions in the capture {raw}");
    assert!(counted >= 4000, "two wake-ups per round trip");
    assert!(counted <= raw && raw - counted <= 2);
}

/// A libbpf-tools tracer running until SIGINT; lines of its stdout arrive on a channel.
struct Peer {
    child: Reaped,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    fn start(tool: &str, args: &[&str]) -> Option<Peer> {
        let path = ["/usr/sbin", "/usr/bin"]
            .iter()
            .map(|d| format!("{d}/{tool}"))
            .find(|p| std::path::Path::new(p).exists())?;
        // Line-buffered, so its "Tracing..." line arrives when it has attached, not at exit.
        let mut child = Command::new("stdbuf")
            .arg("-oL")
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let peer = Peer {
            child: Reaped(child),
            lines,
        };
        // Attached once it says it is tracing.
        loop {
            match peer.lines.recv_timeout(Duration::from_secs(30)) {
                Ok(l) if l.contains("Tracing") => return Some(peer),
                Ok(_) => continue,
                Err(_) => panic!("{tool} did not start tracing"),
            }
        }
    }

    /// Stops it; returns (count, low bound in us of the median bucket) of its histogram.
    fn stop(mut self) -> (u64, u64) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGINT) };
        self.child.0.wait().unwrap();
        let mut buckets = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            let parts: Vec<&str> = l.split_whitespace().collect();
            if parts.len() >= 5 && parts[1] == "->" && parts[3] == ":" {
                if let (Ok(low), Ok(n)) = (parts[0].parse::<u64>(), parts[4].parse::<u64>()) {
                    buckets.push((low, n));
                }
            }
        }
        median_bucket(&buckets)
    }
}

fn median_bucket(buckets: &[(u64, u64)]) -> (u64, u64) {
    let total: u64 = buckets.iter().map(|b| b.1).sum();
    let mut seen = 0;
    for (low, n) in buckets {
        seen += n;
        if seen * 2 >= total {
            return (total, *low);
        }
    }
    (total, 0)
}

fn ours(report: &serde_json::Value) -> (u64, u64) {
    let buckets: Vec<(u64, u64)> = report["groups"][0]["histogram"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|b| {
                    (
                        b["low"].as_u64().unwrap() / 1000,
                        b["count"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    median_bucket(&buckets)
}

fn close(a: u64, b: u64, tolerance_pct: u64) -> bool {
    a.abs_diff(b) <= (a.max(b) * tolerance_pct / 100).max(5)
}

/// True when two log2 bucket lower bounds (us) are at most `steps` buckets apart.
fn buckets_within(a: u64, b: u64, steps: u32) -> bool {
    // Buckets are 0-1, 2-3, 4-7, ...: the first one (low bound 0) is index 1, like low bound 1.
    let index = |low: u64| 64 - low.max(1).leading_zeros();
    index(a).abs_diff(index(b)) <= steps
}

/// A child that is killed and reaped however the test ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bucket_distance_counts_histogram_rows() {
    assert!(buckets_within(0, 4, 2), "0-1, 2-3, 4-7: two rows apart");
    assert!(!buckets_within(0, 8, 2));
    assert!(buckets_within(32, 64, 1));
    assert!(!buckets_within(32, 128, 1));
}

fn wall_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[test]
fn runqlat_and_biolatency_agree_with_flightrec() {
    require_root!();
    let cap = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir_in(std::env::temp_dir()).unwrap();
    // One long segment: the recorder writes no segment of its own during the comparison.
    let rec = Recording::start(cap.path(), &["--events", "sched,block", "--segment", "60s"]);
    let mut child = Reaped(
        workload()
            .args(["--wait", "--pingpong", "3000", "--writes", "200"])
            .arg("--dir")
            .arg(work.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id().to_string();
    let runqlat = Peer::start("runqlat", &["-p", &pid])
        .expect("runqlat from libbpf-tools is not installed: .ci/run installs it (apt-get install libbpf-tools)");
    let bio = Peer::start("biolatency", &[]).expect("biolatency from libbpf-tools");
    let from = wall_now();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    let to = wall_now();
    let (peer_runq, peer_runq_median) = runqlat.stop();
    let (peer_bio, peer_bio_median) = bio.stop();
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    let (our_runq, our_runq_median) = ours(&analyze_json(&[
        "latency", dir, "--kind", "runq", "--pid", &pid,
    ]));
    let (our_bio, our_bio_median) = ours(&analyze_json(&[
        "latency", dir, "--kind", "block", "--from", &from, "--to", &to,
    ]));
    eprintln!("runq  : flightrec {our_runq} latencies, median bucket {our_runq_median} us; runqlat {peer_runq}, median bucket {peer_runq_median} us");
    eprintln!("block : flightrec {our_bio} requests, median bucket {our_bio_median} us; biolatency {peer_bio}, median bucket {peer_bio_median} us");
    assert!(close(our_runq, peer_runq, 5), "run-queue counts differ");
    // Both tools hook sched_switch; flightrec's program runs first and stamps the time on entry, then
    // walks two stacks, so runqlat's switch-in stamps come a few microseconds later. With medians of a
    // few microseconds that can move runqlat up to two log2 buckets; the counts must still agree.
    assert!(
        buckets_within(our_runq_median, peer_runq_median, 2),
        "run-queue medians differ"
    );
    assert!(close(our_bio, peer_bio, 10), "block counts differ");
    assert!(
        buckets_within(our_bio_median, peer_bio_median, 1),
        "block medians differ"
    );
}
