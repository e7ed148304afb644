//! The `runq_latency` and `offcpu` views of local captures, paired in one pass per segment the way
//! the analyzer's `latency --kind runq` and `offcpu` pair them, instead of by the SQL of
//! `schemas/sql`: on DataFusion that SQL unions the events and sorts them all for a window, 6-10x
//! the analyzer's time (BENCHMARKS §5). Same columns, same rows (text dictionary-encoded: the
//! intervals share few hosts, names and stacks); the SQL stays the definition that lakes, DuckDB,
//! Spark and Ballista run, and a test holds the two equal.
use std::sync::Arc;

use anyhow::Result;
use arrow::{
    array::{
        Array, ArrayRef, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
        TimestampMicrosecondArray,
    },
    datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, TimeUnit},
};
use flightrec_schemas::Table;
use rayon::prelude::*;
use rustc_hash::FxHashMap as HashMap;

use crate::{
    capture::{Capture, Segment},
    columns::{opt, prim, strings},
    intervals::{stitch, Intervals},
    lake::tables::{anchor, wall_micros, Ident},
    latency::runq_events,
    names::Stacks,
    offcpu::switches,
    parallel::map_segments,
};

/// A view served natively for local captures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// `runq_latency`.
    RunqLatency,
    /// `offcpu`.
    Offcpu,
}

/// What opened an interval: the thread, the segment (its index in the capture), when, and for
/// off-CPU the switch-out's process, state and stacks.
#[derive(Clone, Copy, Debug)]
struct Opened {
    tid: i32,
    seg: usize,
    ts: u64,
    pid: i32,
    state: i64,
    kstack: Option<u32>,
    ustack: Option<u32>,
}

impl View {
    /// Both.
    pub const ALL: [View; 2] = [View::RunqLatency, View::Offcpu];

