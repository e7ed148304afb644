//! TCP connection state changes (with the byte counts at close), retransmits and resets.
use aya_ebpf::{helpers::bpf_probe_read_kernel, programs::TracePointContext};
use flightrec_common::{EventKind, Source, TcpEvent, TcpOffsets, TCP_BYTES_VALID};

use crate::emit::{conf, current, emit_value, field, field_bytes, header};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const IPPROTO_TCP: u16 = 6;
const TCP_CLOSE: i32 = 7;

#[inline(always)]
fn event(kind: EventKind) -> TcpEvent {
    let (tid, tgid) = current();
    TcpEvent {
        hdr: header(tid, tgid, kind),
        skaddr: 0,
        oldstate: 0,
        newstate: 0,
        sport: 0,
        dport: 0,
        family: 0,
        _pad: 0,
        saddr: [0; 16],
        daddr: [0; 16],
        reason: 0,
        flags: 0,
        tx_bytes: 0,
        rx_bytes: 0,
    }
}

#[inline(always)]
fn record(ctx: &TracePointContext, kind: EventKind, off: &TcpOffsets) -> TcpEvent {
    let family: u16 = field(ctx, off.family);
    let mut ev = event(kind);
    ev.skaddr = field(ctx, off.skaddr);
    // tcp_receive_reset has no state field (u32::MAX): the caller reads it from the socket.
    if off.oldstate != u32::MAX {
        ev.oldstate = field(ctx, off.oldstate);
        ev.newstate = field(ctx, off.newstate);
    }
    ev.sport = field(ctx, off.sport);
    ev.dport = field(ctx, off.dport);
    ev.family = family;
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
    ev
}

/// Reads a `T` at `off` bytes into the socket at `sk`; `None` when the offset is unknown.
#[inline(always)]
fn sock_field<T>(sk: u64, off: u32) -> Option<T> {
    if sk == 0 || off == 0 {
        return None;
    }
    unsafe { bpf_probe_read_kernel((sk as *const u8).add(off as usize).cast::<T>()) }.ok()
}

pub fn set_state(ctx: &TracePointContext) {
    let off: TcpOffsets = conf!(tcp_state);
    let protocol: u16 = field(ctx, off.protocol);
    if protocol != IPPROTO_TCP {
        return;
    }
    let mut ev = record(ctx, EventKind::TcpState, &off);
    if ev.newstate == TCP_CLOSE {
        let tx = sock_field(ev.skaddr, conf!(tcp_sock.bytes_acked));
        let rx = sock_field(ev.skaddr, conf!(tcp_sock.bytes_received));
        if let (Some(tx), Some(rx)) = (tx, rx) {
            ev.tx_bytes = tx;
            ev.rx_bytes = rx;
            ev.flags = TCP_BYTES_VALID;
        }
    }
    emit_value(Source::Tcp, &ev);
}

pub fn retransmit(ctx: &TracePointContext) {
    let off: TcpOffsets = conf!(tcp_retransmit);
    emit_value(Source::Tcp, &record(ctx, EventKind::TcpRetransmit, &off));
}

pub fn receive_reset(ctx: &TracePointContext) {
    let off: TcpOffsets = conf!(tcp_receive_reset);
    let mut ev = record(ctx, EventKind::TcpReceiveReset, &off);
    let state = sock_field::<u8>(ev.skaddr, conf!(tcp_sock.state)).unwrap_or(0) as i32;
    ev.oldstate = state;
    ev.newstate = state;
    emit_value(Source::Tcp, &ev);
}

/// A `struct sockaddr_in`/`_in6` of the tracepoint at `at`: family, port (network order), address.
#[inline(always)]
fn sockaddr(ctx: &TracePointContext, at: u32, addr: &mut [u8; 16]) -> (u16, u16) {
    let family: u16 = field(ctx, at);
    let port = u16::from_be(field(ctx, at + 2));
    if family == AF_INET {
        let mut a = [0u8; 4];
        field_bytes(ctx, at + 4, &mut a);
        addr[..4].copy_from_slice(&a);
    } else if family == AF_INET6 {
        field_bytes(ctx, at + 8, addr);
    }
    (family, port)
}

pub fn send_reset(ctx: &TracePointContext) {
    let off = conf!(tcp_send_reset);
    let mut ev = event(EventKind::TcpSendReset);
    ev.skaddr = field(ctx, off.skaddr);
    let state: i32 = field(ctx, off.state);
    ev.oldstate = state;
    ev.newstate = state;
    ev.reason = field(ctx, off.reason);
    let (family, sport) = sockaddr(ctx, off.saddr, &mut ev.saddr);
    let (_, dport) = sockaddr(ctx, off.daddr, &mut ev.daddr);
    ev.family = family;
    ev.sport = sport;
    ev.dport = dport;
    emit_value(Source::Tcp, &ev);
}
