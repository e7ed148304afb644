//! Latency distributions as *BPF Performance Tools* teaches them:
//! - `runq`: wake-up, or a switch-out while still runnable (a preemption, also inside the kernel,
//!   or a yield), → switch-in, like runqlat;
//! - `block`: issue → completion per request, like biolatency;
//! - `syscall`: enter → exit per thread, like syscount -L / a per-syscall funclatency.
use std::sync::Arc;

use rustc_hash::FxHashMap as HashMap;

use arrow::datatypes::{Int32Type, Int64Type, UInt32Type, UInt64Type};
use flightrec_schemas::{task_state, Table};
use serde::Serialize;

use crate::{
    capture::{Capture, Result, Segment},
    columns::{bools, prim, strings},
    filter::Filter,
    hist::Distribution,
    intervals::{stitch, Intervals},
    lost::Lost,
    names::Tasks,
    parallel::{map_segments, selected},
};

/// Which latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Run-queue latency.
    Runq,
    /// Block I/O latency.
    Block,
    /// Syscall latency.
    Syscall,
}

/// How to group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum By {
    /// Per process.
    Pid,
    /// Per thread name.
    Comm,
    /// Per disk (block).
    Disk,
    /// Per syscall (syscall).
    Syscall,
}

/// One group's distribution.
#[derive(Clone, Debug, Serialize)]
pub struct Group {
    /// Group label (`all` without --by).
    pub name: String,
    /// Its distribution.
    #[serde(flatten)]
    pub dist: Distribution,
}

/// Result of `latency`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Which latency.
    pub kind: Kind,
    /// Grouping.
    pub by: Option<By>,
    /// Groups, most events first.
    pub groups: Vec<Group>,
    /// Losses in the covered segments.
    pub lost: Lost,
}

/// Group key inside one segment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    All,
    Pid(i32),
    Comm(Arc<str>),
    Disk(u32),
    Syscall(i32),
}

struct Ctx<'a> {
    by: Option<By>,
    filter: &'a Filter,
    tasks: Tasks,
}

impl Ctx<'_> {
    fn key(&self, tid: i32, tgid: Option<i32>, extra: Option<i64>) -> Key {
        match self.by {
            None => Key::All,
            Some(By::Pid) => Key::Pid(tgid.or_else(|| self.tasks.tgid(tid)).unwrap_or(tid)),
            Some(By::Comm) => Key::Comm(self.tasks.comm(tid).clone()),
            Some(By::Disk) => Key::Disk(extra.unwrap_or(0) as u32),
            Some(By::Syscall) => Key::Syscall(extra.unwrap_or(-1) as i32),
        }
    }
}

/// Labels of group keys; resolved with the segment the key was made in.
fn label(cap: &Capture, tasks: &Tasks, key: &Key) -> String {
    match key {
        Key::All => "all".into(),
        Key::Pid(p) => format!("{} ({p})", tasks.comm(*p)),
        Key::Comm(c) => c.to_string(),
        Key::Disk(dev) => cap.disk_name(*dev),
        Key::Syscall(id) => crate::syscalls::name(&cap.manifest.arch, *id),
    }
}

struct Part {
    values: HashMap<String, Vec<u64>>,
    open: Intervals<(u32, u64), String>,
}

fn finish_part(
    cap: &Capture,
    ctx: &Ctx,
    done: HashMap<Key, Vec<u64>>,
    open: Intervals<(u32, u64), Key>,
) -> Part {
    let values = done
        .into_iter()
        .map(|(k, v)| (label(cap, &ctx.tasks, &k), v))
        .collect();
    let open = open.map(|_, k| label(cap, &ctx.tasks, &k));
    Part { values, open }
}

/// A segment's run-queue events in time order: (ts, the woken or preempted tid a wait opens for,
/// the switched-in tid whose wait closes), -1 where there is none.
pub(crate) fn runq_events(seg: &Segment) -> Result<Vec<(u64, i32, i32)>> {
    let mut ev: Vec<(u64, i32, i32)> = Vec::new();
    for b in seg.read(Table::SchedWakeup, &["ts", "tid"])? {
        let (ts, tid) = (prim::<UInt64Type>(&b, "ts"), prim::<Int32Type>(&b, "tid"));
        ev.extend((0..b.num_rows()).map(|i| (ts.value(i), tid.value(i), -1)));
    }
    for b in seg.read(
        Table::SchedSwitch,
        &["ts", "prev_tid", "prev_state", "next_tid"],
    )? {
        let ts = prim::<UInt64Type>(&b, "ts");
        let (prev, state, next) = (
            prim::<Int32Type>(&b, "prev_tid"),
            prim::<Int64Type>(&b, "prev_state"),
            prim::<Int32Type>(&b, "next_tid"),
        );
        for i in 0..b.num_rows() {
            // Still runnable when switched out (preempted, also inside the kernel, or yielding):
            // it waits on the run queue from here.
            let requeued = if task_state::is_runnable(state.value(i)) {
                prev.value(i)
            } else {
                -1
            };
            ev.push((ts.value(i), requeued, next.value(i)));
        }
    }
    // Stable sort: rows are nearly in time order already (runs per drain), which it sorts in near-linear time.
    ev.sort_by_key(|e| e.0);
    Ok(ev)
}

