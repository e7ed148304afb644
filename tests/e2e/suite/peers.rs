//! flightrec against libbpf-tools' runqlat and biolatency, recording the same kernel over the same
//! interval: a workload that sleeps and wakes, one that is preempted inside the kernel, and direct
//! writes. The figures are printed with [`report`], so every `.ci/run` shows how closely they agree.
use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Write},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use flightrec_schemas::Table;

use super::*;

/// One log2 histogram in microseconds: (low bound of the bucket, count).
type Buckets = Vec<(u64, u64)>;

/// A libbpf-tools tracer running until SIGINT; lines of its stdout arrive on a channel.
pub(super) struct Peer {
    child: Reaped,
    lines: mpsc::Receiver<String>,
}

impl Peer {
    pub(super) fn start(tool: &str, args: &[&str]) -> Peer {
        Peer::start_when(tool, args, "Tracing")
    }

    /// Starts `tool` and waits until a line of its output contains `ready` (it has attached).
    pub(super) fn start_when(tool: &str, args: &[&str], ready: &str) -> Peer {
        let path = ["/usr/sbin", "/usr/bin"]
            .iter()
            .map(|d| format!("{d}/{tool}"))
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("{tool} from libbpf-tools is not installed: .ci/run installs it (apt-get install libbpf-tools)")
            });
        // Line-buffered, so its "Tracing..." line arrives when it has attached, not at exit.
        let mut child = Command::new("stdbuf")
            .arg("-oL")
            .arg(path)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("stdbuf (coreutils)");
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
                Ok(l) if l.contains(ready) => return peer,
                Ok(_) => continue,
                Err(_) => panic!("{tool} did not start tracing"),
            }
        }
    }

    /// Stops it; returns its histograms by the label of their `pid = N comm` or `disk = name`
    /// header (`""` for a single histogram without one).
    pub(super) fn stop(self) -> BTreeMap<String, Buckets> {
        parse_histograms(&self.stop_lines())
    }

    /// Stops it; returns the lines it printed after it was ready.
    pub(super) fn stop_lines(mut self) -> Vec<String> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.0.id() as i32, libc::SIGINT) };
        self.child.0.wait().unwrap();
        let mut lines = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            lines.push(l);
        }
        lines
    }
}

fn parse_histograms(lines: &[String]) -> BTreeMap<String, Buckets> {
    let mut out: BTreeMap<String, Buckets> = BTreeMap::new();
    let mut label = String::new();
    for l in lines {
        let parts: Vec<&str> = l.split_whitespace().collect();
        if parts.len() >= 3 && parts[1] == "=" {
            // `pid = 123 dd` → "123"; `disk = vda` → "vda"
            label = parts[2].to_string();
        } else if parts.len() >= 5 && parts[1] == "->" && parts[3] == ":" {
            if let (Ok(low), Ok(n)) = (parts[0].parse::<u64>(), parts[4].parse::<u64>()) {
                out.entry(label.clone()).or_default().push((low, n));
            }
        }
    }
    out
}

/// flightrec's histogram of a latency report's first group, in the peers' microsecond buckets.
pub(super) fn ours(report: &serde_json::Value) -> Buckets {
    report["groups"][0]["histogram"]
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
        .unwrap_or_default()
}

pub(super) fn total(h: &Buckets) -> u64 {
    h.iter().map(|b| b.1).sum()
}

/// Low bound (us) of the bucket holding the median.
pub(super) fn median_bucket(h: &Buckets) -> u64 {
    let all = total(h);
    let mut seen = 0;
    for (low, n) in h {
        seen += n;
        if seen * 2 >= all {
            return *low;
        }
    }
    0
}

/// Index of a log2 bucket by its low bound: 0-1, 2-3, 4-7, ... (the first, low bound 0, is 1).
fn bucket_index(low: u64) -> u32 {
    64 - low.max(1).leading_zeros()
}

