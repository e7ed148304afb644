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
    /// Exits without their entry in the capture (the first of each CPU, or lost events), or after
    /// another IRQ's or vector's entry.
    pub unpaired: u64,
    pub lost: Lost,
}

/// One entry or exit.
struct Mark {
    ts: u64,
    cpu: u16,
    entry: bool,
    /// IRQ number or softirq vector.
    irq: i32,
    name: String,
}

/// Entries and exits paired per CPU, in time order.
#[derive(Default)]
struct Pairing {
    /// Per CPU: the entry waiting for its exit.
    open: HashMap<u16, Mark>,
    rows: HashMap<String, Row>,
    unpaired: u64,
}

impl Pairing {
    fn push(&mut self, m: Mark, in_range: impl Fn(u64) -> bool) {
        if m.entry {
            self.open.insert(m.cpu, m);
            return;
        }
        // An exit closes only its own entry: with the events between them lost, another IRQ's
        // would take their time.
        let Some(e) = self.open.remove(&m.cpu).filter(|e| e.irq == m.irq) else {
            self.unpaired += 1;
            return;
        };
        if !in_range(e.ts) {
            return;
        }
        let d = m.ts.saturating_sub(e.ts);
        let r = self.rows.entry(e.name.clone()).or_insert(Row {
            name: e.name,
            count: 0,
            total_ns: 0,
            max_ns: 0,
        });
        r.count += 1;
        r.total_ns += d;
        r.max_ns = r.max_ns.max(d);
    }

    /// By total time, the most first.
    fn rows(self) -> (Vec<Row>, u64) {
        let mut rows: Vec<Row> = self.rows.into_values().collect();
        rows.sort_by(|a, b| b.total_ns.cmp(&a.total_ns).then(a.name.cmp(&b.name)));
        (rows, self.unpaired)
    }
}

/// Time per IRQ handler name (hard) or softirq vector (soft) in the range.
pub fn irqs(cap: &Capture, filter: &Filter, kind: Kind) -> Result<Report> {
    let (entry, exit) = match kind {
        Kind::Hard => ("hardirq_entry", "hardirq_exit"),
        Kind::Soft => ("softirq_entry", "softirq_exit"),
    };
    let mut pairing = Pairing::default();
    for seg in selected(cap, filter) {
        let mut marks = Vec::new();
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
                let name = if name.is_valid(i) {
                    name.value(i).to_string()
                } else {
                    format!("irq {}", irq.value(i))
                };
                marks.push(Mark {
                    ts: ts.value(i),
                    cpu: cpu.value(i),
                    entry: e == entry,
                    irq: irq.value(i),
                    name,
                });
            }
        }
        marks.sort_by_key(|m| m.ts);
        for m in marks {
            pairing.push(m, |ts| filter.in_range(ts));
        }
    }
    let (rows, unpaired) = pairing.rows();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(ts: u64, cpu: u16, entry: bool, irq: i32, name: &str) -> Mark {
        Mark {
            ts,
            cpu,
            entry,
            irq,
            name: name.to_string(),
        }
    }

    #[test]
    fn an_exit_closes_only_the_entry_of_its_own_vector_on_its_cpu() {
        let mut p = Pairing::default();
        for m in [
            mark(100, 0, true, 1, "timer"),
            mark(110, 1, true, 3, "net_rx"),
            mark(150, 0, false, 1, "timer"),
            // CPU 0: timer's exit and net_rx's entry were lost; net_rx's exit must not close it.
            mark(200, 0, true, 1, "timer"),
            mark(900, 0, false, 3, "net_rx"),
            mark(910, 1, false, 3, "net_rx"),
        ] {
            p.push(m, |ts| ts >= 100);
        }
        let (rows, unpaired) = p.rows();
        let got: Vec<(&str, u64, u64, u64)> = rows
            .iter()
            .map(|r| (r.name.as_str(), r.count, r.total_ns, r.max_ns))
            .collect();
        assert_eq!(got, [("net_rx", 1, 800, 800), ("timer", 1, 50, 50)]);
        assert_eq!(unpaired, 1);
    }
}
