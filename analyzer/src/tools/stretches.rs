//! A task's stretches on a CPU: from the switch to it until the next switch on that CPU. One
//! pairing for `cpudist`, the report's CPU-busy timeline and the Chrome trace. Segments follow each
//! other in time, so a stretch running at a segment's end goes on in the next one.
use rustc_hash::FxHashMap as HashMap;

use arrow::datatypes::{Int32Type, Int64Type, UInt16Type, UInt64Type};
use flightrec_schemas::Table;

use crate::{
    capture::{Result, Segment},
    columns::prim,
};

/// One stretch.
#[derive(Clone, Copy, Debug)]
pub struct Stretch {
    /// The CPU.
    pub cpu: u16,
    /// The task (never the idle task).
    pub tid: i32,
    /// Switch to it, monotonic ns.
    pub from: u64,
    /// Switch away from it.
    pub to: u64,
    /// Its `prev_state` at the switch away (runnable: it was preempted).
    pub end_state: i64,
}

/// One switch: (ts, cpu, prev_tid, prev_state, next_tid).
pub type SwitchRow = (u64, u16, i32, i64, i32);

/// A segment's switches, in time order.
pub fn switch_rows(seg: &Segment) -> Result<Vec<SwitchRow>> {
    let mut rows = Vec::new();
    let cols = ["ts", "cpu", "prev_tid", "prev_state", "next_tid"];
    for b in seg.read(Table::SchedSwitch, &cols)? {
        let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
        let (prev, state, next) = (
            prim::<Int32Type>(&b, "prev_tid"),
            prim::<Int64Type>(&b, "prev_state"),
            prim::<Int32Type>(&b, "next_tid"),
        );
        for i in 0..b.num_rows() {
            rows.push((
                ts.value(i),
                cpu.value(i),
                prev.value(i),
                state.value(i),
                next.value(i),
            ));
        }
    }
    rows.sort_by_key(|r| r.0);
    Ok(rows)
}

/// The pairing state across segments.
#[derive(Default)]
pub struct Stretches {
    running: HashMap<u16, (u64, i32)>,
    /// Switches away from another task than the one the previous switch put on that CPU (a
    /// switch lost in between): that stretch is not reported.
    pub unpaired: u64,
}

impl Stretches {
    /// Calls `each` with every stretch that ends in `seg`, in time order.
    pub fn add_segment(&mut self, seg: &Segment, mut each: impl FnMut(Stretch)) -> Result<()> {
        for (ts, cpu, prev, state, next) in switch_rows(seg)? {
            if let Some((from, tid)) = self.running.remove(&cpu) {
                if tid == prev {
                    each(Stretch {
                        cpu,
                        tid,
                        from,
                        to: ts,
                        end_state: state,
                    });
                } else {
                    self.unpaired += 1;
                }
            }
            if next != 0 {
                self.running.insert(cpu, (ts, next));
            }
        }
        Ok(())
    }
}
