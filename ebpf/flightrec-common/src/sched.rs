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

/// Offsets in `struct task_struct` from the kernel's BTF, for the scheduler programs attached as BTF
/// raw tracepoints (`tp_btf`), which get the tasks instead of a formatted record. All zero when the
/// kernel has no BTF: the tracepoint programs are attached instead.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TaskOffsets {
    pub pid: u32,
    pub prio: u32,
    pub comm: u32,
    pub exit_state: u32,
    /// `thread_info.cpu` (what `task_cpu()` reads), counted from the task.
    pub cpu: u32,
}

impl TaskOffsets {
    /// True when every offset is known (none can be 0: `thread_info` comes first).
    pub fn known(&self) -> bool {
        self.pid != 0 && self.prio != 0 && self.comm != 0 && self.exit_state != 0 && self.cpu != 0
    }
}

/// `TASK_REPORT_MAX`: the state `sched_switch` reports for a preempted task.
pub const STATE_PREEMPTED: i64 = 0x100;
const TASK_REPORT: u32 = 0x7f;
const TASK_REPORT_IDLE: u32 = 0x80;
const TASK_UNINTERRUPTIBLE: u32 = 0x2;
const TASK_IDLE: u32 = 0x402;
const TASK_RTLOCK_WAIT: u32 = 0x1000;
const TASK_FROZEN: u32 = 0x8000;

/// `prev_state` as the `sched_switch` tracepoint reports it (the kernel's
/// `__trace_sched_switch_state()`), from what the raw tracepoint gets: whether the switch is a
/// preemption, the task's `__state`, and its `exit_state`. The constants are those of Linux 6.1 and
/// later (`TASK_FROZEN`); the recorder attaches the raw tracepoints only there.
#[inline(always)]
pub fn switch_state(preempt: bool, state: u32, exit_state: u32) -> i64 {
    if preempt {
        return STATE_PREEMPTED;
    }
    let mut s = (state | exit_state) & TASK_REPORT;
    if state & TASK_IDLE == TASK_IDLE {
        s = TASK_REPORT_IDLE;
    }
    if state & (TASK_RTLOCK_WAIT | TASK_FROZEN) != 0 {
        s = TASK_UNINTERRUPTIBLE;
    }
    // The highest set bit (`1 << (fls(s) - 1)`), 0 for a runnable task.
    s |= s >> 1;
    s |= s >> 2;
    s |= s >> 4;
    (s - (s >> 1)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switch_state_is_the_tracepoints_encoding() {
        const INTERRUPTIBLE: u32 = 0x1;
        const EXIT_ZOMBIE: u32 = 0x20;
        const TASK_PARKED: u32 = 0x40;
        const TASK_WAKEKILL: u32 = 0x100;
        // A preemption reports R+ whatever the state.
        assert_eq!(switch_state(true, INTERRUPTIBLE, 0), STATE_PREEMPTED);
        assert_eq!(switch_state(false, 0, 0), 0, "a yield: runnable");
        assert_eq!(switch_state(false, INTERRUPTIBLE, 0), 1, "S");
        assert_eq!(switch_state(false, TASK_UNINTERRUPTIBLE, 0), 2, "D");
        // TASK_KILLABLE (D | WAKEKILL) is D: bits outside TASK_REPORT are not reported.
        assert_eq!(
            switch_state(false, TASK_UNINTERRUPTIBLE | TASK_WAKEKILL, 0),
            2
        );
        assert_eq!(switch_state(false, TASK_IDLE, 0), 0x80, "I");
        assert_eq!(switch_state(false, TASK_PARKED, 0), 0x40, "P");
        assert_eq!(
            switch_state(false, TASK_FROZEN | INTERRUPTIBLE, 0),
            2,
            "frozen is D"
        );
        assert_eq!(
            switch_state(false, TASK_RTLOCK_WAIT, 0),
            2,
            "rtlock wait is D"
        );
        // A dying task: the highest reported bit of state | exit_state.
        assert_eq!(switch_state(false, 0, EXIT_ZOMBIE), 0x20, "Z");
    }
}
