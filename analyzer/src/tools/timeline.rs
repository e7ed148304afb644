//! `timeline`: everything that happened to a process (`--pid`, `--comm`) or on a CPU (`--cpu`)
//! in a range, one event per line in time order, merged across the tables: switches in and out
//! (with the state it left in), wake-ups (by whom), forks, execs and exits, syscalls (with their
//! result and duration), block requests (with their latency), CPU samples and TCP state changes.
//! For reading an incident second by second.
use std::{collections::HashMap, fmt::Write, sync::Arc};

use arrow::datatypes::{Int32Type, Int64Type, UInt16Type, UInt32Type, UInt64Type};
use flightrec_schemas::{task_state, Table};
use serde::Serialize;

use super::procs;
use crate::{
    capture::{Capture, Result},
    columns::{bools, opt, prim, strings},
    filter::Filter,
    lost::Lost,
    names::Tasks,
    parallel::selected,
};

/// One line.
#[derive(Clone, Debug, Serialize)]
pub struct Line {
    /// Monotonic ns.
    pub ts: u64,
    /// Wall clock, UTC.
    pub time: String,
    pub cpu: u16,
    /// The task the line is about, and its name.
    pub tid: i32,
    pub comm: String,
    /// `on-cpu`, `off-cpu`, `woken`, `wakes`, `fork`, `exec`, `exit`, `syscall`, `block`,
    /// `sample`, `tcp`.
    pub event: &'static str,
    pub detail: String,
}

/// Result of `timeline`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub lines: Vec<Line>,
    /// Lines left out by `--limit`.
    pub more: usize,
    pub lost: Lost,
}

/// What to follow: the filter's process or thread name, and/or one CPU.
pub struct Select<'a> {
    pub filter: &'a Filter,
    pub cpu: Option<u16>,
}

impl Select<'_> {
    fn keeps(&self, tasks: &Tasks, cpu: u16, tid: i32, tgid: Option<i32>) -> bool {
        self.cpu.is_none_or(|c| c == cpu) && self.filter.task(tasks, tid, tgid)
    }

    /// For events that carry their process and name (process events, TCP).
    fn keeps_named(&self, cpu: u16, tgid: i32, comm: &str) -> bool {
        self.cpu.is_none_or(|c| c == cpu)
            && self.filter.pid.is_none_or(|p| p == tgid)
            && self.filter.comm.as_deref().is_none_or(|c| c == comm)
    }
}

