//! `execsnoop`: one line per successful exec: time, process name, pid, parent, command line (as the
//! kernel copied it at the exec, so short-lived processes and processes that exec again keep theirs).
use std::fmt::Write;

use serde::Serialize;

use super::procs;
use crate::{
    capture::{Capture, Result},
    filter::Filter,
    lost::Lost,
};

/// One exec.
#[derive(Clone, Debug, Serialize)]
pub struct Exec {
    /// Wall clock, UTC.
    pub time: String,
    /// The new process name.
    pub comm: String,
    /// Process id.
    pub pid: i32,
    /// Parent process id, where known.
    pub ppid: Option<i32>,
    /// The file executed.
    pub filename: String,
    /// The command line (argv joined by spaces): as the kernel copied it at the exec; else as the
    /// recorder read it from /proc after the exec (captures from before the copy existed); else
    /// the file alone (the process was gone by then, or `--redact`).
    pub args: String,
    /// Where `args` came from: `exec`, `proc` or `file`.
    pub args_from: &'static str,
    /// True when `args` is the whole command line (not cut short, not the file alone).
    pub full_args: bool,
}

/// Result of `execsnoop`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Execs in time order.
    pub execs: Vec<Exec>,
    /// Losses.
    pub lost: Lost,
}

/// The execs of the range; `redact` keeps only the executed file (no arguments).
pub fn execsnoop(cap: &Capture, filter: &Filter, redact: bool) -> Result<Report> {
    let (events, procs) = procs::load(cap, filter)?;
    let forks = procs::forks(&events);
    let mut execs = Vec::new();
    for e in events.iter().filter(|e| e.kind == "exec") {
        let pid = e.tgid.unwrap_or(e.tid);
        let p = procs.get(&pid).cloned().unwrap_or_default();
        if filter.pid.is_some_and(|p| p != pid)
            || filter.comm.as_deref().is_some_and(|c| c != e.comm)
            || !filter.in_cgroup(p.cgroup.as_deref())
        {
            continue;
        }
        // A fork of this process in the capture names its parent too.
        let forked = forks.get(&pid).and_then(|f| f.parent_tid);
        let filename = e.filename.clone().unwrap_or_default();
        let (args, args_from, full_args) = match (&e.args, &p.cmdline, redact) {
            (_, _, true) => (filename.clone(), "file", false),
            (Some((a, cut)), ..) => (a.clone(), "exec", !cut),
            (None, Some(c), _) => (c.clone(), "proc", true),
            (None, None, _) => (filename.clone(), "file", false),
        };
        execs.push(Exec {
            time: super::time(cap, e.ts),
            comm: e.comm.clone(),
            pid,
            ppid: p.ppid.or(forked),
            filename,
            args,
            args_from,
            full_args,
        });
    }
    Ok(Report {
        execs,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// The text table, as execsnoop -T prints it (time first).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<24} {:<16} {:>7} {:>7} ARGS\n",
            "TIME", "PCOMM", "PID", "PPID"
        );
        for e in &self.execs {
            let ppid = e.ppid.map_or("-".to_string(), |p| p.to_string());
            // A cut command line ends in "..." as libbpf-tools' execsnoop prints it.
            let more = if e.args_from == "exec" && !e.full_args {
                " ..."
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:>7} {:>7} {}{more}",
                e.time, e.comm, e.pid, ppid, e.args
            );
        }
        out
    }
}
