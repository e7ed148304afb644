//! `biosnoop`: one line per block request (issue to completion): time, process, disk, direction,
//! sector, bytes, latency; and `bitesize`: the request sizes per process as a histogram. The
//! process is the task current at issue, as libbpf-tools' biosnoop (without -Q) and bitesize
//! take it; a request dispatched by a kernel worker is the worker's.
use std::{collections::HashMap, fmt::Write};

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result, Segment},
    columns::{opt, prim, strings},
    filter::Filter,
    hist::fmt_ns,
    lost::Lost,
    names::Tasks,
    parallel::selected,
};

/// One request.
#[derive(Clone, Debug, Serialize)]
pub struct Request {
    /// Issue, wall clock (UTC).
    pub time: String,
    /// Process name of the issuing task.
    pub comm: String,
    /// Its process id.
    pub pid: i32,
    /// Disk name (or major:minor).
    pub disk: String,
    /// R, W, ... (the kernel's rwbs).
    pub rwbs: String,
    /// First sector.
    pub sector: u64,
    /// Bytes.
    pub bytes: u32,
    /// Issue to completion, ns.
    pub latency_ns: u64,
}

/// Result of `biosnoop`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// Requests by issue time.
    pub requests: Vec<Request>,
    /// Requests issued in the range that never completed in the capture.
    pub incomplete: u64,
    /// Losses.
    pub lost: Lost,
}

/// One completed request, as the capture holds it.
#[derive(Clone, Debug)]
pub struct Completed {
    /// Issue, monotonic ns.
    pub issue: u64,
    /// Completion, monotonic ns.
    pub done: u64,
    /// Device number.
    pub dev: u32,
    /// First sector.
    pub sector: u64,
    /// Bytes.
    pub bytes: u32,
    /// R, W, ... (the kernel's rwbs).
    pub rwbs: String,
    /// Process of the issuing task.
    pub pid: i32,
    /// Its name.
    pub comm: String,
}

/// The task that issued a request, when the filter keeps it.
struct Issuer {
    pid: i32,
    comm: String,
    rwbs: String,
}

/// A request issued and not completed yet.
struct Issued {
    ts: u64,
    bytes: u32,
    by: Option<Issuer>,
}

/// The requests of `segs` issued in `filter`'s range by tasks it selects and completed in the
/// capture, by issue time, paired issue -> completion of the same (dev, sector) as `latency --kind
/// block` pairs them; and how many such requests never completed. One pairing for biosnoop,
/// bitesize, the report and the Perfetto and Chrome traces.
pub fn completed(segs: &[&Segment], filter: &Filter) -> Result<(Vec<Completed>, u64)> {
    let mut rows = Vec::new();
    for seg in segs {
        let tasks = Tasks::load(seg)?;
        let cols = [
            "ts", "tid", "tgid", "event", "dev", "sector", "bytes", "rwbs",
        ];
        for b in seg.read(Table::Block, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (dev, sector, bytes) = (
                prim::<UInt32Type>(&b, "dev"),
                prim::<UInt64Type>(&b, "sector"),
                prim::<UInt32Type>(&b, "bytes"),
            );
            let (event, rwbs) = (strings(&b, "event"), strings(&b, "rwbs"));
            for i in 0..b.num_rows() {
                let issue = event.value(i) == "issue";
                // An issue: who, if the filter keeps it; a completion: None.
                let who = issue.then(|| {
                    let (t, g) = (tid.value(i), tgid.value(i));
                    let ok = filter.in_range(ts.value(i)) && filter.task(&tasks, t, Some(g));
                    ok.then(|| Issuer {
                        pid: g,
                        comm: tasks.comm(g).to_string(),
                        rwbs: rwbs.value(i).to_string(),
                    })
                });
                rows.push((
                    ts.value(i),
                    dev.value(i),
                    sector.value(i),
                    opt(bytes, i).unwrap_or(0),
                    who,
                ));
            }
        }
    }
    rows.sort_by_key(|r| r.0);
    let mut open: HashMap<(u32, u64), Issued> = HashMap::new();
    let mut out = Vec::new();
    for (ts, dev, sector, bytes, who) in rows {
        match who {
            Some(by) => {
                open.insert((dev, sector), Issued { ts, bytes, by });
            }
            None => {
                let Some(Issued {
                    ts: issue,
                    bytes,
                    by: Some(by),
                }) = open.remove(&(dev, sector))
                else {
                    continue;
                };
                out.push(Completed {
                    issue,
                    done: ts.max(issue),
                    dev,
                    sector,
                    bytes,
                    rwbs: by.rwbs,
                    pid: by.pid,
                    comm: by.comm,
                });
            }
        }
    }
    out.sort_by_key(|r| (r.issue, r.done));
    let incomplete = open.values().filter(|o| o.by.is_some()).count() as u64;
    Ok((out, incomplete))
}

