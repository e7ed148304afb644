//! `execsnoop`: one line per successful exec: time, process name, pid, parent, command line.
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
    /// The command line (argv joined by spaces) as read from /proc right after the exec; the file
    /// alone when the process was gone by then, or with `--redact`.
    pub args: String,
    /// True when `args` is the whole command line.
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
        let (args, full_args) = match (&p.cmdline, redact) {
            (Some(c), false) => (c.clone(), true),
            _ => (filename.clone(), false),
        };
        execs.push(Exec {
            time: super::time(cap, e.ts),
            comm: e.comm.clone(),
            pid,
            ppid: p.ppid.or(forked),
            filename,
            args,
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
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:>7} {:>7} {}",
                e.time, e.comm, e.pid, ppid, e.args
            );
        }
        out
    }
}
