//! `sched_switch` with the stacks of the task leaving the CPU, and wake-ups with their waker.
//!
//! Each program comes twice: for the tracepoint (the fields of the record the kernel formatted) and
//! for the BTF raw tracepoint (`tp_btf`: the kernel passes the tasks, read by BTF offsets). The raw
//! one skips the perf trace buffer the kernel fills before a tracepoint program runs; the recorder
//! attaches it where the kernel has BTF.
use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    macros::map,
    maps::HashMap,
    programs::{BtfTracePointContext, TracePointContext},
    EbpfContext,
};
use flightrec_common::{
    switch_state, EventKind, Source, SwitchEvent, UserRegs, WakeupEvent, WakingEvent, COMM_LEN,
};

use crate::emit::{
    conf, current, emit, emit_value, field, header, is_own, scratch, walk_kernel_stack,
    walk_stacks, Raw, SLOT_TRACEPOINT,
};

/// The waker of each task being woken, by the woken tid: `sched_waking` runs in the waker's
/// context, `sched_wakeup` may run on the woken task's CPU after an IPI, where `current` is
/// whatever runs there (often the idle task). Entries are taken by `sched_wakeup` (every waking is
/// followed by its wake-up), so the map holds only wake-ups in flight; a plain preallocated hash
/// costs less per operation than an LRU one. An entry whose wake-up program the kernel skipped
/// stays until the task's next waking replaces it: the time of the waking bounds how long it is
/// believed ([`WAKER_FRESH_NS`]), so a stale one can never name the waker of a later wake-up.
#[map]
static WAKERS: HashMap<u32, Waker> = HashMap::with_max_entries(WAKERS_ENTRIES, 0);

const WAKERS_ENTRIES: u32 = 8192;

/// A waking and its wake-up are microseconds apart (the same try_to_wake_up, or an IPI later).
const WAKER_FRESH_NS: u64 = 10_000_000;

/// Who woke a task (pid_tgid), and when.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Waker {
    id: u64,
    ts: u64,
}

/// `sched_waking`: remembers who wakes the task (`current`) and when.
pub fn waking(ctx: &TracePointContext) {
    let pid: i32 = field(ctx, conf!(wakeup.pid));
    let (tid, tgid) = remember_waker(pid);
    if conf!(waker_stacks) != 0 && !is_own(tgid) {
        waking_stacks(ctx, pid, tid, tgid);
    }
}

/// [`waking`] as a BTF raw tracepoint (`sched_waking(p)`). Without the waker's stacks only: telling
/// an interrupt's waking needs the registers a tracepoint program gets.
pub fn waking_btf(ctx: &BtfTracePointContext) {
    let p: *const u8 = ctx.arg(0);
    remember_waker(task_field(p, conf!(task.pid)));
}

/// Notes `current` as the waker of `pid`; returns current as (tid, tgid).
#[inline(always)]
fn remember_waker(pid: i32) -> (u32, u32) {
    let (tid, tgid) = current();
    let waker = Waker {
        id: ((tgid as u64) << 32) | tid as u64,
        ts: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
    };
    let _ = WAKERS.insert(&(pid as u32), &waker, 0);
    (tid, tgid)
}

/// A field of a task the kernel passed a BTF raw tracepoint, at an offset from BTF. A plain load:
/// the offset is a constant of the read-only config, so the verifier checks it against the type.
#[inline(always)]
fn task_field<T: Copy>(task: *const u8, offset: u32) -> T {
    unsafe { core::ptr::read_volatile(task.add(offset as usize).cast::<T>()) }
}

/// A task's comm, in two loads.
#[inline(always)]
fn task_comm(task: *const u8) -> [u8; COMM_LEN] {
    let off = conf!(task.comm);
    let lo: u64 = task_field(task, off);
    let hi: u64 = task_field(task, off + 8);
    let mut comm = [0u8; COMM_LEN];
    comm[..8].copy_from_slice(&lo.to_ne_bytes());
    comm[8..].copy_from_slice(&hi.to_ne_bytes());
    comm
}

