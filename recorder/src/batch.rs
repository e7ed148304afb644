//! Accumulates one segment's decoded records into Arrow columns, one builder set per table.
use std::{collections::HashSet, net::IpAddr, sync::Arc};

use arrow::{
    array::{
        ArrayBuilder, ArrayRef, BooleanBuilder, Int32Builder, Int64Builder, StringBuilder,
        StringDictionaryBuilder, UInt16Builder, UInt32Builder, UInt64Builder,
    },
    compute::concat_batches,
    datatypes::UInt16Type,
    record_batch::RecordBatch,
};
use flightrec_common::{EventHeader, Source, EXIT_CODE_UNKNOWN, SOURCE_COUNT};
use flightrec_schemas::Table;

use crate::{
    decode::{c_str, Record, Stack},
    ksyms::KernelSymbols,
    stacks::StackTable,
    tasks::TaskTable,
    unwind::walk::Walk,
    usersyms::{Frame, UserMaps},
};

type Dict = StringDictionaryBuilder<UInt16Type>;

fn arc<A: arrow::array::Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

#[derive(Default)]
struct Header {
    ts: UInt64Builder,
    cpu: UInt16Builder,
}

impl Header {
    fn push(&mut self, h: &EventHeader) {
        self.ts.append_value(h.ts);
        self.cpu.append_value(h.cpu as u16);
    }
    fn finish(&mut self) -> [ArrayRef; 2] {
        [arc(self.ts.finish()), arc(self.cpu.finish())]
    }
    fn len(&self) -> usize {
        self.ts.len()
    }
}

#[derive(Default)]
struct Current {
    tid: Int32Builder,
    tgid: Int32Builder,
}

impl Current {
    fn push(&mut self, h: &EventHeader) {
        self.tid.append_value(h.tid as i32);
        self.tgid.append_value(h.tgid as i32);
    }
    fn finish(&mut self) -> [ArrayRef; 2] {
        [arc(self.tid.finish()), arc(self.tgid.finish())]
    }
}

#[derive(Default)]
struct Switches {
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

#[derive(Default)]
struct Wakeups {
    h: Header,
    tid: Int32Builder,
    prio: Int32Builder,
    target_cpu: Int32Builder,
    waker_tid: Int32Builder,
    waker_tgid: Int32Builder,
    new: BooleanBuilder,
}

#[derive(Default)]
struct Processes {
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

#[derive(Default)]
struct Samples {
    h: Header,
    cur: Current,
    kstack: UInt32Builder,
    ustack: UInt32Builder,
}

#[derive(Default)]
struct Blocks {
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

#[derive(Default)]
struct Syscalls {
    h: Header,
    cur: Current,
    enter: BooleanBuilder,
    id: Int32Builder,
    ret: Int64Builder,
}

#[derive(Default)]
struct Tcps {
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

/// The values of one process-table row.
struct ProcessRow<'a> {
    event: &'static str,
    tid: i32,
    tgid: Option<i32>,
    parent: Option<i32>,
    comm: &'a [u8; 16],
    filename: Option<&'a str>,
    group_dead: Option<bool>,
    exit_code: Option<i32>,
}

/// Counts kept per segment beside the rows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// Failed stack walks per source.
    pub stack_errors: [u64; SOURCE_COUNT],
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Earliest event timestamp.
    pub first_ts: Option<u64>,
    /// Latest event timestamp.
    pub last_ts: Option<u64>,
    /// Event rows per source.
    pub rows: [u64; SOURCE_COUNT],
}

/// One segment's tables under construction.
#[derive(Default)]
pub struct SegmentBatch {
    switch: Switches,
    wakeup: Wakeups,
    process: Processes,
    profile: Samples,
    block: Blocks,
    syscall: Syscalls,
    tcp: Tcps,
    stacks: StackTable,
    /// User frames placed in their modules when their stacks were first seen.
    placed: std::collections::HashMap<(i32, u64), Frame>,
    tids: HashSet<i32>,
    /// Event rows moved out of the builders by checkpoints, oldest first.
    chunks: Vec<(Table, RecordBatch)>,
    /// Stacks already in the journal.
    checkpointed_stacks: usize,
    /// Drop command lines and file paths (`--redact`).
    redact: bool,
    /// Counts beside the rows.
    pub counts: BatchCounts,
}

fn ip(family: u16, raw: &[u8; 16]) -> String {
    match family {
        2 => IpAddr::from([raw[0], raw[1], raw[2], raw[3]]).to_string(),
        10 => IpAddr::from(*raw).to_string(),
        _ => String::new(),
    }
}

impl SegmentBatch {
    /// An empty batch; `redact` drops command lines and file paths.
    pub fn new(redact: bool) -> SegmentBatch {
        SegmentBatch {
            redact,
            ..Default::default()
        }
    }

