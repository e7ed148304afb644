//! A capture's tables in the lake schema: the recorded columns in portable types
//! ([`super::types`]) plus what SQL over many captures needs on every row.
//!
//! Added columns, in this order after the recorded ones:
//! - `time` (event tables): wall-clock time of `ts`, from the segment's clock anchor;
//! - `disk` (block): the device's name on the recording host, else `major:minor`;
//! - `name` (syscall): the syscall's name on the capture's architecture;
//! - `folded` (stacks): the stack's frames root first, `;`-joined, as the analyzer names them;
//! - `capture`, `boot_id`, `segment`: which capture, boot and segment the row comes from. Stack
//!   ids, task names and symbols are per segment: join on (`capture`, `segment`);
//! - `host`, `date` (UTC `yyyy-mm-dd`): the partition columns of a lake tree, not stored in its
//!   files (the directory names carry them).
use std::{collections::HashMap, sync::Arc};

use anyhow::{Context, Result};
use arrow::{
    array::{ArrayRef, AsArray, Int64Array, StringArray, TimestampMicrosecondArray},
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit, UInt32Type, UInt64Type},
    record_batch::RecordBatch,
};
use flightrec_schemas::{ClockAnchor, Manifest, Table};

use crate::{
    capture::{Capture, Segment},
    names::Stacks,
};

/// The partition columns of a lake tree, last in every table.
pub const PARTITIONS: [&str; 2] = ["host", "date"];

/// Which capture rows come from.
#[derive(Clone, Debug)]
pub struct Ident {
    /// Capture id ([`capture_id`]).
    pub capture: String,
    /// Recording host.
    pub host: String,
    /// Its boot.
    pub boot_id: String,
}

impl Ident {
    /// The identity of an opened capture.
    pub fn of(cap: &Capture) -> Ident {
        Ident {
            capture: capture_id(&cap.manifest),
            host: cap.manifest.host.clone(),
            boot_id: cap.manifest.boot_id.clone(),
        }
    }
}

/// A capture's id: host, the wall-clock time its recorder first started (the manifest's anchor,
/// stable while the window rolls), the boot, and a snapshot's name. Two snapshots of one window
/// have different ids but share rows: a query over both counts those rows twice.
pub fn capture_id(m: &Manifest) -> String {
    let started = chrono::DateTime::from_timestamp_nanos(m.clock.realtime_ns);
    let mut id = format!(
        "{}-{}-{}",
        m.host,
        started.format("%Y%m%dT%H%M%SZ"),
        m.boot_id.get(..8).unwrap_or(&m.boot_id)
    );
    if let Some(f) = &m.frozen {
        id.push('-');
        id.push_str(&f.name);
    }
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn utc_micros() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

fn added(table: Table) -> Vec<Field> {
    let mut f = Vec::new();
    if table.is_event_table() {
        f.push(Field::new("time", utc_micros(), false));
    }
    match table {
        Table::Block => f.push(Field::new("disk", DataType::Utf8, false)),
        Table::Syscall => f.push(Field::new("name", DataType::Utf8, false)),
        Table::Stacks => f.push(Field::new("folded", DataType::Utf8, true)),
        _ => {}
    }
    f.extend([
        Field::new("capture", DataType::Utf8, false),
        Field::new("boot_id", DataType::Utf8, false),
        Field::new("segment", DataType::Int64, false),
    ]);
    f
}

/// The columns of `table` as a lake file stores them.
pub fn file_schema(table: Table) -> SchemaRef {
    let mut fields: Vec<Field> = table
        .schema()
        .fields()
        .iter()
        .map(|f| {
            Field::new(
                f.name(),
                super::types::lake_type(f.data_type()),
                f.is_nullable(),
            )
        })
        .collect();
    fields.extend(added(table));
    Arc::new(Schema::new(fields))
}

/// The columns of `table` as SQL sees them: the file's, then the partition columns.
pub fn schema(table: Table) -> SchemaRef {
    with_partitions(&file_schema(table))
}

/// `file` followed by the partition columns.
pub fn with_partitions(file: &Schema) -> SchemaRef {
    let mut fields: Vec<Field> = file.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.extend(PARTITIONS.map(|p| Field::new(p, DataType::Utf8, false)));
    Arc::new(Schema::new(fields))
}

/// UTC dates of wall-clock microseconds, one string per day seen.
#[derive(Default)]
pub struct Dates(HashMap<i64, Arc<str>>);

impl Dates {
    /// The `yyyy-mm-dd` of `us` since the epoch.
    pub fn of(&mut self, us: i64) -> Arc<str> {
        let day = us.div_euclid(86_400_000_000);
        self.0
            .entry(day)
            .or_insert_with(|| {
                let t = chrono::DateTime::from_timestamp_micros(day * 86_400_000_000)
                    .unwrap_or_default();
                Arc::from(t.format("%Y-%m-%d").to_string())
            })
            .clone()
    }
}

/// The clock anchor of a segment's `ts` values.
pub fn anchor(cap: &Capture, seg: &Segment) -> ClockAnchor {
    seg.meta.clock.unwrap_or(cap.manifest.clock)
}

/// Wall-clock µs of a monotonic ns timestamp.
pub fn wall_micros(anchor: &ClockAnchor, ts: u64) -> i64 {
    anchor.to_realtime_ns(ts).div_euclid(1000)
}

fn repeat(value: &str, n: usize) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(std::iter::repeat_n(value, n)))
}

