//! The capture contract between the recorder and the analyzer.
//!
//! A capture is a directory holding `manifest.json` ([`Manifest`]) and `segments/<id>/`, each segment
//! a self-contained time slice: one zstd Parquet file per [`Table`] plus `segment.json`
//! ([`SegmentMeta`]). Stacks and task names referenced by a segment's events live in that segment's
//! own `stacks` and `tasks` tables, so deleting an older segment never breaks a younger one.
//! `schemas/README.md` documents every column.

pub mod manifest;
pub mod tables;

pub use manifest::{
    ClockAnchor, Manifest, ManifestError, RecordConfig, SegmentMeta, SourceCounts, FORMAT_VERSION,
    MANIFEST_FILE, SEGMENTS_DIR, SEGMENT_META_FILE,
};
pub use tables::Table;