    /// Event rows so far.
    pub fn rows(&self) -> u64 {
        self.counts.rows.iter().sum()
    }

    fn kernel_stack(&mut self, s: &Stack<'_>, source: Source) -> Option<u32> {
        if let Stack::Error(_) = s {
            self.counts.stack_errors[source as usize] += 1;
        }
        self.stacks.intern_kernel(s)
    }

    /// A user stack as the unwinder made it; one that has no frame at all is a failed walk.
    fn user_stack(&mut self, tgid: u32, walk: Option<&Walk>, source: Source) -> Option<u32> {
        let walk = walk?;
        if walk.frames.is_empty() {
            self.counts.stack_errors[source as usize] += 1;
        }
        self.stacks.intern_user(tgid, walk)
    }

    fn seen(&mut self, h: &EventHeader, source: Source) {
        self.counts.first_ts = Some(self.counts.first_ts.map_or(h.ts, |t| t.min(h.ts)));
        self.counts.last_ts = Some(self.counts.last_ts.map_or(h.ts, |t| t.max(h.ts)));
        self.counts.rows[source as usize] += 1;
        self.tids.insert(h.tid as i32);
    }

    /// Adds one record, updating the live task table from what it tells. `user` is the unwound
    /// user stack of a switch or sample (none for a task without a user context).
    pub fn push(
        &mut self,
        rec: &Record<'_>,
        user: Option<&Walk>,
        tasks: &mut TaskTable,
        segment: u64,
    ) {
        let h = match rec {
            Record::Switch(e, ..) => e.hdr,
            Record::Wakeup(e, _) => e.hdr,
            Record::Exec(e) => e.hdr,
            Record::Fork(e) => e.hdr,
            Record::Exit(e) => e.hdr,
            Record::Sample(e, ..) => e.hdr,
            Record::Block(e, _) => e.hdr,
            Record::Syscall(e, _) => e.hdr,
            Record::Tcp(e, _) => e.hdr,
        };
        self.seen(&h, rec.source());
        if h.tid != 0 {
            tasks.see(h.tid as i32, h.tgid as i32);
        }
        match rec {
            Record::Switch(e, k, _) => {
                let kid = self.kernel_stack(k, Source::Sched);
                let uid = self.user_stack(h.tgid, user, Source::Sched);
                let t = &mut self.switch;
                t.h.push(&h);
                t.prev_tid.append_value(e.prev_pid);
                t.prev_tgid.append_value(h.tgid as i32);
                t.prev_prio.append_value(e.prev_prio);
                t.prev_state.append_value(e.prev_state);
                t.next_tid.append_value(e.next_pid);
                t.next_prio.append_value(e.next_prio);
                t.kstack.append_option(kid);
                t.ustack.append_option(uid);
                tasks.set_comm(e.prev_pid, &e.prev_comm);
                tasks.set_comm(e.next_pid, &e.next_comm);
                self.tids.insert(e.next_pid);
            }
            Record::Wakeup(e, new) => {
                let t = &mut self.wakeup;
                t.h.push(&h);
                t.tid.append_value(e.pid);
                t.prio.append_value(e.prio);
                t.target_cpu.append_value(e.target_cpu);
                t.waker_tid.append_value(h.tid as i32);
                t.waker_tgid.append_value(h.tgid as i32);
                t.new.append_value(*new);
                tasks.set_comm(e.pid, &e.comm);
                self.tids.insert(e.pid);
            }
            Record::Exec(e) => {
                let filename = if e.filename_len > 0 {
                    c_str(&e.filename)
                } else {
                    ""
                };
                tasks.exec(e.pid, h.tgid as i32, &e.comm, filename);
                let filename = (!self.redact).then_some(filename);
                self.process_row(
                    &h,
                    ProcessRow {
                        event: "exec",
                        tid: e.pid,
                        tgid: Some(h.tgid as i32),
                        parent: Some(e.old_pid),
                        comm: &e.comm,
                        filename,
                        group_dead: None,
                        exit_code: None,
                    },
                );
            }
            Record::Fork(e) => {
                tasks.fork(h.tgid as i32, e.child_pid, &e.comm);
                self.process_row(
                    &h,
                    ProcessRow {
                        event: "fork",
                        tid: e.child_pid,
                        tgid: None,
                        parent: Some(e.parent_pid),
                        comm: &e.comm,
                        filename: None,
                        group_dead: None,
                        exit_code: None,
                    },
                );
            }
            Record::Exit(e) => {
                tasks.exit(e.pid, segment);
                self.process_row(
                    &h,
                    ProcessRow {
                        event: "exit",
                        tid: e.pid,
                        tgid: Some(h.tgid as i32),
                        parent: None,
                        comm: &e.comm,
                        filename: None,
                        group_dead: Some(e.group_dead != 0),
                        exit_code: (e.exit_code != EXIT_CODE_UNKNOWN).then_some(e.exit_code),
                    },
                );
            }
            Record::Sample(e, k, _) => {
                let kid = self.kernel_stack(k, Source::Profile);
                let uid = self.user_stack(h.tgid, user, Source::Profile);
                tasks.set_comm(h.tid as i32, &e.comm);
                let t = &mut self.profile;
                t.h.push(&h);
                t.cur.push(&h);
                t.kstack.append_option(kid);
                t.ustack.append_option(uid);
            }
            Record::Block(e, complete) => {
                let t = &mut self.block;
                t.h.push(&h);
                t.cur.push(&h);
                t.event
                    .append_value(if *complete { "complete" } else { "issue" });
                t.dev.append_value(e.dev);
                t.sector.append_value(e.sector);
                t.nr_sector.append_value(e.nr_sector);
                t.bytes.append_option((!complete).then_some(e.bytes));
                t.rwbs.append_value(c_str(&e.rwbs));
                t.error.append_option(complete.then_some(e.error));
            }
            Record::Syscall(e, exit) => {
                let t = &mut self.syscall;
                t.h.push(&h);
                t.cur.push(&h);
                t.enter.append_value(!exit);
                t.id.append_value(e.id as i32);
                t.ret.append_option(exit.then_some(e.ret));
            }
            Record::Tcp(e, retransmit) => {
                let t = &mut self.tcp;
                t.h.push(&h);
                t.cur.push(&h);
                t.event
                    .append_value(if *retransmit { "retransmit" } else { "state" });
                t.skaddr.append_value(e.skaddr);
                t.oldstate.append_value(e.oldstate);
                t.newstate.append_value(e.newstate);
                t.family.append_value(e.family);
                t.saddr.append_value(ip(e.family, &e.saddr));
                t.sport.append_value(e.sport);
                t.daddr.append_value(ip(e.family, &e.daddr));
                t.dport.append_value(e.dport);
            }
        }
    }