/// The lines of the range, at most `limit` (the first ones).
pub fn timeline(cap: &Capture, sel: &Select, limit: usize) -> Result<Report> {
    let filter = sel.filter;
    let mut lines: Vec<Line> = Vec::new();
    let mut add = |ts: u64, cpu: u16, (tid, comm): (i32, &str), event, detail: String| {
        if filter.in_range(ts) {
            lines.push(Line {
                ts,
                time: String::new(),
                cpu,
                tid,
                comm: comm.to_string(),
                event,
                detail,
            });
        }
    };
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let name = |tid: i32| -> Arc<str> { tasks.comm(tid).clone() };
        let cols = [
            "ts",
            "cpu",
            "prev_tid",
            "prev_tgid",
            "prev_state",
            "next_tid",
        ];
        for b in seg.read(Table::SchedSwitch, &cols)? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (prev, tgid, next) = (
                prim::<Int32Type>(&b, "prev_tid"),
                prim::<Int32Type>(&b, "prev_tgid"),
                prim::<Int32Type>(&b, "next_tid"),
            );
            let state = prim::<Int64Type>(&b, "prev_state");
            for i in 0..b.num_rows() {
                let (ts, cpu, p, n) = (ts.value(i), cpu.value(i), prev.value(i), next.value(i));
                let label = task_state::label(state.value(i));
                if p != 0 && sel.keeps(&tasks, cpu, p, Some(tgid.value(i))) {
                    let d = format!("state {label}, next {} ({n})", name(n));
                    add(ts, cpu, (p, &name(p)), "off-cpu", d);
                }
                if n != 0 && sel.keeps(&tasks, cpu, n, tasks.tgid(n)) {
                    let d = format!("after {} ({p}, {label})", name(p));
                    add(ts, cpu, (n, &name(n)), "on-cpu", d);
                }
            }
        }
        let cols = [
            "ts",
            "cpu",
            "tid",
            "target_cpu",
            "waker_tid",
            "waker_tgid",
            "new",
        ];
        for b in seg.read(Table::SchedWakeup, &cols)? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, target) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "target_cpu"),
            );
            let (waker, wtgid) = (
                prim::<Int32Type>(&b, "waker_tid"),
                prim::<Int32Type>(&b, "waker_tgid"),
            );
            let new = bools(&b, "new");
            for i in 0..b.num_rows() {
                let (ts, cpu, t, w) = (ts.value(i), cpu.value(i), tid.value(i), waker.value(i));
                let what = if new.value(i) { "new task, " } else { "" };
                if sel.keeps(&tasks, cpu, t, tasks.tgid(t)) {
                    let d = format!("{what}by {} ({w}) for CPU {}", name(w), target.value(i));
                    add(ts, cpu, (t, &name(t)), "woken", d);
                } else if sel.keeps(&tasks, cpu, w, Some(wtgid.value(i))) {
                    add(
                        ts,
                        cpu,
                        (w, &name(w)),
                        "wakes",
                        format!("{} ({t})", name(t)),
                    );
                }
            }
        }
        syscalls(cap, seg, sel, &tasks, &mut add)?;
        let cols = [
            "ts", "cpu", "tid", "tgid", "event", "dev", "sector", "bytes", "rwbs",
        ];
        for b in seg.read(Table::Block, &cols)? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (dev, sector) = (
                prim::<UInt32Type>(&b, "dev"),
                prim::<UInt64Type>(&b, "sector"),
            );
            let bytes = prim::<UInt32Type>(&b, "bytes");
            let (event, rwbs) = (strings(&b, "event"), strings(&b, "rwbs"));
            for i in 0..b.num_rows() {
                let (t, cpu) = (tid.value(i), cpu.value(i));
                if sel.keeps(&tasks, cpu, t, Some(tgid.value(i))) {
                    let size = opt(bytes, i).map_or(String::new(), |n| format!(" {n} bytes"));
                    let d = format!(
                        "{} {} {} sector {}{size}",
                        event.value(i),
                        cap.disk_name(dev.value(i)),
                        rwbs.value(i),
                        sector.value(i)
                    );
                    add(ts.value(i), cpu, (t, &name(t)), "block", d);
                }
            }
        }
        for b in seg.read(Table::Profile, &["ts", "cpu", "tid", "tgid"])? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            for i in 0..b.num_rows() {
                let (t, cpu) = (tid.value(i), cpu.value(i));
                if sel.keeps(&tasks, cpu, t, Some(tgid.value(i))) {
                    add(ts.value(i), cpu, (t, &name(t)), "sample", String::new());
                }
            }
        }
    }
    // Process events and TCP state changes carry their task's name: read for the whole range.
    let cgroups = procs::cgroups(cap, filter)?;
    let in_cgroup = |pid: i32| filter.in_cgroup(cgroups.get(&pid).map(String::as_str));
    for e in procs::load(cap, filter)?.0 {
        let pid = e.tgid.unwrap_or(e.tid);
        if !sel.keeps_named(e.cpu, pid, &e.comm) || !in_cgroup(pid) {
            continue;
        }
        let detail = match e.kind.as_str() {
            "fork" => format!("child of {}", e.parent_tid.unwrap_or(0)),
            "exec" => e.filename.clone().unwrap_or_default(),
            _ => procs::describe_status(e.status.unwrap_or(0)),
        };
        let kind = match e.kind.as_str() {
            "fork" => "fork",
            "exec" => "exec",
            _ => "exit",
        };
        add(e.ts, e.cpu, (e.tid, &e.comm), kind, detail);
    }
    for e in super::tcp::events(cap, filter)? {
        if !sel.keeps_named(e.cpu, e.pid, &e.comm) || !in_cgroup(e.pid) {
            continue;
        }
        let st = super::tcp::state::name;
        let d = match e.kind {
            super::tcp::Kind::Retransmit => format!("retransmit in {}", st(e.old)),
            super::tcp::Kind::SendReset => format!(
                "reset sent in {} ({})",
                st(e.old),
                e.reason.as_deref().unwrap_or("?")
            ),
            super::tcp::Kind::ReceiveReset => format!("reset received in {}", st(e.old)),
            super::tcp::Kind::State => format!("{} -> {}", st(e.old), st(e.new)),
        };
        let d = format!("{d} {}:{} {}:{}", e.laddr, e.lport, e.raddr, e.rport);
        add(e.ts, e.cpu, (e.tid, &e.comm), "tcp", d);
    }
    lines.sort_by_key(|l| l.ts);
    let more = lines.len().saturating_sub(limit);
    lines.truncate(limit);
    for l in &mut lines {
        // Microseconds: events of one process are often closer than a millisecond.
        let ns = cap.manifest.clock.to_realtime_ns(l.ts);
        l.time = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(ns)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    }
    Ok(Report {
        lines,
        more,
        lost: Lost::in_range(cap, filter),
    })
}

