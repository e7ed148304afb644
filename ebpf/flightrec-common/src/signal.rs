//! Signals: `signal:signal_generate`, record and tracepoint offsets.
use crate::{EventHeader, COMM_LEN};

/// `signal:signal_generate`. Current is the sender (for a signal the kernel raises, such as
/// `SIGCHLD` or `SIGSEGV`, the task it ran in).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SignalEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Signal number.
    pub sig: i32,
    /// `si_errno`.
    pub errno: i32,
    /// `si_code`: 0 `SI_USER` (kill), -6 `SI_TKILL` (tkill, tgkill), > 0 kernel-generated.
    pub code: i32,
    /// Target thread.
    pub pid: i32,
    /// 1 when sent to the whole thread group.
    pub group: i32,
    /// `TRACE_SIGNAL_*`: 0 delivered, 1 ignored, 2 already pending, 3 overflow, 4 lost info.
    pub result: i32,
    /// comm of the target.
    pub comm: [u8; COMM_LEN],
}

/// Tracepoint field offsets of `signal_generate`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SignalOffsets {
    /// Length of the whole record.
    pub record_len: u32,
    pub sig: u32,
    pub errno: u32,
    pub code: u32,
    pub comm: u32,
    pub pid: u32,
    pub group: u32,
    pub result: u32,
}
