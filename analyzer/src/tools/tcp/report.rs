//! The TCP tools' views of the connections: `tcplife` (one line per connection), `tcpconnect` and
//! `tcpaccept` (active and passive opens), `tcpconnlat` (`SYN_SENT` to `ESTABLISHED`),
//! `tcpretrans` (each retransmitted segment) and `tcpreset` (each reset sent or received), with the
//! analyzer's filters on the owner.
use std::fmt::Write;

use serde::Serialize;

use super::{connections, events, state, Conn, Event, Kind, Side};
use crate::{
    capture::{Capture, Result},
    filter::Filter,
    lost::Lost,
};

/// Which tool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Life,
    Connect,
    Accept,
    Connlat,
    Retrans,
    Reset,
}

/// A tool's connections (retransmits: the connections that had any) and the capture's losses.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub connections: Vec<Row>,
    /// `tcpreset`: the resets.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resets: Vec<ResetRow>,
    pub lost: Lost,
}

/// One reset sent or received.
#[derive(Clone, Debug, Serialize)]
pub struct ResetRow {
    /// Wall clock (UTC).
    pub time: String,
    /// `sent` or `received`.
    pub direction: &'static str,
    /// The connection's owner (as the other tools take it), else the task current at the reset
    /// (a reset answering a packet no socket wanted: `NO_SOCKET`).
    pub pid: i32,
    pub comm: String,
    pub owner_from: &'static str,
    pub family: u16,
    pub laddr: String,
    pub lport: u16,
    pub raddr: String,
    pub rport: u16,
    /// The socket's state at the reset (`UNKNOWN` without a socket).
    pub state: &'static str,
    /// A sent reset's reason, as the kernel names it.
    pub reason: Option<String>,
}

/// The connection of socket `e.skaddr` alive at `e.ts` (or closed within the millisecond before:
/// an abortive close resets after `CLOSE`).
fn owner_of<'a>(conns: &'a [Conn], e: &Event) -> Option<&'a Conn> {
    conns.iter().find(|c| {
        e.skaddr != 0
            && c.skaddr == e.skaddr
            && c.start <= e.ts
            && c.end.is_none_or(|end| e.ts <= end + 1_000_000)
    })
}

fn resets(
    cap: &Capture,
    events: &[Event],
    conns: &[Conn],
    filter: &Filter,
) -> Result<Vec<ResetRow>> {
    let cgroups = super::super::procs::cgroups(cap, filter)?;
    Ok(events
        .iter()
        .filter(|e| matches!(e.kind, Kind::SendReset | Kind::ReceiveReset))
        .filter(|e| filter.in_range(e.ts))
        .map(|e| {
            let (pid, comm, from) = match owner_of(conns, e) {
                Some(c) => (c.pid, c.comm.clone(), c.owner_from),
                None => (e.pid, e.comm.clone(), "current"),
            };
            ResetRow {
                time: super::super::time(cap, e.ts),
                direction: if e.kind == Kind::SendReset {
                    "sent"
                } else {
                    "received"
                },
                pid,
                comm,
                owner_from: from,
                family: e.family,
                laddr: e.laddr.clone(),
                lport: e.lport,
                raddr: e.raddr.clone(),
                rport: e.rport,
                state: state::name(e.old),
                reason: e.reason.clone(),
            }
        })
        .filter(|r| {
            filter.pid.is_none_or(|p| p == r.pid)
                && filter.comm.as_deref().is_none_or(|n| n == r.comm)
                && filter.in_cgroup(cgroups.get(&r.pid).map(String::as_str))
        })
        .collect())
}

/// A connection with its times as the tools print them.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    #[serde(flatten)]
    pub conn: Conn,
    /// Wall clock (UTC) of the start.
    pub time: String,
    /// From the first state change to `CLOSE`, when both are in the capture.
    pub lifetime_ns: Option<u64>,
    /// From `SYN_SENT` to `ESTABLISHED` (active opens).
    pub connect_latency_ns: Option<u64>,
}

/// The connections `tool` reports in the range of `filter`, owned by tasks it passes.
pub fn report(cap: &Capture, filter: &Filter, tool: Tool) -> Result<Report> {
    let events = events(cap, filter)?;
    let conns = connections(&events);
    if tool == Tool::Reset {
        return Ok(Report {
            resets: resets(cap, &events, &conns, filter)?,
            connections: Vec::new(),
            lost: Lost::in_range(cap, filter),
        });
    }
    let cgroups = super::super::procs::cgroups(cap, filter)?;
    let rows = conns
        .into_iter()
        .filter(|c| {
            filter.pid.is_none_or(|p| p == c.pid)
                && filter.comm.as_deref().is_none_or(|n| n == c.comm)
                && filter.in_cgroup(cgroups.get(&c.pid).map(String::as_str))
        })
        .filter(|c| match tool {
            // tcplife reports a connection when it closes.
            Tool::Life => c.end.is_some_and(|t| filter.in_range(t)),
            Tool::Connect => c.side == Side::Active && filter.in_range(c.start),
            Tool::Accept => {
                c.side == Side::Passive && c.established.is_some_and(|t| filter.in_range(t))
            }
            Tool::Connlat => {
                c.side == Side::Active && c.established.is_some_and(|t| filter.in_range(t))
            }
            Tool::Retrans => c.retransmits.iter().any(|(t, _)| filter.in_range(*t)),
            Tool::Reset => false,
        })
        .map(|conn| Row {
            time: super::super::time(cap, conn.start),
            lifetime_ns: conn.end.map(|e| e - conn.start),
            connect_latency_ns: (conn.side == Side::Active)
                .then_some(conn.established)
                .flatten()
                .map(|e| e - conn.start),
            conn,
        })
        .collect();
    Ok(Report {
        connections: rows,
        resets: Vec::new(),
        lost: Lost::in_range(cap, filter),
    })
}