/// Syscall exits with their result and duration (enter to exit of the thread), and enters with
/// no exit in the capture.
fn syscalls(
    cap: &Capture,
    seg: &crate::capture::Segment,
    sel: &Select,
    tasks: &Tasks,
    add: &mut impl FnMut(u64, u16, (i32, &str), &'static str, String),
) -> Result<()> {
    let mut open: HashMap<i32, (u64, i32)> = HashMap::new();
    let cols = ["ts", "cpu", "tid", "tgid", "enter", "id", "ret"];
    let mut rows = Vec::new();
    for b in seg.read(Table::Syscall, &cols)? {
        let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
        let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
        let (enter, id, ret) = (
            bools(&b, "enter"),
            prim::<Int32Type>(&b, "id"),
            prim::<Int64Type>(&b, "ret"),
        );
        for i in 0..b.num_rows() {
            let (t, c) = (tid.value(i), cpu.value(i));
            if sel.keeps(tasks, c, t, Some(tgid.value(i))) {
                rows.push((ts.value(i), c, t, enter.value(i), id.value(i), opt(ret, i)));
            }
        }
    }
    rows.sort_by_key(|r| r.0);
    for (ts, cpu, tid, enter, id, ret) in rows {
        let comm = tasks.comm(tid).clone();
        let name = crate::syscalls::name(&cap.manifest.arch, id);
        if enter {
            if let Some((at, was)) = open.insert(tid, (ts, id)) {
                let d = format!(
                    "{} (no exit)",
                    crate::syscalls::name(&cap.manifest.arch, was)
                );
                add(at, cpu, (tid, &comm), "syscall", d);
            }
            continue;
        }
        let took = match open.remove(&tid) {
            Some((at, _)) => format!(" ({})", crate::hist::fmt_ns(ts - at)),
            None => String::new(),
        };
        let d = format!("{name} = {}{took}", ret.unwrap_or(0));
        add(ts, cpu, (tid, &comm), "syscall", d);
    }
    Ok(())
}

impl Report {
    /// One event per line.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<27} {:>3} {:>7} {:<16} {:<8} DETAIL\n",
            "TIME", "CPU", "TID", "COMM", "EVENT"
        );
        for l in &self.lines {
            let _ = writeln!(
                out,
                "{:<27} {:>3} {:>7} {:<16} {:<8} {}",
                l.time, l.cpu, l.tid, l.comm, l.event, l.detail
            );
        }
        if self.more > 0 {
            let _ = writeln!(out, "... {} more events (raise --limit)", self.more);
        }
        out
    }
}
