//! Kernel lock contention: `lock:contention_begin` and `lock:contention_end`.
use crate::EventHeader;

/// One contention begin or end ([`crate::EventKind`] says which). Current is the waiting task. A
/// begin is followed by its kernel stack (`kstack_len` bytes): where the lock was taken.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LockEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Address of the lock.
    pub lock_addr: u64,
    /// Begin: the `LCB_F_*` flags (what kind of lock, and whether the waiter spins); else 0.
    pub flags: u32,
    /// End: 0 when the lock was taken, else the error that ended the wait; else 0.
    pub ret: i32,
    /// Begin: bytes of kernel stack following this struct, or -errno; else 0.
    pub kstack_len: i32,
    /// Padding.
    pub _pad: u32,
}

/// Tracepoint field offsets of the lock events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LockOffsets {
    pub begin_lock_addr: u32,
    pub begin_flags: u32,
    pub end_lock_addr: u32,
    pub end_ret: u32,
}
