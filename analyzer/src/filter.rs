//! Filters shared by every command: time range, process and comm.
use chrono::{DateTime, NaiveDateTime, Utc};
use flightrec_schemas::ClockAnchor;

use crate::{capture::Capture, names::Tasks};

/// What to keep.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Process (tgid) to keep.
    pub pid: Option<i32>,
    /// Thread name to keep.
    pub comm: Option<String>,
    /// Cgroup to keep: tasks in it or below it (`--cgroup`).
    pub cgroup: Option<String>,
    /// Keep events at or after this monotonic ns.
    pub from: Option<u64>,
    /// Keep events before this monotonic ns.
    pub to: Option<u64>,
    /// Not a filter but carried with it: where separate debug files are (`--debuginfo-dir`).
    pub debuginfo_dir: Option<std::path::PathBuf>,
}

/// The range `filter` selects in monotonic ns: its `--from`/`--to`, or the capture's first and
/// last event.
pub fn window(cap: &Capture, filter: &Filter) -> (u64, u64) {
    let start = filter.from.unwrap_or_else(|| capture_start(cap));
    let end = filter.to.unwrap_or_else(|| {
        cap.segments
            .iter()
            .map(|s| s.meta.last_event_ns.unwrap_or(s.meta.end_ns))
            .max()
            .unwrap_or(start)
    });
    (start, end)
}

/// Start of the capture's data: the earliest event, or the first segment's start.
pub fn capture_start(cap: &Capture) -> u64 {
    cap.segments
        .iter()
        .map(|s| s.meta.first_event_ns.unwrap_or(s.meta.start_ns))
        .min()
        .unwrap_or(0)
}

/// Parses a `--from`/`--to` value: a wall-clock time (RFC 3339, or `YYYY-MM-DD HH:MM:SS[.f]` in
/// UTC) or an offset from the capture start (`90s`, `+1m30s`). Returns monotonic ns.
pub fn parse_time(text: &str, anchor: &ClockAnchor, start: u64) -> Result<u64, String> {
    let t = text.trim();
    if let Ok(d) = humantime::parse_duration(t.trim_start_matches('+')) {
        return Ok(start + d.as_nanos() as u64);
    }
    let wall: Option<DateTime<Utc>> = DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
                .map(|n| n.and_utc())
        });
    let Some(wall) = wall else {
        return Err(format!(
            "cannot read time {text:?}: give an offset from the capture start (30s, +2m) or a wall-clock time (2026-11-26T10:00:00Z)"
        ));
    };
    let ns = wall.timestamp_nanos_opt().ok_or("time out of range")?;
    let mono = anchor.monotonic_ns as i64 + (ns - anchor.realtime_ns);
    Ok(mono.max(0) as u64)
}

/// Formats a monotonic timestamp as UTC wall-clock time.
pub fn wall_clock(anchor: &ClockAnchor, mono: u64) -> String {
    let ns = anchor.to_realtime_ns(mono);
    DateTime::<Utc>::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Filter {
    /// True when a timestamp is inside the range.
    #[inline]
    pub fn in_range(&self, ts: u64) -> bool {
        self.from.is_none_or(|f| ts >= f) && self.to.is_none_or(|t| ts < t)
    }

    /// True when every event from `first` to `last` is inside the range (no range: always).
    pub fn covers(&self, first: Option<u64>, last: Option<u64>) -> bool {
        match (first, last) {
            (Some(first), Some(last)) => self.in_range(first) && self.in_range(last),
            _ => true,
        }
    }

    /// True when a segment may hold events of the range.
    pub fn overlaps(&self, first: Option<u64>, last: Option<u64>) -> bool {
        let (Some(first), Some(last)) = (first, last) else {
            return false;
        };
        self.from.is_none_or(|f| last >= f) && self.to.is_none_or(|t| first < t)
    }

    /// True when a thread passes the pid and comm filters.
    #[inline]
    pub fn task(&self, tasks: &Tasks, tid: i32, tgid: Option<i32>) -> bool {
        if let Some(pid) = self.pid {
            if tgid.or_else(|| tasks.tgid(tid)) != Some(pid) {
                return false;
            }
        }
        if let Some(comm) = &self.comm {
            if &**tasks.comm(tid) != comm.as_str() {
                return false;
            }
        }
        self.cgroup.is_none() || self.in_cgroup(tasks.cgroup(tid))
    }

    /// True when a task of cgroup `cgroup` (None: not recorded) passes `--cgroup`.
    pub fn in_cgroup(&self, cgroup: Option<&str>) -> bool {
        let Some(want) = self.cgroup.as_deref() else {
            return true;
        };
        let want = want.trim_end_matches('/');
        cgroup.is_some_and(|c| {
            want.is_empty() || c == want || c.strip_prefix(want).is_some_and(|r| r.starts_with('/'))
        })
    }

    /// True when neither pid, comm nor cgroup is filtered.
    pub fn all_tasks(&self) -> bool {
        self.pid.is_none() && self.comm.is_none() && self.cgroup.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_wall_clock_times() {
        let anchor = ClockAnchor {
            monotonic_ns: 1_000_000_000_000,
            realtime_ns: 1_764_115_200_000_000_000, // 2025-11-26T00:00:00Z
        };
        assert_eq!(parse_time("30s", &anchor, 5).unwrap(), 30_000_000_005);
        assert_eq!(parse_time("+1m", &anchor, 0).unwrap(), 60_000_000_000);
        let t = parse_time("2025-11-26T00:00:01Z", &anchor, 0).unwrap();
        assert_eq!(t, 1_001_000_000_000);
        assert_eq!(
            parse_time("2025-11-26 00:00:02", &anchor, 0).unwrap(),
            1_002_000_000_000
        );
        assert!(parse_time("yesterday", &anchor, 0)
            .unwrap_err()
            .contains("cannot read time"));
        assert_eq!(
            wall_clock(&anchor, 1_001_500_000_000),
            "2025-11-26T00:00:01.500Z"
        );
    }

    #[test]
    fn ranges() {
        let f = Filter {
            from: Some(10),
            to: Some(20),
            ..Default::default()
        };
        assert!(f.in_range(10) && !f.in_range(20) && !f.in_range(9));
        assert!(f.overlaps(Some(0), Some(10)));
        assert!(!f.overlaps(Some(20), Some(30)));
        assert!(!f.overlaps(None, None));
    }
}
