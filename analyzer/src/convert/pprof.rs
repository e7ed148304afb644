//! pprof: gzipped `profile.proto` (github.com/google/pprof/proto/profile.proto), the messages
//! declared here with prost (no protoc at build time).
//!
//! One sample per folded stack of the report, locations leaf first, the process name (`comm`) as a
//! label rather than a frame. Functions are named already, so consumers never symbolize; every
//! user frame's location points at a mapping of its module with the build ID, kernel frames at a
//! `[kernel.kallsyms]` mapping. Addresses are not kept (the folded values name frames, not
//! addresses): locations have address 0 and one line each.
use std::{collections::HashMap, io::Write};

use anyhow::Result;
use flate2::{write::GzEncoder, Compression};
use prost::Message;

use super::{Frames, Kind, Origin, Window};
use crate::stackagg::StackReport;

#[derive(Clone, PartialEq, Message)]
struct Profile {
    #[prost(message, repeated, tag = "1")]
    sample_type: Vec<ValueType>,
    #[prost(message, repeated, tag = "2")]
    sample: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    mapping: Vec<Mapping>,
    #[prost(message, repeated, tag = "4")]
    location: Vec<Location>,
    #[prost(message, repeated, tag = "5")]
    function: Vec<Function>,
    #[prost(string, repeated, tag = "6")]
    string_table: Vec<String>,
    #[prost(int64, tag = "9")]
    time_nanos: i64,
    #[prost(int64, tag = "10")]
    duration_nanos: i64,
    #[prost(message, optional, tag = "11")]
    period_type: Option<ValueType>,
    #[prost(int64, tag = "12")]
    period: i64,
    #[prost(int64, repeated, tag = "13")]
    comment: Vec<i64>,
    /// The string of the sample type shown by default.
    #[prost(int64, tag = "14")]
    default_sample_type: i64,
}

#[derive(Clone, PartialEq, Message)]
struct ValueType {
    #[prost(int64, tag = "1")]
    r#type: i64,
    #[prost(int64, tag = "2")]
    unit: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(uint64, repeated, tag = "1")]
    location_id: Vec<u64>,
    #[prost(int64, repeated, tag = "2")]
    value: Vec<i64>,
    #[prost(message, repeated, tag = "3")]
    label: Vec<Label>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(int64, tag = "1")]
    key: i64,
    #[prost(int64, tag = "2")]
    str: i64,
}

#[derive(Clone, PartialEq, Message)]
struct Mapping {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "5")]
    filename: i64,
    #[prost(int64, tag = "6")]
    build_id: i64,
    #[prost(bool, tag = "7")]
    has_functions: bool,
}

#[derive(Clone, PartialEq, Message)]
struct Location {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(uint64, tag = "2")]
    mapping_id: u64,
    #[prost(message, repeated, tag = "4")]
    line: Vec<Line>,
}

#[derive(Clone, PartialEq, Message)]
struct Line {
    #[prost(uint64, tag = "1")]
    function_id: u64,
}

#[derive(Clone, PartialEq, Message)]
struct Function {
    #[prost(uint64, tag = "1")]
    id: u64,
    #[prost(int64, tag = "2")]
    name: i64,
    #[prost(int64, tag = "3")]
    system_name: i64,
    #[prost(int64, tag = "4")]
    filename: i64,
}

/// The string table, index 0 the empty string as the format requires.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Strings {
        Strings {
            table: vec![String::new()],
            index: HashMap::from([(String::new(), 0)]),
        }
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_string());
        self.index.insert(s.to_string(), i);
        i
    }
}

/// The profile of `report` (from `profile` for [`Kind::Cpu`], `offcpu` for [`Kind::Offcpu`]).
fn build(report: &StackReport, kind: Kind, frames: &Frames, window: &Window) -> Profile {
    let mut s = Strings::new();
    let mut p = Profile::default();
    let vt = |s: &mut Strings, t: &str, u: &str| ValueType {
        r#type: s.id(t),
        unit: s.id(u),
    };
    let period_ns = 1_000_000_000 / window.freq_hz.max(1);
    match kind {
        Kind::Cpu => {
            p.sample_type = vec![
                vt(&mut s, "samples", "count"),
                vt(&mut s, "cpu", "nanoseconds"),
            ];
            p.period_type = Some(vt(&mut s, "cpu", "nanoseconds"));
            p.period = period_ns as i64;
            p.default_sample_type = s.id("cpu");
        }
        Kind::Offcpu => {
            p.sample_type = vec![
                vt(&mut s, "events", "count"),
                vt(&mut s, "off_cpu", "nanoseconds"),
            ];
            p.period_type = Some(vt(&mut s, "off_cpu", "nanoseconds"));
            p.period = 1;
            p.default_sample_type = s.id("off_cpu");
        }
    }
    p.time_nanos = window.start_ns;
    p.duration_nanos = window.duration_ns;
    p.comment = vec![s.id(&window.comment)];

    let mut mappings: HashMap<(String, String), u64> = HashMap::new();
    let mut locations: HashMap<&str, u64> = HashMap::new();
    let comm_key = s.id("comm");
    for row in &report.stacks {
        let mut names = row.folded.split(';');
        let comm = names.next().unwrap_or_default();
        let mut ids: Vec<u64> = Vec::new();
        for name in names {
            let next = locations.len() as u64 + 1;
            let id = *locations.entry(name).or_insert_with(|| {
                let (file, build_id) = match frames.origin(name) {
                    Origin::User((path, bid)) => (path.to_string(), bid.map(|b| b.to_string())),
                    Origin::Kernel => ("[kernel.kallsyms]".to_string(), None),
                    Origin::Unknown => (String::new(), None),
                };
                let key = (file.clone(), build_id.clone().unwrap_or_default());
                let next_map = mappings.len() as u64 + 1;
                let mapping_id = *mappings.entry(key).or_insert_with(|| {
                    p.mapping.push(Mapping {
                        id: next_map,
                        filename: s.id(&file),
                        build_id: s.id(build_id.as_deref().unwrap_or("")),
                        has_functions: true,
                    });
                    next_map
                });
                let function = Function {
                    id: next,
                    name: s.id(name),
                    system_name: s.id(name),
                    filename: s.id(&file),
                };
                p.function.push(function);
                p.location.push(Location {
                    id: next,
                    mapping_id,
                    line: vec![Line { function_id: next }],
                });
                next
            });
            ids.push(id);
        }
        // pprof lists a sample's locations leaf first.
        ids.reverse();
        let value = match kind {
            Kind::Cpu => vec![row.count as i64, (row.count * period_ns) as i64],
            Kind::Offcpu => vec![row.count as i64, row.value as i64],
        };
        p.sample.push(Sample {
            location_id: ids,
            value,
            label: vec![Label {
                key: comm_key,
                str: s.id(comm),
            }],
        });
    }
    p.string_table = s.table;
    p
}

/// Writes `report` as a gzipped pprof profile.
pub fn write(
    report: &StackReport,
    kind: Kind,
    frames: &Frames,
    window: &Window,
    out: impl Write,
) -> Result<()> {
    let bytes = build(report, kind, frames, window).encode_to_vec();
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&bytes)?;
    gz.finish()?;
    Ok(())
}
