//! `syscount`: syscalls counted and timed (enter to exit of the same thread), per syscall or per
//! process, the most frequent first: the analyzer's syscall latency, tabulated as syscount -L
//! prints it.
use std::fmt::Write;

use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    filter::Filter,
    hist::fmt_ns,
    latency::{self, By, Kind},
    lost::Lost,
};

/// One syscall or process.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Syscall name, or `comm (pid)`.
    pub name: String,
    /// Completed calls.
    pub count: u64,
    /// Their total time, ns.
    pub total_ns: u64,
}

/// Result of `syscount`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Rows, most calls first.
    pub rows: Vec<Row>,
    /// Rows left out by `--top`.
    pub more: usize,
    /// Losses.
    pub lost: Lost,
}

/// Counts per syscall (or per process with `by_process`), the `top` most frequent.
pub fn syscount(cap: &Capture, filter: &Filter, by_process: bool, top: usize) -> Result<Report> {
    let by = if by_process { By::Pid } else { By::Syscall };
    let r = latency::latency(cap, Kind::Syscall, Some(by), filter)?;
    let mut rows: Vec<Row> = r
        .groups
        .into_iter()
        .map(|g| Row {
            name: g.name,
            count: g.dist.count,
            total_ns: g.dist.total,
        })
        .collect();
    rows.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    let more = rows.len().saturating_sub(top);
    rows.truncate(top);
    Ok(Report {
        rows,
        more,
        lost: r.lost,
    })
}

impl Report {
    /// The table, as syscount -L prints it.
    pub fn render(&self, by_process: bool) -> String {
        let what = if by_process { "PROCESS" } else { "SYSCALL" };
        let mut out = format!("{what:<28} {:>10} {:>14}\n", "COUNT", "TIME");
        for r in &self.rows {
            let _ = writeln!(
                out,
                "{:<28} {:>10} {:>14}",
                r.name,
                r.count,
                fmt_ns(r.total_ns)
            );
        }
        if self.more > 0 {
            let _ = writeln!(out, "({} more; --top to show more)", self.more);
        }
        out
    }
}
