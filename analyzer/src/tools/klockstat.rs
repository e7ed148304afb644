//! `klockstat`: kernel lock contention from `lock:contention_begin`/`_end` (`--events ...,lock`):
//! how long tasks waited for kernel locks, per caller (the first function of the waiter's kernel
//! stack outside the locking code), with the stacks for a flame graph. A wait is a begin and the
//! next end of the same thread and lock address: a mutex's waiter that spins and then sleeps
//! begins twice and ends once, and a spinlock taken inside a lock's slow path nests its own pair.
//! Only waits are recorded: hold times need the lock/unlock calls, which no tracepoint gives.
use std::{collections::HashMap, fmt::Write};

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{opt, prim, strings},
    filter::Filter,
    hist::fmt_ns,
    lost::Lost,
    names::{Stacks, Tasks},
    parallel::selected,
    stackagg::{merge, StackReport},
};

/// The waits under one caller.
#[derive(Clone, Debug, Serialize)]
pub struct Caller {
    /// The function that took the lock.
    pub caller: String,
    /// The kinds of lock it waited for (`mutex`, `spinlock`, `rwsem_write`, ...).
    pub kinds: Vec<String>,
    pub count: u64,
    pub total_ns: u64,
    pub avg_ns: u64,
    pub max_ns: u64,
    /// The lock of the longest wait, and who waited.
    pub max_lock: String,
    pub max_comm: String,
    pub max_tid: i32,
}

/// Result of `klockstat`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Callers, longest total wait first.
    pub callers: Vec<Caller>,
    /// Waits, and their total.
    pub waits: u64,
    pub total_ns: u64,
    /// Waits whose begin or end is outside the capture (not counted).
    pub unpaired: u64,
    pub lost: Lost,
}

/// Functions of the locking code itself: a waiter's caller is the first frame that is none of
/// these.
const LOCKING: &[&str] = &[
    "mutex_",
    "__mutex_",
    "ww_mutex",
    "down_",
    "__down_",
    "rwsem_",
    "__rwsem",
    "percpu_down",
    "__percpu_down",
    "percpu_rwsem",
    "rt_mutex",
    "__rt_mutex",
    "rt_spin",
    "_raw_",
    "__raw_",
    "do_raw_",
    "queued_",
    "native_queued",
    "__pv_queued",
    "pv_queued",
    "osq_",
    "lock_acquire",
    "__lock_acquire",
    "trace_contention",
    "__traceiter_contention",
];

fn is_locking(frame: &str) -> bool {
    let name = frame.split('+').next().unwrap_or(frame);
    LOCKING.iter().any(|p| name.starts_with(p))
}

/// The caller in a folded kernel stack (root first): the innermost frame outside the locking code.
fn caller_of(kstack: &str) -> String {
    kstack
        .split(';')
        .rev()
        .find(|f| !is_locking(f))
        .unwrap_or("[unknown]")
        .to_string()
}

/// A begin waiting for its end.
struct Open {
    t0: u64,
    tgid: i32,
    kind: String,
    comm: String,
    /// `comm;kernel frames` and the caller.
    folded: String,
    caller: String,
}

