//! What every event table's builders share: the header columns (`ts`, `cpu`), the current task
//! (`tid`, `tgid`), and turning finished columns into a batch of the table's schema.
use std::sync::Arc;

use arrow::{
    array::{
        ArrayBuilder, ArrayRef, Int32Builder, StringDictionaryBuilder, UInt16Builder, UInt64Builder,
    },
    datatypes::UInt16Type,
    record_batch::RecordBatch,
};
use flightrec_common::EventHeader;
use flightrec_schemas::Table;

pub type Dict = StringDictionaryBuilder<UInt16Type>;

pub fn arc<A: arrow::array::Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

/// The rows of one event table under construction.
pub trait Rows {
    /// The table they are rows of.
    const TABLE: Table;
    /// The columns, in schema order; the builders are left empty.
    fn columns(&mut self) -> Vec<ArrayRef>;

    /// The rows as a batch of the table's schema.
    fn finish(&mut self) -> (Table, RecordBatch) {
        let batch = RecordBatch::try_new(Self::TABLE.schema(), self.columns())
            .expect("builder matches schema");
        (Self::TABLE, batch)
    }
}

#[derive(Default)]
pub struct Header {
    ts: UInt64Builder,
    cpu: UInt16Builder,
}

impl Header {
    pub fn push(&mut self, h: &EventHeader) {
        self.ts.append_value(h.ts);
        self.cpu.append_value(h.cpu as u16);
    }
    pub fn finish(&mut self) -> Vec<ArrayRef> {
        vec![arc(self.ts.finish()), arc(self.cpu.finish())]
    }
    pub fn len(&self) -> usize {
        self.ts.len()
    }
}

/// The task current when the event happened.
#[derive(Default)]
pub struct Current {
    tid: Int32Builder,
    tgid: Int32Builder,
}

impl Current {
    pub fn push(&mut self, h: &EventHeader) {
        self.tid.append_value(h.tid as i32);
        self.tgid.append_value(h.tgid as i32);
    }
    pub fn finish(&mut self) -> [ArrayRef; 2] {
        [arc(self.tid.finish()), arc(self.tgid.finish())]
    }
}
