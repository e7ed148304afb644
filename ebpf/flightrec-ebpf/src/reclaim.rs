//! Memory reclaim begin and end, direct (global) and memory-cgroup: paired per task by the readers
//! (a task reclaims for one allocation at a time).
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, ReclaimEvent, Source};

use crate::emit::{conf, current, emit_value, field, header};

pub fn begin(ctx: &TracePointContext, memcg: bool) {
    let (tid, tgid) = current();
    let kind = if memcg {
        EventKind::MemcgReclaimBegin
    } else {
        EventKind::DirectReclaimBegin
    };
    let ev = ReclaimEvent {
        hdr: header(tid, tgid, kind),
        order: field(ctx, conf!(reclaim.begin_order)),
        _pad: 0,
        value: field(ctx, conf!(reclaim.begin_gfp_flags)),
    };
    emit_value(Source::Reclaim, &ev);
}

pub fn end(ctx: &TracePointContext, memcg: bool) {
    let (tid, tgid) = current();
    let kind = if memcg {
        EventKind::MemcgReclaimEnd
    } else {
        EventKind::DirectReclaimEnd
    };
    let ev = ReclaimEvent {
        hdr: header(tid, tgid, kind),
        order: 0,
        _pad: 0,
        value: field(ctx, conf!(reclaim.end_nr_reclaimed)),
    };
    emit_value(Source::Reclaim, &ev);
}
