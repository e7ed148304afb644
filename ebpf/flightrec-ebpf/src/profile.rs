//! CPU-clock samples with kernel and user stacks.
use aya_ebpf::{helpers::bpf_get_current_comm, programs::PerfEventContext};
use flightrec_common::{EventKind, SampleEvent, Source, COMM_LEN};

use crate::emit::{conf, current, emit, header, is_own, scratch, walk_stacks, SLOT_PERF};

pub fn sample(ctx: &PerfEventContext) {
    let (tid, tgid) = current();
    // The idle task is not a workload; its share follows from the sampling rate.
    if tid == 0 || is_own(tgid) {
        return;
    }
    let Some(buf) = scratch(SLOT_PERF) else {
        return;
    };
    let ev = buf.cast::<SampleEvent>();
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::Sample);
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
    }
    let (k, u, regs, len) = walk_stacks(
        ctx,
        tid,
        tgid,
        buf,
        core::mem::size_of::<SampleEvent>(),
        conf!(sample_window),
    );
    unsafe {
        (*ev).kstack_len = k;
        (*ev).ustack_len = u;
        (*ev).regs = regs;
    }
    emit(Source::Profile, buf, len);
}
