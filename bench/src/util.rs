//! Helpers: the release binaries, medians, timing commands, printing tables.
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};

/// Builds the release binaries once and returns the directory holding them.
pub fn release_bins() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "flightrec-recorder",
            "-p",
            "flightrec-analyzer",
            "-p",
            "flightrec-tests",
            "-p",
            "flightrec-cluster",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed");
    }
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("bench binary has a directory")?
        .to_path_buf())
}

/// Median of durations.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Runs a shell pipeline, discarding its output; returns the wall time.
pub fn time_sh(script: &str) -> Result<Duration> {
    let t = Instant::now();
    let status = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .status()
        .with_context(|| format!("running {script}"))?;
    if !status.success() {
        bail!("{script} failed ({status})");
    }
    Ok(t.elapsed())
}

/// Prints a table with aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", parts.join(" | "));
    };
    line(header.iter().map(|s| s.to_string()).collect());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for r in rows {
        line(r.clone());
    }
}

/// Bytes of all files below `p`.
pub fn dir_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.path().is_dir() {
                dir_bytes(&e.path())
            } else {
                e.metadata().map(|m| m.len()).unwrap_or(0)
            }
        })
        .sum()
}

/// `flightrec-analyze summary --json` of a capture; None when it cannot be read (not recorded yet).
pub fn capture_summary(bins: &str, capture: &Path) -> Option<serde_json::Value> {
    let out = Command::new(format!("{bins}/flightrec-analyze"))
        .arg("summary")
        .arg(capture)
        .arg("--json")
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Rows of an event table in a capture summary.
pub fn events(summary: &serde_json::Value, table: &str) -> u64 {
    summary["events"][table].as_u64().unwrap_or(0)
}

/// Samples in a perf.data file (`perf report --stats`).
pub fn perf_samples(data: &Path) -> Result<u64> {
    let out = Command::new("perf")
        .args(["report", "--stats", "-i"])
        .arg(data)
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SAMPLE events:     394223  (99.8%)": the first such line is the total.
    Ok(text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("SAMPLE events:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Parses counts like 10M, 500k.
pub fn parse_count(s: &str) -> Result<u64, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| n * mult)
        .map_err(|e| format!("{s}: {e}"))
}

pub use flightrec_tests::perf_record_switches;
