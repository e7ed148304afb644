//! Arrow schemas of the tables of a segment. Times are CLOCK_MONOTONIC nanoseconds of the recording
//! host; the manifest's [`ClockAnchor`](crate::ClockAnchor) turns them into wall-clock time.
use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Schema, SchemaRef};

/// One table of a segment, stored as `<name>.parquet`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `sched:sched_switch`, one row per context switch.
    SchedSwitch,
    /// `sched:sched_wakeup` and `sched_wakeup_new`.
    SchedWakeup,
    /// `sched:sched_waking` with the waker's stacks (`--waker-stacks`).
    SchedWaking,
    /// exec, fork and exit.
    Process,
    /// CPU-clock samples.
    Profile,
    /// Block request issue and completion.
    Block,
    /// Syscall enter and exit.
    Syscall,
    /// TCP state changes and retransmits.
    Tcp,
    /// Signals generated.
    Signal,
    /// OOM-killer victims.
    Oom,
    /// IRQ handler and softirq entries and exits.
    Irq,
    /// Direct and memcg reclaim begins and ends.
    Reclaim,
    /// Kernel lock contention begins and ends.
    Lock,
    /// User page faults.
    Fault,
    /// Stacks referenced by this segment's events.
    Stacks,
    /// Every task referenced by this segment's events, with its names.
    Tasks,
    /// Names of the kernel addresses in this segment's stacks.
    KernelSymbols,
    /// Module, offset and name of every user address in this segment's stacks.
    UserFrames,
}

impl Table {
    /// Every table, in the order files are written.
    pub const ALL: [Table; 18] = [
        Table::SchedSwitch,
        Table::SchedWakeup,
        Table::SchedWaking,
        Table::Process,
        Table::Profile,
        Table::Block,
        Table::Syscall,
        Table::Tcp,
        Table::Signal,
        Table::Oom,
        Table::Irq,
        Table::Reclaim,
        Table::Lock,
        Table::Fault,
        Table::Stacks,
        Table::Tasks,
        Table::KernelSymbols,
        Table::UserFrames,
    ];

    /// Table name, also the file stem.
    pub const fn name(self) -> &'static str {
        match self {
            Table::SchedSwitch => "sched_switch",
            Table::SchedWakeup => "sched_wakeup",
            Table::SchedWaking => "sched_waking",
            Table::Process => "process",
            Table::Profile => "profile",
            Table::Block => "block",
            Table::Syscall => "syscall",
            Table::Tcp => "tcp",
            Table::Signal => "signal",
            Table::Oom => "oom",
            Table::Irq => "irq",
            Table::Reclaim => "reclaim",
            Table::Lock => "lock",
            Table::Fault => "fault",
            Table::Stacks => "stacks",
            Table::Tasks => "tasks",
            Table::KernelSymbols => "kernel_symbols",
            Table::UserFrames => "user_frames",
        }
    }

    /// Columns added to the table after format version 1 was first written: captures from before
    /// lack them, and readers treat them as absent rather than as damage.
    pub fn added_later(self) -> &'static [&'static str] {
        match self {
            Table::Stacks => &["method", "truncated"],
            Table::Tasks => &["cgroup"],
            Table::Process => &["args", "args_truncated"],
            Table::Tcp => &["reason", "tx_bytes", "rx_bytes"],
            Table::UserFrames => &["function_start"],
            _ => &[],
        }
    }

    /// File name inside a segment directory.
    pub fn file_name(self) -> String {
        format!("{}.parquet", self.name())
    }

    /// True for tables of events (as opposed to stacks, tasks and symbols).
    pub fn is_event_table(self) -> bool {
        !matches!(
            self,
            Table::Stacks | Table::Tasks | Table::KernelSymbols | Table::UserFrames
        )
    }

    /// Looks a table up by name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The table's Arrow schema.
    pub fn schema(self) -> SchemaRef {
        static SCHEMAS: LazyLock<Vec<SchemaRef>> =
            LazyLock::new(|| Table::ALL.iter().map(|t| Arc::new(build(*t))).collect());
        SCHEMAS[self as usize].clone()
    }
}

fn f(name: &str, ty: DataType, nullable: bool) -> Field {
    Field::new(name, ty, nullable)
}

fn dict_utf8() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

fn header() -> Vec<Field> {
    vec![
        f("ts", DataType::UInt64, false),
        f("cpu", DataType::UInt16, false),
    ]
}

fn current() -> Vec<Field> {
    vec![
        f("tid", DataType::Int32, false),
        f("tgid", DataType::Int32, false),
    ]
}

fn stack_refs() -> Vec<Field> {
    vec![
        f("kstack", DataType::UInt32, true),
        f("ustack", DataType::UInt32, true),
    ]
}

