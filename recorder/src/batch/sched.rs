//! Rows of `sched_switch`, `sched_wakeup` and `sched_waking`.
use arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, UInt32Builder,
};
use flightrec_common::{EventHeader, SwitchEvent, WakeupEvent, WakingEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Header, Rows};

#[derive(Default)]
pub struct Switches {
    h: Header,
    prev_tid: Int32Builder,
    prev_tgid: Int32Builder,
    prev_prio: Int32Builder,
    prev_state: Int64Builder,
    next_tid: Int32Builder,
    next_prio: Int32Builder,
    kstack: UInt32Builder,
    ustack: UInt32Builder,
}

impl Switches {
    /// A switch; `kstack`/`ustack` are the interned stacks of the task leaving.
    pub fn push(
        &mut self,
        h: &EventHeader,
        e: &SwitchEvent,
        kstack: Option<u32>,
        ustack: Option<u32>,
    ) {
        self.h.push(h);
        self.prev_tid.append_value(e.prev_pid);
        self.prev_tgid.append_value(h.tgid as i32);
        self.prev_prio.append_value(e.prev_prio);
        self.prev_state.append_value(e.prev_state);
        self.next_tid.append_value(e.next_pid);
        self.next_prio.append_value(e.next_prio);
        self.kstack.append_option(kstack);
        self.ustack.append_option(ustack);
    }
}

impl Rows for Switches {
    const TABLE: Table = Table::SchedSwitch;
    fn columns(&mut self) -> Vec<ArrayRef> {
        debug_assert_eq!(self.h.len(), self.prev_tid.len());
        let mut cols = self.h.finish();
        cols.extend([
            arc(self.prev_tid.finish()),
            arc(self.prev_tgid.finish()),
            arc(self.prev_prio.finish()),
            arc(self.prev_state.finish()),
            arc(self.next_tid.finish()),
            arc(self.next_prio.finish()),
            arc(self.kstack.finish()),
            arc(self.ustack.finish()),
        ]);
        cols
    }
}

#[derive(Default)]
pub struct Wakeups {
    h: Header,
    tid: Int32Builder,
    prio: Int32Builder,
    target_cpu: Int32Builder,
    waker_tid: Int32Builder,
    waker_tgid: Int32Builder,
    new: BooleanBuilder,
}

impl Wakeups {
    /// A wake-up; the header's task is the waker.
    pub fn push(&mut self, h: &EventHeader, e: &WakeupEvent, new: bool) {
        self.h.push(h);
        self.tid.append_value(e.pid);
        self.prio.append_value(e.prio);
        self.target_cpu.append_value(e.target_cpu);
        self.waker_tid.append_value(h.tid as i32);
        self.waker_tgid.append_value(h.tgid as i32);
        self.new.append_value(new);
    }
}

impl Rows for Wakeups {
    const TABLE: Table = Table::SchedWakeup;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend([
            arc(self.tid.finish()),
            arc(self.prio.finish()),
            arc(self.target_cpu.finish()),
            arc(self.waker_tid.finish()),
            arc(self.waker_tgid.finish()),
            arc(self.new.finish()),
        ]);
        cols
    }
}

/// Wakings with the waker's stacks (`--waker-stacks`).
#[derive(Default)]
pub struct Wakings {
    h: Header,
    cur: Current,
    pid: Int32Builder,
    irq: BooleanBuilder,
    kstack: UInt32Builder,
    ustack: UInt32Builder,
}

impl Wakings {
    /// A waking; the header's task is the waker.
    pub fn push(&mut self, h: &EventHeader, e: &WakingEvent, k: Option<u32>, u: Option<u32>) {
        self.h.push(h);
        self.cur.push(h);
        self.pid.append_value(e.pid);
        self.irq.append_value(e.irq != 0);
        self.kstack.append_option(k);
        self.ustack.append_option(u);
    }
}

impl Rows for Wakings {
    const TABLE: Table = Table::SchedWaking;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.pid.finish()),
            arc(self.irq.finish()),
            arc(self.kstack.finish()),
            arc(self.ustack.finish()),
        ]);
        cols
    }
}
