//! Hard and soft interrupts: entry and exit of each IRQ handler and softirq vector, paired per CPU
//! by the recorder's readers (they do not nest on one CPU: hard IRQs run with interrupts off, and a
//! CPU runs one softirq vector at a time).
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, IrqEvent, Source, IRQ_NAME_LEN};

use crate::emit::{conf, current, emit_value, field, field_str, header};

#[inline(always)]
fn event(kind: EventKind, irq: i32, ret: i32) -> IrqEvent {
    let (tid, tgid) = current();
    IrqEvent {
        hdr: header(tid, tgid, kind),
        irq,
        ret,
        name: [0; IRQ_NAME_LEN],
    }
}

pub fn handler_entry(ctx: &TracePointContext) {
    let mut ev = event(EventKind::IrqEntry, field(ctx, conf!(irq.entry_irq)), 0);
    field_str(ctx, conf!(irq.entry_name), &mut ev.name);
    emit_value(Source::Irq, &ev);
}

pub fn handler_exit(ctx: &TracePointContext) {
    let ev = event(
        EventKind::IrqExit,
        field(ctx, conf!(irq.exit_irq)),
        field(ctx, conf!(irq.exit_ret)),
    );
    emit_value(Source::Irq, &ev);
}

pub fn softirq(ctx: &TracePointContext, exit: bool) {
    let kind = if exit {
        EventKind::SoftirqExit
    } else {
        EventKind::SoftirqEntry
    };
    let vec: u32 = field(ctx, conf!(irq.softirq_vec));
    emit_value(Source::Irq, &event(kind, vec as i32, 0));
}
