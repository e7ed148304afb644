//! Rows of `profile`: CPU samples with their stacks.
use arrow::array::{ArrayRef, UInt32Builder};
use flightrec_common::EventHeader;
use flightrec_schemas::Table;

use super::rows::{arc, Current, Header, Rows};

#[derive(Default)]
pub struct Samples {
    h: Header,
    cur: Current,
    kstack: UInt32Builder,
    ustack: UInt32Builder,
}

impl Samples {
    pub fn push(&mut self, h: &EventHeader, kstack: Option<u32>, ustack: Option<u32>) {
        self.h.push(h);
        self.cur.push(h);
        self.kstack.append_option(kstack);
        self.ustack.append_option(ustack);
    }
}

impl Rows for Samples {
    const TABLE: Table = Table::Profile;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([arc(self.kstack.finish()), arc(self.ustack.finish())]);
        cols
    }
}
