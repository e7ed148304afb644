//! OOM kills: `oom:mark_victim`, record and tracepoint offsets.
use crate::{EventHeader, COMM_LEN};

/// `oom:mark_victim`. Current is the task whose allocation invoked the OOM killer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OomEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Victim process.
    pub pid: i32,
    /// Its owner's uid (0 where the kernel's event has no uid).
    pub uid: u32,
    /// Its `oom_score_adj`.
    pub oom_score_adj: i32,
    /// Padding.
    pub _pad: u32,
    /// Memory of the victim, KiB (0 where the kernel's event lacks the field).
    pub total_vm: u64,
    pub anon_rss: u64,
    pub file_rss: u64,
    pub shmem_rss: u64,
    pub pgtables: u64,
    /// comm of the victim.
    pub comm: [u8; COMM_LEN],
}

/// Tracepoint field offsets of `mark_victim`; `u32::MAX` for a field this kernel's event lacks
/// (before 6.1 it had only `pid`). `comm` may be a `__data_loc` string (`DATA_LOC_FLAG`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct OomOffsets {
    pub pid: u32,
    pub comm: u32,
    pub total_vm: u32,
    pub anon_rss: u32,
    pub file_rss: u32,
    pub shmem_rss: u32,
    pub uid: u32,
    pub pgtables: u32,
    pub oom_score_adj: u32,
}
