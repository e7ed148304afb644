//! `cpudist`: how long tasks ran on a CPU each time (from a switch to them until the next switch
//! on that CPU), as a log2 histogram with exact percentiles, for all tasks or per process or
//! thread. The idle task is not counted.
//!
//! BCC's and libbpf-tools' cpudist count only the stretches that end while the task is still
//! runnable (preempted: their `prev->state == TASK_RUNNING` test), not those that end when it
//! blocks; `--preempted` gives exactly that, the default every stretch.
use std::collections::{BTreeMap, HashMap};

use arrow::datatypes::{Int32Type, Int64Type, UInt16Type, UInt64Type};
use flightrec_schemas::{task_state, Table};
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::prim,
    filter::Filter,
    hist::Distribution,
    latency::Group,
    lost::Lost,
    names::Tasks,
    parallel::selected,
};

/// How to group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
pub enum By {
    /// Per process (cpudist -P).
    Pid,
    /// Per thread (cpudist -L).
    Tid,
}

/// Result of `cpudist`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Grouping.
    pub by: Option<By>,
    /// Distributions of on-CPU stretches (ns), largest count first.
    pub groups: Vec<Group>,
    /// Switches away from a task other than the one the previous switch put on that CPU (a lost
    /// switch in between): the stretch is not counted.
    pub unpaired: u64,
    /// Losses.
    pub lost: Lost,
}

/// On-CPU stretches of the tasks `filter` selects that began in its range; with `preempted`, only
/// those that ended with the task still runnable.
pub fn cpudist(cap: &Capture, filter: &Filter, by: Option<By>, preempted: bool) -> Result<Report> {
    let mut groups: HashMap<(i32, String), Vec<u64>> = HashMap::new();
    // Per CPU: who runs since when; segments follow each other in time.
    let mut running: HashMap<u16, (u64, i32)> = HashMap::new();
    let mut unpaired = 0;
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let mut rows: Vec<(u64, u16, i32, i64, i32)> = Vec::new();
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
        for (ts, cpu, prev, state, next) in rows {
            if let Some((from, tid)) = running.remove(&cpu) {
                let counted = !preempted || task_state::is_runnable(state);
                if tid != prev {
                    unpaired += 1;
                } else if counted && filter.in_range(from) && filter.task(&tasks, tid, None) {
                    let key = match by {
                        None => (0, "all".to_string()),
                        Some(By::Pid) => {
                            let pid = tasks.tgid(tid).unwrap_or(tid);
                            (pid, format!("{} ({pid})", tasks.comm(pid)))
                        }
                        Some(By::Tid) => (tid, format!("{} ({tid})", tasks.comm(tid))),
                    };
                    groups.entry(key).or_default().push(ts - from);
                }
            }
            if next != 0 {
                running.insert(cpu, (ts, next));
            }
        }
    }
    let mut groups: Vec<Group> = groups
        .into_iter()
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .map(|((_, name), mut v)| Group {
            name,
            dist: Distribution::from_values(&mut v),
        })
        .collect();
    groups.sort_by_key(|g| std::cmp::Reverse(g.dist.count));
    Ok(Report {
        by,
        groups,
        unpaired,
        lost: Lost::in_range(cap, filter),
    })
}
