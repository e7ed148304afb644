//! `signal:signal_generate`: who sent which signal to whom, and what became of it.
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, SignalEvent, Source, COMM_LEN};

use crate::emit::{conf, current, emit_value, field, field_bytes, header};

pub fn generate(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    let mut ev = SignalEvent {
        hdr: header(tid, tgid, EventKind::Signal),
        sig: field(ctx, conf!(signal.sig)),
        errno: field(ctx, conf!(signal.errno)),
        code: field(ctx, conf!(signal.code)),
        pid: field(ctx, conf!(signal.pid)),
        group: field(ctx, conf!(signal.group)),
        result: field(ctx, conf!(signal.result)),
        comm: [0; COMM_LEN],
    };
    field_bytes(ctx, conf!(signal.comm), &mut ev.comm);
    emit_value(Source::Signal, &ev);
}
