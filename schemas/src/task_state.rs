//! What `sched_switch.prev_state` means.
//!
//! The value is what the `sched:sched_switch` tracepoint reports, unchanged: the kernel's
//! `__trace_sched_switch_state()`. For a voluntary switch it is one `TASK_REPORT` bit (or 0 when the
//! task was still `TASK_RUNNING`, e.g. `sched_yield`). For a switch with `preempt = true`
//! (kernel-mode preemption, `cond_resched()`, `preempt_schedule_irq()`, a user-mode preemption on
//! return from an interrupt) it is [`PREEMPTED`] (`TASK_REPORT_MAX`) alone, whatever the task was
//! doing: the task never left the run queue. The recorder checks at start that the kernel reports
//! preemption with exactly this value (every kernel with a BPF ring buffer does).

/// `TASK_RUNNING`: switched out while runnable without a preemption (a yield).
pub const RUNNING: i64 = 0;
/// `TASK_INTERRUPTIBLE` (S): sleeping, a signal wakes it.
pub const INTERRUPTIBLE: i64 = 0x1;
/// `TASK_UNINTERRUPTIBLE` (D): sleeping, usually on I/O.
pub const UNINTERRUPTIBLE: i64 = 0x2;
/// `__TASK_STOPPED` (T).
pub const STOPPED: i64 = 0x4;
/// `__TASK_TRACED` (t).
pub const TRACED: i64 = 0x8;
/// `EXIT_DEAD` (X).
pub const DEAD: i64 = 0x10;
/// `EXIT_ZOMBIE` (Z).
pub const ZOMBIE: i64 = 0x20;
/// `TASK_PARKED` (P).
pub const PARKED: i64 = 0x40;
/// `TASK_REPORT_IDLE` (I): an idle kernel thread (`TASK_IDLE`).
pub const IDLE: i64 = 0x80;
/// `TASK_REPORT_MAX`: preempted (ftrace prints `R+`); the task is still on the run queue.
pub const PREEMPTED: i64 = 0x100;

/// True when the task was still runnable as it left the CPU (preempted or yielding): it waits on
/// the run queue from this switch-out to its next switch-in, which is run-queue latency.
#[inline]
pub fn is_runnable(prev_state: i64) -> bool {
    prev_state == RUNNING || prev_state & PREEMPTED != 0
}

/// The letter(s) ftrace prints for a state: `R`, `R+`, `S`, `D`, `D|S`...
pub fn label(prev_state: i64) -> String {
    const LETTERS: [(i64, &str); 8] = [
        (INTERRUPTIBLE, "S"),
        (UNINTERRUPTIBLE, "D"),
        (STOPPED, "T"),
        (TRACED, "t"),
        (DEAD, "X"),
        (ZOMBIE, "Z"),
        (PARKED, "P"),
        (IDLE, "I"),
    ];
    if prev_state & PREEMPTED != 0 {
        return "R+".into();
    }
    let set: Vec<&str> = LETTERS
        .iter()
        .filter(|(bit, _)| prev_state & bit != 0)
        .map(|(_, l)| *l)
        .collect();
    if set.is_empty() {
        "R".into()
    } else {
        set.join("|")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preempted_and_yielding_tasks_are_runnable_sleepers_are_not() {
        assert!(is_runnable(0), "a yield");
        assert!(is_runnable(0x100), "a kernel-mode preemption");
        for s in [1, 2, 4, 8, 0x10, 0x20, 0x40, 0x80] {
            assert!(!is_runnable(s), "state {s:#x}");
        }
        assert_eq!(label(0x100), "R+");
        assert_eq!(label(0), "R");
        assert_eq!(label(2), "D");
        assert_eq!(label(0x80), "I");
    }
}
