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

mod block;
mod fault;
mod irq;
mod lock;
mod oom;
mod process;
mod profile;
mod reclaim;
mod sched;
mod signal;
mod syscall;
mod tcp;

pub use block::*;
pub use fault::*;
pub use irq::*;
pub use lock::*;
pub use oom::*;
pub use process::*;
pub use profile::*;
pub use reclaim::*;
pub use sched::*;
pub use signal::*;
pub use syscall::*;
pub use tcp::*;

/// Bumped whenever a record layout or the meaning of a field changes.
pub const ABI_VERSION: u32 = 6;

/// Name of the ring buffer map.
pub const MAP_EVENTS: &str = "EVENTS";
/// Name of the per-CPU counters map (see [`counter_index`]).
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Name of the scratch map used to assemble variable-length records: [`SCRATCH_SLOTS`] entries per
/// CPU (a plain array sized by the recorder at load: a per-CPU one holds at most 32 KiB a value).
pub const MAP_SCRATCH: &str = "SCRATCH";
/// Scratch entries per CPU: tracepoint programs, and perf_event ones (which may interrupt them).
pub const SCRATCH_SLOTS: u32 = 2;
/// Name of the load-time configuration global.
pub const GLOBAL_CONFIG: &str = "CONFIG";
/// Name of the map of threads' stack tops (tid → the highest user stack address worth copying).
pub const MAP_STACK_TOPS: &str = "STACK_TOPS";
/// Entries of [`MAP_STACK_TOPS`].
pub const STACK_TOPS_ENTRIES: u32 = 1 << 16;
/// A [`MAP_STACK_TOPS`] value: the thread runs Go code, whose goroutines each have a stack of
/// their own; the top of the one in use is its goroutine's `g.stack.hi`, read through the register
/// Go keeps the current goroutine in ([`RegsLayout::g`]).
pub const STACK_TOP_GO: u64 = 1;
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
pub const MAX_WINDOW: usize = 32768;
/// Size of one scratch buffer: the largest record, two full stacks and the largest stack copy fit
/// with room (a power of two, for the verifier's masks).
pub const SCRATCH_SIZE: usize = 65536;
/// Longest exec filename copied, including the terminating NUL.
pub const FILENAME_LEN: usize = 256;
/// Most bytes of an exec's arguments copied (libbpf-tools' execsnoop keeps 20 of 128 bytes each
/// by default; a power of two, for the verifier's mask).
pub const ARGS_LEN: usize = 2048;
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
    /// Signals generated (who sent which signal to whom).
    Signal = 6,
    /// OOM-killer victims.
    Oom = 7,
    /// Hard and soft interrupts.
    Irq = 8,
    /// Direct and memory-cgroup reclaim.
    Reclaim = 9,
    /// Kernel lock contention.
    Lock = 10,
    /// User page faults.
    Fault = 11,
}

/// Number of [`Source`] variants.
pub const SOURCE_COUNT: usize = 12;

