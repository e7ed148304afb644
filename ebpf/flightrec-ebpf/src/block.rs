//! Block requests: issue and completion, matched later by (dev, sector).
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{BlockEvent, EventKind, Source};

use crate::emit::{conf, current, emit_value, field, field_str, header};

pub fn request(ctx: &TracePointContext, complete: bool) {
    let (tid, tgid) = current();
    let (kind, dev, sector, nr_sector, extra, rwbs) = if complete {
        (
            EventKind::BlockComplete,
            conf!(block_complete.dev),
            conf!(block_complete.sector),
            conf!(block_complete.nr_sector),
            conf!(block_complete.bytes_or_error),
            conf!(block_complete.rwbs),
        )
    } else {
        (
            EventKind::BlockIssue,
            conf!(block_issue.dev),
            conf!(block_issue.sector),
            conf!(block_issue.nr_sector),
            conf!(block_issue.bytes_or_error),
            conf!(block_issue.rwbs),
        )
    };
    let extra: u32 = field(ctx, extra);
    let mut ev = BlockEvent {
        hdr: header(tid, tgid, kind),
        dev: field(ctx, dev),
        nr_sector: field(ctx, nr_sector),
        sector: field(ctx, sector),
        bytes: if complete { 0 } else { extra },
        error: if complete { extra as i32 } else { 0 },
        rwbs: [0; 16],
    };
    field_str(ctx, rwbs, &mut ev.rwbs);
    emit_value(Source::Block, &ev);
}
