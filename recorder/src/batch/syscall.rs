//! Rows of `syscall`: enters and exits.
use arrow::array::{ArrayRef, BooleanBuilder, Int32Builder, Int64Builder};
use flightrec_common::{EventHeader, SyscallEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Header, Rows};

#[derive(Default)]
pub struct Syscalls {
    h: Header,
    cur: Current,
    enter: BooleanBuilder,
    id: Int32Builder,
    ret: Int64Builder,
}

impl Syscalls {
    pub fn push(&mut self, h: &EventHeader, e: &SyscallEvent, exit: bool) {
        self.h.push(h);
        self.cur.push(h);
        self.enter.append_value(!exit);
        self.id.append_value(e.id as i32);
        self.ret.append_option(exit.then_some(e.ret));
    }
}

impl Rows for Syscalls {
    const TABLE: Table = Table::Syscall;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.enter.finish()),
            arc(self.id.finish()),
            arc(self.ret.finish()),
        ]);
        cols
    }
}
