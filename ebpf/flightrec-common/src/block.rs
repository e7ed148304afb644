//! Block request issue and completion: records and tracepoint offsets.
use crate::EventHeader;

/// `block:block_rq_issue` and `block:block_rq_complete`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BlockEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Device number (kernel `dev_t`: major << 20 | minor).
    pub dev: u32,
    /// Request length in 512-byte sectors.
    pub nr_sector: u32,
    /// Start sector.
    pub sector: u64,
    /// Bytes (issue only; 0 on complete).
    pub bytes: u32,
    /// Error (complete only).
    pub error: i32,
    /// The tracepoint's `rwbs` op/flags string, NUL padded.
    pub rwbs: [u8; 16],
}

/// Tracepoint field offsets of the block events (`bytes` only on issue, `error` only on complete).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BlockOffsets {
    pub dev: u32,
    pub sector: u32,
    pub nr_sector: u32,
    pub bytes_or_error: u32,
    pub rwbs: u32,
}
