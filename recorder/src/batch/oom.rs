//! Rows of `oom`: OOM-killer victims.
use arrow::array::{ArrayRef, Int32Builder, StringBuilder, UInt32Builder, UInt64Builder};
use flightrec_common::{EventHeader, OomEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Header, Rows};
use crate::decode::c_str;

#[derive(Default)]
pub struct Ooms {
    h: Header,
    cur: Current,
    victim_pid: Int32Builder,
    victim_comm: StringBuilder,
    uid: UInt32Builder,
    oom_score_adj: Int32Builder,
    total_vm_kb: UInt64Builder,
    anon_rss_kb: UInt64Builder,
    file_rss_kb: UInt64Builder,
    shmem_rss_kb: UInt64Builder,
    pgtables_kb: UInt64Builder,
}

impl Ooms {
    pub fn push(&mut self, h: &EventHeader, e: &OomEvent) {
        self.h.push(h);
        self.cur.push(h);
        self.victim_pid.append_value(e.pid);
        self.victim_comm.append_value(c_str(&e.comm));
        self.uid.append_value(e.uid);
        self.oom_score_adj.append_value(e.oom_score_adj);
        self.total_vm_kb.append_value(e.total_vm);
        self.anon_rss_kb.append_value(e.anon_rss);
        self.file_rss_kb.append_value(e.file_rss);
        self.shmem_rss_kb.append_value(e.shmem_rss);
        self.pgtables_kb.append_value(e.pgtables);
    }
}

impl Rows for Ooms {
    const TABLE: Table = Table::Oom;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.victim_pid.finish()),
            arc(self.victim_comm.finish()),
            arc(self.uid.finish()),
            arc(self.oom_score_adj.finish()),
            arc(self.total_vm_kb.finish()),
            arc(self.anon_rss_kb.finish()),
            arc(self.file_rss_kb.finish()),
            arc(self.shmem_rss_kb.finish()),
            arc(self.pgtables_kb.finish()),
        ]);
        cols
    }
}
