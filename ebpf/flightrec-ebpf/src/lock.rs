//! Kernel lock contention: a begin with the waiter's kernel stack (where the lock is taken), an
//! end when the wait is over. Begins and ends pair per thread and lock address in the readers (a
//! mutex's waiter may spin, then sleep: two begins, one end; a spinlock taken inside a mutex's
//! slow path nests another pair).
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, LockEvent, Source};

use crate::emit::{
    conf, current, emit, emit_value, field, header, is_own, scratch, walk_kernel_stack,
    SLOT_TRACEPOINT,
};

pub fn begin(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    if is_own(tgid) {
        return;
    }
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let ev = buf.cast::<LockEvent>();
    let (k, len) = walk_kernel_stack(ctx, buf, core::mem::size_of::<LockEvent>());
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::LockBegin);
        (*ev).lock_addr = field(ctx, conf!(lock.begin_lock_addr));
        (*ev).flags = field(ctx, conf!(lock.begin_flags));
        (*ev).ret = 0;
        (*ev).kstack_len = k;
        (*ev)._pad = 0;
    }
    emit(Source::Lock, buf, len);
}

pub fn end(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    if is_own(tgid) {
        return;
    }
    let ev = LockEvent {
        hdr: header(tid, tgid, EventKind::LockEnd),
        lock_addr: field(ctx, conf!(lock.end_lock_addr)),
        flags: 0,
        ret: field(ctx, conf!(lock.end_ret)),
        kstack_len: 0,
        _pad: 0,
    };
    emit_value(Source::Lock, &ev);
}
