//! The scheduler's programs attach as BTF raw tracepoints where the kernel has BTF: they read the
//! tasks the kernel passes instead of the record it formats for a tracepoint, and encode prev's
//! state as that record would. Two recorders side by side over one workload, one attached each way,
//! must record the same switches and wake-ups of it, field for field: sleeps (S), direct-I/O fsyncs
//! (D), two CPU burners sharing a CPU (R, R+), and pipe wake-ups across CPUs, with the
//! same kernel stacks (a raw tracepoint program's walk starts inside itself: the recorder cuts its
//! frames and the tracing glue's).
use std::{io::Write, process::Stdio};

use super::{peers::Reaped, *};

/// A switch-out as both attachments must agree on: (next_tid, prev_state, prev_prio, next_prio,
/// the functions of prev's kernel stack).
type Out = (i32, i64, i32, i32, Vec<String>);
/// A wake-up: (prio, target_cpu, waker_tid, new).
type Wake = (i32, i32, i32, bool);

/// Per task of `tids`, its switch-outs and its wake-ups, in time order.
fn of_tasks(c: &Capture, tids: &[i32]) -> BTreeMap<i32, (Vec<Out>, Vec<Wake>)> {
    let mut outs: BTreeMap<i32, Vec<(u64, Out)>> = BTreeMap::new();
    let stacks = c.kernel_stacks();
    for (seg, b) in c.table_by_segment(Table::SchedSwitch) {
        let (ts, prev, next) = (u64s(&b, "ts"), i32s(&b, "prev_tid"), i32s(&b, "next_tid"));
        let (state, kstack) = (i64s(&b, "prev_state"), u32s(&b, "kstack"));
        let (pp, np) = (i32s(&b, "prev_prio"), i32s(&b, "next_prio"));
        for i in 0..b.num_rows() {
            let p = prev[i].unwrap();
            if tids.contains(&p) {
                let k = kstack[i]
                    .map(|id| stacks[seg][&id].clone())
                    .unwrap_or_default();
                let row = (
                    next[i].unwrap(),
                    state[i].unwrap(),
                    pp[i].unwrap(),
                    np[i].unwrap(),
                    k,
                );
                outs.entry(p).or_default().push((ts[i].unwrap(), row));
            }
        }
    }
    let mut wakes: BTreeMap<i32, Vec<(u64, Wake)>> = BTreeMap::new();
    for b in c.table(Table::SchedWakeup) {
        let (ts, tid, prio) = (u64s(&b, "ts"), i32s(&b, "tid"), i32s(&b, "prio"));
        let (cpu, waker) = (i32s(&b, "target_cpu"), i32s(&b, "waker_tid"));
        let new = b.column_by_name("new").unwrap().as_boolean().clone();
        for i in 0..b.num_rows() {
            let t = tid[i].unwrap();
            if tids.contains(&t) {
                let row = (
                    prio[i].unwrap(),
                    cpu[i].unwrap(),
                    waker[i].unwrap(),
                    new.value(i),
                );
                wakes.entry(t).or_default().push((ts[i].unwrap(), row));
            }
        }
    }
    tids.iter()
        .map(|&t| {
            let o = by_time(outs.remove(&t).unwrap_or_default());
            let w = by_time(wakes.remove(&t).unwrap_or_default());
            (t, (o, w))
        })
        .collect()
}

/// The rows of `v` in time order.
fn by_time<T>(mut v: Vec<(u64, T)>) -> Vec<T> {
    v.sort_by_key(|r| r.0);
    v.into_iter().map(|r| r.1).collect()
}

/// Scheduler program runs the kernel skipped, over the capture.
fn sched_missed(c: &Capture) -> u64 {
    c.segment_metas()
        .iter()
        .map(|m| m.missed.get("sched").copied().unwrap_or(0))
        .sum()
}

