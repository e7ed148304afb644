//! `drsnoop`: one line per reclaim a task had to do before its allocation could go on: direct
//! (the machine short of memory) or memcg (its memory cgroup at its limit), with its latency and
//! the pages it reclaimed. Begin and end pair per thread.
use std::{collections::HashMap, fmt::Write};

use arrow::datatypes::{Int32Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::{opt, prim, strings},
    filter::Filter,
    lost::Lost,
    names::Tasks,
    parallel::selected,
};

/// One reclaim.
#[derive(Clone, Debug, Serialize)]
pub struct Reclaim {
    #[serde(skip)]
    ts: u64,
    pub time: String,
    pub pid: i32,
    pub tid: i32,
    pub comm: String,
    /// `direct` or `memcg`.
    pub kind: String,
    pub latency_ns: u64,
    pub pages: u64,
    /// The allocation's order.
    pub order: i32,
}

/// Result of `drsnoop`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub reclaims: Vec<Reclaim>,
    pub lost: Lost,
}

/// The reclaims that began in the range, of tasks `filter` passes.
pub fn drsnoop(cap: &Capture, filter: &Filter) -> Result<Report> {
    // Per thread: the begin waiting for its end (ts, kind, order).
    let mut open: HashMap<i32, (u64, String, i32)> = HashMap::new();
    let mut out = Vec::new();
    let cols = [
        "ts",
        "tid",
        "tgid",
        "event",
        "kind",
        "order",
        "nr_reclaimed",
    ];
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let mut rows = Vec::new();
        for b in seg.read(Table::Reclaim, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (event, kind) = (strings(&b, "event"), strings(&b, "kind"));
            let (order, pages) = (
                prim::<Int32Type>(&b, "order"),
                prim::<UInt64Type>(&b, "nr_reclaimed"),
            );
            for i in 0..b.num_rows() {
                rows.push((
                    ts.value(i),
                    tid.value(i),
                    tgid.value(i),
                    event.value(i) == "begin",
                    kind.value(i).to_string(),
                    opt(order, i).unwrap_or(0),
                    opt(pages, i).unwrap_or(0),
                ));
            }
        }
        rows.sort_by_key(|r| r.0);
        for (ts, tid, tgid, begin, kind, order, pages) in rows {
            if begin {
                open.insert(tid, (ts, kind, order));
                continue;
            }
            let Some((t0, kind, order)) = open.remove(&tid) else {
                continue;
            };
            if !filter.in_range(t0) || !filter.task(&tasks, tid, Some(tgid)) {
                continue;
            }
            out.push(Reclaim {
                ts: t0,
                time: super::time(cap, t0),
                pid: tgid,
                tid,
                comm: tasks.comm(tid).to_string(),
                kind,
                latency_ns: ts.saturating_sub(t0),
                pages,
                order,
            });
        }
    }
    out.sort_by_key(|r| r.ts);
    Ok(Report {
        reclaims: out,
        lost: Lost::in_range(cap, filter),
    })
}

impl Report {
    /// One line per reclaim, as drsnoop -T prints it, with the kind.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<24} {:<16} {:>7} {:<6} {:>10} {:>7}\n",
            "TIME", "COMM", "TID", "KIND", "LAT(ms)", "PAGES"
        );
        for r in &self.reclaims {
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:>7} {:<6} {:>10.3} {:>7}",
                r.time,
                r.comm,
                r.tid,
                r.kind,
                r.latency_ns as f64 / 1e6,
                r.pages
            );
        }
        out
    }
}