    /// Appends one row to every column of the process table.
    fn process_row(&mut self, h: &EventHeader, r: ProcessRow<'_>) {
        let t = &mut self.process;
        t.h.push(h);
        t.event.append_value(r.event);
        t.tid.append_value(r.tid);
        t.tgid.append_option(r.tgid);
        t.parent_tid.append_option(r.parent);
        t.comm.append_value(c_str(r.comm));
        t.filename.append_option(r.filename);
        t.group_dead.append_option(r.group_dead);
        t.exit_code.append_option(r.exit_code);
        self.tids.insert(r.tid);
    }

    /// User stacks first seen since the last call, as (tgid, frames).
    pub fn take_fresh_user_stacks(&mut self) -> Vec<(i32, &[u64])> {
        self.stacks.take_fresh_user()
    }

    /// Places the frames of the user stacks added since the last call in their modules, with the
    /// mappings as they are now (right after the stacks were unwound with them).
    pub fn normalize_fresh(&mut self, maps: &UserMaps) {
        for (tgid, frames) in self.stacks.take_fresh_user() {
            for &addr in frames {
                self.placed
                    .entry((tgid, addr))
                    .or_insert_with(|| maps.frame(tgid, addr));
            }
        }
    }

    /// Counts a record that could not be decoded.
    pub fn decode_error(&mut self) {
        self.counts.decode_errors += 1;
    }

