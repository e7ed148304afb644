//! Memory reclaim: `vmscan:mm_vmscan_direct_reclaim_begin`/`_end` (global direct reclaim) and
//! `mm_vmscan_memcg_reclaim_begin`/`_end` (a memory cgroup over its limit).
use crate::EventHeader;

/// A reclaim begin or end ([`crate::EventKind`] says which, and whether direct or memcg). Current
/// is the task that had to reclaim before its allocation could go on.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ReclaimEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Begin: the allocation's order; end: 0.
    pub order: i32,
    /// Padding.
    pub _pad: u32,
    /// Begin: the allocation's GFP flags; end: pages reclaimed.
    pub value: u64,
}

/// Tracepoint field offsets of the reclaim events (direct and memcg share the layouts).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ReclaimOffsets {
    pub begin_order: u32,
    pub begin_gfp_flags: u32,
    pub end_nr_reclaimed: u32,
    pub _pad: u32,
}
