//! Rows of `signal`: signals generated.
use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, StringBuilder};
use flightrec_common::{EventHeader, SignalEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Header, Rows};
use crate::decode::c_str;

#[derive(Default)]
pub struct Signals {
    h: Header,
    cur: Current,
    sig: Int32Builder,
    code: Int32Builder,
    errno: Int32Builder,
    target_tid: Int32Builder,
    target_comm: StringBuilder,
    group: BooleanBuilder,
    result: Int32Builder,
}

impl Signals {
    pub fn push(&mut self, h: &EventHeader, e: &SignalEvent) {
        self.h.push(h);
        self.cur.push(h);
        self.sig.append_value(e.sig);
        self.code.append_value(e.code);
        self.errno.append_value(e.errno);
        self.target_tid.append_value(e.pid);
        self.target_comm.append_value(c_str(&e.comm));
        self.group.append_value(e.group != 0);
        self.result.append_value(e.result);
    }
}

impl Rows for Signals {
    const TABLE: Table = Table::Signal;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.sig.finish()),
            arc(self.code.finish()),
            arc(self.errno.finish()),
            arc(self.target_tid.finish()),
            arc(self.target_comm.finish()),
            arc(self.group.finish()),
            arc(self.result.finish()),
        ]);
        cols
    }
}
