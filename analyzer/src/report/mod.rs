//! `flightrec-analyze report`: one self-contained HTML file for a ticket.
//!
//! Everything the page shows is computed here with the analyzer's own commands (summary, latency,
//! profile, offcpu, the `processes` view) and embedded as JSON; the page's script
//! (`report.js`, no library, nothing fetched) draws the timeline, the heat map and the flame
//! graphs from it. The page is a minijinja template (`report.html`).
use anyhow::{Context, Result};
use minijinja::{context, Environment};

use crate::{
    capture::Capture,
    filter::Filter,
    latency::{self, By, Kind},
    offcpu, profile,
    summary::summary,
};

pub mod data;
pub mod findings;
pub mod timeline;

const TEMPLATE: &str = include_str!("report.html");
const SCRIPT: &str = include_str!("report.js");
const STYLE: &str = include_str!("report.css");
const HISTOGRAM: &str = include_str!("hist.html");

/// Processes that ended badly and every process's lifecycle, from the `processes` view.
fn processes(cap: &Capture) -> Result<Vec<serde_json::Value>> {
    use crate::sql::{output, source::Input, Format};
    let input = Input::Capture(Box::new(cap.clone()));
    let (schema, batches) = crate::sql::block_on(async move {
        let ctx = crate::sql::session(&[input]).await?;
        let df = ctx
            .sql(
                "SELECT pid, ppid, comm, exe, CAST(start_time AS VARCHAR) AS start_time, \
                 CAST(end_time AS VARCHAR) AS end_time, lifetime_ns, status, exit_code, signal \
                 FROM processes ORDER BY start_time NULLS FIRST, pid",
            )
            .await?;
        let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
        Ok((schema, df.collect().await?))
    })?;
    let json = output::render(schema, &batches, Format::Json, None)?;
    serde_json::from_str(&json).context("the processes view as JSON")
}

/// Timeline markers: processes that ended badly, the slowest block requests, and the trigger that
/// froze the capture.
fn markers(
    cap: &Capture,
    filter: &Filter,
    (ended, procs): (&[findings::Ended], &[serde_json::Value]),
    sum: &crate::summary::Summary,
) -> Result<Vec<serde_json::Value>> {
    let mut out: Vec<serde_json::Value> = ended
        .iter()
        .filter_map(|p| {
            let proc = procs.iter().find(|q| q["pid"].as_i64() == Some(p.pid))?;
            let label = match p.signal {
                Some(s) => format!("{} ({}) killed by signal {s}", p.comm, p.pid),
                None => format!("{} ({}) exit {}", p.comm, p.pid, p.exit_code.unwrap_or(0)),
            };
            Some(serde_json::json!({"time": proc.get("end_time")?, "label": label}))
        })
        .collect();
    // The slowest block requests (10 ms or more, at most 20) where they were issued.
    let segs = crate::parallel::selected(cap, filter);
    let in_range = Filter {
        pid: None,
        comm: None,
        ..filter.clone()
    };
    let (requests, _) = crate::tools::biosnoop::completed(&segs, &in_range)?;
    let mut slow: Vec<_> = requests
        .into_iter()
        .filter(|r| r.done - r.issue >= 10_000_000)
        .collect();
    slow.sort_by_key(|r| std::cmp::Reverse(r.done - r.issue));
    for r in slow.iter().take(20) {
        out.push(serde_json::json!({
            "time": crate::filter::wall_clock(&cap.manifest.clock, r.issue),
            "label": format!(
                "slow I/O: {} took {}",
                crate::convert::perfetto::block::label(r),
                crate::hist::fmt_ns(r.done - r.issue)
            ),
            "kind": "io",
        }));
    }
    if let Some((reason, _, cause)) = &sum.frozen {
        out.push(serde_json::json!({"time": cause, "label": format!("trigger: {reason}")}));
    }
    Ok(out)
}

/// What the page shows beside the timeline, each from the analyzer's own command.
struct Views {
    sum: crate::summary::Summary,
    runq: latency::Report,
    block: latency::Report,
    syscalls: latency::Report,
    syscall_all: latency::Report,
    oncpu: crate::stackagg::StackReport,
    off: offcpu::Placed<(u32, u32)>,
    procs: Vec<serde_json::Value>,
}