impl Source {
    /// All sources in index order.
    pub const ALL: [Source; SOURCE_COUNT] = [
        Source::Sched,
        Source::Process,
        Source::Profile,
        Source::Block,
        Source::Syscall,
        Source::Tcp,
        Source::Signal,
        Source::Oom,
        Source::Irq,
        Source::Reclaim,
        Source::Lock,
        Source::Fault,
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
            Source::Signal => "signal",
            Source::Oom => "oom",
            Source::Irq => "irq",
            Source::Reclaim => "reclaim",
            Source::Lock => "lock",
            Source::Fault => "fault",
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
    /// [`SignalEvent`] from `signal_generate`
    Signal = 14,
    /// [`OomEvent`] from `oom:mark_victim`
    OomVictim = 15,
    /// [`IrqEvent`] from `irq_handler_entry`
    IrqEntry = 16,
    /// [`IrqEvent`] from `irq_handler_exit`
    IrqExit = 17,
    /// [`IrqEvent`] from `softirq_entry`
    SoftirqEntry = 18,
    /// [`IrqEvent`] from `softirq_exit`
    SoftirqExit = 19,
    /// [`ReclaimEvent`] from `mm_vmscan_direct_reclaim_begin`
    DirectReclaimBegin = 20,
    /// [`ReclaimEvent`] from `mm_vmscan_direct_reclaim_end`
    DirectReclaimEnd = 21,
    /// [`ReclaimEvent`] from `mm_vmscan_memcg_reclaim_begin`
    MemcgReclaimBegin = 22,
    /// [`ReclaimEvent`] from `mm_vmscan_memcg_reclaim_end`
    MemcgReclaimEnd = 23,
    /// [`LockEvent`] from `lock:contention_begin`
    LockBegin = 24,
    /// [`LockEvent`] from `lock:contention_end`
    LockEnd = 25,
    /// [`FaultEvent`] from `exceptions:page_fault_user`
    PageFault = 26,
    /// [`WakingEvent`] from `sched_waking` (with `--waker-stacks`)
    Waking = 27,
    /// [`TcpEvent`] from `tcp_send_reset`
    TcpSendReset = 28,
    /// [`TcpEvent`] from `tcp_receive_reset`
    TcpReceiveReset = 29,
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
            14 => Self::Signal,
            15 => Self::OomVictim,
            16 => Self::IrqEntry,
            17 => Self::IrqExit,
            18 => Self::SoftirqEntry,
            19 => Self::SoftirqExit,
            20 => Self::DirectReclaimBegin,
            21 => Self::DirectReclaimEnd,
            22 => Self::MemcgReclaimBegin,
            23 => Self::MemcgReclaimEnd,
            24 => Self::LockBegin,
            25 => Self::LockEnd,
            26 => Self::PageFault,
            27 => Self::Waking,
            28 => Self::TcpSendReset,
            29 => Self::TcpReceiveReset,
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
    /// The register a frame's rule may need beyond ip, sp and fp: rbx on x86_64 (ld.so's
    /// lazy-binding trampoline, and other code that realigns its stack, keeps its CFA there), the
    /// link register x30 on aarch64.
    pub aux: u64,
    /// The first argument register, rdi on x86_64: glibc's vfork keeps its return address there
    /// while the parent waits in the syscall. 0 where it is not read.
    pub arg: u64,
    /// Bytes of the stack copy following the user frames; 0 when nothing could be copied.
    pub window_len: u32,
    /// [`REGS_VALID`] when the registers are a user-mode context.
    pub flags: u32,
}

/// [`UserRegs::flags`]: the registers were read and are a user-mode context.
pub const REGS_VALID: u32 = 1;

/// Where a `__data_loc` field lives: the low 16 bits of the u32 at the field's offset are the
/// data's offset from the record start, the high 16 its length.
pub const DATA_LOC_FLAG: u32 = 1 << 31;

/// Bytes of a tracepoint record the programs copy at most; fields must lie within them.
pub const RAW_RECORD_MAX: usize = 256;

/// Where the user registers lie in the architecture's `struct pt_regs`, and how to tell a
/// user-mode context (`regs[mode] & mode_mask == mode_user`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct RegsLayout {
    pub ip: u32,
    pub sp: u32,
    pub fp: u32,
    /// [`UserRegs::aux`]; `u32::MAX` where there is none.
    pub aux: u32,
    pub mode: u32,
    pub mode_mask: u32,
    pub mode_user: u32,
    /// [`UserRegs::arg`]; `u32::MAX` where it is not read.
    pub arg: u32,
    /// The register Go code keeps its current goroutine (`g`) in; `u32::MAX` where it is not read.
    pub g: u32,
}

impl RegsLayout {
    /// x86_64: `r14` 8 (Go's `g`), `bp` 32, `bx` 40, `di` 112, `ip` 128, `cs` 136 (privilege
    /// level in its low two bits), `sp` 152.
    pub const X86_64: RegsLayout = RegsLayout {
        ip: 128,
        sp: 152,
        fp: 32,
        aux: 40,
        mode: 136,
        mode_mask: 3,
        mode_user: 3,
        arg: 112,
        g: 8,
    };
    /// aarch64: `regs[29]` 232, `regs[30]` 240, `sp` 248, `pc` 256, `pstate` 264 (EL0t: mode 0).
    pub const AARCH64: RegsLayout = RegsLayout {
        ip: 256,
        sp: 248,
        fp: 232,
        aux: 240,
        mode: 264,
        mode_mask: 0xf,
        mode_user: 0,
        arg: u32::MAX,
        g: u32::MAX,
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
    pub tcp_receive_reset: TcpOffsets,
    pub tcp_send_reset: TcpResetOffsets,
    pub tcp_sock: TcpSockOffsets,
    pub signal: SignalOffsets,
    pub oom: OomOffsets,
    pub irq: IrqOffsets,
    pub reclaim: ReclaimOffsets,
    pub lock: LockOffsets,
    pub fault: FaultOffsets,
    /// The architecture's `pt_regs`.
    pub regs: RegsLayout,
    /// Bytes of user stack copied at a switch-out when the thread's stack top is not known.
    pub switch_window: u32,
    /// Bytes of user stack copied with a profile sample when the stack top is not known.
    pub sample_window: u32,
    /// Non-zero: `sched_waking` also records the waker's stacks ([`WakingEvent`]).
    pub waker_stacks: u32,
    /// Offsets of `task_struct.mm` and `mm_struct.start_stack` (from BTF; 0 when unknown): a
    /// process's main thread has every frame below its `start_stack`.
    pub task_mm: u32,
    pub mm_start_stack: u32,
    /// Offset of `task_struct.stack` and the size of a kernel stack, from BTF (0 when unknown): a
    /// tracepoint that fired on another stack than the current task's fired in an interrupt.
    pub task_stack: u32,
    pub thread_size: u32,
    /// Task fields for the scheduler's BTF raw tracepoint programs (all 0 without BTF).
    pub task: TaskOffsets,
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: plain #[repr(C)] integers and arrays, no padding the kernel could misread.
    unsafe impl aya::Pod for super::Config {}
}
