//! TCP state changes, retransmits and resets: records and tracepoint offsets.
use crate::EventHeader;

/// `sock:inet_sock_set_state` (TCP only), `tcp:tcp_retransmit_skb`, `tcp:tcp_send_reset` and
/// `tcp:tcp_receive_reset` ([`crate::EventKind`] says which). Addresses are the local end's in
/// `saddr`/`sport` for resets.
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
    /// A sent reset: the kernel's `sk_rst_reason`; else 0.
    pub reason: u32,
    /// [`TCP_BYTES_VALID`] when `tx_bytes`/`rx_bytes` were read.
    pub flags: u32,
    /// A change to `TCP_CLOSE`: the socket's `bytes_acked` and `bytes_received` (what it sent and
    /// received over its life), when BTF gave their offsets; else 0.
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// [`TcpEvent::flags`]: the byte counts were read from the socket.
pub const TCP_BYTES_VALID: u32 = 1;

/// Tracepoint field offsets of one TCP event (`oldstate` = `newstate` = `state` for retransmits;
/// `u32::MAX` for `tcp_receive_reset`, which has no state: it is read from the socket).
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

/// Tracepoint field offsets of `tcp_send_reset`: the addresses are `struct sockaddr_in`/`_in6`
/// (family, port in network order, then the address), local end first.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpResetOffsets {
    pub skaddr: u32,
    pub state: u32,
    pub reason: u32,
    pub saddr: u32,
    pub daddr: u32,
}

/// Offsets inside the kernel's socket structures, from BTF (0 when unknown): `sock_common.
/// skc_state` and `tcp_sock.bytes_acked`/`bytes_received`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpSockOffsets {
    pub state: u32,
    pub bytes_acked: u32,
    pub bytes_received: u32,
}
