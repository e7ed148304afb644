//! `sched_switch` with the stacks of the task leaving the CPU, and wake-ups.
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, Source, SwitchEvent, WakeupEvent, COMM_LEN};

use crate::emit::{
    conf, current, emit, emit_value, field, field_bytes, header, is_own, scratch, walk_stacks,
    SLOT_TRACEPOINT,
};

pub fn switch(ctx: &TracePointContext) {
    // Current is prev: the stacks walked here are where prev goes off-CPU. A switch away from the
    // recorder is still recorded (it is next's switch-in), only the recorder's stacks are not walked.
    let (tid, tgid) = current();
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let ev = buf.cast::<SwitchEvent>();
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::Switch);
        (*ev).prev_pid = field(ctx, conf!(switch.prev_pid));
        (*ev).next_pid = field(ctx, conf!(switch.next_pid));
        (*ev).prev_prio = field(ctx, conf!(switch.prev_prio));
        (*ev).next_prio = field(ctx, conf!(switch.next_prio));
        (*ev).prev_state = field(ctx, conf!(switch.prev_state));
        field_bytes::<COMM_LEN>(ctx, conf!(switch.prev_comm), &mut (*ev).prev_comm);
        field_bytes::<COMM_LEN>(ctx, conf!(switch.next_comm), &mut (*ev).next_comm);
    }
    let (k, u, len) = if is_own(tgid) {
        (0, 0, core::mem::size_of::<SwitchEvent>())
    } else {
        walk_stacks(ctx, tid, buf, core::mem::size_of::<SwitchEvent>())
    };
    unsafe {
        (*ev).kstack_len = k;
        (*ev).ustack_len = u;
    }
    emit(Source::Sched, buf, len);
}

pub fn wakeup(ctx: &TracePointContext, new: bool) {
    let (tid, tgid) = current();
    let pid: i32 = field(ctx, conf!(wakeup.pid));
    let kind = if new {
        EventKind::WakeupNew
    } else {
        EventKind::Wakeup
    };
    let mut ev = WakeupEvent {
        hdr: header(tid, tgid, kind),
        pid,
        prio: field(ctx, conf!(wakeup.prio)),
        target_cpu: field(ctx, conf!(wakeup.target_cpu)),
        _pad: 0,
        comm: [0; COMM_LEN],
    };
    field_bytes(ctx, conf!(wakeup.comm), &mut ev.comm);
    emit_value(Source::Sched, &ev);
}