fn ip(family: u16) -> u8 {
    if family == 10 {
        6
    } else {
        4
    }
}

impl Report {
    /// The text table of `tool`, in the columns of its libbpf-tools peer.
    pub fn render(&self, cap: &Capture, filter: &Filter, tool: Tool) -> String {
        let mut out = String::new();
        match tool {
            Tool::Life => {
                out.push_str(
                    "PID     COMM             LADDR           LPORT RADDR           RPORT    TX_KB    RX_KB        MS\n",
                );
                // KiB, as libbpf-tools' tcplife prints them; `-` where the capture has no count.
                let kb = |b: Option<u64>| {
                    b.map_or("-".to_string(), |b| format!("{:.2}", b as f64 / 1024.0))
                };
                for r in &self.connections {
                    let c = &r.conn;
                    let ms = r.lifetime_ns.unwrap_or(0) as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "{:<7} {:<16} {:<15} {:<5} {:<15} {:<5} {:>8} {:>8} {ms:>9.2}",
                        c.pid,
                        c.comm,
                        c.laddr,
                        c.lport,
                        c.raddr,
                        c.rport,
                        kb(c.tx_bytes),
                        kb(c.rx_bytes)
                    );
                }
            }
            Tool::Connect => {
                out.push_str(&format!(
                    "{:<24} {:<7} {:<16} {:<2} {:<15} {:<15} {:>5}\n",
                    "TIME", "PID", "COMM", "IP", "SADDR", "DADDR", "DPORT"
                ));
                for r in &self.connections {
                    let c = &r.conn;
                    let _ = writeln!(
                        out,
                        "{:<24} {:<7} {:<16} {:<2} {:<15} {:<15} {:>5}",
                        r.time,
                        c.pid,
                        c.comm,
                        ip(c.family),
                        c.laddr,
                        c.raddr,
                        c.rport
                    );
                }
            }
            Tool::Accept => {
                out.push_str(&format!(
                    "{:<24} {:<7} {:<16} {:<2} {:<15} {:>5} {:<15} {:>5}\n",
                    "TIME", "PID", "COMM", "IP", "RADDR", "RPORT", "LADDR", "LPORT"
                ));
                for r in &self.connections {
                    let c = &r.conn;
                    let t = c.established.unwrap_or(c.start);
                    let _ = writeln!(
                        out,
                        "{:<24} {:<7} {:<16} {:<2} {:<15} {:>5} {:<15} {:>5}",
                        super::super::time(cap, t),
                        c.pid,
                        c.comm,
                        ip(c.family),
                        c.raddr,
                        c.rport,
                        c.laddr,
                        c.lport
                    );
                }
            }
            Tool::Connlat => {
                out.push_str(&format!(
                    "{:<7} {:<16} {:<2} {:<15} {:<15} {:>5} {:>9}\n",
                    "PID", "COMM", "IP", "SADDR", "DADDR", "DPORT", "LAT(ms)"
                ));
                for r in &self.connections {
                    let c = &r.conn;
                    let ms = r.connect_latency_ns.unwrap_or(0) as f64 / 1e6;
                    let _ = writeln!(
                        out,
                        "{:<7} {:<16} {:<2} {:<15} {:<15} {:>5} {ms:>9.3}",
                        c.pid,
                        c.comm,
                        ip(c.family),
                        c.laddr,
                        c.raddr,
                        c.rport
                    );
                }
            }
            Tool::Retrans => {
                out.push_str(&format!(
                    "{:<24} {:<7} {:<2} {:>21}    {:<21} {}\n",
                    "TIME", "PID", "IP", "LADDR:LPORT", "RADDR:RPORT", "STATE"
                ));
                for r in &self.connections {
                    let c = &r.conn;
                    for (t, st) in c.retransmits.iter().filter(|(t, _)| filter.in_range(*t)) {
                        let _ = writeln!(
                            out,
                            "{:<24} {:<7} {:<2} {:>21} R> {:<21} {}",
                            super::super::time(cap, *t),
                            c.pid,
                            ip(c.family),
                            format!("{}:{}", c.laddr, c.lport),
                            format!("{}:{}", c.raddr, c.rport),
                            state::name(*st)
                        );
                    }
                }
            }
            Tool::Reset => {
                out.push_str(&format!(
                    "{:<24} {:<7} {:<16} {:<2} {:>21}    {:<21} {:<12} {}\n",
                    "TIME", "PID", "COMM", "IP", "LADDR:LPORT", "RADDR:RPORT", "STATE", "REASON"
                ));
                for r in &self.resets {
                    let arrow = if r.direction == "sent" { "R>" } else { "<R" };
                    let _ = writeln!(
                        out,
                        "{:<24} {:<7} {:<16} {:<2} {:>21} {arrow} {:<21} {:<12} {}",
                        r.time,
                        r.pid,
                        r.comm,
                        ip(r.family),
                        format!("{}:{}", r.laddr, r.lport),
                        format!("{}:{}", r.raddr, r.rport),
                        r.state,
                        r.reason.as_deref().unwrap_or("-")
                    );
                }
            }
        }
        out
    }
}
