//! The window over time: CPU busy per CPU and events per second (the overview timeline), and CPU
//! samples per second and 20 ms slice with their stacks (the FlameScope-style heat map).
use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use super::data::{Cells, StackTable};
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
    /// CPU samples per cell and stack (of the page's stack table).
    pub cells: Cells,
    /// Off-CPU time (ns) by the cell where it began and the stack threads left the CPU with.
    pub off_cells: Cells,
}

/// Seconds (columns) and 20 ms slices (rows) of a window, on wall-clock seconds.
pub struct Grid {
    /// Wall-clock minus monotonic ns.
    offset: i64,
    t0: i64,
    cols: u32,
}

impl Grid {
    /// The grid of the window from `start` to `end` (monotonic ns).
    pub fn new(cap: &Capture, (start, end): (u64, u64)) -> Grid {
        let anchor = &cap.manifest.clock;
        let t0 = anchor.to_realtime_ns(start).div_euclid(1_000_000_000);
        let cols = ((anchor.to_realtime_ns(end).div_euclid(1_000_000_000) - t0) + 1).max(1) as u32;
        Grid {
            offset: anchor.realtime_ns - anchor.monotonic_ns as i64,
            t0,
            cols,
        }
    }

    /// Column and row of a monotonic timestamp.
    pub fn place(&self, ts: u64) -> Option<(u32, u32)> {
        let wall = ts as i64 + self.offset;
        let col = wall.div_euclid(1_000_000_000) - self.t0;
        let frac = wall.rem_euclid(1_000_000_000);
        (0..self.cols as i64)
            .contains(&col)
            .then(|| (col as u32, (frac * ROWS as i64 / 1_000_000_000) as u32))
    }
}

/// The off-CPU heat map's cells from the off-CPU time by cell and folded stack
/// (`offcpu::offcpu_placed`), the stacks into `table`.
pub fn off_cells(off: HashMap<((u32, u32), String), u64>, table: &mut StackTable) -> Cells {
    Cells::from_map(
        off.into_iter()
            .map(|(((c, r), folded), ns)| ((c, r, table.intern(&folded)), ns))
            .collect(),
    )
}

/// Builds the timeline of the segments `filter` selects on `grid` (all but the off-CPU cells:
/// [`off_cells`]); the heat map's stacks go into `table`.
pub fn timeline(
    cap: &Capture,
    filter: &Filter,
    grid: &Grid,
    table: &mut StackTable,
) -> Result<Timeline> {
    let (offset, t0, cols) = (grid.offset, grid.t0, grid.cols);
    let mut t = Timeline {
        t0,
        cols,
        rows: ROWS,
        events: vec![0; cols as usize],
        ..Default::default()
    };
    let place = |ts| grid.place(ts);
    let mut cells: HashMap<(u32, u32, u32), u64> = HashMap::new();
    let mut busy_ns: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
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
        // One folded stack per thread and stack pair of the segment, not per sample.
        let mut folded: HashMap<(i32, Option<u32>, Option<u32>), u32> = HashMap::new();
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
                let (tid, k, u) = (tid.value(i), opt(k, i), opt(u, i));
                let s = *folded
                    .entry((tid, k, u))
                    .or_insert_with(|| table.intern(&stacks.fold(tasks.comm(tid), k, u)));
                *cells.entry((c, r, s)).or_insert(0) += 1;
            }
        }
    }
    t.cells = Cells::from_map(cells);
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