/// Share of the events that two histograms place in different buckets: half the sum of the
/// per-bucket differences over the larger total (0 = identical distributions).
pub(super) fn displaced(a: &Buckets, b: &Buckets) -> f64 {
    let mut by: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
    for (low, n) in a {
        by.entry(bucket_index(*low)).or_default().0 += n;
    }
    for (low, n) in b {
        by.entry(bucket_index(*low)).or_default().1 += n;
    }
    let diff: u64 = by.values().map(|(x, y)| x.abs_diff(*y)).sum();
    diff as f64 / 2.0 / total(a).max(total(b)).max(1) as f64
}

/// A child that is killed and reaped however the test ends.
pub(super) struct Reaped(pub(super) Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn histogram_helpers_count_rows_and_displacement() {
    assert_eq!(bucket_index(0), bucket_index(1), "0-1 is the first row");
    assert_eq!(bucket_index(4) - bucket_index(0), 2, "0-1, 2-3, 4-7");
    let a = vec![(0, 10), (2, 10)];
    assert_eq!(displaced(&a, &a), 0.0);
    assert!(later_by_at_most(&a, &vec![(2, 15), (4, 5)], 0, 0));
    assert!(!later_by_at_most(&a, &vec![(0, 15), (2, 5)], 0, 0), "lower");
    assert!(
        !later_by_at_most(&a, &vec![(4, 10), (8, 10)], 0, 0),
        "two rows"
    );
    assert!(
        later_by_at_most(&a, &vec![(4, 10), (8, 10)], 4, 0),
        "two rows within the delay"
    );
    let b = vec![(64, 10)];
    assert!(
        !later_by_at_most(&b, &vec![(256, 10)], 16, 0),
        "16 us cannot move 64 us two rows"
    );
    assert_eq!(displaced(&a, &vec![(2, 20)]), 0.5, "half moved one row");
    let lines: Vec<String> = [
        "pid = 7 dd",
        "  0 -> 1 : 3 |**|",
        "disk = vda",
        "  4 -> 7 : 2 |*|",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let h = parse_histograms(&lines);
    assert_eq!(h["7"], vec![(0, 3)]);
    assert_eq!(h["vda"], vec![(4, 2)]);
}

/// True when `later` can be the distribution of `earlier`'s events each delayed by between 0 and
/// `delay_us`: at every bucket, `later` has at most as many events at or below it as `earlier`,
/// and, from the buckets `delay_us` can no longer carry two rows up, at least as many at or below
/// the next bucket as `earlier` has at or below this one. `slack` events may break either rule.
fn later_by_at_most(earlier: &Buckets, later: &Buckets, delay_us: u64, slack: u64) -> bool {
    let cumulative = |h: &Buckets| {
        let mut c = [0u64; 66];
        for (low, n) in h {
            c[bucket_index(*low) as usize] += n;
        }
        for i in 1..c.len() {
            c[i] += c[i - 1];
        }
        c
    };
    let (e, l) = (cumulative(earlier), cumulative(later));
    // Bucket k holds [2^(k-1), 2^k) us: a delay below its low bound moves an event one row at most.
    let first_bounded = bucket_index(delay_us) as usize + 1;
    (0..e.len() - 1)
        .all(|k| l[k] <= e[k] + slack && (k < first_bounded || l[k + 1] + slack >= e[k]))
}

/// Switch-outs of these processes that `sched_switch` reported as preemptions (R+), counted with
/// the raw table and the literal 0x100 (TASK_REPORT_MAX), not the analyzer's code.
fn preempted_switch_outs(c: &Capture, pids: &[i32]) -> u64 {
    let mut n = 0;
    for b in c.table(Table::SchedSwitch) {
        let (prev, state) = (i32s(&b, "prev_tgid"), i64s(&b, "prev_state"));
        n += (0..b.num_rows())
            .filter(|&i| prev[i].is_some_and(|p| pids.contains(&p)) && state[i] == Some(0x100))
            .count() as u64;
    }
    n
}

pub(super) fn wall_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[test]
fn runqlat_and_biolatency_agree_with_flightrec() {
    require_root!();
    let _quiet = quiet();
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
    let runqlat = Peer::start("runqlat", &["-p", &pid]);
    let bio_starting = wall_now();
    let bio = Peer::start("biolatency", &[]);
    let from = wall_now();
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    std::thread::sleep(Duration::from_millis(200));
    let to = wall_now();
    let peer_runq = runqlat.stop().remove("").unwrap_or_default();
    let bio_stopping = wall_now();
    let peer_bio = bio.stop().remove("").unwrap_or_default();
    let bio_stopped = wall_now();
    rec.stop();
    let dir = cap.path().to_str().unwrap();
    let our_runq = ours(&analyze_json(&[
        "latency", dir, "--kind", "runq", "--pid", &pid,
    ]));
    let our_bio = ours(&analyze_json(&[
        "latency", dir, "--kind", "block", "--from", &from, "--to", &to,
    ]));
    let (runq_moved, bio_moved) = (
        displaced(&our_runq, &peer_runq),
        displaced(&our_bio, &peer_bio),
    );
    report(&format!(
        "agreement, run queue (pipe ping-pong): flightrec {} latencies, median bucket {} us; runqlat {}, median bucket {} us; {:.1}% in another bucket",
        total(&our_runq), median_bucket(&our_runq), total(&peer_runq), median_bucket(&peer_runq), runq_moved * 100.0
    ));
    report(&format!(
        "agreement, block I/O (whole machine): flightrec {} requests, median bucket {} us; biolatency {}, median bucket {} us; {:.1}% in another bucket",
        total(&our_bio), median_bucket(&our_bio), total(&peer_bio), median_bucket(&peer_bio), bio_moved * 100.0
    ));
    // Both tools see every wake-up and switch of the workload's threads between its start and its
    // exit (it waits for "go" until both are attached). They differ where runqlat reads the task's
    // state itself: a thread preempted between setting TASK_INTERRUPTIBLE and calling schedule() is
    // still on the run queue (sched_switch says R+), but runqlat sees "interruptible" and does not
    // count that wait. So flightrec counts at least what runqlat does, and at most that plus the
    // workload's R+ switch-outs, the interval open at either end of an attachment, and 0.1% for
    // runs of runqlat's programs the kernel skips on a loaded CPU (flightrec counts its own
    // skipped runs; runqlat does not report them).
    let c = Capture::open(cap.path());
    let preempted = preempted_switch_outs(&c, &[pid.parse().unwrap()]);
    report(&format!(
        "  the workload's R+ switch-outs: {preempted} (flightrec - runqlat = {})",
        total(&our_runq) as i64 - total(&peer_runq) as i64
    ));
    assert!(
        total(&our_runq) + 2 >= total(&peer_runq)
            && total(&our_runq) <= total(&peer_runq) + preempted + 2 + total(&our_runq) / 1000,
        "run-queue counts differ"
    );
    // Both hook sched_switch and sched_wakeup and stamp the same events, flightrec's program first:
    // runqlat takes its switch-in time after flightrec's switch program (two stack walks) has run,
    // its wake-up time after flightrec's shorter wake-up program. So runqlat's latencies are
    // flightrec's plus the difference of the two programs' run times: about a microsecond, up to
    // ~16 us when other tests load this 2-CPU machine. With latencies of a few microseconds that
    // moves many events up a row or two; none may land lower, and from 16 us up none may move
    // more than one row (1% of the events may break either rule: a wake-up program that ran slower
    // than the switch program).
    assert!(
        later_by_at_most(
            &our_runq,
            &peer_runq,
            16,
            total(&our_runq).abs_diff(total(&peer_runq)) + total(&our_runq) / 100
        ),
        "run-queue distributions differ by more than runqlat's later timestamps explain"
    );
    assert!(
        median_bucket(&peer_runq) >= median_bucket(&our_runq)
            && median_bucket(&peer_runq) <= (median_bucket(&our_runq) + 16).next_power_of_two(),
        "run-queue medians differ by more than the programs' run times explain"
    );
    // biolatency counts every request of the machine from its attachment to its stop, the tests
    // running beside this one's too: flightrec counts at most its count between the two (attached
    // and not yet stopping), and at least its count from before it started to after it stopped.
    // A request at either end can fall on one side only.
    let bio_count = |from: &str, to: &str| {
        total(&ours(&analyze_json(&[
            "latency", dir, "--kind", "block", "--from", from, "--to", to,
        ])))
    };
    let (inner, outer) = (
        bio_count(&from, &bio_stopping),
        bio_count(&bio_starting, &bio_stopped),
    );
    report(&format!(
        "  block requests: flightrec {inner} while biolatency was attached, {outer} from its start to its stop; biolatency {}",
        total(&peer_bio)
    ));
    assert!(
        inner <= total(&peer_bio) + 3 && outer + 3 >= total(&peer_bio),
        "block counts differ"
    );
    assert!(bio_moved <= 0.05, "block distributions differ");
    assert_eq!(
        median_bucket(&our_bio),
        median_bucket(&peer_bio),
        "block medians differ"
    );
}

/// Three `dd if=/dev/zero of=/dev/null bs=1M` pinned to one CPU spend their time clearing user
/// pages inside the kernel, where the scheduler tick preempts them: `sched_switch` reports those
/// switches with `prev_state` 0x100 (R+), not 0. runqlat counts them as run-queue waits, and so
/// must flightrec.
#[test]
fn kernel_preemptions_are_run_queue_waits_as_runqlat_counts_them() {
    require_root!();
    let _exclusive = exclusive();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched", "--segment", "60s"]);
    let runqlat = Peer::start("runqlat", &["-P"]);
    let dds: Vec<Reaped> = (0..3)
        .map(|_| {
            Reaped(
                Command::new("taskset")
                    .args(["-c", "1", "dd", "if=/dev/zero", "of=/dev/null", "bs=1M"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("taskset and dd"),
            )
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let pids: Vec<i32> = dds.iter().map(|d| d.0.id() as i32).collect();
    drop(dds);
    std::thread::sleep(Duration::from_millis(200));
    let mut peer = runqlat.stop();
    rec.stop();
    let dir = cap.path().to_str().unwrap();

    let c = Capture::open(cap.path());
    let preempted = preempted_switch_outs(&c, &pids);
    let switch_outs: u64 = c
        .table(Table::SchedSwitch)
        .iter()
        .map(|b| {
            i32s(b, "prev_tgid")
                .iter()
                .filter(|p| p.is_some_and(|p| pids.contains(&p)))
                .count() as u64
        })
        .sum();
    let (mut ours_all, mut peer_all) = (0u64, 0u64);
    for pid in &pids {
        let our = ours(&analyze_json(&[
            "latency",
            dir,
            "--kind",
            "runq",
            "--pid",
            &pid.to_string(),
        ]));
        let theirs = peer.remove(&pid.to_string()).unwrap_or_default();
        report(&format!(
            "agreement, run queue (dd {pid}, preempted in the kernel): flightrec {} waits, median bucket {} us; runqlat {}, median bucket {} us; {:.1}% in another bucket",
            total(&our), median_bucket(&our), total(&theirs), median_bucket(&theirs), displaced(&our, &theirs) * 100.0
        ));
        // Killing the dd ends its last wait in the middle for one tool or the other.
        assert!(
            total(&our).abs_diff(total(&theirs)) <= 2,
            "dd {pid}: flightrec {} run-queue waits, runqlat {}",
            total(&our),
            total(&theirs)
        );
        assert!(
            displaced(&our, &theirs) <= 0.10,
            "dd {pid}: distributions differ"
        );
        ours_all += total(&our);
        peer_all += total(&theirs);
    }
    report(&format!(
        "dd: {switch_outs} switch-outs, {preempted} of them preemptions (R+); run-queue waits flightrec {ours_all}, runqlat {peer_all}"
    ));
    assert!(
        preempted * 2 >= switch_outs && preempted >= 100,
        "the workload was not preempted inside the kernel: {preempted} of {switch_outs} switch-outs"
    );
    assert!(
        ours_all >= preempted,
        "every preemption is a run-queue wait"
    );
}
