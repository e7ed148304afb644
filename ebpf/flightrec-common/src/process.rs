//! Process lifecycle: exec, fork and exit records and tracepoint offsets.
#[cfg(doc)]
use crate::ARGS_LEN;
use crate::{EventHeader, COMM_LEN, FILENAME_LEN};

/// `sched:sched_process_exec`. Current is the task after exec. Followed by the start of its
/// argument area (`args_len` bytes), read from the new program's stack at the exec.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExecEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// pid after exec.
    pub pid: i32,
    /// pid before exec (differs when a non-leader thread execs).
    pub old_pid: i32,
    /// Bytes of `filename` including the NUL, or -errno.
    pub filename_len: i32,
    /// Padding.
    pub _pad: u32,
    /// comm after exec.
    pub comm: [u8; COMM_LEN],
    /// Path of the executed file, NUL terminated, truncated to [`FILENAME_LEN`].
    pub filename: [u8; FILENAME_LEN],
    /// Bytes of the new program's argument area (`mm->arg_end - mm->arg_start`: the arguments,
    /// each NUL terminated), or 0 when the kernel's BTF did not give the offsets.
    pub args_total: u32,
    /// Bytes of it copied (at most [`ARGS_LEN`]) and following this struct, or -errno.
    pub args_len: i32,
}

/// `sched:sched_process_fork`. Current is the parent.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ForkEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Parent thread.
    pub parent_pid: i32,
    /// New thread or process.
    pub child_pid: i32,
    /// comm of the child (inherited from the parent).
    pub comm: [u8; COMM_LEN],
}

/// `sched:sched_process_exit`. Current is the exiting task.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ExitEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Exiting thread.
    pub pid: i32,
    /// Its priority.
    pub prio: i32,
    /// 1 when the whole thread group is gone (the process exited).
    pub group_dead: u32,
    /// `task_struct.exit_code` (wait status: signal in the low 7 bits, else code << 8), or
    /// [`EXIT_CODE_UNKNOWN`] when the kernel's BTF did not give its offset.
    pub exit_code: i32,
    /// comm of the exiting task.
    pub comm: [u8; COMM_LEN],
}

/// [`ExitEvent::exit_code`] when it could not be read.
pub const EXIT_CODE_UNKNOWN: i32 = i32::MIN;

/// Tracepoint field offsets of the process events. A comm offset with [`DATA_LOC_FLAG`] set is a
/// `__data_loc` string.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessOffsets {
    pub exec_filename: u32,
    pub exec_pid: u32,
    pub exec_old_pid: u32,
    pub fork_parent_pid: u32,
    pub fork_child_pid: u32,
    pub fork_child_comm: u32,
    pub exit_comm: u32,
    pub exit_pid: u32,
    pub exit_prio: u32,
    pub exit_group_dead: u32,
    /// Offset of `exit_code` in `struct task_struct` (from BTF); 0 when unknown.
    pub task_exit_code: u32,
    /// Offsets of `arg_start` and `arg_end` in `struct mm_struct` (from BTF); 0 when unknown
    /// (`mm` in `task_struct` is [`crate::Config::task_mm`]).
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
}