/// Rows of `table` in segment `seg`, in the lake schema ([`schema`], partition columns included).
pub fn segment_rows(
    cap: &Capture,
    ident: &Ident,
    seg: &Segment,
    table: Table,
) -> Result<Vec<RecordBatch>> {
    let recorded = table.schema();
    // Columns the format gained later are null in captures from before.
    let present: Vec<&str> = recorded
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|c| !table.added_later().contains(c) || seg.has_column(table, c))
        .collect();
    let batches = seg.read(table, &present)?;
    let stacks = match table {
        Table::Stacks => Some(Stacks::load(seg, None)?),
        _ => None,
    };
    let anchor = anchor(cap, seg);
    let seg_date = Dates::default().of(wall_micros(&anchor, seg.meta.start_ns));
    let target = schema(table);
    let mut dates = Dates::default();
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let n = b.num_rows();
        let mut cols: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
        for f in recorded.fields() {
            cols.push(match b.column_by_name(f.name()) {
                Some(c) => super::types::to_lake(c)?,
                None => arrow::array::new_null_array(&super::types::lake_type(f.data_type()), n),
            });
        }
        let date: ArrayRef = if table.is_event_table() {
            let ts = b
                .column_by_name("ts")
                .context("ts")?
                .as_primitive::<UInt64Type>();
            let us: Vec<i64> = ts
                .values()
                .iter()
                .map(|&t| wall_micros(&anchor, t))
                .collect();
            let date = StringArray::from_iter_values(us.iter().map(|&u| dates.of(u)));
            cols.push(Arc::new(
                TimestampMicrosecondArray::from(us).with_timezone("UTC"),
            ));
            Arc::new(date)
        } else {
            repeat(&seg_date, n)
        };
        match table {
            Table::Block => {
                let dev = b
                    .column_by_name("dev")
                    .context("dev")?
                    .as_primitive::<UInt32Type>();
                cols.push(Arc::new(StringArray::from_iter_values(
                    dev.values().iter().map(|d| {
                        let mm = format!("{}:{}", d >> 20, d & 0xfffff);
                        cap.manifest.devices.get(&mm).cloned().unwrap_or(mm)
                    }),
                )));
            }
            Table::Syscall => {
                let id = b
                    .column_by_name("id")
                    .context("id")?
                    .as_primitive::<Int32Type>();
                cols.push(Arc::new(StringArray::from_iter_values(
                    id.values()
                        .iter()
                        .map(|&i| crate::syscalls::name(&cap.manifest.arch, i)),
                )));
            }
            Table::Stacks => {
                let id = b
                    .column_by_name("stack_id")
                    .context("stack_id")?
                    .as_primitive::<UInt32Type>();
                let s = stacks.as_ref().expect("loaded for the stacks table");
                cols.push(Arc::new(StringArray::from_iter(
                    id.values().iter().map(|&i| s.fold_stack(i)),
                )));
            }
            _ => {}
        }
        cols.push(repeat(&ident.capture, n));
        cols.push(repeat(&ident.boot_id, n));
        cols.push(Arc::new(Int64Array::from(vec![seg.meta.id as i64; n])));
        cols.push(repeat(&ident.host, n));
        cols.push(date);
        out.push(RecordBatch::try_new(target.clone(), cols)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days() {
        let mut d = Dates::default();
        // 2026-11-28T23:59:59.999999Z and one microsecond later.
        let us = 1_795_910_399_999_999;
        assert_eq!(&*d.of(us), "2026-11-28");
        assert_eq!(&*d.of(us + 1), "2026-11-29");
        assert_eq!(&*d.of(-1), "1969-12-31");
    }

    #[test]
    fn every_table_keeps_its_columns_in_portable_types() {
        for t in Table::ALL {
            let s = schema(t);
            for f in s.fields() {
                assert!(
                    !matches!(
                        f.data_type(),
                        DataType::UInt8
                            | DataType::UInt16
                            | DataType::UInt32
                            | DataType::UInt64
                            | DataType::Dictionary(..)
                    ),
                    "{}.{} is {}",
                    t.name(),
                    f.name(),
                    f.data_type()
                );
            }
            for c in ["capture", "boot_id", "segment", "host", "date"] {
                assert!(s.column_with_name(c).is_some(), "{} lacks {c}", t.name());
            }
        }
    }
}
