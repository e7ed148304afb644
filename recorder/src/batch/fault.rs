//! Rows of `fault`: user page faults with the user stack that faulted.
use arrow::array::{ArrayRef, UInt32Builder, UInt64Builder};
use flightrec_common::{EventHeader, FaultEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Header, Rows};

#[derive(Default)]
pub struct Faults {
    h: Header,
    cur: Current,
    address: UInt64Builder,
    ip: UInt64Builder,
    error_code: UInt64Builder,
    ustack: UInt32Builder,
}

impl Faults {
    pub fn push(&mut self, h: &EventHeader, e: &FaultEvent, ustack: Option<u32>) {
        self.h.push(h);
        self.cur.push(h);
        self.address.append_value(e.address);
        self.ip.append_value(e.ip);
        self.error_code.append_value(e.error_code);
        self.ustack.append_option(ustack);
    }
}

impl Rows for Faults {
    const TABLE: Table = Table::Fault;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.address.finish()),
            arc(self.ip.finish()),
            arc(self.error_code.finish()),
            arc(self.ustack.finish()),
        ]);
        cols
    }
}
