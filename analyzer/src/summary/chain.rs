//! Switches the kernel did not report, found in each CPU's chain of context switches: a switch hands
//! the CPU from `prev` to `next`, so the CPU's next switch must name that same task leaving it. When
//! it names another, switches ran in between that are not in the capture: their records were lost
//! or skipped (counted apart), or the kernel never emitted them (this machine's kernel emits none
//! for a thread of PID 1, its VM agent, leaving a CPU; the task after it comes in unannounced).
use rustc_hash::FxHashMap as HashMap;

use crate::filter::Filter;

/// Per CPU: the task its first switch took off it (when that switch is in the filter's range), and
/// the task its last switch put on it.
type Ends = HashMap<u16, (Option<i32>, i32)>;

/// One segment's chain breaks, and its ends per CPU for joining it to its neighbours.
#[derive(Debug, Default)]
pub struct Chain {
    /// Breaks inside the segment (in the filter's range).
    pub breaks: u64,
    ends: Ends,
}

impl Chain {
    /// The chain breaks of one segment's `sched_switch` rows, `(cpu, ts, prev_tid, next_tid)` in
    /// any order.
    pub fn of(mut rows: Vec<(u16, u64, i32, i32)>, filter: &Filter) -> Chain {
        // One CPU's switches in its own clock's order.
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        let mut chain = Chain::default();
        for (cpu, ts, prev, next) in rows {
            match chain.ends.get_mut(&cpu) {
                Some(end) => {
                    if end.1 != prev && filter.in_range(ts) {
                        chain.breaks += 1;
                    }
                    end.1 = next;
                }
                None => {
                    chain
                        .ends
                        .insert(cpu, (filter.in_range(ts).then_some(prev), next));
                }
            }
        }
        chain
    }

    /// All breaks of consecutive segments (by id, oldest first): also where a CPU's last switch in
    /// one segment and its first in the next disagree. A gap between segments (one evicted or
    /// not selected) is not a break.
    pub fn join(parts: Vec<(u64, Chain)>) -> u64 {
        let mut total = 0;
        let mut before: Option<(u64, Ends)> = None;
        for (id, chain) in parts {
            total += chain.breaks;
            if let Some((prev_id, ends)) = &before {
                if *prev_id + 1 == id {
                    total += chain
                        .ends
                        .iter()
                        .filter(|(cpu, (first, _))| {
                            first.is_some_and(|p| ends.get(cpu).is_some_and(|e| e.1 != p))
                        })
                        .count() as u64;
                }
            }
            before = Some((id, chain.ends));
        }
        total
    }
}