/// True when the tracepoint fired on another stack than the current task's kernel stack: an
/// interrupt's (x86_64 and arm64 run hard and soft interrupts on per-CPU stacks). A softirq run
/// on the task's own stack (at `local_bh_enable`) counts as the task's: it does that work on its
/// behalf. False when BTF did not give the offsets.
#[inline(always)]
fn in_interrupt(ctx: &TracePointContext) -> bool {
    let (off, size) = (conf!(task_stack), conf!(thread_size));
    if off == 0 || size == 0 {
        return false;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let Ok(stack) = (unsafe { bpf_probe_read_kernel(task.add(off as usize).cast::<u64>()) }) else {
        return false;
    };
    // For a BPF program the tracing core puts the registers it took at the tracepoint (its
    // caller's frame: the stack the event happened on) where the record's common fields were.
    // The program's own stack can be a private per-CPU one, so it says nothing.
    let regs: u64 = field(ctx, 0);
    if regs == 0 {
        return false;
    }
    let at = (regs as *const u8).wrapping_add((conf!(regs.sp) & 0x1ff) as usize);
    let Ok(sp) = (unsafe { bpf_probe_read_kernel(at.cast::<u64>()) }) else {
        return false;
    };
    !(sp >= stack && sp < stack + size as u64)
}

/// Records the waker's stacks (`--waker-stacks`): its kernel stack, and in task context its user
/// stack as a switch-out's. In interrupt context current is only the task the interrupt came upon:
/// its user stack says nothing of the wake-up, the kernel stack (the interrupt's path) does.
#[inline(always)]
fn waking_stacks(ctx: &TracePointContext, pid: i32, tid: u32, tgid: u32) {
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let irq = in_interrupt(ctx);
    let ev = buf.cast::<WakingEvent>();
    let at = core::mem::size_of::<WakingEvent>();
    let (k, u, regs, len) = if irq || tid == 0 {
        let (k, len) = walk_kernel_stack(ctx, buf, at);
        (k, 0, UserRegs::default(), len)
    } else {
        walk_stacks(ctx, tid, tgid, buf, at, conf!(switch_window))
    };
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::Waking);
        (*ev).pid = pid;
        (*ev).irq = irq as u32;
        (*ev).kstack_len = k;
        (*ev).ustack_len = u;
        (*ev).regs = regs;
    }
    emit(Source::Sched, buf, len);
}

/// `sched_switch` from the tracepoint's record.
pub fn switch(ctx: &TracePointContext) {
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let ev = buf.cast::<SwitchEvent>();
    let raw = Raw::copy(ctx, buf, conf!(switch.record_len));
    unsafe {
        (*ev).prev_pid = raw.get(conf!(switch.prev_pid));
        (*ev).next_pid = raw.get(conf!(switch.next_pid));
        (*ev).prev_prio = raw.get(conf!(switch.prev_prio));
        (*ev).next_prio = raw.get(conf!(switch.next_prio));
        (*ev).prev_state = raw.get(conf!(switch.prev_state));
        (*ev).prev_comm = raw.get(conf!(switch.prev_comm));
        (*ev).next_comm = raw.get(conf!(switch.next_comm));
    }
    switch_stacks(ctx, buf);
}

/// `sched_switch` as a BTF raw tracepoint: `(preempt, prev, next, prev_state)`, the record's fields
/// read from the tasks and prev's state encoded as the tracepoint does.
pub fn switch_btf(ctx: &BtfTracePointContext) {
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let preempt: u64 = ctx.arg(0);
    let prev: *const u8 = ctx.arg(1);
    let next: *const u8 = ctx.arg(2);
    let state: u64 = ctx.arg(3);
    let ev = buf.cast::<SwitchEvent>();
    unsafe {
        (*ev).prev_pid = task_field(prev, conf!(task.pid));
        (*ev).next_pid = task_field(next, conf!(task.pid));
        (*ev).prev_prio = task_field(prev, conf!(task.prio));
        (*ev).next_prio = task_field(next, conf!(task.prio));
        (*ev).prev_state = switch_state(
            preempt & 0xff != 0,
            state as u32,
            task_field(prev, conf!(task.exit_state)),
        );
        (*ev).prev_comm = task_comm(prev);
        (*ev).next_comm = task_comm(next);
    }
    switch_stacks(ctx, buf);
}

