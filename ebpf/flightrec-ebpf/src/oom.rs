//! `oom:mark_victim`: the OOM killer chose a victim. Current is the task whose allocation invoked
//! it. Fields older kernels lack have offset `u32::MAX` and stay 0.
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, OomEvent, Source, COMM_LEN};

use crate::emit::{conf, current, emit_value, field, field_comm, header};

#[inline(always)]
fn opt<T: Default>(ctx: &TracePointContext, offset: u32) -> T {
    if offset == u32::MAX {
        T::default()
    } else {
        field(ctx, offset)
    }
}

pub fn mark_victim(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    let mut ev = OomEvent {
        hdr: header(tid, tgid, EventKind::OomVictim),
        pid: field(ctx, conf!(oom.pid)),
        uid: opt(ctx, conf!(oom.uid)),
        oom_score_adj: opt::<i16>(ctx, conf!(oom.oom_score_adj)) as i32,
        _pad: 0,
        total_vm: opt(ctx, conf!(oom.total_vm)),
        anon_rss: opt(ctx, conf!(oom.anon_rss)),
        file_rss: opt(ctx, conf!(oom.file_rss)),
        shmem_rss: opt(ctx, conf!(oom.shmem_rss)),
        pgtables: opt(ctx, conf!(oom.pgtables)),
        comm: [0; COMM_LEN],
    };
    if conf!(oom.comm) != u32::MAX {
        field_comm(ctx, conf!(oom.comm), &mut ev.comm);
    }
    emit_value(Source::Oom, &ev);
}
