//! The process events of a capture (fork, exec, exit) with what the task tables add (parent,
//! command line), in time order: what `execsnoop` and `exitsnoop` print.
use std::collections::HashMap;

use arrow::{
    array::Array,
    datatypes::{Int32Type, UInt16Type, UInt64Type},
};
use flightrec_schemas::Table;

use crate::{
    capture::{Capture, Result},
    columns::{bools, opt, prim, strings},
    filter::Filter,
    parallel::selected,
};

/// One row of the `process` table.
#[derive(Clone, Debug)]
pub struct Event {
    /// Monotonic ns.
    pub ts: u64,
    /// The CPU it happened on.
    pub cpu: u16,
    /// `fork`, `exec` or `exit`.
    pub kind: String,
    /// The thread (for a fork: the child).
    pub tid: i32,
    /// Its process, where known.
    pub tgid: Option<i32>,
    /// For a fork, the parent thread.
    pub parent_tid: Option<i32>,
    /// The name (after an exec: the new one).
    pub comm: String,
    /// For an exec, the file.
    pub filename: Option<String>,
    /// For an exec, the command line copied in the kernel at the exec and whether it was cut
    /// (absent with `--redact` and in captures from before it was recorded).
    pub args: Option<(String, bool)>,
    /// For an exit, true when the whole process ended.
    pub group_dead: bool,
    /// For an exit, the wait status (code << 8, or the signal in the low 7 bits, 0x80 = core).
    pub status: Option<i32>,
}

/// What the task tables say about a process.
#[derive(Clone, Debug, Default)]
pub struct Proc {
    /// Its parent.
    pub ppid: Option<i32>,
    /// Its command line as the recorder read it from /proc (absent when the process was gone).
    pub cmdline: Option<String>,
    /// Its cgroup, where recorded.
    pub cgroup: Option<String>,
}

/// The process events of the segments `filter` selects, in time order, and the processes they
/// name.
pub fn load(cap: &Capture, filter: &Filter) -> Result<(Vec<Event>, HashMap<i32, Proc>)> {
    let mut events = Vec::new();
    let mut procs: HashMap<i32, Proc> = HashMap::new();
    for seg in selected(cap, filter) {
        let mut cols = vec![
            "ts",
            "cpu",
            "event",
            "tid",
            "tgid",
            "parent_tid",
            "comm",
            "filename",
            "group_dead",
            "exit_code",
        ];
        let with_args = seg.has_column(Table::Process, "args");
        if with_args {
            cols.extend(["args", "args_truncated"]);
        }
        for b in seg.read(Table::Process, &cols)? {
            let args = with_args.then(|| (strings(&b, "args"), bools(&b, "args_truncated")));
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, tgid, parent) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "tgid"),
                prim::<Int32Type>(&b, "parent_tid"),
            );
            let (kind, comm, file) = (
                strings(&b, "event"),
                strings(&b, "comm"),
                strings(&b, "filename"),
            );
            let (dead, code) = (bools(&b, "group_dead"), prim::<Int32Type>(&b, "exit_code"));
            for i in 0..b.num_rows() {
                if !filter.in_range(ts.value(i)) {
                    continue;
                }
                events.push(Event {
                    ts: ts.value(i),
                    cpu: cpu.value(i),
                    kind: kind.value(i).to_string(),
                    tid: tid.value(i),
                    tgid: opt(tgid, i),
                    parent_tid: opt(parent, i),
                    comm: comm.value(i).to_string(),
                    filename: file.is_valid(i).then(|| file.value(i).to_string()),
                    args: args
                        .as_ref()
                        .filter(|(a, _)| a.is_valid(i))
                        .map(|(a, cut)| (a.value(i).to_string(), cut.is_valid(i) && cut.value(i))),
                    group_dead: dead.is_valid(i) && dead.value(i),
                    status: opt(code, i),
                });
            }
        }
        let with_cgroup = seg.has_column(Table::Tasks, "cgroup");
        let cols: &[&str] = if with_cgroup {
            &["tid", "tgid", "ppid", "cmdline", "cgroup"]
        } else {
            &["tid", "tgid", "ppid", "cmdline"]
        };
        for b in seg.read(Table::Tasks, cols)? {
            let (tid, tgid, ppid) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "tgid"),
                prim::<Int32Type>(&b, "ppid"),
            );
            let cmdline = strings(&b, "cmdline");
            let cgroup = with_cgroup.then(|| strings(&b, "cgroup"));
            for i in 0..b.num_rows() {
                if opt(tgid, i).is_some_and(|g| g != tid.value(i)) {
                    continue;
                }
                let p = procs.entry(tid.value(i)).or_default();
                p.ppid = p.ppid.or(opt(ppid, i));
                if let Some(c) = cgroup.as_ref().filter(|c| c.is_valid(i)) {
                    p.cgroup = Some(c.value(i).to_string());
                }
                if cmdline.is_valid(i) && !cmdline.value(i).is_empty() {
                    // The latest segment's reading: after an exec, the new command line.
                    p.cmdline = Some(cmdline.value(i).to_string());
                }
            }
        }
    }
    events.sort_by_key(|e| e.ts);
    Ok((events, procs))
}

/// The cgroup of each process (by pid) in the segments `filter` selects, when `--cgroup` is given
/// (else empty: every process passes).
pub fn cgroups(cap: &Capture, filter: &Filter) -> Result<HashMap<i32, String>> {
    if filter.cgroup.is_none() {
        return Ok(HashMap::new());
    }
    let mut out = HashMap::new();
    for seg in selected(cap, filter) {
        if !seg.has_column(Table::Tasks, "cgroup") {
            continue;
        }
        for b in seg.read(Table::Tasks, &["tid", "tgid", "cgroup"])? {
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let cgroup = strings(&b, "cgroup");
            for i in 0..b.num_rows() {
                if cgroup.is_valid(i) {
                    let pid = opt(tgid, i).unwrap_or(tid.value(i));
                    out.insert(pid, cgroup.value(i).to_string());
                }
            }
        }
    }
    Ok(out)
}

/// The first fork of each thread among `events`, by the child's tid.
pub fn forks(events: &[Event]) -> HashMap<i32, &Event> {
    let mut out = HashMap::new();
    for e in events.iter().filter(|e| e.kind == "fork") {
        out.entry(e.tid).or_insert(e);
    }
    out
}

/// The exit of a wait status as exitsnoop prints it: `0`, `code N`, `signal N (NAME)`, `+core`.
pub fn describe_status(status: i32) -> String {
    let sig = status & 0x7f;
    if sig == 0 {
        let code = (status >> 8) & 0xff;
        return if code == 0 {
            "0".into()
        } else {
            format!("code {code}")
        };
    }
    let core = if status & 0x80 != 0 {
        ", core dumped"
    } else {
        ""
    };
    format!("signal {sig} ({}){core}", signal_name(sig))
}

/// The usual name of a Linux signal.
pub fn signal_name(sig: i32) -> &'static str {
    const NAMES: [&str; 32] = [
        "0", "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
        "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU",
        "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    NAMES.get(sig as usize).copied().unwrap_or("RT")
}

#[cfg(test)]
mod tests {
    use super::describe_status;

    #[test]
    fn wait_statuses_read_as_exitsnoop_prints_them() {
        assert_eq!(describe_status(0), "0");
        assert_eq!(describe_status(3 << 8), "code 3");
        assert_eq!(describe_status(9), "signal 9 (KILL)");
        assert_eq!(describe_status(0x80 | 6), "signal 6 (ABRT), core dumped");
        assert_eq!(describe_status(40), "signal 40 (RT)");
    }
}
