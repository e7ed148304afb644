//! On-CPU profile: CPU-clock samples per stack (and any other table of events with stacks,
//! counted the same way: page faults).
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
    count_stacks(cap, filter, Table::Profile, "samples")
}

/// Rows of `table` (one event each, with `tid`, `tgid` and the stack columns it has of `kstack`
/// and `ustack`) counted per folded stack, for threads passing `filter`: the profile's samples,
/// the page faults.
pub fn count_stacks(
    cap: &Capture,
    filter: &Filter,
    table: Table,
    unit: &'static str,
) -> Result<StackReport> {
    let segs = selected(cap, filter);
    let parts = map_segments(&segs, table.name(), |seg| {
        let tasks = Tasks::load(seg)?;
        let mut counts: HashMap<(i32, Option<u32>, Option<u32>), u64> = HashMap::new();
        let schema = table.schema();
        let has = |c: &str| schema.column_with_name(c).is_some();
        let (with_k, with_u) = (has("kstack"), has("ustack"));
        let mut cols = vec!["ts", "tid", "tgid"];
        cols.extend(with_k.then_some("kstack"));
        cols.extend(with_u.then_some("ustack"));
        for b in seg.read(table, &cols)? {
            let ts = prim::<UInt64Type>(&b, "ts");
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let k = with_k.then(|| prim::<UInt32Type>(&b, "kstack"));
            let u = with_u.then(|| prim::<UInt32Type>(&b, "ustack"));
            for i in 0..b.num_rows() {
                if filter.in_range(ts.value(i))
                    && filter.task(&tasks, tid.value(i), Some(tgid.value(i)))
                {
                    let k = k.and_then(|k| opt(k, i));
                    let u = u.and_then(|u| opt(u, i));
                    *counts.entry((tid.value(i), k, u)).or_insert(0) += 1;
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
    Ok(StackReport::new(unit, agg, Lost::in_range(cap, filter)))
}
