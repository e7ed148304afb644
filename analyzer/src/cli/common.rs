//! What every command of `flightrec-analyze` shares: the capture and filter options, opening the
//! capture with them, and printing JSON or stack reports.
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::{
    capture::Capture,
    filter::{capture_start, parse_time, Filter},
};

/// Filters and output options every command takes.
#[derive(Debug, Args, Clone)]
pub struct Common {
    /// Capture directory.
    pub capture: PathBuf,
    /// Only this process (pid = thread group id).
    #[arg(long)]
    pub pid: Option<i32>,
    /// Only threads with this name.
    #[arg(long)]
    pub comm: Option<String>,
    /// Only tasks in this cgroup or below it (e.g. /kubepods/burstable/pod1234), as the recorder
    /// read it from /proc/PID/cgroup.
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Start of the range: an offset from the capture start (30s, +2m) or a time (2026-11-26T10:00:00Z).
    #[arg(long)]
    pub from: Option<String>,
    /// End of the range, like --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Name user frames the recording host could not, from separate debug files found here by
    /// build ID (DIR/.build-id/xx/rest.debug).
    #[arg(long)]
    pub debuginfo_dir: Option<PathBuf>,
    /// Refuse a capture with any damaged file (by default the readable segments are analyzed and
    /// the damaged files reported with the losses).
    #[arg(long)]
    pub strict: bool,
}

/// Refuses a capture that did not record `source`, saying how to record it.
pub(crate) fn require_events(cap: &Capture, source: &str) -> Result<()> {
    if !cap.manifest.config.events.iter().any(|e| e == source) {
        bail!(
            "this capture did not record {source} events (recorded: {}); record with --events ...,{source}",
            cap.manifest.config.events.join(",")
        );
    }
    Ok(())
}

pub(crate) fn open(common: &Common) -> Result<(Capture, Filter)> {
    let cap = Capture::open_with(&common.capture, common.strict)?;
    let start = capture_start(&cap);
    let time = |t: &Option<String>| -> Result<Option<u64>> {
        t.as_deref()
            .map(|t| parse_time(t, &cap.manifest.clock, start).map_err(anyhow::Error::msg))
            .transpose()
    };
    let filter = Filter {
        pid: common.pid,
        comm: common.comm.clone(),
        cgroup: common.cgroup.clone(),
        from: time(&common.from)?,
        to: time(&common.to)?,
        debuginfo_dir: common.debuginfo_dir.clone(),
    };
    if let Some(d) = &filter.debuginfo_dir {
        if !d.is_dir() {
            bail!("--debuginfo-dir {} is not a directory", d.display());
        }
    }
    if let (Some(f), Some(t)) = (filter.from, filter.to) {
        if f >= t {
            bail!("--from must be before --to");
        }
    }
    Ok((cap, filter))
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    Ok(serde_json::to_string_pretty(v)? + "\n")
}

pub(crate) fn stacks_output(
    r: &crate::stackagg::StackReport,
    common: &Common,
    folded: bool,
    top: usize,
) -> Result<String> {
    if common.json {
        return json(r);
    }
    if folded {
        // stdout stays pure folded lines for flame graph tools; the loss line goes to stderr.
        eprintln!("{}", r.banner());
        return Ok(r.folded());
    }
    let mut out = format!("{}\n", r.banner());
    if r.stacks.is_empty() {
        out.push_str("no matching stacks in this range\n");
    }
    out.push_str(&r.render(top));
    Ok(out)
}