fn runq(cap: &Capture, seg: &Segment, ctx: Ctx) -> Result<Part> {
    let ev = runq_events(seg)?;
    let mut done: HashMap<Key, Vec<u64>> = HashMap::default();
    let mut open: Intervals<(u32, u64), Key> = Intervals::default();
    for (ts, opened, closed) in ev {
        if closed > 0 {
            if let Some((k, d)) = open.close(&(closed as u32, 0), ts) {
                done.entry(k).or_default().push(d);
            }
        }
        if opened > 0 && ctx.filter.in_range(ts) && ctx.filter.task(&ctx.tasks, opened, None) {
            open.open((opened as u32, 0), ts, ctx.key(opened, None, None));
        }
    }
    Ok(finish_part(cap, &ctx, done, open))
}

fn block(cap: &Capture, seg: &Segment, ctx: Ctx) -> Result<Part> {
    let mut done: HashMap<Key, Vec<u64>> = HashMap::default();
    let mut open: Intervals<(u32, u64), Key> = Intervals::default();
    let mut rows: Vec<(u64, bool, u32, u64, i32, i32)> = Vec::new();
    for b in seg.read(
        Table::Block,
        &["ts", "tid", "tgid", "event", "dev", "sector"],
    )? {
        let ts = prim::<UInt64Type>(&b, "ts");
        let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
        let (event, dev, sector) = (
            strings(&b, "event"),
            prim::<UInt32Type>(&b, "dev"),
            prim::<UInt64Type>(&b, "sector"),
        );
        for i in 0..b.num_rows() {
            let issue = event.value(i) == "issue";
            rows.push((
                ts.value(i),
                issue,
                dev.value(i),
                sector.value(i),
                tid.value(i),
                tgid.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    for (ts, issue, dev, sector, tid, tgid) in rows {
        let key = (dev, sector);
        if issue {
            if ctx.filter.in_range(ts) && ctx.filter.task(&ctx.tasks, tid, Some(tgid)) {
                open.open(key, ts, ctx.key(tid, Some(tgid), Some(dev as i64)));
            } else {
                open.cancel(&key);
            }
        } else if let Some((k, d)) = open.close(&key, ts) {
            done.entry(k).or_default().push(d);
        }
    }
    Ok(finish_part(cap, &ctx, done, open))
}

fn syscall(cap: &Capture, seg: &Segment, ctx: Ctx) -> Result<Part> {
    let mut done: HashMap<Key, Vec<u64>> = HashMap::default();
    let mut open: Intervals<(u32, u64), Key> = Intervals::default();
    let mut rows: Vec<(u64, bool, i32, i32, i32)> = Vec::new();
    for b in seg.read(Table::Syscall, &["ts", "tid", "tgid", "enter", "id"])? {
        let ts = prim::<UInt64Type>(&b, "ts");
        let (tid, tgid, id) = (
            prim::<Int32Type>(&b, "tid"),
            prim::<Int32Type>(&b, "tgid"),
            prim::<Int32Type>(&b, "id"),
        );
        let enter = bools(&b, "enter");
        for i in 0..b.num_rows() {
            rows.push((
                ts.value(i),
                enter.value(i),
                tid.value(i),
                tgid.value(i),
                id.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    for (ts, enter, tid, tgid, id) in rows {
        let key = (tid as u32, 0);
        if enter {
            if ctx.filter.in_range(ts) && ctx.filter.task(&ctx.tasks, tid, Some(tgid)) {
                open.open(key, ts, ctx.key(tid, Some(tgid), Some(id as i64)));
            } else {
                open.cancel(&key);
            }
        } else if let Some((k, d)) = open.close(&key, ts) {
            done.entry(k).or_default().push(d);
        }
    }
    Ok(finish_part(cap, &ctx, done, open))
}

/// Computes the latency distribution of `kind` over the capture.
pub fn latency(cap: &Capture, kind: Kind, by: Option<By>, filter: &Filter) -> Result<Report> {
    let segs = selected(cap, filter);
    let parts = map_segments(&segs, "latency", |seg| {
        let ctx = Ctx {
            by,
            filter,
            tasks: Tasks::load(seg)?,
        };
        match kind {
            Kind::Runq => runq(cap, seg, ctx),
            Kind::Block => block(cap, seg, ctx),
            Kind::Syscall => syscall(cap, seg, ctx),
        }
    })?;
    let mut values: HashMap<String, Vec<u64>> = HashMap::default();
    let mut opens = Vec::with_capacity(parts.len());
    for p in parts {
        for (k, mut v) in p.values {
            values.entry(k).or_default().append(&mut v);
        }
        opens.push(p.open);
    }
    stitch(opens, |k, d| values.entry(k).or_default().push(d));
    let mut groups: Vec<Group> = values
        .into_iter()
        .map(|(name, mut v)| Group {
            name,
            dist: Distribution::from_values(&mut v),
        })
        .collect();
    groups.sort_by(|a, b| b.dist.count.cmp(&a.dist.count).then(a.name.cmp(&b.name)));
    Ok(Report {
        kind,
        by,
        groups,
        lost: Lost::in_range(cap, filter),
    })
}
