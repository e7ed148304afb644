//! Automatic checks of a capture, each with a severity, the evidence in words, and the section of
//! the report that shows it (as JDK Mission Control's rules page does).
use serde::Serialize;

use crate::{hist::fmt_ns, latency, summary::Summary};

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Checked, nothing wrong.
    Ok,
    /// Worth a look.
    Info,
    /// Likely part of the incident.
    Warning,
}

/// One check's result.
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    /// How much it matters.
    pub severity: Severity,
    /// What was checked.
    pub title: String,
    /// What the capture shows.
    pub evidence: String,
    /// The report section with the evidence (an element id).
    pub section: &'static str,
}

fn finding(severity: Severity, title: &str, evidence: String, section: &'static str) -> Finding {
    Finding {
        severity,
        title: title.to_string(),
        evidence,
        section,
    }
}

/// A process that ended badly, as the `processes` view gives it.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Ended {
    /// Process id.
    pub pid: i64,
    /// Its name.
    pub comm: String,
    /// Exit code, for a normal exit.
    pub exit_code: Option<i64>,
    /// The signal that killed it.
    pub signal: Option<i64>,
}

/// Everything the checks look at.
pub struct Evidence<'a> {
    /// The capture's summary.
    pub summary: &'a Summary,
    /// Run-queue latency, all threads.
    pub runq: &'a latency::Report,
    /// Block latency per disk.
    pub block: &'a latency::Report,
    /// Processes that exited non-zero or were killed.
    pub ended: &'a [Ended],
    /// CPU time used and available over the window, in seconds, and what says so.
    pub cpu: (f64, f64, &'static str),
}

/// Runs every check; the worst first.
pub fn check(e: &Evidence) -> Vec<Finding> {
    use Severity::*;
    let mut out = Vec::new();
    if let Some(g) = e.runq.groups.first() {
        let p99 = g.dist.percentiles.p99;
        let sev = match p99 {
            p if p >= 10_000_000 => Warning,
            p if p >= 1_000_000 => Info,
            _ => Ok,
        };
        out.push(finding(
            sev,
            "Run-queue latency",
            format!(
                "p99 {} over {} waits for a CPU (max {}); threads waiting 10 ms or more are starved",
                fmt_ns(p99),
                g.dist.count,
                fmt_ns(g.dist.percentiles.max)
            ),
            "runq",
        ));
    }
    for g in &e.block.groups {
        let (p99, max) = (g.dist.percentiles.p99, g.dist.percentiles.max);
        let sev = if p99 >= 20_000_000 || max >= 100_000_000 {
            Warning
        } else if p99 >= 5_000_000 {
            Info
        } else {
            Ok
        };
        out.push(finding(
            sev,
            &format!("Disk {} requests", g.name),
            format!(
                "p99 {} and slowest {} over {} requests",
                fmt_ns(p99),
                fmt_ns(max),
                g.dist.count
            ),
            "block",
        ));
    }
    let killed: Vec<String> = e
        .ended
        .iter()
        .filter_map(|p| Some(format!("{} ({}) by signal {}", p.comm, p.pid, p.signal?)))
        .collect();
    let failed: Vec<String> = e
        .ended
        .iter()
        .filter(|p| p.signal.is_none())
        .filter_map(|p| Some(format!("{} ({}) exit {}", p.comm, p.pid, p.exit_code?)))
        .collect();
    out.push(match killed.len() {
        0 => finding(Ok, "Processes killed", "none".into(), "processes"),
        n => finding(
            Warning,
            "Processes killed",
            format!("{n}: {}", list(&killed)),
            "processes",
        ),
    });
    out.push(match failed.len() {
        0 => finding(Ok, "Processes exiting non-zero", "none".into(), "processes"),
        n => finding(
            Info,
            "Processes exiting non-zero",
            format!("{n}: {}", list(&failed)),
            "processes",
        ),
    });
    let (used, possible, source) = e.cpu;
    if possible > 0.0 {
        let busy = used / possible;
        let sev = match busy {
            b if b >= 0.9 => Warning,
            b if b >= 0.7 => Info,
            _ => Ok,
        };
        out.push(finding(
            sev,
            "CPU saturation",
            format!(
                "CPUs busy {:.0}% of the window ({used:.1} of {possible:.1} CPU-seconds, from {source})",
                100.0 * busy
            ),
            "cpu",
        ));
    }
    let lost = &e.summary.lost;
    out.push(if lost.total == 0 {
        finding(
            Ok,
            "Lost events",
            "none: every event the kernel emitted is here".into(),
            "header",
        )
    } else {
        finding(Warning, "Lost events", lost.banner(), "header")
    });
    if let Some(stacks) = &e.summary.user_stacks {
        let (all, whole) = stacks
            .iter()
            .fold((0, 0), |(a, w), p| (a + p.stacks, w + p.whole));
        if all > 0 {
            let cut = 1.0 - whole as f64 / all as f64;
            let sev = match cut {
                c if c > 0.2 => Warning,
                c if c > 0.05 => Info,
                _ => Ok,
            };
            out.push(finding(
                sev,
                "Truncated stacks",
                format!(
                    "{:.1}% of {all} user stacks stop short of the outermost frame (flame graphs mark them)",
                    100.0 * cut
                ),
                "stacks",
            ));
        }
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// The first few of a list, and how many more.
fn list(items: &[String]) -> String {
    let mut s = items.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 5 {
        s.push_str(&format!(" and {} more", items.len() - 5));
    }
    s
}
