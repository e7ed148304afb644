//! `runqlen`: how many tasks waited in each CPU's run queue, over time. runqlen samples the
//! queue's length (99 Hz); a capture has every enqueue and dequeue, so this is the exact share of
//! time the queue had each length, per CPU and over all CPUs.
//!
//! A task joins a CPU's queue when it is woken for that CPU (`sched_wakeup`'s target CPU) or
//! preempted there (switched out still runnable), and leaves it when it is switched in anywhere.
//! Not recorded: load-balancing migrations, so a task woken for one CPU and run on another counts
//! on the first until it runs; and tasks already waiting when the capture began, until they run.
use std::collections::HashMap;

use arrow::datatypes::{Int32Type, UInt64Type};
use flightrec_schemas::{task_state, Table};
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::prim,
    filter::Filter,
    lost::Lost,
    parallel::selected,
};

/// One CPU's queue lengths.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Queue {
    /// The CPU (absent: all CPUs).
    pub cpu: Option<u16>,
    /// ns spent with each length (index = tasks waiting, the running one not counted).
    pub ns: Vec<u64>,
}

impl Queue {
    fn add(&mut self, len: usize, ns: u64) {
        if self.ns.len() <= len {
            self.ns.resize(len + 1, 0);
        }
        self.ns[len] += ns;
    }

    /// Share of the time with at least one task waiting (runqlen -O).
    pub fn occupancy(&self) -> f64 {
        let total: u64 = self.ns.iter().sum();
        let busy: u64 = self.ns.iter().skip(1).sum();
        if total == 0 {
            0.0
        } else {
            busy as f64 / total as f64
        }
    }
}

/// Result of `runqlen`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Per CPU, in CPU order.
    pub cpus: Vec<Queue>,
    /// Summed over CPUs.
    pub all: Queue,
    pub lost: Lost,
}

enum Ev {
    Wakeup {
        tid: i32,
        cpu: u16,
    },
    Switch {
        cpu: u16,
        prev: i32,
        state: i64,
        next: i32,
    },
}

/// The run-queue lengths in the range of `filter` (the whole machine: `--pid`/`--comm` do not
/// apply).
pub fn runqlen(cap: &Capture, filter: &Filter) -> Result<Report> {
    let (from, to) = crate::filter::window(cap, filter);
    let mut queued: HashMap<i32, u16> = HashMap::new();
    let mut on_cpu: HashMap<i32, u16> = HashMap::new();
    // Per CPU: tasks waiting, since when (ns); a CPU counts from its first switch on.
    let mut len: HashMap<u16, (usize, u64)> = HashMap::new();
    let mut queues: HashMap<u16, Queue> = HashMap::new();
    let mut account = |len: &mut HashMap<u16, (usize, u64)>, cpu: u16, ts: u64, delta: isize| {
        let Some((n, since)) = len.get_mut(&cpu) else {
            return;
        };
        let (a, b) = ((*since).max(from), ts.min(to));
        if b > a {
            queues.entry(cpu).or_default().add(*n, b - a);
        }
        *n = n.saturating_add_signed(delta);
        *since = ts;
    };
    for seg in selected(cap, filter) {
        let mut rows: Vec<(u64, Ev)> = Vec::new();
        for b in seg.read(Table::SchedWakeup, &["ts", "tid", "target_cpu"])? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, cpu) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "target_cpu"),
            );
            for i in 0..b.num_rows() {
                let cpu = cpu.value(i) as u16;
                rows.push((
                    ts.value(i),
                    Ev::Wakeup {
                        tid: tid.value(i),
                        cpu,
                    },
                ));
            }
        }
        for (ts, cpu, prev, state, next) in super::stretches::switch_rows(seg)? {
            rows.push((
                ts,
                Ev::Switch {
                    cpu,
                    prev,
                    state,
                    next,
                },
            ));
        }
        rows.sort_by_key(|r| r.0);
        for (ts, ev) in rows {
            match ev {
                Ev::Wakeup { tid, cpu } => {
                    if !on_cpu.contains_key(&tid) && !queued.contains_key(&tid) {
                        queued.insert(tid, cpu);
                        account(&mut len, cpu, ts, 1);
                    }
                }
                Ev::Switch {
                    cpu,
                    prev,
                    state,
                    next,
                } => {
                    len.entry(cpu).or_insert((0, ts));
                    if prev != 0 {
                        on_cpu.remove(&prev);
                        if let Some(q) = queued.remove(&prev) {
                            // It ran, so it was not waiting (a dequeue not seen).
                            account(&mut len, q, ts, -1);
                        }
                        if task_state::is_runnable(state) {
                            queued.insert(prev, cpu);
                            account(&mut len, cpu, ts, 1);
                        }
                    }
                    if next != 0 {
                        if let Some(q) = queued.remove(&next) {
                            account(&mut len, q, ts, -1);
                        }
                        on_cpu.insert(next, cpu);
                    }
                }
            }
        }
    }
    let cpus: Vec<u16> = len.keys().copied().collect();
    for cpu in cpus {
        account(&mut len, cpu, to, 0);
    }
    let mut cpus: Vec<Queue> = queues
        .into_iter()
        .map(|(cpu, mut q)| {
            q.cpu = Some(cpu);
            q
        })
        .collect();
    cpus.sort_by_key(|q| q.cpu);
    let mut all = Queue::default();
    for q in &cpus {
        for (n, &ns) in q.ns.iter().enumerate() {
            all.add(n, ns);
        }
    }
    Ok(Report {
        cpus,
        all,
        lost: Lost::in_range(cap, filter),
    })
}

impl Queue {
    /// The histogram as runqlen prints it, in ms of time instead of samples.
    pub fn render(&self) -> String {
        let max = self.ns.iter().copied().max().unwrap_or(0).max(1);
        let mut out = format!("{:>10} : {:<12} distribution\n", "runqlen", "time (ms)");
        for (n, &ns) in self.ns.iter().enumerate() {
            let stars = (ns as u128 * 40 / max as u128) as usize;
            out.push_str(&format!(
                "{n:>10} : {:<12.1} |{:<40}|\n",
                ns as f64 / 1e6,
                "*".repeat(stars)
            ));
        }
        out.push_str(&format!(
            "runqocc: {:.2}% of the time at least one task waiting\n",
            100.0 * self.occupancy()
        ));
        out
    }
}
