//! The capture contract between the recorder and the analyzer.
//!
//! A capture is a directory holding `manifest.json` ([`Manifest`]) and `segments/<id>/`, each segment
//! a self-contained time slice: one zstd Parquet file per [`Table`] plus `segment.json`
//! ([`SegmentMeta`]). Stacks and task names referenced by a segment's events live in that segment's
//! own `stacks` and `tasks` tables, so deleting an older segment never breaks a younger one.
//! `schemas/README.md` documents every column.

pub mod manifest;
pub mod tables;
pub mod task_state;
pub mod unwind;

/// Formats bytes as B, KiB, MiB or GiB, for status lines and reports.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub use manifest::{journal_dir_name, journal_id};
pub use manifest::{
    ClockAnchor, Cost, Frozen, Manifest, ManifestError, RecordConfig, SegmentMeta, SourceCounts,
    UnwrittenSegment, FORMAT_VERSION, MANIFEST_FILE, SEGMENTS_DIR, SEGMENT_META_FILE,
};
pub use tables::Table;