fn build(table: Table) -> Schema {
    use DataType::*;
    let mut fields = Vec::new();
    match table {
        Table::SchedSwitch => {
            fields.extend(header());
            fields.extend([
                f("prev_tid", Int32, false),
                f("prev_tgid", Int32, false),
                f("prev_prio", Int32, false),
                f("prev_state", Int64, false),
                f("next_tid", Int32, false),
                f("next_prio", Int32, false),
            ]);
            fields.extend(stack_refs());
        }
        Table::SchedWakeup => {
            fields.extend(header());
            fields.extend([
                f("tid", Int32, false),
                f("prio", Int32, false),
                f("target_cpu", Int32, false),
                f("waker_tid", Int32, false),
                f("waker_tgid", Int32, false),
                f("new", Boolean, false),
            ]);
        }
        Table::SchedWaking => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([f("pid", Int32, false), f("irq", Boolean, false)]);
            fields.extend(stack_refs());
        }
        Table::Process => {
            fields.extend(header());
            fields.extend([
                f("event", dict_utf8(), false),
                f("tid", Int32, false),
                f("tgid", Int32, true),
                f("parent_tid", Int32, true),
                f("comm", Utf8, false),
                f("filename", Utf8, true),
                f("args", Utf8, true),
                f("args_truncated", Boolean, true),
                f("group_dead", Boolean, true),
                f("exit_code", Int32, true),
            ]);
        }
        Table::Profile => {
            fields.extend(header());
            fields.extend(current());
            fields.extend(stack_refs());
        }
        Table::Block => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("event", dict_utf8(), false),
                f("dev", UInt32, false),
                f("sector", UInt64, false),
                f("nr_sector", UInt32, false),
                f("bytes", UInt32, true),
                f("rwbs", dict_utf8(), false),
                f("error", Int32, true),
            ]);
        }
        Table::Syscall => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("enter", Boolean, false),
                f("id", Int32, false),
                f("ret", Int64, true),
            ]);
        }
        Table::Tcp => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("event", dict_utf8(), false),
                f("skaddr", UInt64, false),
                f("oldstate", Int32, false),
                f("newstate", Int32, false),
                f("family", UInt16, false),
                f("saddr", Utf8, false),
                f("sport", UInt16, false),
                f("daddr", Utf8, false),
                f("dport", UInt16, false),
                f("reason", dict_utf8(), true),
                f("tx_bytes", UInt64, true),
                f("rx_bytes", UInt64, true),
            ]);
        }
        Table::Signal => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("sig", Int32, false),
                f("code", Int32, false),
                f("errno", Int32, false),
                f("target_tid", Int32, false),
                f("target_comm", Utf8, false),
                f("group", Boolean, false),
                f("result", Int32, false),
            ]);
        }
        Table::Oom => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("victim_pid", Int32, false),
                f("victim_comm", Utf8, false),
                f("uid", UInt32, false),
                f("oom_score_adj", Int32, false),
                f("total_vm_kb", UInt64, false),
                f("anon_rss_kb", UInt64, false),
                f("file_rss_kb", UInt64, false),
                f("shmem_rss_kb", UInt64, false),
                f("pgtables_kb", UInt64, false),
            ]);
        }
        Table::Irq => {
            fields.extend(header());
            fields.extend([
                f("event", dict_utf8(), false),
                f("irq", Int32, false),
                f("name", dict_utf8(), true),
                f("ret", Int32, true),
            ]);
        }
        Table::Reclaim => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("event", dict_utf8(), false),
                f("kind", dict_utf8(), false),
                f("order", Int32, true),
                f("gfp_flags", UInt64, true),
                f("nr_reclaimed", UInt64, true),
            ]);
        }
        Table::Lock => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("event", dict_utf8(), false),
                f("lock_addr", UInt64, false),
                f("kind", dict_utf8(), true),
                f("spin", Boolean, true),
                f("ret", Int32, true),
                f("kstack", UInt32, true),
            ]);
        }
        Table::Fault => {
            fields.extend(header());
            fields.extend(current());
            fields.extend([
                f("address", UInt64, false),
                f("ip", UInt64, false),
                f("error_code", UInt64, false),
                f("ustack", UInt32, true),
            ]);
        }
        Table::Stacks => {
            fields.extend([
                f("stack_id", UInt32, false),
                f("tgid", Int32, false),
                f("kernel", Boolean, false),
                f(
                    "frames",
                    List(Arc::new(Field::new("item", UInt64, false))),
                    false,
                ),
                f("method", dict_utf8(), true),
                f("truncated", dict_utf8(), true),
            ]);
        }
        Table::Tasks => {
            fields.extend([
                f("tid", Int32, false),
                f("tgid", Int32, true),
                f("ppid", Int32, true),
                f("comm", Utf8, false),
                f("exe", Utf8, true),
                f("cmdline", Utf8, true),
                f("cgroup", Utf8, true),
            ]);
        }
        Table::KernelSymbols => {
            fields.extend([
                f("addr", UInt64, false),
                f("symbol", Utf8, false),
                f("offset", UInt64, false),
                f("module", Utf8, true),
            ]);
        }
        Table::UserFrames => {
            fields.extend([
                f("tgid", Int32, false),
                f("addr", UInt64, false),
                f("module", Utf8, true),
                f("build_id", Utf8, true),
                f("file_offset", UInt64, true),
                f("virt_offset", UInt64, true),
                f("symbol", Utf8, true),
                f("offset", UInt64, true),
                f("file", Utf8, true),
                f("line", UInt32, true),
                f("function_start", UInt64, true),
            ]);
        }
    }
    Schema::new(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for t in Table::ALL {
            assert_eq!(Table::from_name(t.name()), Some(t));
            assert!(!t.schema().fields().is_empty(), "{t:?}");
        }
        let mut names: Vec<_> = Table::ALL.iter().map(|t| t.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Table::ALL.len());
    }

    #[test]
    fn event_tables_start_with_ts_and_cpu() {
        for t in [
            Table::SchedSwitch,
            Table::SchedWakeup,
            Table::Process,
            Table::Profile,
            Table::Block,
            Table::Syscall,
            Table::Tcp,
        ] {
            let s = t.schema();
            assert_eq!(s.field(0).name(), "ts", "{t:?}");
            assert_eq!(s.field(1).name(), "cpu", "{t:?}");
        }
    }
}
