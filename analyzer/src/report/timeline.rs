//! The window over time: CPU busy per CPU and events per second (the overview timeline), and CPU
//! samples per second and 20 ms slice with their stacks (the FlameScope-style heat map).
use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{opt, prim},
    filter::Filter,
    names::{Stacks, Tasks},
    parallel::selected,
};

/// Rows of the heat map: slices of a second.
pub const ROWS: u32 = 50;

/// What the browser draws.
#[derive(Debug, Default, Serialize)]
pub struct Timeline {
    /// Wall-clock second (Unix) of the first column.
    pub t0: i64,
    /// Seconds (columns).
    pub cols: u32,
    /// Slices per second (rows).
    pub rows: u32,
    /// Busy fraction per CPU and second.
    pub busy: BTreeMap<u16, Vec<f64>>,
    /// Events per second (all tables).
    pub events: Vec<u64>,
    /// Folded stacks of the samples (`comm;frames`), referenced by index.
    pub stacks: Vec<String>,
    /// Samples: [column, row, stack index, count].
    pub cells: Vec<[u32; 4]>,
    /// Folded stacks threads left the CPU with, referenced by index.
    pub off_stacks: Vec<String>,
    /// Off-CPU time by where it began: [column, row, stack index, ns].
    pub off_cells: Vec<[u64; 4]>,
}

/// Builds the timeline of the segments `filter` selects, from `start` (monotonic ns).
pub fn timeline(cap: &Capture, filter: &Filter, start: u64, end: u64) -> Result<Timeline> {
    let anchor = &cap.manifest.clock;
    let offset = anchor.realtime_ns - anchor.monotonic_ns as i64;
    let wall0 = anchor.to_realtime_ns(start);
    let t0 = wall0.div_euclid(1_000_000_000);
    let cols = ((anchor.to_realtime_ns(end).div_euclid(1_000_000_000) - t0) + 1).max(1) as u32;
    let mut t = Timeline {
        t0,
        cols,
        rows: ROWS,
        events: vec![0; cols as usize],
        ..Default::default()
    };
    // Column and row of a monotonic timestamp, on wall-clock seconds.
    let place = |ts: u64| -> Option<(u32, u32)> {
        let wall = anchor.to_realtime_ns(ts);
        let col = wall.div_euclid(1_000_000_000) - t0;
        let frac = wall.rem_euclid(1_000_000_000);
        (0..cols as i64)
            .contains(&col)
            .then(|| (col as u32, (frac * ROWS as i64 / 1_000_000_000) as u32))
    };
    let mut stack_index: HashMap<String, u32> = HashMap::new();
    let mut cells: HashMap<(u32, u32, u32), u32> = HashMap::new();
    let mut busy_ns: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
    let mut off = OffCpu::default();
    let mut stretches = crate::tools::stretches::Stretches::default();
    for seg in selected(cap, filter) {
        for table in Table::ALL.into_iter().filter(|t| t.is_event_table()) {
            for b in seg.read(table, &["ts"])? {
                for &ts in prim::<UInt64Type>(&b, "ts").values() {
                    if let (true, Some((c, _))) = (filter.in_range(ts), place(ts)) {
                        t.events[c as usize] += 1;
                    }
                }
            }
        }
        // A CPU is busy while a task runs on it.
        stretches.add_segment(seg, |st| {
            let bins = busy_ns
                .entry(st.cpu)
                .or_insert_with(|| vec![0; cols as usize]);
            spread(st.from, st.to, offset, t0, bins);
        })?;
        let tasks = Tasks::load(seg)?;
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        off.add_segment(seg, filter, (&tasks, &stacks), &place)?;
        let cols = ["ts", "tid", "tgid", "kstack", "ustack"];
        for b in seg.read(Table::Profile, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (k, u) = (
                prim::<UInt32Type>(&b, "kstack"),
                prim::<UInt32Type>(&b, "ustack"),
            );
            for i in 0..b.num_rows() {
                let ok = filter.in_range(ts.value(i))
                    && filter.task(&tasks, tid.value(i), Some(tgid.value(i)));
                let Some((c, r)) = place(ts.value(i)).filter(|_| ok) else {
                    continue;
                };
                let folded = stacks.fold(tasks.comm(tid.value(i)), opt(k, i), opt(u, i));
                let next = stack_index.len() as u32;
                let s = *stack_index.entry(folded).or_insert(next);
                *cells.entry((c, r, s)).or_insert(0) += 1;
            }
        }
    }
    let mut stacks: Vec<(String, u32)> = stack_index.into_iter().collect();
    stacks.sort_by_key(|s| s.1);
    t.stacks = stacks.into_iter().map(|s| s.0).collect();
    let mut cells: Vec<[u32; 4]> = cells
        .into_iter()
        .map(|((c, r, s), n)| [c, r, s, n])
        .collect();
    cells.sort_unstable();
    t.cells = cells;
    let mut off_stacks: Vec<(String, u64)> = off.index.into_iter().collect();
    off_stacks.sort_by_key(|s| s.1);
    t.off_stacks = off_stacks.into_iter().map(|s| s.0).collect();
    t.off_cells = off
        .cells
        .into_iter()
        .map(|((c, r, s), ns)| [c as u64, r as u64, s, ns])
        .collect();
    t.off_cells.sort_unstable();
    t.busy = busy_ns
        .into_iter()
        .map(|(cpu, ns)| (cpu, ns.iter().map(|&n| n as f64 / 1e9).collect()))
        .collect();
    Ok(t)
}

