//! exec, fork and exit: the process table of the capture.
use core::ffi::c_void;

use aya_ebpf::{
    helpers::{
        bpf_get_current_comm, bpf_get_current_task, bpf_probe_read_kernel, generated as gen,
    },
    programs::TracePointContext,
};
use flightrec_common::{
    EventKind, ExecEvent, ExitEvent, ForkEvent, Source, ARGS_LEN, COMM_LEN, DATA_LOC_FLAG,
    EXIT_CODE_UNKNOWN,
};

use aya_ebpf::{macros::map, maps::LruHashMap};
use flightrec_common::EXECS_ENTRIES;

use crate::emit::{
    conf, current, emit_value, emit_waking, field, field_comm, field_str, header, scratch,
    SLOT_TRACEPOINT,
};

/// When each process last exec'd: the recorder reads a process's mappings after the fact, and must
/// not apply post-exec mappings to the stacks of events before the exec.
#[map]
static EXECS: LruHashMap<u32, u64> = LruHashMap::with_max_entries(EXECS_ENTRIES, 0);

pub fn exec(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    // The event is larger than the BPF stack allows comfortably: assemble it in scratch.
    let Some(buf) = scratch(SLOT_TRACEPOINT) else {
        return;
    };
    let ev = buf.cast::<ExecEvent>();
    unsafe {
        (*ev).hdr = header(tid, tgid, EventKind::Exec);
        let _ = EXECS.insert(&tgid, &(*ev).hdr.ts, 0);
        (*ev).pid = field(ctx, conf!(process.exec_pid));
        (*ev).old_pid = field(ctx, conf!(process.exec_old_pid));
        (*ev)._pad = 0;
        (*ev).comm = bpf_get_current_comm().unwrap_or([0; COMM_LEN]);
        (*ev).filename[0] = 0;
        (*ev).filename_len = field_str(
            ctx,
            conf!(process.exec_filename) | DATA_LOC_FLAG,
            &mut (*ev).filename,
        ) as i32;
        (*ev).args_total = 0;
        (*ev).args_len = 0;
        let at = core::mem::size_of::<ExecEvent>();
        read_args(&mut *ev, buf.add(at));
        let args = if (*ev).args_len > 0 {
            (*ev).args_len as usize
        } else {
            0
        };
        // The recorder reads the new program's mappings while it runs: wake it now.
        emit_waking(Source::Process, buf, at + args, true);
    }
}

/// Copies the start of the new program's arguments (the `argv` strings the kernel just put on its
/// stack, between `mm->arg_start` and `mm->arg_end`) to `dst`, when the kernel's BTF gave the
/// offsets.
#[inline(always)]
fn read_args(ev: &mut ExecEvent, dst: *mut u8) {
    let (mm_off, start_off, end_off) = (
        conf!(task_mm),
        conf!(process.mm_arg_start),
        conf!(process.mm_arg_end),
    );
    if mm_off == 0 || start_off == 0 || end_off == 0 {
        return;
    }
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let Ok(mm) = (unsafe { bpf_probe_read_kernel(task.add(mm_off as usize).cast::<u64>()) }) else {
        return;
    };
    if mm == 0 {
        return;
    }
    let mm = mm as *const u8;
    let start = unsafe { bpf_probe_read_kernel(mm.add(start_off as usize).cast::<u64>()) };
    let end = unsafe { bpf_probe_read_kernel(mm.add(end_off as usize).cast::<u64>()) };
    let (Ok(start), Ok(end)) = (start, end) else {
        return;
    };
    if end <= start {
        return;
    }
    let total = end - start;
    ev.args_total = if total > u32::MAX as u64 {
        u32::MAX
    } else {
        total as u32
    };
    let dst = dst.cast::<c_void>();
    let src = start as *const c_void;
    // Two calls with sizes the verifier can bound: the whole buffer, or less than it.
    let (rc, n) = if total >= ARGS_LEN as u64 {
        let rc = unsafe { gen::bpf_probe_read_user(dst, ARGS_LEN as u32, src) };
        (rc, ARGS_LEN as i32)
    } else {
        let n = total as u32 & (ARGS_LEN as u32 - 1);
        (unsafe { gen::bpf_probe_read_user(dst, n, src) }, n as i32)
    };
    ev.args_len = if rc < 0 { rc as i32 } else { n };
}

pub fn fork(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    let mut ev = ForkEvent {
        hdr: header(tid, tgid, EventKind::Fork),
        parent_pid: field(ctx, conf!(process.fork_parent_pid)),
        child_pid: field(ctx, conf!(process.fork_child_pid)),
        comm: [0; COMM_LEN],
    };
    field_comm(ctx, conf!(process.fork_child_comm), &mut ev.comm);
    emit_value(Source::Process, &ev);
}

pub fn exit(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    // Set by do_exit() before this tracepoint; the offset comes from the kernel's BTF.
    let off = conf!(process.task_exit_code);
    let exit_code = if off == 0 {
        EXIT_CODE_UNKNOWN
    } else {
        let task = unsafe { bpf_get_current_task() } as *const u8;
        unsafe { bpf_probe_read_kernel(task.add(off as usize).cast::<i32>()) }.unwrap_or(EXIT_CODE_UNKNOWN)
    };
    let mut ev = ExitEvent {
        hdr: header(tid, tgid, EventKind::Exit),
        pid: field(ctx, conf!(process.exit_pid)),
        prio: field(ctx, conf!(process.exit_prio)),
        group_dead: field::<u8>(ctx, conf!(process.exit_group_dead)) as u32,
        exit_code,
        comm: [0; COMM_LEN],
    };
    field_comm(ctx, conf!(process.exit_comm), &mut ev.comm);
    emit_value(Source::Process, &ev);
}
