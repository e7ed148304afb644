//! Rows of `process`: forks, execs and exits.
use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, StringBuilder};
use flightrec_common::EventHeader;
use flightrec_schemas::Table;

use super::rows::{arc, Dict, Header, Rows};
use crate::decode::c_str;

/// The values of one process-table row.
pub struct ProcessRow<'a> {
    pub event: &'static str,
    pub tid: i32,
    pub tgid: Option<i32>,
    pub parent: Option<i32>,
    pub comm: &'a [u8; 16],
    pub filename: Option<&'a str>,
    pub group_dead: Option<bool>,
    pub exit_code: Option<i32>,
}

#[derive(Default)]
pub struct Processes {
    h: Header,
    event: Dict,
    tid: Int32Builder,
    tgid: Int32Builder,
    parent_tid: Int32Builder,
    comm: StringBuilder,
    filename: StringBuilder,
    group_dead: BooleanBuilder,
    exit_code: Int32Builder,
}

impl Processes {
    pub fn push(&mut self, h: &EventHeader, r: ProcessRow<'_>) {
        self.h.push(h);
        self.event.append_value(r.event);
        self.tid.append_value(r.tid);
        self.tgid.append_option(r.tgid);
        self.parent_tid.append_option(r.parent);
        self.comm.append_value(c_str(r.comm));
        self.filename.append_option(r.filename);
        self.group_dead.append_option(r.group_dead);
        self.exit_code.append_option(r.exit_code);
    }
}

impl Rows for Processes {
    const TABLE: Table = Table::Process;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend([
            arc(self.event.finish()),
            arc(self.tid.finish()),
            arc(self.tgid.finish()),
            arc(self.parent_tid.finish()),
            arc(self.comm.finish()),
            arc(self.filename.finish()),
            arc(self.group_dead.finish()),
            arc(self.exit_code.finish()),
        ]);
        cols
    }
}
