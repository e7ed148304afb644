//! CPU samples (perf_event `cpu-clock`).
use crate::{EventHeader, UserRegs, COMM_LEN};

/// perf_event CPU-clock sample. Current is the task that was on the CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SampleEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// comm of the sampled task.
    pub comm: [u8; COMM_LEN],
    /// Bytes of kernel stack following this struct, or -errno.
    pub kstack_len: i32,
    /// Bytes of user stack following the kernel stack, or -errno.
    pub ustack_len: i32,
    /// The sampled task's user registers, and the length of its stack copy.
    pub regs: UserRegs,
}
