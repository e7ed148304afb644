//! raw_syscalls enter/exit, filtered in the kernel by tgid and comm.
use aya_ebpf::{helpers::bpf_get_current_comm, programs::TracePointContext};
use flightrec_common::{EventKind, Source, SyscallEvent, COMM_LEN};

use crate::emit::{conf, current, emit_value, field, header, is_own};

#[inline(always)]
fn wanted(tgid: u32) -> bool {
    if is_own(tgid) {
        return false;
    }
    let want_tgid = conf!(syscall_tgid);
    if want_tgid != 0 && want_tgid != tgid {
        return false;
    }
    let want_comm: [u8; COMM_LEN] = conf!(syscall_comm);
    if want_comm[0] != 0 {
        let Ok(comm) = bpf_get_current_comm() else {
            return false;
        };
        let mut i = 0;
        while i < COMM_LEN {
            if comm[i] != want_comm[i] {
                return false;
            }
            if comm[i] == 0 {
                break;
            }
            i += 1;
        }
    }
    true
}

pub fn enter(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    if !wanted(tgid) {
        return;
    }
    let ev = SyscallEvent {
        hdr: header(tid, tgid, EventKind::SysEnter),
        id: field(ctx, conf!(syscall.enter_id)),
        ret: 0,
    };
    emit_value(Source::Syscall, &ev);
}

pub fn exit(ctx: &TracePointContext) {
    let (tid, tgid) = current();
    if !wanted(tgid) {
        return;
    }
    let ev = SyscallEvent {
        hdr: header(tid, tgid, EventKind::SysExit),
        id: field(ctx, conf!(syscall.exit_id)),
        ret: field(ctx, conf!(syscall.exit_ret)),
    };
    emit_value(Source::Syscall, &ev);
}
