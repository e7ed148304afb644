//! `manifest.json` (one per capture) and `segment.json` (one per segment).
use std::{collections::BTreeMap, fs, io, path::Path};

use serde::{Deserialize, Serialize};

/// Version of the on-disk format. Readers refuse captures with a newer major version.
pub const FORMAT_VERSION: u32 = 1;
/// File name of the capture manifest.
pub const MANIFEST_FILE: &str = "manifest.json";
/// Directory holding the segments.
pub const SEGMENTS_DIR: &str = "segments";
/// File name of a segment's metadata, written last: a segment without it is not finished.
pub const SEGMENT_META_FILE: &str = "segment.json";

/// Counts per event source (`sched`, `process`, `profile`, `block`, `syscall`, `tcp`).
pub type SourceCounts = BTreeMap<String, u64>;

/// A pair of clock readings taken back to back, to map event timestamps to wall-clock time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockAnchor {
    /// CLOCK_MONOTONIC in ns (the clock of every `ts` column).
    pub monotonic_ns: u64,
    /// CLOCK_REALTIME in ns since the Unix epoch.
    pub realtime_ns: i64,
}

impl ClockAnchor {
    /// Wall-clock ns since the epoch of a monotonic timestamp.
    pub fn to_realtime_ns(&self, monotonic_ns: u64) -> i64 {
        self.realtime_ns + (monotonic_ns as i64 - self.monotonic_ns as i64)
    }
}

/// How the recorder was configured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordConfig {
    /// Enabled sources.
    pub events: Vec<String>,
    /// Profile sampling frequency per CPU, Hz.
    pub freq_hz: u64,
    /// Target segment length, ns.
    pub segment_ns: u64,
    /// Rolling window, ns.
    pub window_ns: u64,
    /// Size cap of all segments, bytes.
    pub max_size_bytes: u64,
    /// Ring buffer size, bytes.
    pub ringbuf_bytes: u64,
    /// Syscall filter on tgid.
    pub syscall_pid: Option<u32>,
    /// Syscall filter on comm.
    pub syscall_comm: Option<String>,
    /// Command lines and file paths were left out (`--redact`).
    #[serde(default)]
    pub redacted: bool,
    /// Wake-ups carry their waker's stacks (`--waker-stacks`: the `sched_waking` table).
    #[serde(default)]
    pub waker_stacks: bool,
    /// The programs attached as BTF raw tracepoints (`--attach auto` on a kernel with BTF); the
    /// others were attached as tracepoints. Both write the same records.
    #[serde(default)]
    pub raw_tracepoints: Vec<String>,
}

/// The capture manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// Host name of the recording machine.
    pub host: String,
    /// `uname -r` of the recording machine.
    pub kernel_release: String,
    /// Machine architecture (`x86_64`, `aarch64`), for syscall names.
    pub arch: String,
    /// `/proc/sys/kernel/random/boot_id`: timestamps compare only within one boot.
    pub boot_id: String,
    /// Number of CPUs online when recording started.
    pub cpus: u32,
    /// Version of the recorder that wrote the capture.
    pub recorder_version: String,
    /// Clocks read when recording started.
    pub clock: ClockAnchor,
    /// Recorder configuration.
    pub config: RecordConfig,
    /// Block device names by `major:minor` (from /sys/class/block), to name the `dev` column.
    #[serde(default)]
    pub devices: BTreeMap<String, String>,
    /// Finished segments, oldest first.
    pub segments: Vec<SegmentMeta>,
    /// Set in a snapshot: when and why the window was frozen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<Frozen>,
    /// Segments of the window that could not be written (a full disk): their events are lost and
    /// counted here, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unwritten: Vec<UnwrittenSegment>,
}

/// A segment the recorder closed but could not write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnwrittenSegment {
    /// Its sequence number (no directory exists for it).
    pub id: u64,
    /// Monotonic ns when it was opened.
    pub start_ns: u64,
    /// Monotonic ns when it was closed.
    pub end_ns: u64,
    /// Events it held, per event table: all lost.
    pub rows: BTreeMap<String, u64>,
    /// Why it could not be written.
    pub error: String,
}

impl UnwrittenSegment {
    /// Events it held.
    pub fn events(&self) -> u64 {
        self.rows.values().sum()
    }
}

/// Why and when a snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frozen {
    /// Snapshot name.
    pub name: String,
    /// What asked for it: `request`, `SIGUSR1`, or the trigger and what it saw.
    pub reason: String,
    /// Monotonic ns of the cause (the trigger's event, or the request).
    pub cause_ns: u64,
    /// Monotonic ns of the freeze.
    pub frozen_ns: u64,
}

