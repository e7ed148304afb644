//! Rows of `tcp`: state changes and retransmits.
use std::net::IpAddr;

use arrow::array::{ArrayRef, Int32Builder, StringBuilder, UInt16Builder, UInt64Builder};
use flightrec_common::{EventHeader, TcpEvent};
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
}

fn ip(family: u16, raw: &[u8; 16]) -> String {
    match family {
        2 => IpAddr::from([raw[0], raw[1], raw[2], raw[3]]).to_string(),
        10 => IpAddr::from(*raw).to_string(),
        _ => String::new(),
    }
}

impl Tcps {
    pub fn push(&mut self, h: &EventHeader, e: &TcpEvent, retransmit: bool) {
        self.h.push(h);
        self.cur.push(h);
        self.event
            .append_value(if retransmit { "retransmit" } else { "state" });
        self.skaddr.append_value(e.skaddr);
        self.oldstate.append_value(e.oldstate);
        self.newstate.append_value(e.newstate);
        self.family.append_value(e.family);
        self.saddr.append_value(ip(e.family, &e.saddr));
        self.sport.append_value(e.sport);
        self.daddr.append_value(ip(e.family, &e.daddr));
        self.dport.append_value(e.dport);
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
        ]);
        cols
    }
}