impl Views {
    fn compute(cap: &Capture, filter: &Filter, grid: &timeline::Grid) -> Result<Views> {
        Ok(Views {
            sum: summary(cap, filter)?,
            runq: latency::latency(cap, Kind::Runq, None, filter)?,
            block: latency::latency(cap, Kind::Block, Some(By::Disk), filter)?,
            syscalls: latency::latency(cap, Kind::Syscall, Some(By::Syscall), filter)?,
            syscall_all: latency::latency(cap, Kind::Syscall, None, filter)?,
            oncpu: profile::profile(cap, filter)?,
            // Off-CPU time for the flame graph and, by the cell of its switch-out, the heat map.
            off: offcpu::offcpu_placed(cap, filter, &Default::default(), |ts| grid.place(ts))?,
            procs: processes(cap)?,
        })
    }
}

/// The report of the segments `filter` selects, as one HTML page.
pub fn build(cap: &Capture, filter: &Filter) -> Result<String> {
    let (start, end) = crate::filter::window(cap, filter);
    let grid = timeline::Grid::new(cap, (start, end));
    let mut table = data::StackTable::default();
    // The timeline reads its segments one after another; the other views run beside it (each is
    // parallel over segments itself).
    let (time, views) = rayon::join(
        || timeline::timeline(cap, filter, &grid, &mut table),
        || Views::compute(cap, filter, &grid),
    );
    let (mut time, views) = (time?, views?);
    time.off_cells = timeline::off_cells(views.off.places, &mut table);
    let Views {
        sum,
        runq,
        block,
        syscalls,
        syscall_all,
        oncpu,
        procs,
        ..
    } = views;
    let off = views.off.report;
    let ended: Vec<findings::Ended> = procs
        .iter()
        .filter(|p| {
            p.get("signal").is_some_and(|s| !s.is_null())
                || p.get("exit_code").and_then(|c| c.as_i64()).unwrap_or(0) != 0
        })
        .filter_map(|p| serde_json::from_value(p.clone()).ok())
        .collect();
    let seconds = end.saturating_sub(start) as f64 / 1e9;
    let possible = cap.manifest.config.freq_hz as f64 * cap.manifest.cpus as f64 * seconds;
    // CPU time from the switches where they were recorded (exact), else from the samples.
    let switched: f64 = time.busy.values().flatten().sum();
    let cpu = if !time.busy.is_empty() {
        (
            switched,
            cap.manifest.cpus as f64 * seconds,
            "the scheduler switches",
        )
    } else {
        let per_sample = 1.0 / cap.manifest.config.freq_hz.max(1) as f64;
        (
            oncpu.total as f64 * per_sample,
            possible * per_sample,
            "CPU samples",
        )
    };
    let found = findings::check(&findings::Evidence {
        summary: &sum,
        runq: &runq,
        block: &block,
        ended: &ended,
        cpu,
    });
    // The syscalls that took the most time in total.
    let mut top_syscalls = syscalls.groups.clone();
    top_syscalls.sort_by_key(|g| std::cmp::Reverse(g.dist.total));
    top_syscalls.truncate(10);
    let data = serde_json::json!({
        "oncpu": table.weighted(&oncpu),
        "offcpu": table.weighted(&off),
        "timeline": time,
        "markers": markers(cap, filter, (&ended, &procs), &sum)?,
        "frozen": sum.frozen,
        "frames": table.frames,
        "stacks": table.stacks,
    });
    let data = data::encode(&data)?;
    let mut env = Environment::new();
    env.add_template("report", TEMPLATE)?;
    env.add_template("hist", HISTOGRAM)?;
    env.add_filter("ns", |ns: u64| crate::hist::fmt_ns(ns));
    let html = env.get_template("report")?.render(context! {
        s => sum,
        findings => found,
        runq => runq.groups,
        block => block.groups,
        syscalls => top_syscalls,
        syscall_all => syscall_all.groups,
        processes => procs,
        oncpu_total => oncpu.total,
        offcpu_total => off.total,
        offcpu_unmeasured => off.unmeasured,
        data => data,
        script => SCRIPT,
        style => STYLE,
        generated => chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        version => env!("CARGO_PKG_VERSION"),
    })?;
    Ok(html)
}
