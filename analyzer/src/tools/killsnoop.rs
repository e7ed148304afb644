//! `killsnoop`: who sent which signal to whom, and what became of it (from `signal_generate`).
//! Like killsnoop, signals sent with kill(), tkill(), tgkill() and sigqueue() by default; `--all`
//! adds the ones the kernel raises itself (`SIGCHLD` at an exit, `SIGSEGV` at a fault, timers).
use std::fmt::Write;

use arrow::datatypes::{Int32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{bools, prim, strings},
    filter::Filter,
    lost::Lost,
    names::Tasks,
    parallel::selected,
};

/// One signal.
#[derive(Clone, Debug, Serialize)]
pub struct Signal {
    #[serde(skip)]
    ts: u64,
    pub time: String,
    /// Sender (the task current when it was generated) and its name.
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    pub sig: i32,
    /// `SIGKILL`, ...
    pub name: String,
    /// `si_code`: 0 kill(), -6 tkill()/tgkill(), -1 sigqueue(), > 0 raised by the kernel.
    pub code: i32,
    pub target_tid: i32,
    pub target_comm: String,
    /// Sent to the whole process.
    pub group: bool,
    /// `delivered`, `ignored`, `already pending`, `overflow`, `lost info`.
    pub result: String,
}

/// Result of `killsnoop`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub signals: Vec<Signal>,
    pub lost: Lost,
}

/// True for a signal a process sent with a syscall (`si_code` SI_USER, SI_QUEUE, SI_TKILL...).
fn sent_by_syscall(code: i32) -> bool {
    code <= 0
}

fn result(r: i32) -> &'static str {
    match r {
        0 => "delivered",
        1 => "ignored",
        2 => "already pending",
        3 => "overflow",
        4 => "lost info",
        _ => "unknown",
    }
}

/// The signals of the range sent by tasks `filter` passes; `all` adds kernel-raised ones.
pub fn killsnoop(cap: &Capture, filter: &Filter, all: bool) -> Result<Report> {
    let mut out = Vec::new();
    let cols = [
        "ts",
        "tid",
        "tgid",
        "sig",
        "code",
        "target_tid",
        "target_comm",
        "group",
        "result",
    ];
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        for b in seg.read(Table::Signal, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (sig, code) = (prim::<Int32Type>(&b, "sig"), prim::<Int32Type>(&b, "code"));
            let (target, res) = (
                prim::<Int32Type>(&b, "target_tid"),
                prim::<Int32Type>(&b, "result"),
            );
            let (tcomm, group) = (strings(&b, "target_comm"), bools(&b, "group"));
            for i in 0..b.num_rows() {
                let (t, g) = (tid.value(i), tgid.value(i));
                if !filter.in_range(ts.value(i))
                    || !filter.task(&tasks, t, Some(g))
                    || !(all || sent_by_syscall(code.value(i)))
                {
                    continue;
                }
                out.push(Signal {
                    ts: ts.value(i),
                    time: super::time(cap, ts.value(i)),
                    pid: g,
                    tid: t,
                    comm: tasks.comm(t).to_string(),
                    sig: sig.value(i),
                    name: super::procs::signal_name(sig.value(i)).to_string(),
                    code: code.value(i),
                    target_tid: target.value(i),
                    target_comm: tcomm.value(i).to_string(),
                    group: group.value(i),
                    result: result(res.value(i)).to_string(),
                });
            }
        }
    }
    out.sort_by_key(|s| s.ts);
    Ok(Report {
        signals: out,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// The text table, as killsnoop -T prints it (time first), with the target's name.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<24} {:>7} {:<16} {:>4} {:<8} {:>7} {:<16} RESULT\n",
            "TIME", "PID", "COMM", "SIG", "", "TPID", "TCOMM"
        );
        for s in &self.signals {
            let _ = writeln!(
                out,
                "{:<24} {:>7} {:<16} {:>4} {:<8} {:>7} {:<16} {}",
                s.time, s.pid, s.comm, s.sig, s.name, s.target_tid, s.target_comm, s.result
            );
        }
        out
    }
}
