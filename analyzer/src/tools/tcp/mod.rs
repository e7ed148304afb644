//! TCP connections from the `tcp` table (`sock:inet_sock_set_state`, `tcp:tcp_retransmit_skb`,
//! `tcp:tcp_send_reset`, `tcp:tcp_receive_reset`): each kernel socket's life from its first state
//! change to `CLOSE`, with its owner and the bytes it moved. What `tcplife`, `tcpconnect`,
//! `tcpaccept`, `tcpconnlat`, `tcpretrans` and `tcpreset` print (`report.rs`).
//!
//! The task current at a state change is often not the socket's owner: the handshake completes in
//! softirq context, on loopback in the peer's. So the owner is taken where the owner is current:
//! for an active open, the task that moved the socket to `SYN_SENT` (inside `connect()`); for a
//! passive open, the task that moved the listening socket of the same local port to `LISTEN`
//! (inside `listen()`), carried from listener to connection by socket address. Where the capture
//! has neither (the listener opened before the recording), the task at the application's own
//! `close()` (`LAST_ACK`, as tcplife takes it), else the task current at `CLOSE`; `owner_from` says
//! which.
use std::collections::HashMap;

use arrow::{
    array::Array,
    datatypes::{Int32Type, UInt16Type, UInt64Type},
};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{opt, prim, strings},
    filter::Filter,
    names::Tasks,
    parallel::selected,
};

pub mod report;

/// `TCP_*` socket states (include/net/tcp_states.h).
pub mod state {
    pub const ESTABLISHED: i32 = 1;
    pub const SYN_SENT: i32 = 2;
    pub const SYN_RECV: i32 = 3;
    pub const FIN_WAIT1: i32 = 4;
    pub const CLOSE: i32 = 7;
    pub const LAST_ACK: i32 = 9;
    pub const LISTEN: i32 = 10;

    /// The state's name as the kernel spells it.
    pub fn name(s: i32) -> &'static str {
        const NAMES: [&str; 13] = [
            "UNKNOWN",
            "ESTABLISHED",
            "SYN_SENT",
            "SYN_RECV",
            "FIN_WAIT1",
            "FIN_WAIT2",
            "TIME_WAIT",
            "CLOSE",
            "CLOSE_WAIT",
            "LAST_ACK",
            "LISTEN",
            "CLOSING",
            "NEW_SYN_RECV",
        ];
        NAMES.get(s as usize).copied().unwrap_or("UNKNOWN")
    }
}

/// What a `tcp` row records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    State,
    Retransmit,
    SendReset,
    ReceiveReset,
}

/// One row of the `tcp` table.
#[derive(Clone, Debug)]
pub struct Event {
    pub ts: u64,
    pub cpu: u16,
    pub kind: Kind,
    pub skaddr: u64,
    pub old: i32,
    pub new: i32,
    pub family: u16,
    pub laddr: String,
    pub lport: u16,
    pub raddr: String,
    pub rport: u16,
    /// The task current in the kernel at the event, and its process and name.
    pub tid: i32,
    pub pid: i32,
    pub comm: String,
    /// A sent reset's reason (`NO_SOCKET`, ...).
    pub reason: Option<String>,
    /// At `CLOSE`: what the socket sent and received over its life (`bytes_acked`,
    /// `bytes_received`: the SYN and FIN count one each).
    pub tx_bytes: Option<u64>,
    pub rx_bytes: Option<u64>,
}

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// `connect()`: the socket went to `SYN_SENT`.
    Active,
    /// `accept()`: a child of a listening socket (`SYN_RECV`).
    Passive,
}

