//! On-CPU profile: CPU-clock samples per stack.
use std::collections::HashMap;

use arrow::datatypes::{Int32Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;

use crate::{
    capture::{Capture, Result},
    columns::{opt, prim},
    filter::Filter,
    lost::Lost,
    names::{Stacks, Tasks},
    parallel::{map_segments, selected},
    stackagg::{merge, StackReport},
};

/// Samples per folded stack, for threads passing `filter`.
pub fn profile(cap: &Capture, filter: &Filter) -> Result<StackReport> {
    let segs = selected(cap, filter);
    let parts = map_segments(&segs, "profile", |seg| {
        let tasks = Tasks::load(seg)?;
        let mut counts: HashMap<(i32, Option<u32>, Option<u32>), u64> = HashMap::new();
        for b in seg.read(Table::Profile, &["ts", "tid", "tgid", "kstack", "ustack"])? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (k, u) = (
                prim::<UInt32Type>(&b, "kstack"),
                prim::<UInt32Type>(&b, "ustack"),
            );
            for i in 0..b.num_rows() {
                if filter.in_range(ts.value(i))
                    && filter.task(&tasks, tid.value(i), Some(tgid.value(i)))
                {
                    *counts
                        .entry((tid.value(i), opt(k, i), opt(u, i)))
                        .or_insert(0) += 1;
                }
            }
        }
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        let mut agg = HashMap::new();
        for ((tid, k, u), n) in counts {
            merge(&mut agg, stacks.fold(tasks.comm(tid), k, u), n, n);
        }
        Ok(agg)
    })?;
    let mut agg = HashMap::new();
    for a in parts {
        for (k, (v, c)) in a {
            merge(&mut agg, k, v, c);
        }
    }
    Ok(StackReport::new(
        "samples",
        agg,
        Lost::in_range(cap, filter),
    ))
}
