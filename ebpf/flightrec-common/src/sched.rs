//! `sched_switch` and the wake-ups: records and tracepoint offsets.
use crate::{EventHeader, UserRegs, COMM_LEN};

/// `sched:sched_switch`. Current is the task leaving the CPU, so the header's tid/tgid are prev's.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SwitchEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Task leaving the CPU.
    pub prev_pid: i32,
    /// Task entering the CPU.
    pub next_pid: i32,
    /// Priority of prev.
    pub prev_prio: i32,
    /// Priority of next.
    pub next_prio: i32,
    /// prev's state as the tracepoint reports it: 0x100 (`TASK_REPORT_MAX`) preempted, 0 runnable
    /// without preemption, else the `TASK_REPORT` bit of its sleep (`flightrec_schemas::task_state`).
    pub prev_state: i64,
    /// comm of prev.
    pub prev_comm: [u8; COMM_LEN],
    /// comm of next.
    pub next_comm: [u8; COMM_LEN],
    /// Bytes of kernel stack following this struct, or -errno.
    pub kstack_len: i32,
    /// Bytes of user stack following the kernel stack, or -errno.
    pub ustack_len: i32,
    /// prev's user registers, and the length of its stack copy.
    pub regs: UserRegs,
}

/// `sched:sched_wakeup` and `sched:sched_wakeup_new`. Current is the waker.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WakeupEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Task woken.
    pub pid: i32,
    /// Its priority.
    pub prio: i32,
    /// CPU it will run on.
    pub target_cpu: i32,
    /// Padding.
    pub _pad: u32,
    /// comm of the woken task.
    pub comm: [u8; COMM_LEN],
}

/// `sched:sched_waking` with the waker's stacks (with `--waker-stacks`). Current is the waker: the
/// task that wakes, or in interrupt context (`irq`) the task the interrupt came upon, whose user
/// stack is then not walked. The stacks follow as in [`SwitchEvent`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct WakingEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Task being woken.
    pub pid: i32,
    /// 1 when the waking ran in an interrupt (on an interrupt stack, not the task's).
    pub irq: u32,
    /// Bytes of kernel stack following this struct, or -errno.
    pub kstack_len: i32,
    /// Bytes of user stack following the kernel stack, or -errno.
    pub ustack_len: i32,
    /// The waker's user registers, and the length of its stack copy.
    pub regs: UserRegs,
}

/// Tracepoint field offsets of `sched_switch`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SwitchOffsets {
    /// Length of the whole record (copied once, then read with plain loads).
    pub record_len: u32,
    pub prev_comm: u32,
    pub prev_pid: u32,
    pub prev_prio: u32,
    pub prev_state: u32,
    pub next_comm: u32,
    pub next_pid: u32,
    pub next_prio: u32,
}

/// Tracepoint field offsets of `sched_wakeup` / `sched_wakeup_new` / `sched_waking` (same layout).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct WakeupOffsets {
    /// Length of the whole record.
    pub record_len: u32,
    pub comm: u32,
    pub pid: u32,
    pub prio: u32,
    pub target_cpu: u32,
}