/// The waits that began in the range, of tasks `filter` passes: per caller, and per stack.
pub fn klockstat(cap: &Capture, filter: &Filter) -> Result<(Report, StackReport)> {
    let mut open: HashMap<(i32, u64), Open> = HashMap::new();
    let mut callers: HashMap<String, Caller> = HashMap::new();
    let mut stacks_agg = HashMap::new();
    let (mut waits, mut total, mut unpaired) = (0u64, 0u64, 0u64);
    let cols = ["ts", "tid", "tgid", "event", "lock_addr", "kind", "kstack"];
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        let mut rows = Vec::new();
        for b in seg.read(Table::Lock, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (event, kind) = (strings(&b, "event"), strings(&b, "kind"));
            let (addr, kstack) = (
                prim::<UInt64Type>(&b, "lock_addr"),
                prim::<UInt32Type>(&b, "kstack"),
            );
            for i in 0..b.num_rows() {
                let begin = event.value(i) == "begin";
                let kind = if begin { kind.value(i) } else { "" };
                rows.push((
                    ts.value(i),
                    tid.value(i),
                    tgid.value(i),
                    addr.value(i),
                    begin,
                    kind.to_string(),
                    opt(kstack, i),
                ));
            }
        }
        rows.sort_by_key(|r| r.0);
        // Folding a stack is the costly part; a segment's waits share few stacks.
        let mut folds: HashMap<(i32, Option<u32>), (String, String)> = HashMap::new();
        for (ts, tid, tgid, addr, begin, kind, kstack) in rows {
            if begin {
                if open.contains_key(&(tid, addr)) {
                    // A mutex waiter that stopped spinning and sleeps: the same wait goes on.
                    continue;
                }
                let comm = tasks.comm(tid).to_string();
                let (folded, caller) = folds
                    .entry((tid, kstack))
                    .or_insert_with(|| {
                        let k = kstack.and_then(|k| stacks.fold_stack(k));
                        let caller = k.as_deref().map_or("[no stack]".into(), caller_of);
                        (stacks.fold(&comm, kstack, None), caller)
                    })
                    .clone();
                open.insert(
                    (tid, addr),
                    Open {
                        t0: ts,
                        tgid,
                        kind,
                        comm,
                        folded,
                        caller,
                    },
                );
                continue;
            }
            let Some(o) = open.remove(&(tid, addr)) else {
                unpaired += 1;
                continue;
            };
            if !filter.in_range(o.t0) || !filter.task(&tasks, tid, Some(o.tgid)) {
                continue;
            }
            let wait = ts.saturating_sub(o.t0);
            waits += 1;
            total += wait;
            merge(&mut stacks_agg, o.folded, wait, 1);
            let c = callers.entry(o.caller.clone()).or_insert_with(|| Caller {
                caller: o.caller,
                kinds: Vec::new(),
                count: 0,
                total_ns: 0,
                avg_ns: 0,
                max_ns: 0,
                max_lock: String::new(),
                max_comm: String::new(),
                max_tid: 0,
            });
            c.count += 1;
            c.total_ns += wait;
            if !c.kinds.contains(&o.kind) {
                c.kinds.push(o.kind);
            }
            if wait >= c.max_ns {
                c.max_ns = wait;
                c.max_lock = format!("0x{addr:x}");
                c.max_comm = o.comm;
                c.max_tid = tid;
            }
        }
    }
    unpaired += open.len() as u64;
    let mut callers: Vec<Caller> = callers.into_values().collect();
    for c in &mut callers {
        c.avg_ns = c.total_ns / c.count.max(1);
        c.kinds.sort();
    }
    callers.sort_by(|a, b| {
        b.total_ns
            .cmp(&a.total_ns)
            .then_with(|| a.caller.cmp(&b.caller))
    });
    let lost = Lost::in_range(cap, filter);
    let stacks = StackReport::new("ns", stacks_agg, lost.clone());
    Ok((
        Report {
            callers,
            waits,
            total_ns: total,
            unpaired,
            lost,
        },
        stacks,
    ))
}

impl Report {
    /// The callers, longest total wait first, as klockstat prints its wait table.
    pub fn render(&self, top: usize) -> String {
        let mut out = format!(
            "{:>40} {:>11} {:>8} {:>11} {:>11}  {:<20} {}\n",
            "Caller", "Avg Wait", "Count", "Max Wait", "Total Wait", "Kind", "Max waiter"
        );
        for c in self.callers.iter().take(top) {
            let _ = writeln!(
                out,
                "{:>40} {:>11} {:>8} {:>11} {:>11}  {:<20} {} ({}) on {}",
                c.caller,
                fmt_ns(c.avg_ns),
                c.count,
                fmt_ns(c.max_ns),
                fmt_ns(c.total_ns),
                c.kinds.join(","),
                c.max_comm,
                c.max_tid,
                c.max_lock
            );
        }
        if self.callers.len() > top {
            let _ = writeln!(
                out,
                "({} more callers; --top to show more)",
                self.callers.len() - top
            );
        }
        let _ = writeln!(
            out,
            "{} waits, {} in all{}",
            self.waits,
            fmt_ns(self.total_ns),
            if self.unpaired > 0 {
                format!(
                    "; {} begins or ends without their pair at the window's edges",
                    self.unpaired
                )
            } else {
                String::new()
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caller_is_the_first_frame_outside_the_locking_code() {
        let k = "entry_SYSCALL_64;do_syscall_64;ksys_write;vfs_write;pipe_write;mutex_lock;\
                 __mutex_lock.constprop.0";
        assert_eq!(caller_of(k), "pipe_write");
        assert_eq!(
            caller_of("a;b;_raw_spin_lock;queued_spin_lock_slowpath"),
            "b"
        );
        assert_eq!(caller_of("mutex_lock"), "[unknown]");
    }
}
