//! `tcp`: TCP state changes (with the byte counts at close, from the socket by BTF), retransmits
//! and resets sent and received.
use std::{collections::HashMap, sync::OnceLock};

use anyhow::Result;
use flightrec_common::{Config, TcpOffsets, TcpResetOffsets, TcpSockOffsets};

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("tcp_retransmit_skb", "tcp", "tcp_retransmit_skb"),
    ("tcp_send_reset", "tcp", "tcp_send_reset"),
    ("tcp_receive_reset", "tcp", "tcp_receive_reset"),
];

/// The names of `sk_rst_reason` values, from `tcp_send_reset`'s print format.
static RESET_REASONS: OnceLock<HashMap<u32, String>> = OnceLock::new();

/// The name of a sent reset's reason (`NO_SOCKET`, `TCP_ABORT_ON_CLOSE`, ...), else its number.
pub fn reset_reason(value: u32) -> String {
    RESET_REASONS
        .get()
        .and_then(|m| m.get(&value).cloned())
        .unwrap_or_else(|| value.to_string())
}

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    c.tcp_state = tcp_offsets(&(k.format)("sock", "inet_sock_set_state")?, false)?;
    c.tcp_retransmit = tcp_offsets(&(k.format)("tcp", "tcp_retransmit_skb")?, true)?;
    c.tcp_receive_reset = tcp_offsets(&(k.format)("tcp", "tcp_receive_reset")?, false)?;
    let send = (k.format)("tcp", "tcp_send_reset")?;
    c.tcp_send_reset = TcpResetOffsets {
        skaddr: send.offset("skaddr", &[8])?,
        state: send.offset("state", &[4])?,
        reason: send.offset("reason", &[4])?,
        saddr: send.offset("saddr", &[28])?,
        daddr: send.offset("daddr", &[28])?,
    };
    let names = send.symbols("reason").into_iter();
    let _ = RESET_REASONS.set(names.map(|(v, n)| (v as u32, n)).collect());
    c.tcp_sock = TcpSockOffsets {
        state: (k.btf_offset)("sock_common", "skc_state"),
        bytes_acked: (k.btf_offset)("tcp_sock", "bytes_acked"),
        bytes_received: (k.btf_offset)("tcp_sock", "bytes_received"),
    };
    Ok(())
}

/// Offsets of `sock:inet_sock_set_state` (`retransmit` false), `tcp:tcp_retransmit_skb` or
/// `tcp:tcp_receive_reset` (no state: `u32::MAX`, the program reads it from the socket).
pub fn tcp_offsets(f: &Format, retransmit: bool) -> Result<TcpOffsets> {
    let (oldstate, newstate) = if retransmit {
        let s = f.offset("state", &[4])?;
        (s, s)
    } else if !f.has("oldstate") {
        (u32::MAX, u32::MAX)
    } else {
        (f.offset("oldstate", &[4])?, f.offset("newstate", &[4])?)
    };
    Ok(TcpOffsets {
        skaddr: f.offset("skaddr", &[8])?,
        oldstate,
        newstate,
        sport: f.offset("sport", &[2])?,
        dport: f.offset("dport", &[2])?,
        family: f.offset("family", &[2])?,
        protocol: if f.has("protocol") {
            f.offset("protocol", &[2])?
        } else {
            u32::MAX
        },
        saddr: f.offset("saddr", &[4])?,
        daddr: f.offset("daddr", &[4])?,
        saddr_v6: f.offset("saddr_v6", &[16])?,
        daddr_v6: f.offset("daddr_v6", &[16])?,
    })
}