/// The completed requests issued in the range by tasks `filter` selects.
pub fn biosnoop(cap: &Capture, filter: &Filter) -> Result<Report> {
    let (done, incomplete) = completed(&selected(cap, filter), filter)?;
    let requests = done
        .into_iter()
        .map(|r| Request {
            time: super::time(cap, r.issue),
            comm: r.comm,
            pid: r.pid,
            disk: cap.disk_name(r.dev),
            rwbs: r.rwbs,
            sector: r.sector,
            bytes: r.bytes,
            latency_ns: r.done - r.issue,
        })
        .collect();
    Ok(Report {
        requests,
        incomplete,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// The text table, as biosnoop prints it (wall-clock time first).
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<24} {:<16} {:>7} {:<7} {:<4} {:>12} {:>8} {:>10}\n",
            "TIME", "COMM", "PID", "DISK", "T", "SECTOR", "BYTES", "LAT"
        );
        for r in &self.requests {
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:>7} {:<7} {:<4} {:>12} {:>8} {:>10}",
                r.time,
                r.comm,
                r.pid,
                r.disk,
                r.rwbs,
                r.sector,
                r.bytes,
                fmt_ns(r.latency_ns)
            );
        }
        if self.incomplete > 0 {
            let _ = writeln!(
                out,
                "({} requests never completed in the capture)",
                self.incomplete
            );
        }
        out
    }

    /// `bitesize`: request sizes per process name, in log2 slots of KiB as bitesize counts them.
    pub fn sizes(&self) -> Vec<Sizes> {
        let mut by: HashMap<&str, Sizes> = HashMap::new();
        for r in &self.requests {
            let e = by.entry(&r.comm).or_insert_with(|| Sizes {
                comm: r.comm.clone(),
                ..Default::default()
            });
            let kib = r.bytes as u64 / 1024;
            let slot = if kib == 0 { 0 } else { kib.ilog2() as usize };
            if e.slots.len() <= slot {
                e.slots.resize(slot + 1, 0);
            }
            e.slots[slot] += 1;
            e.count += 1;
            e.bytes += r.bytes as u64;
        }
        let mut out: Vec<Sizes> = by.into_values().collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.comm.cmp(&b.comm)));
        out
    }
}

/// One process name's request sizes.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Sizes {
    /// Process name.
    pub comm: String,
    /// Requests.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Requests per slot: slot 0 is 0-1 KiB, slot s is 2^s to 2^(s+1)-1 KiB.
    pub slots: Vec<u64>,
}

impl Sizes {
    /// The histogram as bitesize prints it.
    pub fn render(&self) -> String {
        let mut out = format!("\nProcess Name = {}\n", self.comm);
        let _ = writeln!(out, "{:>20} : {:<8} distribution", "Kbytes", "count");
        let max = self.slots.iter().copied().max().unwrap_or(0).max(1);
        for (s, &n) in self.slots.iter().enumerate() {
            let (lo, hi) = if s == 0 {
                (0, 1)
            } else {
                (1u64 << s, (2u64 << s) - 1)
            };
            let bar = "*".repeat((40 * n).div_ceil(max) as usize);
            let _ = writeln!(out, "{:>9} -> {:<9} : {:<8} |{:<40}|", lo, hi, n, bar);
        }
        out
    }
}