    /// Finishes every table. `tasks` names the referenced tasks, `ksyms` the kernel frames; user
    /// frames come back normalized by `maps`, for the writer to symbolize.
    pub fn finish(
        mut self,
        tasks: &TaskTable,
        ksyms: &KernelSymbols,
        maps: &UserMaps,
    ) -> (Vec<(Table, RecordBatch)>, Vec<Frame>, BatchCounts) {
        let tail = self.finish_events();
        let chunks = std::mem::take(&mut self.chunks);
        let mut out: Vec<(Table, RecordBatch)> = tail
            .into_iter()
            .map(|(table, last)| {
                let parts: Vec<&RecordBatch> = chunks
                    .iter()
                    .filter(|(t, _)| *t == table)
                    .map(|(_, b)| b)
                    .chain([&last])
                    .collect();
                let batch = if parts.len() == 1 {
                    last.clone()
                } else {
                    concat_batches(&table.schema(), parts).expect("chunks share the schema")
                };
                (table, batch)
            })
            .collect();
        out.extend(self.lookup_tables(tasks, ksyms, 0));
        let frames = self.user_frames(maps, 0);
        (out, frames, self.counts)
    }

    /// Moves the rows added since the last checkpoint out of the builders, for the write-ahead
    /// journal: the new event rows (last), the stacks first seen since, their kernel symbols and normalized
    /// user frames, and the whole task table so far. The rows stay part of the segment.
    pub fn checkpoint(
        &mut self,
        tasks: &TaskTable,
        ksyms: &KernelSymbols,
        maps: &UserMaps,
    ) -> (Vec<(Table, RecordBatch)>, Vec<Frame>) {
        let events: Vec<(Table, RecordBatch)> = self
            .finish_events()
            .into_iter()
            .filter(|(_, b)| b.num_rows() > 0)
            .collect();
        self.chunks.extend(events.iter().cloned());
        let first = std::mem::replace(&mut self.checkpointed_stacks, self.stacks.len());
        // Lookup tables first: a journal cut short never holds rows pointing at missing stacks.
        let mut out = self.lookup_tables(tasks, ksyms, first).to_vec();
        out.extend(events);
        (out, self.user_frames(maps, first))
    }

    /// The stacks (from id `first` on), the tasks and the kernel symbols.
    fn lookup_tables(
        &self,
        tasks: &TaskTable,
        ksyms: &KernelSymbols,
        first: usize,
    ) -> [(Table, RecordBatch); 3] {
        [
            (Table::Stacks, self.stacks.finish(first)),
            (Table::Tasks, tasks_table(&self.tids, tasks, self.redact)),
            (
                Table::KernelSymbols,
                ksyms.table(&self.stacks.kernel_addresses(first)),
            ),
        ]
    }