/// Metadata of one finished segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SegmentMeta {
    /// Sequence number; also the directory name, zero padded to 8 digits.
    pub id: u64,
    /// Monotonic ns when the segment was opened.
    pub start_ns: u64,
    /// Monotonic ns when the segment was closed.
    pub end_ns: u64,
    /// Earliest and latest event timestamps in the segment (absent when it holds no events).
    pub first_event_ns: Option<u64>,
    /// See `first_event_ns`.
    pub last_event_ns: Option<u64>,
    /// Rows per table name.
    pub rows: BTreeMap<String, u64>,
    /// Records the kernel wrote into the ring buffer while this segment was open, per source.
    pub emitted: SourceCounts,
    /// Records the kernel dropped (ring buffer full), per source.
    pub lost: SourceCounts,
    /// Stack walks that failed, per source (the event is kept with a null stack).
    pub stack_errors: SourceCounts,
    /// Program runs the kernel skipped because another BPF program was running on that CPU, per
    /// source: events that happened but were not recorded.
    pub missed: SourceCounts,
    /// Records user space could not decode.
    pub decode_errors: u64,
    /// Distinct user frames in the segment's stacks.
    #[serde(default)]
    pub user_frames: u64,
    /// Of those, frames no symbol was found for (shown as `[unknown]` with module and offset).
    #[serde(default)]
    pub user_frames_unknown: u64,
    /// Bytes of the segment's files.
    pub bytes: u64,
    /// What recording this segment cost.
    #[serde(default)]
    pub cost: Cost,
    /// Rebuilt from the write-ahead journal of a recorder that was killed: the segment ends at the
    /// journal's last checkpoint (`end_ns`), and events after it were lost uncounted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub salvaged: bool,
    /// Clock readings taken as the segment closed: wall-clock time of this segment's `ts` values,
    /// right even when the wall clock stepped since the manifest's anchor (absent in captures from
    /// before it existed, and in salvaged segments: readers fall back to the manifest's `clock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<ClockAnchor>,
}

/// The recorder's own cost over one segment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cost {
    /// Time spent in the eBPF programs, ns per source (kernel BPF statistics; 0 where unavailable).
    pub bpf_ns: SourceCounts,
    /// Program runs per source.
    pub bpf_runs: SourceCounts,
    /// CPU time of the recorder process (user + system), ns.
    pub recorder_cpu_ns: u64,
    /// Most bytes found queued in the ring buffer by one drain: how full it got.
    pub ring_peak_bytes: u64,
}

impl SegmentMeta {
    /// Directory name of the segment.
    pub fn dir_name(&self) -> String {
        segment_dir_name(self.id)
    }

    /// All events lost in this segment, whatever the cause.
    pub fn total_lost(&self) -> u64 {
        self.lost.values().sum::<u64>() + self.missed.values().sum::<u64>() + self.decode_errors
    }
}

/// Directory name of segment `id`.
pub fn segment_dir_name(id: u64) -> String {
    format!("{id:08}")
}

/// Directory name of the write-ahead journal of open segment `id`, inside `segments/`. Hidden, so
/// readers of finished segments never mistake it for one.
pub fn journal_dir_name(id: u64) -> String {
    format!(".{id:08}.journal")
}

/// The segment id of a journal directory name.
pub fn journal_id(name: &str) -> Option<u64> {
    let digits = name.strip_prefix('.')?.strip_suffix(".journal")?;
    (digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// Why a manifest or segment metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        cause: io::Error,
    },
    /// The file is not valid JSON of the expected shape.
    #[error("{path} is not a valid flightrec file: {cause}")]
    Parse {
        /// The file.
        path: String,
        /// The cause.
        cause: serde_json::Error,
    },
    /// Written by a newer flightrec.
    #[error("{path} has format version {found}; this build reads up to {FORMAT_VERSION}: upgrade flightrec")]
    Version {
        /// The file.
        path: String,
        /// Its version.
        found: u32,
    },
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, ManifestError> {
    let p = path.display().to_string();
    let text = fs::read(path).map_err(|source| ManifestError::Io {
        path: p.clone(),
        cause: source,
    })?;
    serde_json::from_slice(&text).map_err(|cause| ManifestError::Parse { path: p, cause })
}

impl Manifest {
    /// Reads and version-checks a manifest.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        // Check the version before the shape, so a future format says so instead of "invalid".
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let v: Version = read_json(path)?;
        if v.format_version > FORMAT_VERSION {
            return Err(ManifestError::Version {
                path: path.display().to_string(),
                found: v.format_version,
            });
        }
        read_json(path)
    }
}

impl SegmentMeta {
    /// Reads a segment's `segment.json`.
    pub fn read(path: &Path) -> Result<SegmentMeta, ManifestError> {
        read_json(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_maps_monotonic_to_wall_clock() {
        let a = ClockAnchor {
            monotonic_ns: 1_000,
            realtime_ns: 1_700_000_000_000_000_000,
        };
        assert_eq!(a.to_realtime_ns(1_500), 1_700_000_000_000_000_500);
        assert_eq!(a.to_realtime_ns(500), 1_699_999_999_999_999_500);
    }

    #[test]
    fn journal_names_round_trip_and_nothing_else_parses() {
        assert_eq!(journal_id(&journal_dir_name(42)), Some(42));
        for bad in [
            ".42.journal",
            "00000042",
            ".00000042.tmp",
            ".0000004x.journal",
            "x",
        ] {
            assert_eq!(journal_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn future_version_is_refused_with_its_number() {
        let dir = std::env::temp_dir().join(format!("flightrec-schemas-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let p = dir.join(MANIFEST_FILE);
        fs::write(&p, br#"{"format_version": 99, "something": "new"}"#).unwrap();
        let err = Manifest::read(&p).unwrap_err().to_string();
        assert!(err.contains("format version 99"), "{err}");
        fs::write(&p, b"{not json").unwrap();
        let err = Manifest::read(&p).unwrap_err().to_string();
        assert!(err.contains("not a valid flightrec file"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
