//! Off-CPU time: from a thread's switch-out to its next switch-in, attributed to the stack it
//! left the CPU with (offcputime).
use std::collections::HashMap;

use arrow::datatypes::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use flightrec_schemas::{task_state, Table};
use serde::Serialize;

use crate::{
    capture::{Capture, Result, Segment},
    columns::{opt, prim},
    filter::Filter,
    intervals::{stitch, Intervals},
    lost::Lost,
    names::{Stacks, Tasks},
    parallel::{map_segments, selected},
    stackagg::{merge, StackReport},
};

/// Which switch-outs count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Sleeping, interruptible (S).
    Interruptible,
    /// Sleeping, uninterruptible (D): usually I/O.
    Uninterruptible,
    /// Still runnable (preempted, also inside the kernel, or yielding): waiting for a CPU.
    Runnable,
    /// Every switch-out, also preemption.
    #[default]
    All,
}

impl State {
    #[inline]
    fn matches(self, prev_state: i64) -> bool {
        match self {
            State::Interruptible => prev_state & task_state::INTERRUPTIBLE != 0,
            State::Uninterruptible => prev_state & task_state::UNINTERRUPTIBLE != 0,
            State::Runnable => task_state::is_runnable(prev_state),
            State::All => true,
        }
    }
}

/// Options of `offcpu`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Which switch-outs.
    pub state: State,
    /// Ignore intervals shorter than this, ns.
    pub min_ns: u64,
    /// Ignore intervals longer than this, ns.
    pub max_ns: Option<u64>,
}

/// A switch-out waiting for its switch-in: (tid, kernel stack, user stack).
type Open = (i32, Option<u32>, Option<u32>);

/// The columns of one `sched_switch` row that off-CPU analyses need.
pub(crate) struct Switch {
    pub ts: u64,
    pub prev: i32,
    pub tgid: i32,
    pub state: i64,
    pub next: i32,
    pub kstack: Option<u32>,
    pub ustack: Option<u32>,
}

/// A segment's switches with the stacks of the tasks leaving the CPU, in time order.
pub(crate) fn switches(seg: &Segment) -> Result<Vec<Switch>> {
    let mut rows: Vec<Switch> = Vec::new();
    let cols = [
        "ts",
        "prev_tid",
        "prev_tgid",
        "prev_state",
        "next_tid",
        "kstack",
        "ustack",
    ];
    for b in seg.read(Table::SchedSwitch, &cols)? {
        let ts = prim::<UInt64Type>(&b, "ts");
        let (prev, tgid, next) = (
            prim::<Int32Type>(&b, "prev_tid"),
            prim::<Int32Type>(&b, "prev_tgid"),
            prim::<Int32Type>(&b, "next_tid"),
        );
        let state = prim::<Int64Type>(&b, "prev_state");
        let (k, u) = (
            prim::<UInt32Type>(&b, "kstack"),
            prim::<UInt32Type>(&b, "ustack"),
        );
        rows.reserve(b.num_rows());
        for i in 0..b.num_rows() {
            rows.push(Switch {
                ts: ts.value(i),
                prev: prev.value(i),
                tgid: tgid.value(i),
                state: state.value(i),
                next: next.value(i),
                kstack: opt(k, i),
                ustack: opt(u, i),
            });
        }
    }
    // Stable sort: rows are nearly in time order already, which it sorts in near-linear time.
    rows.sort_by_key(|r| r.ts);
    Ok(rows)
}

/// Off-CPU time per folded stack, for threads passing `filter`.
pub fn offcpu(cap: &Capture, filter: &Filter, opts: &Options) -> Result<StackReport> {
    Ok(offcpu_placed(cap, filter, opts, |_| None::<()>)?.report)
}

/// Off-CPU time per folded stack, and also per place of its switch-out (e.g. a heat-map cell) where
/// `place` gives one: one pass for both.
pub struct Placed<P> {
    pub report: StackReport,
    /// ns per (place, folded stack).
    pub places: HashMap<(P, String), u64>,
}

/// [`offcpu`], with the time also summed by `place(switch-out ts)`.
pub fn offcpu_placed<P>(
    cap: &Capture,
    filter: &Filter,
    opts: &Options,
    place: impl Fn(u64) -> Option<P> + Sync,
) -> Result<Placed<P>>
where
    P: Copy + Eq + std::hash::Hash + Send,
{
    let segs = selected(cap, filter);
    let keep = |d: u64| d >= opts.min_ns && opts.max_ns.is_none_or(|m| d <= m);
    let parts = map_segments(&segs, "off-CPU", |seg| {
        let tasks = Tasks::load(seg)?;
        let rows = switches(seg)?;
        let mut done: rustc_hash::FxHashMap<Open, (u64, u64)> = Default::default();
        let mut placed: rustc_hash::FxHashMap<(P, Open), u64> = Default::default();
        let mut open: Intervals<i32, (Open, Option<P>)> = Intervals::default();
        for r in rows {
            if r.next != 0 {
                if let Some(((key, at), d)) = open.close(&r.next, r.ts) {
                    if keep(d) {
                        let e = done.entry(key).or_insert((0, 0));
                        e.0 += d;
                        e.1 += 1;
                        if let Some(p) = at {
                            *placed.entry((p, key)).or_insert(0) += d;
                        }
                    }
                }
            }
            if r.prev != 0 && filter.task(&tasks, r.prev, Some(r.tgid)) {
                if opts.state.matches(r.state) && filter.in_range(r.ts) {
                    let key = (r.prev, r.kstack, r.ustack);
                    open.open(r.prev, r.ts, (key, place(r.ts)));
                } else {
                    // Not measured, but it ends an interval whose switch-in is missing: the next
                    // switch-in is this one's, never the earlier one's.
                    open.cancel(&r.prev);
                }
            }
        }
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        let mut names: HashMap<Open, String> = HashMap::new();
        let mut fold = |key: Open| {
            names
                .entry(key)
                .or_insert_with(|| stacks.fold(tasks.comm(key.0), key.1, key.2))
                .clone()
        };
        let mut agg = HashMap::new();
        for (key, (total, count)) in done {
            merge(&mut agg, fold(key), total, count);
        }
        let mut places: HashMap<(P, String), u64> = HashMap::new();
        for ((p, key), d) in placed {
            *places.entry((p, fold(key))).or_insert(0) += d;
        }
        Ok((agg, places, open.map(|_, (k, at)| (fold(k), at))))
    })?;
    let mut agg = HashMap::new();
    let mut places: HashMap<(P, String), u64> = HashMap::new();
    let mut opens = Vec::with_capacity(parts.len());
    for (a, p, o) in parts {
        for (k, (v, c)) in a {
            merge(&mut agg, k, v, c);
        }
        for (k, d) in p {
            *places.entry(k).or_insert(0) += d;
        }
        opens.push(o);
    }
    let unmeasured = stitch(opens, |(folded, at), d| {
        if keep(d) {
            if let Some(p) = at {
                *places.entry((p, folded.clone())).or_insert(0) += d;
            }
            merge(&mut agg, folded, d, 1);
        }
    });
    let mut report = StackReport::new("ns", agg, Lost::in_range(cap, filter));
    report.unmeasured = unmeasured;
    Ok(Placed { report, places })
}