/// Adds the busy time from `from` to `to` (monotonic ns) to per-second bins, split at wall-clock
/// second boundaries; `offset` turns monotonic into wall-clock ns, `t0` is the first bin's second.
fn spread(from: u64, to: u64, offset: i64, t0: i64, bins: &mut [u64]) {
    let (mut at, to) = (from as i64 + offset, to as i64 + offset);
    while at < to {
        let sec = at.div_euclid(1_000_000_000);
        let stop = to.min((sec + 1) * 1_000_000_000);
        if let Some(bin) = usize::try_from(sec - t0).ok().and_then(|i| bins.get_mut(i)) {
            *bin += (stop - at) as u64;
        }
        at = stop;
    }
}

/// Off-CPU intervals (switch-out of a thread to its next switch-in, as `offcpu` pairs them), added
/// to the cell of their switch-out by folded stack. Segments follow each other in time, so an
/// interval open at a segment's end can close in the next one.
#[derive(Default)]
struct OffCpu {
    /// Threads switched out and not back in yet: (switch-out ts, stack index).
    open: HashMap<i32, (u64, u64)>,
    /// Folded stacks by index.
    index: HashMap<String, u64>,
    /// ns per (column, row, stack index).
    cells: HashMap<(u32, u32, u64), u64>,
}

/// One `sched_switch` row as the off-CPU pairing reads it.
struct Switch {
    ts: u64,
    prev: i32,
    tgid: i32,
    next: i32,
    kstack: Option<u32>,
    ustack: Option<u32>,
}

impl OffCpu {
    fn add_segment(
        &mut self,
        seg: &crate::capture::Segment,
        filter: &Filter,
        (tasks, stacks): (&Tasks, &Stacks),
        place: &impl Fn(u64) -> Option<(u32, u32)>,
    ) -> Result<()> {
        let cols = [
            "ts",
            "prev_tid",
            "prev_tgid",
            "next_tid",
            "kstack",
            "ustack",
        ];
        let mut rows: Vec<Switch> = Vec::new();
        for b in seg.read(Table::SchedSwitch, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (prev, tgid, next) = (
                prim::<Int32Type>(&b, "prev_tid"),
                prim::<Int32Type>(&b, "prev_tgid"),
                prim::<Int32Type>(&b, "next_tid"),
            );
            let (k, u) = (
                prim::<UInt32Type>(&b, "kstack"),
                prim::<UInt32Type>(&b, "ustack"),
            );
            for i in 0..b.num_rows() {
                rows.push(Switch {
                    ts: ts.value(i),
                    prev: prev.value(i),
                    tgid: tgid.value(i),
                    next: next.value(i),
                    kstack: opt(k, i),
                    ustack: opt(u, i),
                });
            }
        }
        rows.sort_by_key(|r| r.ts);
        let mut folded: HashMap<(i32, Option<u32>, Option<u32>), u64> = HashMap::new();
        for r in rows {
            if r.next != 0 {
                if let Some((from, s)) = self.open.remove(&r.next) {
                    if let Some((c, row)) = place(from) {
                        *self.cells.entry((c, row, s)).or_insert(0) += r.ts.saturating_sub(from);
                    }
                }
            }
            if r.prev != 0 && filter.in_range(r.ts) && filter.task(tasks, r.prev, Some(r.tgid)) {
                let index = &mut self.index;
                let s = *folded
                    .entry((r.prev, r.kstack, r.ustack))
                    .or_insert_with(|| {
                        let f = stacks.fold(tasks.comm(r.prev), r.kstack, r.ustack);
                        let next = index.len() as u64;
                        *index.entry(f).or_insert(next)
                    });
                self.open.insert(r.prev, (r.ts, s));
            }
        }
        Ok(())
    }
}
