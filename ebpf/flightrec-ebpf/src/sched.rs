//! `sched_switch` with the stacks of the task leaving the CPU, and wake-ups with their waker.
use aya_ebpf::{
    helpers::{bpf_get_current_task, bpf_probe_read_kernel},
    macros::map,
    maps::HashMap,
    programs::TracePointContext,
};
use flightrec_common::{EventKind, Source, SwitchEvent, UserRegs, WakeupEvent, WakingEvent};

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
    let (tid, tgid) = current();
    let waker = Waker {
        id: ((tgid as u64) << 32) | tid as u64,
        ts: unsafe { aya_ebpf::helpers::bpf_ktime_get_ns() },
    };
    let _ = WAKERS.insert(&(pid as u32), &waker, 0);
    if conf!(waker_stacks) != 0 && !is_own(tgid) {
        waking_stacks(ctx, pid, tid, tgid);
    }
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

pub fn switch(ctx: &TracePointContext) {
    // Current is prev: the stacks walked here are where prev goes off-CPU. A switch away from the
    // recorder or the idle task is still recorded (it is next's switch-in), only the stacks are not
    // walked.
    let (tid, tgid) = current();
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let ev = buf.cast::<SwitchEvent>();
    let raw = Raw::copy(ctx, buf, conf!(switch.record_len));
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::Switch);
        (*ev).prev_pid = raw.get(conf!(switch.prev_pid));
        (*ev).next_pid = raw.get(conf!(switch.next_pid));
        (*ev).prev_prio = raw.get(conf!(switch.prev_prio));
        (*ev).next_prio = raw.get(conf!(switch.next_prio));
        (*ev).prev_state = raw.get(conf!(switch.prev_state));
        (*ev).prev_comm = raw.get(conf!(switch.prev_comm));
        (*ev).next_comm = raw.get(conf!(switch.next_comm));
    }
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

pub fn wakeup(ctx: &TracePointContext, new: bool) {
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let raw = Raw::copy(ctx, buf, conf!(wakeup.record_len));
    let pid: i32 = raw.get(conf!(wakeup.pid));
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
        prio: raw.get(conf!(wakeup.prio)),
        target_cpu: raw.get(conf!(wakeup.target_cpu)),
        _pad: 0,
        comm: raw.get(conf!(wakeup.comm)),
    };
    emit_value(Source::Sched, &ev);
}