/// One connection: a kernel socket from its first state change to `CLOSE` (or the range's end).
#[derive(Clone, Debug, Serialize)]
pub struct Conn {
    pub side: Side,
    /// Owner process and its name.
    pub pid: i32,
    pub comm: String,
    /// Where the owner was taken from: `connect`, `listen`, `close` (the application's close,
    /// `LAST_ACK`) or `current` (the task current at `CLOSE`).
    pub owner_from: &'static str,
    pub family: u16,
    pub laddr: String,
    pub lport: u16,
    pub raddr: String,
    pub rport: u16,
    /// Monotonic ns: the first state change (`SYN_SENT`, `SYN_RECV`), `ESTABLISHED`, `CLOSE`.
    pub start: u64,
    pub established: Option<u64>,
    pub end: Option<u64>,
    /// Retransmitted segments, with the state and time of each.
    pub retransmits: Vec<(u64, i32)>,
    /// Bytes sent and received over the connection's life, where recorded at its `CLOSE`.
    pub tx_bytes: Option<u64>,
    pub rx_bytes: Option<u64>,
    /// The kernel socket.
    #[serde(skip)]
    pub skaddr: u64,
}

/// A listening socket: its owner at `listen()`.
struct Listener {
    family: u16,
    laddr: String,
    lport: u16,
    pid: i32,
    comm: String,
}

/// The `tcp` rows of the segments `filter` selects (the whole range: a connection's life needs
/// its start even when only its end is in the range), in time order.
pub fn events(cap: &Capture, filter: &Filter) -> Result<Vec<Event>> {
    let mut out = Vec::new();
    let base = [
        "ts", "cpu", "tid", "tgid", "event", "skaddr", "oldstate", "newstate", "family", "saddr",
        "sport", "daddr", "dport",
    ];
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let mut cols = base.to_vec();
        // Resets and byte counts came later: older captures have neither.
        let later = seg.has_column(Table::Tcp, "tx_bytes");
        if later {
            cols.extend(["reason", "tx_bytes", "rx_bytes"]);
        }
        for b in seg.read(Table::Tcp, &cols)? {
            let extra = later.then(|| {
                (
                    strings(&b, "reason"),
                    prim::<UInt64Type>(&b, "tx_bytes"),
                    prim::<UInt64Type>(&b, "rx_bytes"),
                )
            });
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (old, new) = (
                prim::<Int32Type>(&b, "oldstate"),
                prim::<Int32Type>(&b, "newstate"),
            );
            let skaddr = prim::<UInt64Type>(&b, "skaddr");
            let (family, sport, dport) = (
                prim::<UInt16Type>(&b, "family"),
                prim::<UInt16Type>(&b, "sport"),
                prim::<UInt16Type>(&b, "dport"),
            );
            let (event, saddr, daddr) = (
                strings(&b, "event"),
                strings(&b, "saddr"),
                strings(&b, "daddr"),
            );
            for i in 0..b.num_rows() {
                let kind = match event.value(i) {
                    "retransmit" => Kind::Retransmit,
                    "send_reset" => Kind::SendReset,
                    "receive_reset" => Kind::ReceiveReset,
                    _ => Kind::State,
                };
                let (reason, tx, rx) = match &extra {
                    Some((r, tx, rx)) => (
                        r.is_valid(i).then(|| r.value(i).to_string()),
                        opt(tx, i),
                        opt(rx, i),
                    ),
                    None => (None, None, None),
                };
                out.push(Event {
                    ts: ts.value(i),
                    cpu: cpu.value(i),
                    kind,
                    skaddr: skaddr.value(i),
                    old: old.value(i),
                    new: new.value(i),
                    family: family.value(i),
                    laddr: saddr.value(i).to_string(),
                    lport: sport.value(i),
                    raddr: daddr.value(i).to_string(),
                    rport: dport.value(i),
                    tid: tid.value(i),
                    pid: tgid.value(i),
                    comm: tasks.comm(tid.value(i)).to_string(),
                    reason,
                    tx_bytes: tx,
                    rx_bytes: rx,
                });
            }
        }
    }
    out.sort_by_key(|e| e.ts);
    Ok(out)
}