    /// The user frames of the stacks from id `first` on, normalized: as placed when they were
    /// first seen, else (stacks added without [`Self::normalize_fresh`]) by `maps` now.
    fn user_frames(&self, maps: &UserMaps, first: usize) -> Vec<Frame> {
        self.stacks
            .user_addresses(first)
            .into_iter()
            .map(|(tgid, addr)| {
                self.placed
                    .get(&(tgid, addr))
                    .cloned()
                    .unwrap_or_else(|| maps.frame(tgid, addr))
            })
            .collect()
    }

    /// The event tables of the rows in the builders, which are left empty.
    fn finish_events(&mut self) -> Vec<(Table, RecordBatch)> {
        let mk = |t: Table, cols: Vec<ArrayRef>| {
            (
                t,
                RecordBatch::try_new(t.schema(), cols).expect("builder matches schema"),
            )
        };
        let mut out = Vec::with_capacity(Table::ALL.len());
        let s = &mut self.switch;
        debug_assert_eq!(s.h.len(), s.prev_tid.len());
        let mut cols = s.h.finish().to_vec();
        cols.extend([
            arc(s.prev_tid.finish()),
            arc(s.prev_tgid.finish()),
            arc(s.prev_prio.finish()),
            arc(s.prev_state.finish()),
            arc(s.next_tid.finish()),
            arc(s.next_prio.finish()),
            arc(s.kstack.finish()),
            arc(s.ustack.finish()),
        ]);
        out.push(mk(Table::SchedSwitch, cols));
        let w = &mut self.wakeup;
        let mut cols = w.h.finish().to_vec();
        cols.extend([
            arc(w.tid.finish()),
            arc(w.prio.finish()),
            arc(w.target_cpu.finish()),
            arc(w.waker_tid.finish()),
            arc(w.waker_tgid.finish()),
            arc(w.new.finish()),
        ]);
        out.push(mk(Table::SchedWakeup, cols));
        let p = &mut self.process;
        let mut cols = p.h.finish().to_vec();
        cols.extend([
            arc(p.event.finish()),
            arc(p.tid.finish()),
            arc(p.tgid.finish()),
            arc(p.parent_tid.finish()),
            arc(p.comm.finish()),
            arc(p.filename.finish()),
            arc(p.group_dead.finish()),
            arc(p.exit_code.finish()),
        ]);
        out.push(mk(Table::Process, cols));
        let pr = &mut self.profile;
        let mut cols = pr.h.finish().to_vec();
        cols.extend(pr.cur.finish());
        cols.extend([arc(pr.kstack.finish()), arc(pr.ustack.finish())]);
        out.push(mk(Table::Profile, cols));
        let b = &mut self.block;
        let mut cols = b.h.finish().to_vec();
        cols.extend(b.cur.finish());
        cols.extend([
            arc(b.event.finish()),
            arc(b.dev.finish()),
            arc(b.sector.finish()),
            arc(b.nr_sector.finish()),
            arc(b.bytes.finish()),
            arc(b.rwbs.finish()),
            arc(b.error.finish()),
        ]);
        out.push(mk(Table::Block, cols));
        let sc = &mut self.syscall;
        let mut cols = sc.h.finish().to_vec();
        cols.extend(sc.cur.finish());
        cols.extend([
            arc(sc.enter.finish()),
            arc(sc.id.finish()),
            arc(sc.ret.finish()),
        ]);
        out.push(mk(Table::Syscall, cols));
        let t = &mut self.tcp;
        let mut cols = t.h.finish().to_vec();
        cols.extend(t.cur.finish());
        cols.extend([
            arc(t.event.finish()),
            arc(t.skaddr.finish()),
            arc(t.oldstate.finish()),
            arc(t.newstate.finish()),
            arc(t.family.finish()),
            arc(t.saddr.finish()),
            arc(t.sport.finish()),
            arc(t.daddr.finish()),
            arc(t.dport.finish()),
        ]);
        out.push(mk(Table::Tcp, cols));
        out
    }
}

fn tasks_table(tids: &HashSet<i32>, tasks: &TaskTable, redact: bool) -> RecordBatch {
    let mut sorted: Vec<i32> = tids.iter().copied().collect();
    sorted.sort_unstable();
    let mut tid = Int32Builder::new();
    let mut tgid = Int32Builder::new();
    let mut ppid = Int32Builder::new();
    let mut comm = StringBuilder::new();
    let mut exe = StringBuilder::new();
    let mut cmdline = StringBuilder::new();
    for id in sorted {
        tid.append_value(id);
        match tasks.get(id) {
            Some((t, p)) => {
                tgid.append_option(t.tgid);
                ppid.append_option(p.and_then(|p| p.ppid));
                let name = c_str(&t.comm);
                comm.append_value(if name.is_empty() { "[unknown]" } else { name });
                let p = p.filter(|_| !redact);
                exe.append_option(p.and_then(|p| p.exe.as_deref()));
                cmdline.append_option(p.and_then(|p| p.cmdline.as_deref()));
            }
            None => {
                tgid.append_null();
                ppid.append_null();
                comm.append_value("[unknown]");
                exe.append_null();
                cmdline.append_null();
            }
        }
    }
    let cols = vec![
        arc(tid.finish()),
        arc(tgid.finish()),
        arc(ppid.finish()),
        arc(comm.finish()),
        arc(exe.finish()),
        arc(cmdline.finish()),
    ];
    RecordBatch::try_new(Table::Tasks.schema(), cols).expect("tasks schema")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, tests::switch_record};

