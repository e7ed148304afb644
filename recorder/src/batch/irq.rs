//! Rows of `irq`: IRQ handler and softirq entries and exits.
use arrow::array::{ArrayRef, Int32Builder};
use flightrec_common::{EventHeader, EventKind, IrqEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Dict, Header, Rows};
use crate::decode::c_str;

/// Softirq vectors' names, as the kernel's `softirq_to_name`.
const SOFTIRQS: [&str; 10] = [
    "hi", "timer", "net_tx", "net_rx", "block", "irq_poll", "tasklet", "sched", "hrtimer", "rcu",
];

#[derive(Default)]
pub struct Irqs {
    h: Header,
    event: Dict,
    irq: Int32Builder,
    name: Dict,
    ret: Int32Builder,
}

impl Irqs {
    pub fn push(&mut self, h: &EventHeader, e: &IrqEvent, kind: EventKind) {
        self.h.push(h);
        let (event, name) = match kind {
            EventKind::IrqEntry => ("hardirq_entry", Some(c_str(&e.name))),
            EventKind::IrqExit => ("hardirq_exit", None),
            EventKind::SoftirqEntry => ("softirq_entry", SOFTIRQS.get(e.irq as usize).copied()),
            _ => ("softirq_exit", SOFTIRQS.get(e.irq as usize).copied()),
        };
        self.event.append_value(event);
        self.irq.append_value(e.irq);
        match name {
            Some(n) => self.name.append_value(n),
            None => self.name.append_null(),
        }
        self.ret
            .append_option((kind == EventKind::IrqExit).then_some(e.ret));
    }
}

impl Rows for Irqs {
    const TABLE: Table = Table::Irq;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend([
            arc(self.event.finish()),
            arc(self.irq.finish()),
            arc(self.name.finish()),
            arc(self.ret.finish()),
        ]);
        cols
    }
}
