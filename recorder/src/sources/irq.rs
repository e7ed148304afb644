//! `irq`: hard IRQ handlers and softirq vectors, entry and exit (hardirqs, softirqs). Opt-in: on
//! a busy network host softirqs run tens of thousands of times a second.
use anyhow::Result;
use flightrec_common::{Config, IrqOffsets};

use super::{Kernel, Tracepoint};

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("irq_handler_entry", "irq", "irq_handler_entry"),
    ("irq_handler_exit", "irq", "irq_handler_exit"),
    ("softirq_entry", "irq", "softirq_entry"),
    ("softirq_exit", "irq", "softirq_exit"),
];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    let (entry, exit) = (
        (k.format)("irq", "irq_handler_entry")?,
        (k.format)("irq", "irq_handler_exit")?,
    );
    let (soft_entry, soft_exit) = (
        (k.format)("irq", "softirq_entry")?,
        (k.format)("irq", "softirq_exit")?,
    );
    let vec = soft_entry.offset("vec", &[4])?;
    if soft_exit.offset("vec", &[4])? != vec {
        anyhow::bail!(
            "softirq_entry and softirq_exit differ in layout on this kernel: not supported"
        );
    }
    c.irq = IrqOffsets {
        entry_irq: entry.offset("irq", &[4])?,
        entry_name: entry.string("name")?,
        exit_irq: exit.offset("irq", &[4])?,
        exit_ret: exit.offset("ret", &[4])?,
        softirq_vec: vec,
    };
    Ok(())
}