/// The connections of `events` (in time order), in order of their start.
pub fn connections(events: &[Event]) -> Vec<Conn> {
    let mut listeners: HashMap<u64, Listener> = HashMap::new();
    let mut open: HashMap<u64, (Conn, Option<(i32, String)>)> = HashMap::new();
    let mut done: Vec<Conn> = Vec::new();
    for e in events {
        match e.kind {
            Kind::Retransmit => {
                if let Some((c, _)) = open.get_mut(&e.skaddr) {
                    c.retransmits.push((e.ts, e.old));
                }
                continue;
            }
            Kind::SendReset | Kind::ReceiveReset => continue,
            Kind::State => {}
        }
        if e.new == state::LISTEN {
            listeners.insert(
                e.skaddr,
                Listener {
                    family: e.family,
                    laddr: e.laddr.clone(),
                    lport: e.lport,
                    pid: e.pid,
                    comm: e.comm.clone(),
                },
            );
            continue;
        }
        if e.old == state::LISTEN {
            // A listener closing (a child's SYN_RECV comes from its clone: handled below).
            if e.new == state::CLOSE {
                listeners.remove(&e.skaddr);
                continue;
            }
        }
        let starts = matches!(e.new, state::SYN_SENT | state::SYN_RECV)
            || (e.new == state::ESTABLISHED && !open.contains_key(&e.skaddr));
        if starts && !open.contains_key(&e.skaddr) {
            let side = if e.new == state::SYN_SENT {
                Side::Active
            } else {
                Side::Passive
            };
            let (pid, comm, from) = match side {
                Side::Active => (e.pid, e.comm.clone(), "connect"),
                Side::Passive => match listener_of(&listeners, e) {
                    Some(l) => (l.pid, l.comm.clone(), "listen"),
                    None => (0, String::new(), "current"),
                },
            };
            let conn = Conn {
                side,
                pid,
                comm,
                owner_from: from,
                family: e.family,
                laddr: e.laddr.clone(),
                lport: e.lport,
                raddr: e.raddr.clone(),
                rport: e.rport,
                start: e.ts,
                established: None,
                end: None,
                retransmits: Vec::new(),
                tx_bytes: None,
                rx_bytes: None,
                skaddr: e.skaddr,
            };
            open.insert(e.skaddr, (conn, None));
        }
        let Some((c, closer)) = open.get_mut(&e.skaddr) else {
            continue;
        };
        // The addresses at the latest change (the local address can be chosen late).
        (c.laddr, c.lport, c.raddr, c.rport) = (e.laddr.clone(), e.lport, e.raddr.clone(), e.rport);
        if e.new == state::ESTABLISHED && c.established.is_none() {
            c.established = Some(e.ts);
        }
        if e.new == state::LAST_ACK || (e.new == state::FIN_WAIT1 && closer.is_none()) {
            // The application's close(), in its own context.
            *closer = Some((e.pid, e.comm.clone()));
        }
        if e.new == state::CLOSE {
            let (mut c, closer) = open.remove(&e.skaddr).expect("open connection");
            c.end = Some(e.ts);
            (c.tx_bytes, c.rx_bytes) = (e.tx_bytes, e.rx_bytes);
            if c.owner_from == "current" {
                match closer {
                    Some((pid, comm)) => (c.pid, c.comm, c.owner_from) = (pid, comm, "close"),
                    None => (c.pid, c.comm) = (e.pid, e.comm.clone()),
                }
            }
            done.push(c);
        }
    }
    done.extend(open.into_values().map(|(c, _)| c));
    done.sort_by_key(|c| c.start);
    done
}

/// The listening socket a passive connection came from: same family and local port, and the
/// same local address or a wildcard one.
fn listener_of<'a>(listeners: &'a HashMap<u64, Listener>, e: &Event) -> Option<&'a Listener> {
    let wildcard = |a: &str| a == "0.0.0.0" || a == "::";
    listeners.values().find(|l| {
        l.lport == e.lport
            && (l.family == e.family || wildcard(&l.laddr))
            && (l.laddr == e.laddr || wildcard(&l.laddr))
    })
}
