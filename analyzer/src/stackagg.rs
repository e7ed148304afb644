//! Time or samples per folded stack, and the two ways to print them: folded lines for flame graph
//! tools, and the top stacks for people.
use std::{collections::HashMap, fmt::Write};

use serde::Serialize;

use crate::{hist::fmt_ns, lost::Lost};

/// One stack and what it accumulated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StackRow {
    /// `comm;frame;...;frame`, root first.
    pub folded: String,
    /// Total: ns for off-CPU and lock waits, samples for profiles, faults for page faults.
    pub value: u64,
    /// Number of intervals or samples.
    pub count: u64,
}

/// Stacks of an analysis.
#[derive(Clone, Debug, Serialize)]
pub struct StackReport {
    /// What `value` counts: `ns`, `samples` or `faults`.
    pub unit: &'static str,
    /// Stacks, largest value first.
    pub stacks: Vec<StackRow>,
    /// Sum of all values.
    pub total: u64,
    /// Losses in the covered segments.
    pub lost: Lost,
    /// Intervals left out because the capture lacks their end (off-CPU: a switch-in the kernel
    /// never reported, so the thread's next switch-out came first).
    pub unmeasured: u64,
}

/// Sums (value, count) per folded stack.
pub fn merge(into: &mut HashMap<String, (u64, u64)>, folded: String, value: u64, count: u64) {
    let e = into.entry(folded).or_insert((0, 0));
    e.0 += value;
    e.1 += count;
}

impl StackReport {
    /// Builds the report, sorting by value (then stack, for stable output).
    pub fn new(unit: &'static str, agg: HashMap<String, (u64, u64)>, lost: Lost) -> StackReport {
        let mut stacks: Vec<StackRow> = agg
            .into_iter()
            .map(|(folded, (value, count))| StackRow {
                folded,
                value,
                count,
            })
            .collect();
        stacks.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.folded.cmp(&b.folded)));
        let total = stacks.iter().map(|s| s.value).sum();
        StackReport {
            unit,
            stacks,
            total,
            lost,
            unmeasured: 0,
        }
    }

    /// The losses line, and a line on the intervals left out when there are any.
    pub fn banner(&self) -> String {
        let mut b = self.lost.banner();
        if self.unmeasured > 0 {
            let _ = write!(
                b,
                "\nunmeasured: {} interval{} left out: the capture lacks the switch-in that ended \
                 {} (the kernel never reported it; `summary` counts such switches)",
                self.unmeasured,
                if self.unmeasured == 1 { "" } else { "s" },
                if self.unmeasured == 1 { "it" } else { "them" },
            );
        }
        b
    }

    /// Folded lines (`stack value`), sorted by stack. Off-CPU values are in microseconds, as
    /// offcputime -f prints them.
    pub fn folded(&self) -> String {
        let mut rows: Vec<&StackRow> = self.stacks.iter().collect();
        rows.sort_by(|a, b| a.folded.cmp(&b.folded));
        let mut out = String::new();
        for r in rows {
            let v = if self.unit == "ns" {
                r.value / 1000
            } else {
                r.value
            };
            if v > 0 {
                let _ = writeln!(out, "{} {v}", r.folded);
            }
        }
        out
    }

    /// The `top` largest stacks, leaf first, as offcputime and profile print them.
    pub fn render(&self, top: usize) -> String {
        let mut out = String::new();
        for r in self.stacks.iter().take(top) {
            let mut frames: Vec<&str> = r.folded.split(';').collect();
            let comm = frames.remove(0);
            for f in frames.iter().rev() {
                let _ = writeln!(out, "    {f}");
            }
            let value = if self.unit == "ns" {
                format!("{} in {} intervals", fmt_ns(r.value), r.count)
            } else {
                let pct = 100.0 * r.value as f64 / self.total.max(1) as f64;
                format!("{} {} ({pct:.1}%)", r.value, self.unit)
            };
            let _ = writeln!(out, "    -  {comm}\n        {value}\n");
        }
        if self.stacks.len() > top {
            let _ = writeln!(
                out,
                "({} more stacks; --top to show more, --folded for all)",
                self.stacks.len() - top
            );
        }
        out
    }
}
