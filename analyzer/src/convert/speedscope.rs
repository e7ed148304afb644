//! speedscope's file format (https://www.speedscope.app/file-format-schema.json): one sampled
//! profile per process name, stacks root first with their weights, frames shared (with the module
//! they are in as `file`). The weights are `profile`'s CPU time (samples x period) or `offcpu`'s
//! off-CPU time, in nanoseconds.
use std::{collections::BTreeMap, collections::HashMap, io::Write};

use anyhow::Result;
use serde_json::{json, Value};

use super::{Frames, Kind, Origin, Window};
use crate::stackagg::StackReport;

/// The speedscope document of `report`.
fn build(report: &StackReport, kind: Kind, frames: &Frames, window: &Window) -> Value {
    let period_ns = 1_000_000_000 / window.freq_hz.max(1);
    let mut shared: Vec<Value> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    // Per process name: (stacks, weights), in the report's order (largest first).
    let mut by_comm: BTreeMap<&str, (Vec<Vec<usize>>, Vec<u64>)> = BTreeMap::new();
    for row in &report.stacks {
        let mut names = row.folded.split(';');
        let comm = names.next().unwrap_or_default();
        let stack: Vec<usize> = names
            .map(|name| {
                *index.entry(name).or_insert_with(|| {
                    let mut frame = json!({ "name": name });
                    match frames.origin(name) {
                        Origin::User((path, _)) => frame["file"] = json!(path.as_ref()),
                        Origin::Kernel => frame["file"] = json!("[kernel.kallsyms]"),
                        Origin::Unknown => {}
                    }
                    shared.push(frame);
                    shared.len() - 1
                })
            })
            .collect();
        let weight = match kind {
            Kind::Cpu => row.count * period_ns,
            Kind::Offcpu => row.value,
        };
        let e = by_comm.entry(comm).or_default();
        e.0.push(stack);
        e.1.push(weight);
    }
    let what = match kind {
        Kind::Cpu => "on-CPU",
        Kind::Offcpu => "off-CPU",
    };
    let mut profiles: Vec<(u64, Value)> = by_comm
        .into_iter()
        .map(|(comm, (samples, weights))| {
            let total: u64 = weights.iter().sum();
            let p = json!({
                "type": "sampled",
                "name": format!("{comm} ({what})"),
                "unit": "nanoseconds",
                "startValue": 0,
                "endValue": total,
                "samples": samples,
                "weights": weights,
            });
            (total, p)
        })
        .collect();
    // The busiest process first: speedscope opens the first profile.
    profiles.sort_by_key(|p| std::cmp::Reverse(p.0));
    json!({
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "name": window.comment,
        "exporter": format!("flightrec-analyze {}", env!("CARGO_PKG_VERSION")),
        "activeProfileIndex": 0,
        "shared": { "frames": shared },
        "profiles": profiles.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
    })
}

/// Writes `report` as a speedscope JSON file.
pub fn write(
    report: &StackReport,
    kind: Kind,
    frames: &Frames,
    window: &Window,
    out: impl Write,
) -> Result<()> {
    serde_json::to_writer(out, &build(report, kind, frames, window))?;
    Ok(())
}