    /// A user stack that could not be unwound at all (its registers were unreadable).
    fn failed() -> Walk {
        Walk {
            frames: Vec::new(),
            method: flightrec_schemas::unwind::Method::Cfi,
            truncated: Some(flightrec_schemas::unwind::Truncation::NoRegisters),
        }
    }

    #[test]
    fn switches_become_rows_with_interned_stacks_and_named_tasks() {
        let mut tasks = TaskTable::default();
        let mut b = SegmentBatch::default();
        for (prev, next) in [(10, 20), (20, 10), (10, 20)] {
            let raw = switch_record(prev, next, 1, &[0xffffffff81000100], -14);
            b.push(&decode(&raw).unwrap(), Some(&failed()), &mut tasks, 0);
        }
        let ksyms = KernelSymbols::parse("ffffffff81000000 T schedule\n");
        let (tables, frames, counts) = b.finish(&tasks, &ksyms, &UserMaps::default());
        assert!(frames.is_empty(), "no user stacks");
        assert_eq!(counts.rows[Source::Sched as usize], 3);
        assert_eq!(
            counts.stack_errors[Source::Sched as usize],
            3,
            "user walks failed"
        );
        let get = |t: Table| &tables.iter().find(|x| x.0 == t).unwrap().1;
        assert_eq!(get(Table::SchedSwitch).num_rows(), 3);
        assert_eq!(
            get(Table::Stacks).num_rows(),
            1,
            "one distinct kernel stack"
        );
        assert_eq!(get(Table::Tasks).num_rows(), 2, "tids 10 and 20");
        assert_eq!(get(Table::KernelSymbols).num_rows(), 1);
        for (t, batch) in &tables {
            assert_eq!(batch.schema(), t.schema(), "{t:?}");
        }
    }

