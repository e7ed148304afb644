//! Syscall enter and exit: records and tracepoint offsets.
use crate::EventHeader;

/// `raw_syscalls:sys_enter` and `raw_syscalls:sys_exit`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Syscall number.
    pub id: i64,
    /// Return value (exit only; 0 on enter).
    pub ret: i64,
}

/// Tracepoint field offsets of raw_syscalls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallOffsets {
    pub enter_id: u32,
    pub exit_id: u32,
    pub exit_ret: u32,
}
