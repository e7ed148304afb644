//! How whole the user stacks of a capture are, per process: how many of the stacks its switch-outs
//! and samples carry reach their outermost frame, and why the others stop short; and which modules
//! the frames without a symbol are in.
use std::collections::BTreeMap;

use rustc_hash::FxHashMap as HashMap;

use arrow::{
    array::Array,
    datatypes::{Int32Type, UInt32Type, UInt64Type},
};
use flightrec_schemas::{unwind::Truncation, Table};
use serde::Serialize;

use crate::{
    capture::{Result, Segment},
    columns::{opt, prim, strings},
    filter::Filter,
    names::{stack_truncations, Tasks},
};

/// The user stacks of one process.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcessStacks {
    /// Process id.
    pub pid: i32,
    /// Its name.
    pub comm: String,
    /// Events (switch-outs and samples) with a user stack that could be read.
    pub stacks: u64,
    /// Of those, whole: from the leaf to the outermost frame.
    pub whole: u64,
    /// The others, by why they stop short.
    pub truncated: BTreeMap<String, u64>,
    /// Events whose user stack could not be read at all (`stack_unreadable`: the process had
    /// released its memory as it exited), not in `stacks`: there was no stack left to unwind.
    pub unreadable: u64,
}

/// Per process, in one segment; `None` for a capture recorded before stacks said how whole they
/// are.
pub fn per_process(
    seg: &Segment,
    filter: &Filter,
    tasks: &Tasks,
) -> Result<Option<Vec<ProcessStacks>>> {
    if !seg.has_column(Table::Stacks, "truncated") {
        return Ok(None);
    }
    let truncated = stack_truncations(seg)?;
    let mut by: HashMap<i32, ProcessStacks> = HashMap::default();
    for (table, tgid_col) in [(Table::SchedSwitch, "prev_tgid"), (Table::Profile, "tgid")] {
        for b in seg.read(table, &["ts", tgid_col, "ustack"])? {
            let (ts, tgid, ustack) = (
                prim::<UInt64Type>(&b, "ts"),
                prim::<Int32Type>(&b, tgid_col),
                prim::<UInt32Type>(&b, "ustack"),
            );
            for i in 0..b.num_rows() {
                let Some(id) = opt(ustack, i) else { continue };
                if !filter.in_range(ts.value(i))
                    || !filter.task(tasks, tgid.value(i), Some(tgid.value(i)))
                {
                    continue;
                }
                let p = by.entry(tgid.value(i)).or_insert_with(|| ProcessStacks {
                    pid: tgid.value(i),
                    comm: tasks.comm(tgid.value(i)).to_string(),
                    ..Default::default()
                });
                match truncated.get(&id) {
                    Some(Truncation::StackUnreadable) => p.unreadable += 1,
                    None => {
                        p.stacks += 1;
                        p.whole += 1;
                    }
                    Some(t) => {
                        p.stacks += 1;
                        *p.truncated.entry(t.name().to_string()).or_insert(0) += 1;
                    }
                }
            }
        }
    }
    Ok(Some(by.into_values().collect()))
}

/// Sums the segments' parts; processes with the most stacks first.
pub fn merge(
    parts: impl IntoIterator<Item = Option<Vec<ProcessStacks>>>,
) -> Option<Vec<ProcessStacks>> {
    let mut any = false;
    let mut by: HashMap<i32, ProcessStacks> = HashMap::default();
    for part in parts.into_iter().flatten() {
        any = true;
        for p in part {
            let e = by.entry(p.pid).or_insert_with(|| ProcessStacks {
                pid: p.pid,
                comm: p.comm.clone(),
                ..Default::default()
            });
            e.stacks += p.stacks;
            e.whole += p.whole;
            e.unreadable += p.unreadable;
            for (k, v) in p.truncated {
                *e.truncated.entry(k).or_insert(0) += v;
            }
        }
    }
    let mut v: Vec<ProcessStacks> = by.into_values().collect();
    v.sort_by(|a, b| b.stacks.cmp(&a.stacks).then(a.pid.cmp(&b.pid)));
    any.then_some(v)
}

/// The frames without a symbol of one module.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UnnamedModule {
    /// The module's path as recorded.
    pub module: String,
    /// Its GNU build ID, by which its separate debug file is found.
    pub build_id: Option<String>,
    /// Distinct frames without a symbol, per segment, summed.
    pub frames: u64,
}

/// Modules with frames no symbol was found for, most first: what debug files would name them.
pub fn unnamed_by_module(segs: &[&Segment]) -> Result<Vec<UnnamedModule>> {
    let mut by: HashMap<(String, Option<String>), u64> = HashMap::default();
    for seg in segs {
        for b in seg.read(Table::UserFrames, &["module", "build_id", "symbol"])? {
            let (module, build_id, symbol) = (
                strings(&b, "module"),
                strings(&b, "build_id"),
                strings(&b, "symbol"),
            );
            for i in 0..b.num_rows() {
                if symbol.is_valid(i) || !module.is_valid(i) {
                    continue;
                }
                let bid = build_id.is_valid(i).then(|| build_id.value(i).to_string());
                *by.entry((module.value(i).to_string(), bid)).or_insert(0) += 1;
            }
        }
    }
    let mut v: Vec<UnnamedModule> = by
        .into_iter()
        .map(|((module, build_id), frames)| UnnamedModule {
            module,
            build_id,
            frames,
        })
        .collect();
    v.sort_by(|a, b| b.frames.cmp(&a.frames).then(a.module.cmp(&b.module)));
    Ok(v)
}
