//! Who woke whom, with stacks: `offwaketime` (each blocked interval's stack joined with the stack of
//! the task that woke it) and `wakeuptime` (blocked time by the waker's stack), as BCC prints them.
//!
//! An interval is a switch-out asleep (not preempted: a preempted task is not woken), the wake-up
//! of that thread, and its next switch-in. The waker is the task the wake-up names (current at
//! `sched_waking`); its stacks come from the `sched_waking` row just before the wake-up, recorded
//! with `--waker-stacks`. A waking in an interrupt (a timer, an I/O completion) names the task the
//! interrupt came upon: such a waker is `[interrupt]` with its kernel stack only. Segments are read
//! in time order, so intervals that span segments are joined; stacks are folded in their own
//! segment.
use std::{collections::HashMap, rc::Rc};

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::{task_state, Table};

use crate::{
    capture::{Capture, Result},
    columns::{bools, opt, prim},
    filter::Filter,
    lost::Lost,
    names::{Stacks, Tasks},
    offcpu::Switch,
    parallel::selected,
    stackagg::{merge, StackReport},
};

/// A waking is believed for the wake-up that follows within this long (the same try_to_wake_up).
const WAKING_FRESH_NS: u64 = 10_000_000;

/// Which analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Off-CPU time (switch-out to switch-in), target stack then waker stack upside down.
    Offwake,
    /// Blocked time until the wake-up, by the waker's stack.
    Wakeup,
}

/// Options of both analyses: intervals shorter than `min_ns` or longer than `max_ns` are left out.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    pub min_ns: u64,
    pub max_ns: Option<u64>,
}

/// One event of the merged stream of a segment.
enum Ev {
    /// A switch: prev (its process, state, stacks) out, next in.
    Switch(Switch),
    /// A wake-up of `tid` by `waker`.
    Wakeup { tid: i32, waker: i32 },
    /// A waking of `pid` by `waker` (in an interrupt when `irq`), with the waker's stacks.
    Waking {
        pid: i32,
        waker: i32,
        irq: bool,
        k: Option<u32>,
        u: Option<u32>,
    },
}

/// A stack to fold: (task, kernel stack, user stack, in an interrupt).
type FoldKey = (i32, Option<u32>, Option<u32>, bool);

/// The waker of an interval: `comm;user root..leaf;kernel root..leaf`.
type Waker = Rc<str>;

/// What the join keeps between events (and between segments).
#[derive(Default)]
struct State {
    /// Threads asleep: since when, and their folded stack.
    asleep: HashMap<i32, (u64, Rc<str>)>,
    /// The last waking of each task: when, and its waker.
    wakings: HashMap<i32, (u64, Waker)>,
    /// Sleeping threads already woken: when, and by whom.
    woken: HashMap<i32, (u64, Waker)>,
    /// Intervals left out: switched out again before any switch-in.
    unmeasured: u64,
}

/// `offwaketime` (`Kind::Offwake`) or `wakeuptime` (`Kind::Wakeup`) of the threads `filter`
/// passes (the blocked ones), in ns per folded stack.
pub fn wake_stacks(
    cap: &Capture,
    filter: &Filter,
    kind: Kind,
    opts: Options,
) -> Result<StackReport> {
    let keep = |d: u64| d >= opts.min_ns && opts.max_ns.is_none_or(|m| d <= m);
    let mut st = State::default();
    let mut agg = HashMap::new();
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        let mut folds: HashMap<FoldKey, Rc<str>> = HashMap::new();
        let mut fold = |tid: i32, k: Option<u32>, u: Option<u32>, irq: bool| -> Rc<str> {
            folds
                .entry((tid, k, u, irq))
                .or_insert_with(|| {
                    let comm = if irq { "[interrupt]" } else { tasks.comm(tid) };
                    stacks.fold(comm, k, u).into()
                })
                .clone()
        };
        for (ts, ev) in events(seg)? {
            match ev {
                Ev::Waking {
                    pid,
                    waker,
                    irq,
                    k,
                    u,
                } => {
                    st.wakings.insert(pid, (ts, fold(waker, k, u, irq)));
                }
                Ev::Wakeup { tid, waker } => {
                    if !st.asleep.contains_key(&tid) {
                        continue;
                    }
                    let by = match st.wakings.remove(&tid) {
                        Some((at, w)) if ts.saturating_sub(at) < WAKING_FRESH_NS => w,
                        // Recorded without waker stacks: the waker by name.
                        _ => fold(waker, None, None, false),
                    };
                    st.woken.insert(tid, (ts, by));
                }
                Ev::Switch(Switch {
                    ts: _,
                    prev,
                    tgid,
                    state,
                    next,
                    kstack: k,
                    ustack: u,
                }) => {
                    // A switch-in ends the interval; one never woken (preempted) counts not.
                    let slept =
                        (next != 0).then(|| (st.asleep.remove(&next), st.woken.remove(&next)));
                    if let Some((Some((t0, target)), Some((tw, waker)))) = slept {
                        let d = match kind {
                            Kind::Offwake => ts.saturating_sub(t0),
                            Kind::Wakeup => tw.saturating_sub(t0),
                        };
                        if keep(d) {
                            merge(&mut agg, join(kind, &target, &waker), d, 1);
                        }
                    }
                    if prev == 0 {
                        continue;
                    }
                    // A thread still asleep here was switched in without a record the kernel
                    // reported: its interval is left out (and counted), never joined with the
                    // time until this switch-out's switch-in.
                    if st.asleep.remove(&prev).is_some() {
                        st.unmeasured += 1;
                    }
                    st.woken.remove(&prev);
                    let asleep =
                        state & (task_state::INTERRUPTIBLE | task_state::UNINTERRUPTIBLE) != 0;
                    if asleep && filter.in_range(ts) && filter.task(&tasks, prev, Some(tgid)) {
                        st.asleep.insert(prev, (ts, fold(prev, k, u, false)));
                    }
                }
            }
        }
    }
    let mut report = StackReport::new("ns", agg, Lost::in_range(cap, filter));
    report.unmeasured = st.unmeasured;
    Ok(report)
}

