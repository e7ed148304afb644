//! Rows of `block`: request issues and completions.
use arrow::array::{ArrayRef, Int32Builder, UInt32Builder, UInt64Builder};
use flightrec_common::{BlockEvent, EventHeader};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Dict, Header, Rows};
use crate::decode::c_str;

#[derive(Default)]
pub struct Blocks {
    h: Header,
    cur: Current,
    event: Dict,
    dev: UInt32Builder,
    sector: UInt64Builder,
    nr_sector: UInt32Builder,
    bytes: UInt32Builder,
    rwbs: Dict,
    error: Int32Builder,
}

impl Blocks {
    pub fn push(&mut self, h: &EventHeader, e: &BlockEvent, complete: bool) {
        self.h.push(h);
        self.cur.push(h);
        self.event
            .append_value(if complete { "complete" } else { "issue" });
        self.dev.append_value(e.dev);
        self.sector.append_value(e.sector);
        self.nr_sector.append_value(e.nr_sector);
        self.bytes.append_option((!complete).then_some(e.bytes));
        self.rwbs.append_value(c_str(&e.rwbs));
        self.error.append_option(complete.then_some(e.error));
    }
}

impl Rows for Blocks {
    const TABLE: Table = Table::Block;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.event.finish()),
            arc(self.dev.finish()),
            arc(self.sector.finish()),
            arc(self.nr_sector.finish()),
            arc(self.bytes.finish()),
            arc(self.rwbs.finish()),
            arc(self.error.finish()),
        ]);
        cols
    }
}
