//! `cpudist`: how long tasks ran on a CPU each time (from a switch to them until the next switch
//! on that CPU), as a log2 histogram with exact percentiles, for all tasks or per process or
//! thread. The idle task is not counted.
//!
//! BCC's and libbpf-tools' cpudist count only the stretches that end while the task is still
//! runnable (preempted: their `prev->state == TASK_RUNNING` test), not those that end when it
//! blocks; `--preempted` gives exactly that, the default every stretch.
use std::collections::{BTreeMap, HashMap};

use flightrec_schemas::task_state;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
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
    let mut stretches = super::stretches::Stretches::default();
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        stretches.add_segment(seg, |st| {
            let counted = !preempted || task_state::is_runnable(st.end_state);
            if !(counted && filter.in_range(st.from) && filter.task(&tasks, st.tid, None)) {
                return;
            }
            let tid = st.tid;
            let key = match by {
                None => (0, "all".to_string()),
                Some(By::Pid) => {
                    let pid = tasks.tgid(tid).unwrap_or(tid);
                    (pid, format!("{} ({pid})", tasks.comm(pid)))
                }
                Some(By::Tid) => (tid, format!("{} ({tid})", tasks.comm(tid))),
            };
            groups.entry(key).or_default().push(st.to - st.from);
        })?;
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
        unpaired: stretches.unpaired,
        lost: Lost::in_range(cap, filter),
    })
}
