//! The lake's two tables from manifests: `captures` (one row per capture) and `segments` (one
//! row per segment, with its losses), so a fleet question can find its captures and check what
//! each one lost without reading any events.
use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
    },
    datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit},
    record_batch::RecordBatch,
};

use super::tables::{anchor, wall_micros, with_partitions, Dates, Ident};
use crate::capture::Capture;

/// A table made from manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaTable {
    /// One row per capture.
    Captures,
    /// One row per segment.
    Segments,
}

impl MetaTable {
    /// Both.
    pub const ALL: [MetaTable; 2] = [MetaTable::Captures, MetaTable::Segments];

    /// Table name.
    pub fn name(self) -> &'static str {
        match self {
            MetaTable::Captures => "captures",
            MetaTable::Segments => "segments",
        }
    }

    /// Columns as a lake file stores them.
    pub fn file_schema(self) -> SchemaRef {
        let ts = || DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let f = |n: &str, t: DataType, null: bool| Field::new(n, t, null);
        let mut fields = vec![f("capture", DataType::Utf8, false)];
        fields.extend(match self {
            MetaTable::Captures => vec![
                f("boot_id", DataType::Utf8, false),
                f("kernel_release", DataType::Utf8, false),
                f("arch", DataType::Utf8, false),
                f("cpus", DataType::Int32, false),
                f("recorder_version", DataType::Utf8, false),
                f("events", DataType::Utf8, false),
                f("freq_hz", DataType::Int64, false),
                f("started", ts(), false),
                f("window_start", ts(), false),
                f("window_end", ts(), false),
                f("window_start_ns", DataType::Int64, false),
                f("window_end_ns", DataType::Int64, false),
                f("segments", DataType::Int64, false),
                f("rows", DataType::Int64, false),
                f("lost", DataType::Int64, false),
                f("frozen_name", DataType::Utf8, true),
                f("frozen_reason", DataType::Utf8, true),
                f("frozen_time", ts(), true),
            ],
            MetaTable::Segments => vec![
                f("boot_id", DataType::Utf8, false),
                f("segment", DataType::Int64, false),
                f("start", ts(), false),
                f("end", ts(), false),
                f("start_ns", DataType::Int64, false),
                f("end_ns", DataType::Int64, false),
                f("rows", DataType::Int64, false),
                f("emitted", DataType::Int64, false),
                f("lost", DataType::Int64, false),
                f("missed", DataType::Int64, false),
                f("stack_errors", DataType::Int64, false),
                f("decode_errors", DataType::Int64, false),
                f("bytes", DataType::Int64, false),
                f("salvaged", DataType::Boolean, false),
            ],
        });
        Arc::new(Schema::new(fields))
    }

    /// Columns as SQL sees them, partition columns last.
    pub fn schema(self) -> SchemaRef {
        with_partitions(&self.file_schema())
    }

    /// The rows of one capture.
    pub fn rows(self, cap: &Capture, ident: &Ident) -> Result<RecordBatch> {
        let m = &cap.manifest;
        let mut dates = Dates::default();
        let i64s = |v: Vec<u64>| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                v.into_iter().map(|x| x as i64),
            ))
        };
        let times = |v: Vec<i64>| -> ArrayRef {
            Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC"))
        };
        let strs = |v: &str, n: usize| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(std::iter::repeat_n(v, n)))
        };
        let segs = &cap.segments;
        let rows_of = |s: &flightrec_schemas::SegmentMeta| -> u64 {
            s.rows
                .iter()
                .filter(|(t, _)| {
                    flightrec_schemas::Table::from_name(t).is_some_and(|t| t.is_event_table())
                })
                .map(|(_, n)| n)
                .sum()
        };
        let mut cols: Vec<ArrayRef> = Vec::new();
        match self {
            MetaTable::Captures => {
                let (first, last) = (&segs[0], &segs[segs.len() - 1]);
                let start = wall_micros(&anchor(cap, first), first.meta.start_ns);
                let end = wall_micros(&anchor(cap, last), last.meta.end_ns);
                let unwritten: u64 = m.unwritten.iter().flat_map(|u| u.rows.values()).sum();
                let frozen = m.frozen.as_ref();
                cols.extend([
                    strs(&ident.capture, 1),
                    strs(&m.boot_id, 1),
                    strs(&m.kernel_release, 1),
                    strs(&m.arch, 1),
                    Arc::new(Int32Array::from(vec![m.cpus as i32])) as ArrayRef,
                    strs(&m.recorder_version, 1),
                    strs(&m.config.events.join(","), 1),
                    i64s(vec![m.config.freq_hz]),
                    times(vec![m.clock.realtime_ns.div_euclid(1000)]),
                    times(vec![start]),
                    times(vec![end]),
                    i64s(vec![first.meta.start_ns]),
                    i64s(vec![last.meta.end_ns]),
                    i64s(vec![segs.len() as u64]),
                    i64s(vec![segs.iter().map(|s| rows_of(&s.meta)).sum()]),
                    i64s(vec![
                        segs.iter().map(|s| s.meta.total_lost()).sum::<u64>() + unwritten,
                    ]),
                    Arc::new(StringArray::from(vec![frozen.map(|f| f.name.clone())])),
                    Arc::new(StringArray::from(vec![frozen.map(|f| f.reason.clone())])),
                    Arc::new(
                        TimestampMicrosecondArray::from(vec![
                            frozen.map(|f| wall_micros(&m.clock, f.frozen_ns))
                        ])
                        .with_timezone("UTC"),
                    ),
                    strs(&ident.host, 1),
                    Arc::new(StringArray::from(vec![dates.of(start).to_string()])),
                ]);
            }
            MetaTable::Segments => {
                let n = segs.len();
                let sum =
                    |f: fn(&flightrec_schemas::SegmentMeta) -> &flightrec_schemas::SourceCounts| {
                        i64s(segs.iter().map(|s| f(&s.meta).values().sum()).collect())
                    };
                let starts: Vec<i64> = segs
                    .iter()
                    .map(|s| wall_micros(&anchor(cap, s), s.meta.start_ns))
                    .collect();
                cols.extend([
                    strs(&ident.capture, n),
                    strs(&m.boot_id, n),
                    i64s(segs.iter().map(|s| s.meta.id).collect()),
                    times(starts.clone()),
                    times(
                        segs.iter()
                            .map(|s| wall_micros(&anchor(cap, s), s.meta.end_ns))
                            .collect(),
                    ),
                    i64s(segs.iter().map(|s| s.meta.start_ns).collect()),
                    i64s(segs.iter().map(|s| s.meta.end_ns).collect()),
                    i64s(segs.iter().map(|s| rows_of(&s.meta)).collect()),
                    sum(|m| &m.emitted),
                    sum(|m| &m.lost),
                    sum(|m| &m.missed),
                    sum(|m| &m.stack_errors),
                    i64s(segs.iter().map(|s| s.meta.decode_errors).collect()),
                    i64s(segs.iter().map(|s| s.meta.bytes).collect()),
                    Arc::new(BooleanArray::from(
                        segs.iter().map(|s| s.meta.salvaged).collect::<Vec<_>>(),
                    )),
                    strs(&ident.host, n),
                    Arc::new(StringArray::from_iter_values(
                        starts.iter().map(|&s| dates.of(s).to_string()),
                    )),
                ]);
            }
        }
        Ok(RecordBatch::try_new(self.schema(), cols)?)
    }
}