    /// Its SQL name.
    pub fn name(self) -> &'static str {
        match self {
            View::RunqLatency => "runq_latency",
            View::Offcpu => "offcpu",
        }
    }

    /// Its columns, as the SQL view gives them.
    pub fn schema(self) -> SchemaRef {
        // Text as a dictionary: a capture's intervals share a few host, comm and stack strings.
        let utf8 = |n: &str| {
            Field::new(
                n,
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            )
        };
        let int = |n: &str, t: DataType| Field::new(n, t, true);
        let time = Field::new(
            "time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        );
        let mut f = vec![
            utf8("host"),
            utf8("boot_id"),
            utf8("capture"),
            int("segment", DataType::Int64),
            int("tid", DataType::Int32),
            int("pid", DataType::Int32),
            utf8("comm"),
        ];
        match self {
            View::RunqLatency => f.extend([
                time,
                int("ts", DataType::Int64),
                int("latency_ns", DataType::Int64),
            ]),
            View::Offcpu => f.extend([
                int("state", DataType::Int64),
                time,
                int("ts", DataType::Int64),
                int("offcpu_ns", DataType::Int64),
                int("kstack", DataType::Int64),
                int("ustack", DataType::Int64),
                utf8("folded"),
            ]),
        }
        Arc::new(Schema::new(f))
    }

    /// Every interval of the capture, one batch per segment that opened some.
    pub fn rows(self, cap: &Capture, ident: &Ident) -> Result<Vec<RecordBatch>> {
        self.pair(cap)?
            .into_par_iter()
            .enumerate()
            .filter(|(_, rows)| !rows.is_empty())
            .map(|(i, rows)| self.batch(cap, ident, &cap.segments[i], &rows))
            .collect()
    }

    /// The intervals by the segment that opened them: paired per segment in parallel (all of a
    /// segment's own pairs opened in it), then stitched across segments in order.
    fn pair(self, cap: &Capture) -> Result<Vec<Vec<(Opened, u64)>>> {
        let index: HashMap<u64, usize> = cap
            .segments
            .iter()
            .enumerate()
            .map(|(i, s)| (s.meta.id, i))
            .collect();
        let segs: Vec<&Segment> = cap.segments.iter().collect();
        let parts = map_segments(&segs, self.name(), |seg| {
            let at = |tid, ts| Opened {
                tid,
                seg: index[&seg.meta.id],
                ts,
                pid: tid,
                state: 0,
                kstack: None,
                ustack: None,
            };
            let mut done = Vec::new();
            let mut open: Intervals<i32, Opened> = Intervals::default();
            match self {
                View::RunqLatency => {
                    for (ts, opened, closed) in runq_events(seg)? {
                        if closed > 0 {
                            done.extend(open.close(&closed, ts));
                        }
                        if opened > 0 {
                            open.open(opened, ts, at(opened, ts));
                        }
                    }
                }
                View::Offcpu => {
                    for r in switches(seg)? {
                        if r.next > 0 {
                            done.extend(open.close(&r.next, r.ts));
                        }
                        if r.prev > 0 {
                            let o = Opened {
                                pid: r.tgid,
                                state: r.state,
                                kstack: r.kstack,
                                ustack: r.ustack,
                                ..at(r.prev, r.ts)
                            };
                            open.open(r.prev, r.ts, o);
                        }
                    }
                }
            }
            Ok((done, open))
        })?;
        let (mut by_seg, opens): (Vec<_>, Vec<_>) = parts.into_iter().unzip();
        stitch(opens, |o, d| by_seg[o.seg].push((o, d)));
        Ok(by_seg)
    }

    /// The rows opened in `seg`, named with its tasks (the SQL's MAX per thread) and stacks.
    fn batch(
        self,
        cap: &Capture,
        ident: &Ident,
        seg: &Segment,
        rows: &[(Opened, u64)],
    ) -> Result<RecordBatch> {
        let mut tasks: HashMap<i32, (Option<i32>, Option<String>)> = HashMap::default();
        for b in seg.read(Table::Tasks, &["tid", "tgid", "comm"])? {
            let (tid, tgid, comm) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "tgid"),
                strings(&b, "comm"),
            );
            for i in 0..b.num_rows() {
                let t = tasks.entry(tid.value(i)).or_default();
                t.0 = t.0.max(opt(tgid, i));
                if comm.is_valid(i) && t.1.as_deref().is_none_or(|c| comm.value(i) > c) {
                    t.1 = Some(comm.value(i).to_string());
                }
            }
        }
        let comm = |tid: i32| {
            tasks
                .get(&tid)
                .and_then(|t| t.1.as_deref())
                .unwrap_or("[unknown]")
        };
        let anchor = anchor(cap, seg);
        let n = rows.len();
        let text = |v: &str| -> ArrayRef {
            Arc::new(DictionaryArray::new(
                Int32Array::from(vec![0; n]),
                Arc::new(StringArray::from(vec![v])),
            ))
        };
        let mut cols: Vec<ArrayRef> = vec![
            text(&ident.host),
            text(&ident.boot_id),
            text(&ident.capture),
            Arc::new(Int64Array::from(vec![seg.meta.id as i64; n])),
            Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.0.tid))),
        ];
        let time: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                rows.iter().map(|r| wall_micros(&anchor, r.0.ts)),
            )
            .with_timezone("UTC"),
        );
        let ts: ArrayRef = Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.0.ts as i64),
        ));
        let dur: ArrayRef = Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.1 as i64),
        ));
        let mut names: Vec<&str> = Vec::new();
        let mut name_of: HashMap<i32, i32> = HashMap::default();
        let keys: Int32Array = rows
            .iter()
            .map(|r| {
                *name_of.entry(r.0.tid).or_insert_with(|| {
                    names.push(comm(r.0.tid));
                    names.len() as i32 - 1
                })
            })
            .collect();
        let comms: ArrayRef = Arc::new(DictionaryArray::new(
            keys,
            Arc::new(StringArray::from(names)),
        ));
        match self {
            View::RunqLatency => {
                cols.push(Arc::new(Int32Array::from_iter_values(rows.iter().map(
                    |r| tasks.get(&r.0.tid).and_then(|t| t.0).unwrap_or(r.0.tid),
                ))));
                cols.extend([comms, time, ts, dur]);
            }
            View::Offcpu => {
                let stacks = Stacks::load(seg, None)?;
                let mut folded: HashMap<u32, Option<String>> = HashMap::default();
                let mut fold = |id: Option<u32>| -> String {
                    id.and_then(|i| {
                        folded
                            .entry(i)
                            .or_insert_with(|| stacks.fold_stack(i))
                            .as_deref()
                            .map(|f| format!(";{f}"))
                    })
                    .unwrap_or_default()
                };
                // Dictionary-encoded: millions of intervals share a few thousand lines.
                let mut lines: Vec<String> = Vec::new();
                let mut line_of: HashMap<(i32, Option<u32>, Option<u32>), i32> = HashMap::default();
                let keys: Int32Array = rows
                    .iter()
                    .map(|r| {
                        let c = comm(r.0.tid);
                        *line_of
                            .entry((r.0.tid, r.0.ustack, r.0.kstack))
                            .or_insert_with(|| {
                                let mut line = c.to_string();
                                line.push_str(&fold(r.0.ustack));
                                line.push_str(&fold(r.0.kstack));
                                lines.push(line);
                                lines.len() as i32 - 1
                            })
                    })
                    .collect();
                let id = |f: fn(&Opened) -> Option<u32>| -> ArrayRef {
                    Arc::new(Int64Array::from_iter(
                        rows.iter().map(|r| f(&r.0).map(i64::from)),
                    ))
                };
                cols.push(Arc::new(Int32Array::from_iter_values(
                    rows.iter().map(|r| r.0.pid),
                )));
                cols.extend([
                    comms,
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0.state))),
                    time,
                    ts,
                    dur,
                    id(|o| o.kstack),
                    id(|o| o.ustack),
                    Arc::new(DictionaryArray::new(
                        keys,
                        Arc::new(StringArray::from_iter_values(lines)),
                    )),
                ]);
            }
        }
        Ok(RecordBatch::try_new(self.schema(), cols)?)
    }
}
