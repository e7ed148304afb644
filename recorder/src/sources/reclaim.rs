//! `reclaim`: direct (global) and memory-cgroup reclaim, begin and end (drsnoop). A task that
//! reclaims is stalled in its allocation for that long.
use anyhow::{bail, Result};
use flightrec_common::{Config, ReclaimOffsets};

use super::{Kernel, Tracepoint};

pub const TRACEPOINTS: &[Tracepoint] = &[
    (
        "mm_vmscan_direct_reclaim_begin",
        "vmscan",
        "mm_vmscan_direct_reclaim_begin",
    ),
    (
        "mm_vmscan_direct_reclaim_end",
        "vmscan",
        "mm_vmscan_direct_reclaim_end",
    ),
    (
        "mm_vmscan_memcg_reclaim_begin",
        "vmscan",
        "mm_vmscan_memcg_reclaim_begin",
    ),
    (
        "mm_vmscan_memcg_reclaim_end",
        "vmscan",
        "mm_vmscan_memcg_reclaim_end",
    ),
];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    let offsets = |kind: &str| -> Result<ReclaimOffsets> {
        let begin = (k.format)("vmscan", &format!("mm_vmscan_{kind}_reclaim_begin"))?;
        let end = (k.format)("vmscan", &format!("mm_vmscan_{kind}_reclaim_end"))?;
        Ok(ReclaimOffsets {
            begin_order: begin.offset("order", &[4])?,
            begin_gfp_flags: begin.offset("gfp_flags", &[8])?,
            end_nr_reclaimed: end.offset("nr_reclaimed", &[8])?,
            _pad: 0,
        })
    };
    let (direct, memcg) = (offsets("direct")?, offsets("memcg")?);
    let layout = |o: &ReclaimOffsets| (o.begin_order, o.begin_gfp_flags, o.end_nr_reclaimed);
    if layout(&direct) != layout(&memcg) {
        bail!("direct and memcg reclaim events differ in layout on this kernel: not supported");
    }
    c.reclaim = direct;
    Ok(())
}