#[test]
fn raw_tracepoints_record_what_the_tracepoints_record() {
    require_root!();
    let _exclusive = exclusive();
    let (raw_dir, tp_dir, io) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir_in("/var/tmp").unwrap(),
    );
    let args = ["--events", "sched", "--segment", "60s"];
    let raw = Recording::start(raw_dir.path(), &args);
    let tp = Recording::start(
        tp_dir.path(),
        &[&args[..], &["--attach", "tracepoints"]].concat(),
    );
    let burners: Vec<Reaped> = (0..2)
        .map(|_| {
            Reaped(
                Command::new("taskset")
                    .args(["-c", "1"])
                    .arg(env!("CARGO_BIN_EXE_flightrec-workload"))
                    .args(["--burn-ms", "300"])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("taskset (util-linux)"),
            )
        })
        .collect();
    let mut child = Reaped(
        workload()
            .args(["--wait", "--pingpong", "500", "--pin", "--sleeps", "20"])
            .args(["--sleep-ms", "2", "--writes", "20", "--dir"])
            .arg(io.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id() as i32;
    child.0.stdin.take().unwrap().write_all(b"go\n").unwrap();
    assert!(child.0.wait().unwrap().success());
    let mut pids = vec![pid];
    for mut b in burners {
        pids.push(b.0.id() as i32);
        assert!(b.0.wait().unwrap().success());
    }
    let (raw_out, tp_out) = (raw.stop(), tp.stop());
    assert!(raw_out.status.success() && tp_out.status.success());

    let (rc, tc) = (Capture::open(raw_dir.path()), Capture::open(tp_dir.path()));
    assert_eq!(
        rc.manifest.config.raw_tracepoints,
        [
            "sched_switch_btf",
            "sched_waking_btf",
            "sched_wakeup_btf",
            "sched_wakeup_new_btf"
        ],
        "this kernel has BTF: the default attaches the scheduler's programs as raw tracepoints"
    );
    assert!(tc.manifest.config.raw_tracepoints.is_empty());

    // The workload's threads (the pong thread has its own tid) and the burners.
    let mut tids: Vec<i32> = rc
        .table(Table::Tasks)
        .iter()
        .flat_map(|b| {
            let (tid, tgid) = (i32s(b, "tid"), i32s(b, "tgid"));
            (0..b.num_rows())
                .filter(|&i| pids.contains(&tgid[i].unwrap()))
                .map(|i| tid[i].unwrap())
                .collect::<Vec<_>>()
        })
        .collect();
    tids.sort_unstable();
    tids.dedup();
    assert!(
        tids.len() >= 4,
        "workload, its pong thread, two burners: {tids:?}"
    );

    let (r, t) = (of_tasks(&rc, &tids), of_tasks(&tc, &tids));
    let states = |m: &BTreeMap<i32, (Vec<Out>, Vec<Wake>)>, s: i64| {
        m.values().flat_map(|v| &v.0).filter(|o| o.1 == s).count()
    };
    report(&format!(
        "raw tracepoints vs tracepoints, {} tasks: {} vs {} switch-outs (S {} vs {}, D {} vs {}, R {} vs {}, R+ {} vs {}), {} vs {} wake-ups; missed {} vs {}",
        tids.len(),
        r.values().map(|v| v.0.len()).sum::<usize>(),
        t.values().map(|v| v.0.len()).sum::<usize>(),
        states(&r, 1),
        states(&t, 1),
        states(&r, 2),
        states(&t, 2),
        states(&r, 0),
        states(&t, 0),
        states(&r, 0x100),
        states(&t, 0x100),
        r.values().map(|v| v.1.len()).sum::<usize>(),
        t.values().map(|v| v.1.len()).sum::<usize>(),
        sched_missed(&rc),
        sched_missed(&tc),
    ));
    // The burners are switched out runnable: R on return to user space, R+ when preempted in the
    // kernel (rare here).
    let runnable = states(&t, 0) + states(&t, 0x100);
    for (what, n) in [
        ("S", states(&t, 1)),
        ("D", states(&t, 2)),
        ("R or R+", runnable),
    ] {
        assert!(n > 0, "the workload produced switch-outs in state {what}");
    }
    // The program's own frame and the glue that called it are not the task's.
    let glue: Vec<&String> = r
        .values()
        .flat_map(|v| &v.0)
        .flat_map(|o| &o.4)
        .filter(|f| {
            ["bpf_prog_", "bpf_trace_run", "__bpf_trace_", "__traceiter_"]
                .iter()
                .any(|p| f.starts_with(p))
        })
        .collect();
    assert!(
        glue.is_empty(),
        "frames of the tracing glue in kernel stacks: {glue:?}"
    );
    let leaves = r
        .values()
        .flat_map(|v| &v.0)
        .filter(|o| o.4.first().is_some_and(|f| f == "__schedule"));
    assert!(leaves.count() > 0, "kernel stacks begin at __schedule");
    let missed = sched_missed(&rc) + sched_missed(&tc);
    for &tid in &tids {
        if missed == 0 {
            assert_eq!(r[&tid].0, t[&tid].0, "switch-outs of {tid}");
            assert_eq!(r[&tid].1, t[&tid].1, "wake-ups of {tid}");
        } else {
            // A skipped run loses one event on one side: then only the counts can be compared.
            let diff = |a: usize, b: usize| a.abs_diff(b) as u64;
            assert!(
                diff(r[&tid].0.len(), t[&tid].0.len()) <= missed,
                "switch-outs of {tid}"
            );
            assert!(
                diff(r[&tid].1.len(), t[&tid].1.len()) <= missed,
                "wake-ups of {tid}"
            );
        }
    }
}
