//! Rows of `tcp`: state changes, retransmits and resets.
use std::net::IpAddr;

use arrow::array::{ArrayRef, Int32Builder, StringBuilder, UInt16Builder, UInt64Builder};
use flightrec_common::{EventHeader, EventKind, TcpEvent, TCP_BYTES_VALID};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Dict, Header, Rows};

#[derive(Default)]
pub struct Tcps {
    h: Header,
    cur: Current,
    event: Dict,
    skaddr: UInt64Builder,
    oldstate: Int32Builder,
    newstate: Int32Builder,
    family: UInt16Builder,
    saddr: StringBuilder,
    sport: UInt16Builder,
    daddr: StringBuilder,
    dport: UInt16Builder,
    reason: Dict,
    tx_bytes: UInt64Builder,
    rx_bytes: UInt64Builder,
}

fn ip(family: u16, raw: &[u8; 16]) -> String {
    match family {
        2 => IpAddr::from([raw[0], raw[1], raw[2], raw[3]]).to_string(),
        10 => IpAddr::from(*raw).to_string(),
        _ => String::new(),
    }
}

impl Tcps {
    pub fn push(&mut self, h: &EventHeader, e: &TcpEvent, kind: EventKind) {
        self.h.push(h);
        self.cur.push(h);
        self.event.append_value(match kind {
            EventKind::TcpRetransmit => "retransmit",
            EventKind::TcpSendReset => "send_reset",
            EventKind::TcpReceiveReset => "receive_reset",
            _ => "state",
        });
        self.skaddr.append_value(e.skaddr);
        self.oldstate.append_value(e.oldstate);
        self.newstate.append_value(e.newstate);
        self.family.append_value(e.family);
        self.saddr.append_value(ip(e.family, &e.saddr));
        self.sport.append_value(e.sport);
        self.daddr.append_value(ip(e.family, &e.daddr));
        self.dport.append_value(e.dport);
        if kind == EventKind::TcpSendReset {
            self.reason
                .append_value(crate::sources::reset_reason(e.reason));
        } else {
            self.reason.append_null();
        }
        // Counts come with a change to TCP_CLOSE, where BTF gave the socket's offsets.
        let counted = e.flags & TCP_BYTES_VALID != 0;
        self.tx_bytes.append_option(counted.then_some(e.tx_bytes));
        self.rx_bytes.append_option(counted.then_some(e.rx_bytes));
    }
}

impl Rows for Tcps {
    const TABLE: Table = Table::Tcp;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.event.finish()),
            arc(self.skaddr.finish()),
            arc(self.oldstate.finish()),
            arc(self.newstate.finish()),
            arc(self.family.finish()),
            arc(self.saddr.finish()),
            arc(self.sport.finish()),
            arc(self.daddr.finish()),
            arc(self.dport.finish()),
            arc(self.reason.finish()),
            arc(self.tx_bytes.finish()),
            arc(self.rx_bytes.finish()),
        ]);
        cols
    }
}
