//! The kernel/user ABI of flightrec.
//!
//! Every record the eBPF programs write into the ring buffer starts with an [`EventHeader`] whose
//! `kind` says which `#[repr(C)]` struct follows. Records that carry stacks ([`SwitchEvent`],
//! [`SampleEvent`]) are followed by `kstack_len` bytes of kernel frames, then `ustack_len` bytes of
//! user frames as the frame-pointer walk found them (each frame a native-endian `u64`; a negative
//! length is the `-errno` the kernel returned when it could not walk that stack), then
//! `regs.window_len` bytes of the user stack copied from `regs.sp` up: the recorder unwinds them
//! with the modules' CFI.
//!
//! Tracepoint field offsets are not compiled in: the recorder reads them from tracefs at load time
//! and passes them in the [`Config`] global, so one object serves many kernels.
#![no_std]

/// Bumped whenever a record layout or the meaning of a field changes.
pub const ABI_VERSION: u32 = 2;

/// Name of the ring buffer map.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the per-CPU counters map (see [`counter_index`]).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Name of the per-CPU scratch map used to assemble variable-length records.
pub const MAP_SCRATCH: &str = "SCRATCH";
/// Name of the load-time configuration global.
pub const GLOBAL_CONFIG: &str = "CONFIG";
/// Name of the map of threads' stack tops (tid → the highest user stack address worth copying).
pub const MAP_STACK_TOPS: &str = "STACK_TOPS";
/// Entries of [`MAP_STACK_TOPS`].
pub const STACK_TOPS_ENTRIES: u32 = 1 << 16;
/// Name of the map of the last exec of each process (tgid → its `ts`): mappings read from /proc
/// after an exec do not describe the events before it.
pub const MAP_EXECS: &str = "EXECS";
/// Entries of [`MAP_EXECS`] (least recently used ones go).
pub const EXECS_ENTRIES: u32 = 1 << 16;

/// Deepest stack walked, in frames (the kernel's default `perf_event_max_stack`).
pub const MAX_STACK_DEPTH: usize = 127;
/// Bytes of one walked stack at most.
pub const MAX_STACK_BYTES: usize = MAX_STACK_DEPTH * 8;
/// Most bytes of user stack copied with one event.
pub const MAX_WINDOW: usize = 16384;
/// Size of the per-CPU scratch buffer: the largest record, two full stacks and the largest stack
/// copy fit with room (a power of two, for the verifier's masks).
pub const SCRATCH_SIZE: usize = 32768;
/// Longest exec filename copied, including the terminating NUL.
pub const FILENAME_LEN: usize = 256;
/// Length of a task's comm, including the terminating NUL.
pub const COMM_LEN: usize = 16;

/// An event source: the unit a user enables with `--events` and the unit losses are counted by.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// Scheduler switches (with stacks) and wake-ups.
    Sched = 0,
    /// exec, fork and exit.
    Process = 1,
    /// CPU-clock samples with stacks.
    Profile = 2,
    /// Block request issue and completion.
    Block = 3,
    /// raw_syscalls enter and exit.
    Syscall = 4,
    /// TCP state changes and retransmits.
    Tcp = 5,
}

/// Number of [`Source`] variants.
pub const SOURCE_COUNT: usize = 6;

impl Source {
    /// All sources in index order.
    pub const ALL: [Source; SOURCE_COUNT] = [
        Source::Sched,
        Source::Process,
        Source::Profile,
        Source::Block,
        Source::Syscall,
        Source::Tcp,
    ];

    /// The name used on the command line and in captures.
    pub const fn name(self) -> &'static str {
        match self {
            Source::Sched => "sched",
            Source::Process => "process",
            Source::Profile => "profile",
            Source::Block => "block",
            Source::Syscall => "syscall",
            Source::Tcp => "tcp",
        }
    }
}

/// What a per-source counter counts.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Records written into the ring buffer.
    Emitted = 0,
    /// Records dropped because the ring buffer was full.
    LostRingbuf = 1,
}

/// Counters per source.
pub const COUNTERS_PER_SOURCE: usize = 2;
/// Entries of the counters map.
pub const COUNTER_ENTRIES: u32 = (SOURCE_COUNT * COUNTERS_PER_SOURCE) as u32;