    #[test]
    fn checkpoints_hand_out_each_row_once_and_leave_the_segment_unchanged() {
        let ksyms = KernelSymbols::parse("ffffffff81000000 T schedule\nffffffff82000000 T io\n");
        let records = [
            switch_record(10, 20, 1, &[0xffffffff81000100], -14),
            switch_record(20, 10, 1, &[0xffffffff81000100], -14),
            switch_record(10, 30, 1, &[0xffffffff82000100, 0xffffffff81000100], -14),
        ];
        let mut tasks = TaskTable::default();
        let (mut plain, mut split) = (SegmentBatch::default(), SegmentBatch::default());
        let mut handed = Vec::new();
        for (i, raw) in records.iter().enumerate() {
            plain.push(&decode(raw).unwrap(), None, &mut tasks, 0);
            split.push(&decode(raw).unwrap(), None, &mut tasks, 0);
            if i != 1 {
                let (tables, frames) = split.checkpoint(&tasks, &ksyms, &UserMaps::default());
                assert!(frames.is_empty());
                let pos = |t: Table| tables.iter().position(|x| x.0 == t).unwrap();
                assert!(
                    pos(Table::Stacks) < pos(Table::SchedSwitch),
                    "stacks go before the rows that refer to them"
                );
                handed.push(tables);
            }
        }
        let rows = |cp: &Vec<(Table, RecordBatch)>, t: Table| -> usize {
            cp.iter().filter(|x| x.0 == t).map(|x| x.1.num_rows()).sum()
        };
        assert_eq!(rows(&handed[0], Table::SchedSwitch), 1);
        assert_eq!(rows(&handed[1], Table::SchedSwitch), 2);
        assert_eq!(rows(&handed[0], Table::Stacks), 1);
        assert_eq!(rows(&handed[1], Table::Stacks), 1, "only the new stack");
        assert_eq!(
            rows(&handed[1], Table::KernelSymbols),
            2,
            "the new stack's frames (the journal repeats a known one; salvage keeps one)"
        );
        assert_eq!(rows(&handed[1], Table::Tasks), 3, "the whole task table");
        let (a, _, ca) = plain.finish(&tasks, &ksyms, &UserMaps::default());
        let (b, _, cb) = split.finish(&tasks, &ksyms, &UserMaps::default());
        assert_eq!(ca, cb);
        for ((ta, ba), (tb, bb)) in a.iter().zip(&b) {
            assert_eq!(ta, tb);
            assert_eq!(ba, bb, "{ta:?} differs after checkpoints");
        }
    }

    #[test]
    fn process_events_fill_every_column() {
        use flightrec_common::{EventKind, ExecEvent, ExitEvent, ForkEvent};

        use crate::decode::tests::bytes_of;
        let mut tasks = TaskTable::default();
        let mut b = SegmentBatch::default();
        let mut exec: ExecEvent = unsafe { std::mem::zeroed() };
        exec.hdr.kind = EventKind::Exec as u32;
        exec.pid = 5;
        exec.filename_len = 3;
        exec.filename[..3].copy_from_slice(b"/x\0");
        let mut fork: ForkEvent = unsafe { std::mem::zeroed() };
        fork.hdr.kind = EventKind::Fork as u32;
        fork.child_pid = 6;
        let mut exit: ExitEvent = unsafe { std::mem::zeroed() };
        exit.hdr.kind = EventKind::Exit as u32;
        exit.pid = 6;
        exit.group_dead = 1;
        exit.exit_code = 3 << 8;
        for raw in [bytes_of(&exec), bytes_of(&fork), bytes_of(&exit)] {
            b.push(&decode(&raw).unwrap(), None, &mut tasks, 0);
        }
        let (tables, _, _) = b.finish(&tasks, &KernelSymbols::default(), &UserMaps::default());
        let process = &tables.iter().find(|t| t.0 == Table::Process).unwrap().1;
        assert_eq!(process.num_rows(), 3);
        let code = process.column_by_name("exit_code").unwrap();
        assert_eq!(code.null_count(), 2, "only the exit has a code");
    }
}
