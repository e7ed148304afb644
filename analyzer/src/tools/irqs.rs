//! `hardirqs` and `softirqs`: time in each IRQ handler and softirq vector, from their entries and
//! exits, paired per CPU (a CPU runs one hard IRQ handler at a time, and one softirq vector).
use std::{collections::HashMap, fmt::Write};

use arrow::{
    array::Array,
    datatypes::{Int32Type, UInt16Type, UInt64Type},
};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{prim, strings},
    filter::Filter,
    hist::fmt_ns,
    lost::Lost,
    parallel::selected,
};

/// Which interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Hard,
    Soft,
}

/// Time in one handler or vector.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub name: String,
    pub count: u64,
    pub total_ns: u64,
    pub max_ns: u64,
}

/// Result of `hardirqs` / `softirqs`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// By total time, the most first.
    pub rows: Vec<Row>,
    /// Exits without their entry in the capture (the first of each CPU, or lost events).
    pub unpaired: u64,
    pub lost: Lost,
}

/// Time per IRQ handler name (hard) or softirq vector (soft) in the range.
pub fn irqs(cap: &Capture, filter: &Filter, kind: Kind) -> Result<Report> {
    let (entry, exit) = match kind {
        Kind::Hard => ("hardirq_entry", "hardirq_exit"),
        Kind::Soft => ("softirq_entry", "softirq_exit"),
    };
    // Per CPU: the entry waiting for its exit (ts, name).
    let mut open: HashMap<u16, (u64, String)> = HashMap::new();
    let mut rows: HashMap<String, Row> = HashMap::new();
    let mut unpaired = 0;
    for seg in selected(cap, filter) {
        let mut events = Vec::new();
        for b in seg.read(Table::Irq, &["ts", "cpu", "event", "irq", "name"])? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (event, irq, name) = (
                strings(&b, "event"),
                prim::<Int32Type>(&b, "irq"),
                strings(&b, "name"),
            );
            for i in 0..b.num_rows() {
                let e = event.value(i);
                if e != entry && e != exit {
                    continue;
                }
                let n = if name.is_valid(i) {
                    name.value(i).to_string()
                } else {
                    format!("irq {}", irq.value(i))
                };
                events.push((ts.value(i), cpu.value(i), e == entry, n));
            }
        }
        events.sort_by_key(|e| e.0);
        for (ts, cpu, is_entry, name) in events {
            if is_entry {
                open.insert(cpu, (ts, name));
                continue;
            }
            let Some((t0, name)) = open.remove(&cpu) else {
                unpaired += 1;
                continue;
            };
            if !filter.in_range(t0) {
                continue;
            }
            let d = ts.saturating_sub(t0);
            let r = rows.entry(name.clone()).or_insert(Row {
                name,
                count: 0,
                total_ns: 0,
                max_ns: 0,
            });
            r.count += 1;
            r.total_ns += d;
            r.max_ns = r.max_ns.max(d);
        }
    }
    let mut rows: Vec<Row> = rows.into_values().collect();
    rows.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.name.cmp(&b.name)));
    Ok(Report {
        rows,
        unpaired,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// The table as hardirqs/softirqs print it, with counts and the longest one.
    pub fn render(&self, kind: Kind) -> String {
        let title = match kind {
            Kind::Hard => "HARDIRQ",
            Kind::Soft => "SOFTIRQ",
        };
        let mut out = format!(
            "{title:<24} {:>12} {:>10} {:>10}\n",
            "TOTAL_usecs", "COUNT", "MAX"
        );
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<24} {:>12} {:>10} {:>10}",
                r.name,
                r.total_ns / 1000,
                r.count,
                fmt_ns(r.max_ns)
            );
        }
        if self.rows.is_empty() {
            out.push_str("no interrupts in this range (record with --events ...,irq)\n");
        }
        out
    }
}