/// Index of `counter` for `source` in the counters map.
pub const fn counter_index(source: Source, counter: Counter) -> u32 {
    source as u32 * COUNTERS_PER_SOURCE as u32 + counter as u32
}

/// Discriminant of a ring-buffer record, in [`EventHeader::kind`].
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// [`SwitchEvent`]
    Switch = 1,
    /// [`WakeupEvent`] from `sched_wakeup`
    Wakeup = 2,
    /// [`WakeupEvent`] from `sched_wakeup_new`
    WakeupNew = 3,
    /// [`ExecEvent`]
    Exec = 4,
    /// [`ForkEvent`]
    Fork = 5,
    /// [`ExitEvent`]
    Exit = 6,
    /// [`SampleEvent`]
    Sample = 7,
    /// [`BlockEvent`] from `block_rq_issue`
    BlockIssue = 8,
    /// [`BlockEvent`] from `block_rq_complete`
    BlockComplete = 9,
    /// [`SyscallEvent`] from `sys_enter`
    SysEnter = 10,
    /// [`SyscallEvent`] from `sys_exit`
    SysExit = 11,
    /// [`TcpEvent`] from `inet_sock_set_state`
    TcpState = 12,
    /// [`TcpEvent`] from `tcp_retransmit_skb`
    TcpRetransmit = 13,
}

impl EventKind {
    /// Decodes a header's kind.
    pub const fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            1 => Self::Switch,
            2 => Self::Wakeup,
            3 => Self::WakeupNew,
            4 => Self::Exec,
            5 => Self::Fork,
            6 => Self::Exit,
            7 => Self::Sample,
            8 => Self::BlockIssue,
            9 => Self::BlockComplete,
            10 => Self::SysEnter,
            11 => Self::SysExit,
            12 => Self::TcpState,
            13 => Self::TcpRetransmit,
            _ => return None,
        })
    }
}

/// Common prefix of every record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EventHeader {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds.
    pub ts: u64,
    /// Thread id of the task current on the CPU when the hook fired.
    pub tid: u32,
    /// Process id (thread group) of that task.
    pub tgid: u32,
    /// CPU the hook fired on.
    pub cpu: u32,
    /// An [`EventKind`].
    pub kind: u32,
}

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

/// The user-mode registers of the task a stack belongs to (saved at its entry into the kernel),
/// and how many bytes of its user stack, from `sp` up, follow the frames.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserRegs {
    /// Instruction pointer.
    pub ip: u64,
    /// Stack pointer.
    pub sp: u64,
    /// Frame pointer (rbp, x29).
    pub fp: u64,
    /// Link register (x30 on aarch64; 0 where there is none).
    pub lr: u64,
    /// Bytes of the stack copy following the user frames; 0 when nothing could be copied.
    pub window_len: u32,
    /// [`REGS_VALID`] when the registers are a user-mode context.
    pub flags: u32,
}

/// [`UserRegs::flags`]: the registers were read and are a user-mode context.
pub const REGS_VALID: u32 = 1;

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

/// `sched:sched_process_exec`. Current is the task after exec.
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

/// `sock:inet_sock_set_state` (TCP only) and `tcp:tcp_retransmit_skb`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct TcpEvent {
    /// Common prefix.
    pub hdr: EventHeader,
    /// Kernel address of the socket: identifies a connection over its lifetime.
    pub skaddr: u64,
    /// State before (retransmit: the current state).
    pub oldstate: i32,
    /// State after (retransmit: the current state).
    pub newstate: i32,
    /// Source port, host order.
    pub sport: u16,
    /// Destination port, host order.
    pub dport: u16,
    /// AF_INET or AF_INET6.
    pub family: u16,
    /// Padding.
    pub _pad: u16,
    /// Source address: 4 bytes for AF_INET, 16 for AF_INET6.
    pub saddr: [u8; 16],
    /// Destination address.
    pub daddr: [u8; 16],
}

/// [`ExitEvent::exit_code`] when it could not be read.
pub const EXIT_CODE_UNKNOWN: i32 = i32::MIN;

