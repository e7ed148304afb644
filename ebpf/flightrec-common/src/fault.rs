//! Page faults taken in user mode: `exceptions:page_fault_user`.
use crate::{EventHeader, UserRegs};

/// One user page fault. Current is the faulting task; its kernel stack (the exception entry) is
/// not walked, its user stack is, as at a switch-out: the user stack bytes and the stack copy
/// follow this struct.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FaultEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// The address that faulted.
    pub address: u64,
    /// The instruction that faulted.
    pub ip: u64,
    /// The architecture's error code (x86: bit 1 write, bit 0 protection, bit 4 instruction fetch).
    pub error_code: u64,
    /// Bytes of kernel stack following this struct (always 0: not walked).
    pub kstack_len: i32,
    /// Bytes of user stack following the kernel stack, or -errno.
    pub ustack_len: i32,
    /// The task's user registers, and the length of its stack copy.
    pub regs: UserRegs,
}

/// Tracepoint field offsets of `page_fault_user`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultOffsets {
    pub address: u32,
    pub ip: u32,
    pub error_code: u32,
}