/// The rest of a switch record, whose task fields are in `buf`: the header and prev's stacks.
#[inline(always)]
fn switch_stacks<C: EbpfContext>(ctx: &C, buf: *mut u8) {
    // Current is prev: the stacks walked here are where prev goes off-CPU. A switch away from the
    // recorder or the idle task is still recorded (it is next's switch-in), only the stacks are not
    // walked.
    let (tid, tgid) = current();
    let ev = buf.cast::<SwitchEvent>();
    unsafe { (*ev).hdr = header(tid, tgid, EventKind::Switch) };
    // The idle task (tid 0) leaving the CPU always has the same kernel stack (the idle loop) and no
    // user one, and its "off-CPU" time is the CPU's busy time: about half of all switches on an
    // idle-ish machine, so not walking it halves the cost of the switch program there.
    let (k, u, regs, len) = if is_own(tgid) || tid == 0 {
        (
            0,
            0,
            UserRegs::default(),
            core::mem::size_of::<SwitchEvent>(),
        )
    } else {
        walk_stacks(
            ctx,
            tid,
            tgid,
            buf,
            core::mem::size_of::<SwitchEvent>(),
            conf!(switch_window),
        )
    };
    unsafe {
        (*ev).kstack_len = k;
        (*ev).ustack_len = u;
        (*ev).regs = regs;
    }
    emit(Source::Sched, buf, len);
}

/// `sched_wakeup` / `sched_wakeup_new` from the tracepoint's record.
pub fn wakeup(ctx: &TracePointContext, new: bool) {
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let raw = Raw::copy(ctx, buf, conf!(wakeup.record_len));
    emit_wakeup(
        new,
        raw.get(conf!(wakeup.pid)),
        raw.get(conf!(wakeup.prio)),
        raw.get(conf!(wakeup.target_cpu)),
        raw.get(conf!(wakeup.comm)),
    );
}

/// [`wakeup`] as a BTF raw tracepoint (`sched_wakeup(p)`); the target CPU is `task_cpu(p)`, as
/// the tracepoint's.
pub fn wakeup_btf(ctx: &BtfTracePointContext, new: bool) {
    let p: *const u8 = ctx.arg(0);
    emit_wakeup(
        new,
        task_field(p, conf!(task.pid)),
        task_field(p, conf!(task.prio)),
        task_field(p, conf!(task.cpu)),
        task_comm(p),
    );
}

#[inline(always)]
fn emit_wakeup(new: bool, pid: i32, prio: i32, target_cpu: i32, comm: [u8; COMM_LEN]) {
    // The waker `sched_waking` saw; `current` when it did not run (a new task: wake_up_new_task
    // has no waking; the map was full; the kernel skipped it).
    let now = unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() };
    let (tid, tgid) = match unsafe { WAKERS.get(&(pid as u32)) } {
        Some(&w) => {
            let _ = WAKERS.remove(&(pid as u32));
            if now.wrapping_sub(w.ts) < WAKER_FRESH_NS {
                (w.id as u32, (w.id >> 32) as u32)
            } else {
                current()
            }
        }
        None => current(),
    };
    let kind = if new {
        EventKind::WakeupNew
    } else {
        EventKind::Wakeup
    };
    let ev = WakeupEvent {
        hdr: header(tid, tgid, kind),
        pid,
        prio,
        target_cpu,
        _pad: 0,
        comm,
    };
    emit_value(Source::Sched, &ev);
}
