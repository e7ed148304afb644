//! Accumulates one segment's decoded records into Arrow columns: one module of row builders per
//! event source (`sched`, `process`, `profile`, `block`, `syscall`, `tcp`, `signal`, `oom`, `irq`, `reclaim`),
//! each
//! behind [`Rows`];
//! the lookup tables (stacks, tasks, kernel symbols) are made here when the segment is cut.
// Keys are thread ids, looked up for every event: FxHash is several times faster than SipHash.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use arrow::{
    array::{Int32Builder, StringBuilder},
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

mod block;
mod fault;
mod irq;
mod lock;
mod oom;
mod process;
mod profile;
mod reclaim;
mod rows;
mod sched;
mod signal;
mod syscall;
mod tcp;

use process::ProcessRow;
use rows::{arc, Rows};

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
    switch: sched::Switches,
    wakeup: sched::Wakeups,
    waking: sched::Wakings,
    process: process::Processes,
    profile: profile::Samples,
    block: block::Blocks,
    syscall: syscall::Syscalls,
    tcp: tcp::Tcps,
    signal: signal::Signals,
    oom: oom::Ooms,
    irq: irq::Irqs,
    reclaim: reclaim::Reclaims,
    lock: lock::Locks,
    fault: fault::Faults,
    stacks: StackTable,
    /// User frames placed in their modules when their stacks were first seen.
    placed: HashMap<(i32, u64), Frame>,
    tids: HashSet<i32>,
    /// The (tid, tgid) of the last record: events come in runs of one thread, whose table entries
    /// need no second look.
    last_task: Option<(u32, u32)>,
    /// Event rows moved out of the builders by checkpoints, oldest first.
    chunks: Vec<(Table, RecordBatch)>,
    /// Stacks already in the journal.
    checkpointed_stacks: usize,
    /// Drop command lines and file paths (`--redact`).
    redact: bool,
    /// Counts beside the rows.
    pub counts: BatchCounts,
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
            Record::Exec(e, _) => e.hdr,
            Record::Fork(e) => e.hdr,
            Record::Exit(e) => e.hdr,
            Record::Sample(e, ..) => e.hdr,
            Record::Block(e, _) => e.hdr,
            Record::Syscall(e, _) => e.hdr,
            Record::Tcp(e, _) => e.hdr,
            Record::Signal(e) => e.hdr,
            Record::Oom(e) => e.hdr,
            Record::Irq(e, _) => e.hdr,
            Record::Reclaim(e, _) => e.hdr,
            Record::Lock(e, ..) => e.hdr,
            Record::Fault(e, _) => e.hdr,
            Record::Waking(e, ..) => e.hdr,
        };
        self.seen(&h, rec.source());
        // The task table only forgets threads at a segment cut, which starts a new batch.
        if self.last_task != Some((h.tid, h.tgid)) {
            self.last_task = Some((h.tid, h.tgid));
            self.tids.insert(h.tid as i32);
            if h.tid != 0 {
                tasks.see(h.tid as i32, h.tgid as i32);
            }
        }
        match rec {
            Record::Switch(e, k, _) => {
                let kid = self.kernel_stack(k, Source::Sched);
                let uid = self.user_stack(h.tgid, user, Source::Sched);
                self.switch.push(&h, e, kid, uid);
                tasks.set_comm(e.prev_pid, &e.prev_comm);
                tasks.set_comm(e.next_pid, &e.next_comm);
                self.tids.insert(e.next_pid);
            }
            Record::Wakeup(e, new) => {
                self.wakeup.push(&h, e, *new);
                tasks.set_comm(e.pid, &e.comm);
                self.tids.insert(e.pid);
            }
            Record::Exec(e, args) => {
                let filename = if e.filename_len > 0 {
                    c_str(&e.filename)
                } else {
                    ""
                };
                tasks.exec(e.pid, h.tgid as i32, &e.comm, filename);
                let filename = (!self.redact).then_some(filename);
                let args = (!self.redact)
                    .then(|| process::exec_args(e, args))
                    .flatten();
                self.process_row(
                    &h,
                    ProcessRow {
                        event: "exec",
                        tid: e.pid,
                        tgid: Some(h.tgid as i32),
                        parent: Some(e.old_pid),
                        comm: &e.comm,
                        filename,
                        args,
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
                        args: None,
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
                        args: None,
                        group_dead: Some(e.group_dead != 0),
                        exit_code: (e.exit_code != EXIT_CODE_UNKNOWN).then_some(e.exit_code),
                    },
                );
            }
            Record::Sample(e, k, _) => {
                let kid = self.kernel_stack(k, Source::Profile);
                let uid = self.user_stack(h.tgid, user, Source::Profile);
                tasks.set_comm(h.tid as i32, &e.comm);
                self.profile.push(&h, kid, uid);
            }
            Record::Block(e, complete) => self.block.push(&h, e, *complete),
            Record::Syscall(e, exit) => self.syscall.push(&h, e, *exit),
            Record::Tcp(e, kind) => self.tcp.push(&h, e, *kind),
            Record::Signal(e) => {
                self.tids.insert(e.pid);
                self.signal.push(&h, e);
            }
            Record::Oom(e) => {
                self.tids.insert(e.pid);
                self.oom.push(&h, e);
            }
            Record::Irq(e, kind) => self.irq.push(&h, e, *kind),
            Record::Reclaim(e, kind) => self.reclaim.push(&h, e, *kind),
            Record::Lock(e, k, end) => {
                let kid = (!end).then(|| self.kernel_stack(k, Source::Lock)).flatten();
                self.lock.push(&h, e, *end, kid);
            }
            Record::Waking(e, k, _) => {
                let kid = self.kernel_stack(k, Source::Sched);
                let uid = self.user_stack(h.tgid, user, Source::Sched);
                self.waking.push(&h, e, kid, uid);
                self.tids.insert(e.pid);
            }
            Record::Fault(e, _) => {
                let uid = self.user_stack(h.tgid, user, Source::Fault);
                self.fault.push(&h, e, uid);
            }
        }
    }

    /// Appends one row to every column of the process table.
    fn process_row(&mut self, h: &EventHeader, r: ProcessRow<'_>) {
        self.tids.insert(r.tid);
        self.process.push(h, r);
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
    ) -> (Vec<crate::segment::TableBatches>, Vec<Frame>, BatchCounts) {
        let tail = self.finish_events();
        let mut chunks = std::mem::take(&mut self.chunks);
        // Each event table as the batches of its checkpoints, in order, then the rest: written
        // one after the other into one file, not copied into one batch first (that copy cost a
        // tenth of the recorder's CPU at high rates).
        let mut out: Vec<crate::segment::TableBatches> = tail
            .into_iter()
            .map(|(table, last)| {
                let mut parts: Vec<RecordBatch> = Vec::new();
                chunks.retain(|(t, b)| {
                    if *t == table {
                        parts.push(b.clone());
                    }
                    *t != table
                });
                if last.num_rows() > 0 || parts.is_empty() {
                    parts.push(last);
                }
                (table, parts)
            })
            .collect();
        out.extend(
            self.lookup_tables(tasks, ksyms, 0)
                .into_iter()
                .map(|(t, b)| (t, vec![b])),
        );
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
            .map(|(tgid, addr, caller)| Frame {
                caller,
                ..self
                    .placed
                    .get(&(tgid, addr))
                    .cloned()
                    .unwrap_or_else(|| maps.frame(tgid, addr))
            })
            .collect()
    }

    /// The event tables of the rows in the builders, which are left empty.
    fn finish_events(&mut self) -> Vec<(Table, RecordBatch)> {
        vec![
            self.switch.finish(),
            self.wakeup.finish(),
            self.waking.finish(),
            self.process.finish(),
            self.profile.finish(),
            self.block.finish(),
            self.syscall.finish(),
            self.tcp.finish(),
            self.signal.finish(),
            self.oom.finish(),
            self.irq.finish(),
            self.reclaim.finish(),
            self.lock.finish(),
            self.fault.finish(),
        ]
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
    let mut cgroup = StringBuilder::new();
    for id in sorted {
        tid.append_value(id);
        match tasks.get(id) {
            Some((t, p)) => {
                tgid.append_option(t.tgid);
                ppid.append_option(p.and_then(|p| p.ppid));
                let name = c_str(&t.comm);
                comm.append_value(if name.is_empty() { "[unknown]" } else { name });
                cgroup.append_option(p.and_then(|p| p.cgroup.as_deref()));
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
                cgroup.append_null();
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
        arc(cgroup.finish()),
    ];
    RecordBatch::try_new(Table::Tasks.schema(), cols).expect("tasks schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// All of a finished table's batches as one.
    fn whole(tables: &[crate::segment::TableBatches], t: Table) -> RecordBatch {
        let parts = &tables.iter().find(|x| x.0 == t).unwrap().1;
        arrow::compute::concat_batches(&t.schema(), parts).unwrap()
    }
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
        let get = |t: Table| whole(&tables, t);
        assert_eq!(get(Table::SchedSwitch).num_rows(), 3);
        assert_eq!(
            get(Table::Stacks).num_rows(),
            1,
            "one distinct kernel stack"
        );
        assert_eq!(get(Table::Tasks).num_rows(), 2, "tids 10 and 20");
        assert_eq!(get(Table::KernelSymbols).num_rows(), 1);
        for (t, batches) in &tables {
            for batch in batches {
                assert_eq!(batch.schema(), t.schema(), "{t:?}");
            }
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
        for ((ta, _), (tb, _)) in a.iter().zip(&b) {
            assert_eq!(ta, tb);
            assert_eq!(
                whole(&a, *ta),
                whole(&b, *tb),
                "{ta:?} differs after checkpoints"
            );
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
        let process = &whole(&tables, Table::Process);
        assert_eq!(process.num_rows(), 3);
        let code = process.column_by_name("exit_code").unwrap();
        assert_eq!(code.null_count(), 2, "only the exit has a code");
    }
}
