//! TCP state changes and retransmits: records and tracepoint offsets.
use crate::EventHeader;

/// `sock:inet_sock_set_state` (TCP only) and `tcp:tcp_retransmit_skb`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Kernel address of the socket: identifies a connection over its lifetime.
    pub skaddr: u64,
    /// State before (retransmit: the current state).
    pub oldstate: i32,
    /// State after (retransmit: the current state).
    pub newstate: i32,
    /// Source port, host order.
    pub sport: u16,
    /// Destination port, host order.
    pub dport: u16,
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// Padding.
    pub _pad: u16,
    /// Source address: 4 bytes for AF_INET, 16 for AF_INET6.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
}

/// Tracepoint field offsets of one TCP event (`oldstate` = `newstate` = `state` for retransmits).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpOffsets {
    pub skaddr: u32,
    pub oldstate: u32,
    pub newstate: u32,
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    /// `inet_sock_set_state` only; `u32::MAX` when the event has no protocol field.
    pub protocol: u32,
    pub saddr: u32,
    pub daddr: u32,
    pub saddr_v6: u32,
    pub daddr_v6: u32,
}