/// Where a `__data_loc` field lives: the low 16 bits of the u32 at the field's offset are the
/// data's offset from the record start, the high 16 its length.
pub const DATA_LOC_FLAG: u32 = 1 << 31;

/// Bytes of a tracepoint record the programs copy at most; fields must lie within them.
pub const RAW_RECORD_MAX: usize = 256;

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

/// Tracepoint field offsets of `sched_wakeup` / `sched_wakeup_new` (same layout).
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

/// Tracepoint field offsets of raw_syscalls.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SyscallOffsets {
    pub enter_id: u32,
    pub exit_id: u32,
    pub exit_ret: u32,
}

/// Tracepoint field offsets of one TCP event (`oldstate` = `newstate` = `state` for retransmits).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TcpOffsets {
    pub skaddr: u32,
    pub oldstate: u32,
    pub newstate: u32,
    pub sport: u32,
    pub dport: u32,
    pub family: u32,
    /// `inet_sock_set_state` only; `u32::MAX` when the event has no protocol field.
    pub protocol: u32,
    pub saddr: u32,
    pub daddr: u32,
    pub saddr_v6: u32,
    pub daddr_v6: u32,
}

/// Where the user registers lie in the architecture's `struct pt_regs`, and how to tell a
/// user-mode context (`regs[mode] & mode_mask == mode_user`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RegsLayout {
    pub ip: u32,
    pub sp: u32,
    pub fp: u32,
    /// `u32::MAX` where there is no link register.
    pub lr: u32,
    pub mode: u32,
    pub mode_mask: u32,
    pub mode_user: u32,
    pub _pad: u32,
}

impl RegsLayout {
    /// x86_64: `bp` 32, `ip` 128, `cs` 136 (privilege level in its low two bits), `sp` 152.
    pub const X86_64: RegsLayout = RegsLayout {
        ip: 128,
        sp: 152,
        fp: 32,
        lr: u32::MAX,
        mode: 136,
        mode_mask: 3,
        mode_user: 3,
        _pad: 0,
    };
    /// aarch64: `regs[29]` 232, `regs[30]` 240, `sp` 248, `pc` 256, `pstate` 264 (EL0t: mode 0).
    pub const AARCH64: RegsLayout = RegsLayout {
        ip: 256,
        sp: 248,
        fp: 232,
        lr: 240,
        mode: 264,
        mode_mask: 0xf,
        mode_user: 0,
        _pad: 0,
    };
}

/// Load-time configuration, written into the object's `CONFIG` global before loading.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// The recorder's own tgid: its switches, samples and syscalls are not recorded.
    pub own_tgid: u32,
    /// Syscall filter on tgid; 0 records every process.
    pub syscall_tgid: u32,
    /// Syscall filter on comm; empty (first byte 0) records every comm.
    pub syscall_comm: [u8; COMM_LEN],
    /// Wake user space when the ring buffer holds at least this many bytes; below it records are
    /// written with `BPF_RB_NO_WAKEUP` and the recorder drains on a timer.
    pub wakeup_bytes: u64,
    pub switch: SwitchOffsets,
    pub wakeup: WakeupOffsets,
    pub process: ProcessOffsets,
    pub block_issue: BlockOffsets,
    pub block_complete: BlockOffsets,
    pub syscall: SyscallOffsets,
    pub tcp_state: TcpOffsets,
    pub tcp_retransmit: TcpOffsets,
    /// The architecture's `pt_regs`.
    pub regs: RegsLayout,
    /// Bytes of user stack copied at a switch-out when the thread's stack top is not known.
    pub switch_window: u32,
    /// Bytes of user stack copied with a profile sample when the stack top is not known.
    pub sample_window: u32,
    /// Offsets of `task_struct.mm` and `mm_struct.start_stack` (from BTF; 0 when unknown): a
    /// process's main thread has every frame below its `start_stack`.
    pub task_mm: u32,
    pub mm_start_stack: u32,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain #[repr(C)] integers and arrays, no padding the kernel could misread.
    unsafe impl aya::Pod for super::Config {}
}