/// The folded line of an interval, as BCC prints it. offwaketime: the target's stack, `--`, then
/// the waker's stack leaf first and its name last (so a flame graph draws the waker upside down on
/// top). wakeuptime: the waker's name and stack, then the target's name.
fn join(kind: Kind, target: &str, waker: &str) -> String {
    match kind {
        Kind::Offwake => {
            let upside_down: Vec<&str> = waker.split(';').rev().collect();
            format!("{target};--;{}", upside_down.join(";"))
        }
        Kind::Wakeup => {
            let comm = target.split(';').next().unwrap_or(target);
            format!("{waker};{comm}")
        }
    }
}

/// A segment's switches, wake-ups and wakings in time order (a waking before the wake-up it
/// leads to, a wake-up before a switch at the same time).
fn events(seg: &crate::capture::Segment) -> Result<Vec<(u64, Ev)>> {
    let mut out = Vec::new();
    for s in crate::offcpu::switches(seg)? {
        out.push((s.ts, 2u8, Ev::Switch(s)));
    }
    for b in seg.read(Table::SchedWakeup, &["ts", "tid", "waker_tid"])? {
        let ts = prim::<UInt64Type>(&b, "ts");
        let (tid, waker) = (
            prim::<Int32Type>(&b, "tid"),
            prim::<Int32Type>(&b, "waker_tid"),
        );
        for i in 0..b.num_rows() {
            let ev = Ev::Wakeup {
                tid: tid.value(i),
                waker: waker.value(i),
            };
            out.push((ts.value(i), 1, ev));
        }
    }
    let cols = ["ts", "tid", "pid", "irq", "kstack", "ustack"];
    for b in seg.read(Table::SchedWaking, &cols)? {
        let ts = prim::<UInt64Type>(&b, "ts");
        let (waker, pid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "pid"));
        let irq = bools(&b, "irq");
        let (k, u) = (
            prim::<UInt32Type>(&b, "kstack"),
            prim::<UInt32Type>(&b, "ustack"),
        );
        for i in 0..b.num_rows() {
            let ev = Ev::Waking {
                pid: pid.value(i),
                waker: waker.value(i),
                irq: irq.value(i),
                k: opt(k, i),
                u: opt(u, i),
            };
            out.push((ts.value(i), 0, ev));
        }
    }
    out.sort_by_key(|e| (e.0, e.1));
    Ok(out.into_iter().map(|(ts, _, ev)| (ts, ev)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_put_the_waker_where_bcc_does() {
        let target = "app;main;read;ksys_read;schedule";
        let waker = "feeder;main;write;ksys_write;try_to_wake_up";
        assert_eq!(
            join(Kind::Offwake, target, waker),
            "app;main;read;ksys_read;schedule;--;try_to_wake_up;ksys_write;write;main;feeder"
        );
        assert_eq!(
            join(Kind::Wakeup, target, waker),
            "feeder;main;write;ksys_write;try_to_wake_up;app"
        );
    }
}
