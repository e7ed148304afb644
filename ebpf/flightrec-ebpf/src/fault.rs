//! User page faults with the faulting task's user stack (walked as at a switch-out: faults come as
//! often as switches, so the stack copy is as long).
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, FaultEvent, Source, UserRegs};

use crate::emit::{
    conf, current, emit, field, header, is_own, scratch, walk_user_stack, SLOT_TRACEPOINT,
};

pub fn page_fault_user(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    if is_own(tgid) || tid == 0 {
        return;
    }
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let ev = buf.cast::<FaultEvent>();
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::PageFault);
        (*ev).address = field(ctx, conf!(fault.address));
        (*ev).ip = field(ctx, conf!(fault.ip));
        (*ev).error_code = field(ctx, conf!(fault.error_code));
        (*ev).kstack_len = 0;
        (*ev).regs = UserRegs::default();
    }
    let (u, regs, len) = walk_user_stack(
        ctx,
        tid,
        tgid,
        buf,
        core::mem::size_of::<FaultEvent>(),
        conf!(switch_window),
    );
    unsafe {
        (*ev).ustack_len = u;
        (*ev).regs = regs;
    }
    emit(Source::Fault, buf, len);
}
