//! `tcp`: TCP state changes and retransmits.
use anyhow::Result;
use flightrec_common::{Config, TcpOffsets};

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("inet_sock_set_state", "sock", "inet_sock_set_state"),
    ("tcp_retransmit_skb", "tcp", "tcp_retransmit_skb"),
];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    c.tcp_state = tcp_offsets(&(k.format)("sock", "inet_sock_set_state")?, false)?;
    c.tcp_retransmit = tcp_offsets(&(k.format)("tcp", "tcp_retransmit_skb")?, true)?;
    Ok(())
}

/// Offsets of `sock:inet_sock_set_state` (`retransmit` false) or `tcp:tcp_retransmit_skb`.
pub fn tcp_offsets(f: &Format, retransmit: bool) -> Result<TcpOffsets> {
    let (oldstate, newstate) = if retransmit {
        let s = f.offset("state", &[4])?;
        (s, s)
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
