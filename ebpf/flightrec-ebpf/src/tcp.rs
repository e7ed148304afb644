//! TCP connection state changes and retransmits.
use aya_ebpf::programs::TracePointContext;
use flightrec_common::{EventKind, Source, TcpEvent, TcpOffsets};

use crate::emit::{conf, current, emit_value, field, field_bytes, header};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;

#[inline(always)]
fn record(ctx: &TracePointContext, kind: EventKind, off: &TcpOffsets) {
    let (tid, tgid) = current();
    let family: u16 = field(ctx, off.family);
    let mut ev = TcpEvent {
        hdr: header(tid, tgid, kind),
        skaddr: field(ctx, off.skaddr),
        oldstate: field(ctx, off.oldstate),
        newstate: field(ctx, off.newstate),
        sport: field(ctx, off.sport),
        dport: field(ctx, off.dport),
        family,
        _pad: 0,
        saddr: [0; 16],
        daddr: [0; 16],
    };
    if family == AF_INET {
        let (mut s, mut d) = ([0u8; 4], [0u8; 4]);
        field_bytes(ctx, off.saddr, &mut s);
        field_bytes(ctx, off.daddr, &mut d);
        ev.saddr[..4].copy_from_slice(&s);
        ev.daddr[..4].copy_from_slice(&d);
    } else if family == AF_INET6 {
        field_bytes(ctx, off.saddr_v6, &mut ev.saddr);
        field_bytes(ctx, off.daddr_v6, &mut ev.daddr);
    }
    emit_value(Source::Tcp, &ev);
}

pub fn set_state(ctx: &TracePointContext) {
    let off: TcpOffsets = conf!(tcp_state);
    let protocol: u16 = field(ctx, off.protocol);
    if protocol != IPPROTO_TCP {
        return;
    }
    record(ctx, EventKind::TcpState, &off);
}

pub fn retransmit(ctx: &TracePointContext) {
    let off: TcpOffsets = conf!(tcp_retransmit);
    record(ctx, EventKind::TcpRetransmit, &off);
}
