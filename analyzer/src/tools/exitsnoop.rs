//! `exitsnoop`: one line per process exit: time, name, pid, parent, thread, age, and how it ended
//! (exit code, or the signal that killed it).
use std::fmt::Write;

use serde::Serialize;

use super::procs;
use crate::{
    capture::{Capture, Result},
    filter::Filter,
    lost::Lost,
};

/// One exit.
#[derive(Clone, Debug, Serialize)]
pub struct Exit {
    /// Wall clock, UTC.
    pub time: String,
    /// Process name.
    pub comm: String,
    /// Process id.
    pub pid: i32,
    /// Parent process id, where known.
    pub ppid: Option<i32>,
    /// The thread that exited (the last one, for a process).
    pub tid: i32,
    /// Seconds since its fork, when the fork is in the capture.
    pub age_s: Option<f64>,
    /// Exit code, for a normal exit.
    pub exit_code: Option<i32>,
    /// The signal that killed it.
    pub signal: Option<i32>,
    /// True when it dumped core.
    pub core: bool,
    /// As exitsnoop prints it: `0`, `code N`, `signal N (NAME)`.
    pub exit: String,
}

/// Result of `exitsnoop`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Exits in time order.
    pub exits: Vec<Exit>,
    /// Losses.
    pub lost: Lost,
}

/// Options of `exitsnoop`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Thread exits too, not only whole processes (`-T`).
    pub threads: bool,
    /// Only exits with a non-zero code or a signal (`-x`).
    pub failed: bool,
}

/// The exits of the range.
pub fn exitsnoop(cap: &Capture, filter: &Filter, opts: Options) -> Result<Report> {
    let (events, procs) = procs::load(cap, filter)?;
    let forks = procs::forks(&events);
    let mut exits = Vec::new();
    for e in events.iter().filter(|e| e.kind == "exit") {
        if !(e.group_dead || opts.threads) {
            continue;
        }
        let pid = e.tgid.unwrap_or(e.tid);
        let status = e.status.unwrap_or(0);
        if (opts.failed && status == 0)
            || filter.pid.is_some_and(|p| p != pid)
            || filter.comm.as_deref().is_some_and(|c| c != e.comm)
            || !filter.in_cgroup(procs.get(&pid).and_then(|p| p.cgroup.as_deref()))
        {
            continue;
        }
        let fork = forks.get(&e.tid);
        let sig = status & 0x7f;
        exits.push(Exit {
            time: super::time(cap, e.ts),
            comm: e.comm.clone(),
            pid,
            ppid: procs
                .get(&pid)
                .and_then(|p| p.ppid)
                .or(fork.and_then(|f| f.parent_tid)),
            tid: e.tid,
            age_s: fork.map(|f| (e.ts - f.ts) as f64 / 1e9),
            exit_code: (sig == 0).then_some((status >> 8) & 0xff),
            signal: (sig != 0).then_some(sig),
            core: status & 0x80 != 0,
            exit: procs::describe_status(status),
        });
    }
    Ok(Report {
        exits,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// The text table, as exitsnoop -t prints it (time first).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<24} {:<16} {:>7} {:>7} {:>7} {:>8} EXIT_CODE\n",
            "TIME", "PCOMM", "PID", "PPID", "TID", "AGE(s)"
        );
        for e in &self.exits {
            let ppid = e.ppid.map_or("-".to_string(), |p| p.to_string());
            let age = e.age_s.map_or("-".to_string(), |a| format!("{a:.2}"));
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:>7} {:>7} {:>7} {:>8} {}",
                e.time, e.comm, e.pid, ppid, e.tid, age, e.exit
            );
        }
        out
    }
}
