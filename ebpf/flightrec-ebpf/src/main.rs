//! flightrec's eBPF programs. Entry points are thin; each source lives in its own module and all of
//! them write through [`emit`].
#![no_std]
#![no_main]

mod block;
mod emit;
mod process;
mod profile;
mod sched;
mod syscall;
mod tcp;

use aya_ebpf::{
    macros::{perf_event, tracepoint},
    programs::{PerfEventContext, TracePointContext},
};

#[tracepoint]
pub fn sched_switch(ctx: TracePointContext) -> u32 {
    sched::switch(&ctx);
    0
}

#[tracepoint]
pub fn sched_wakeup(ctx: TracePointContext) -> u32 {
    sched::wakeup(&ctx, false);
    0
}

#[tracepoint]
pub fn sched_wakeup_new(ctx: TracePointContext) -> u32 {
    sched::wakeup(&ctx, true);
    0
}

#[tracepoint]
pub fn sched_process_exec(ctx: TracePointContext) -> u32 {
    process::exec(&ctx);
    0
}

#[tracepoint]
pub fn sched_process_fork(ctx: TracePointContext) -> u32 {
    process::fork(&ctx);
    0
}

#[tracepoint]
pub fn sched_process_exit(ctx: TracePointContext) -> u32 {
    process::exit(&ctx);
    0
}

#[perf_event]
pub fn profile_cpu_clock(ctx: PerfEventContext) -> u32 {
    profile::sample(&ctx);
    0
}

#[tracepoint]
pub fn block_rq_issue(ctx: TracePointContext) -> u32 {
    block::request(&ctx, false);
    0
}

#[tracepoint]
pub fn block_rq_complete(ctx: TracePointContext) -> u32 {
    block::request(&ctx, true);
    0
}

#[tracepoint]
pub fn sys_enter(ctx: TracePointContext) -> u32 {
    syscall::enter(&ctx);
    0
}

#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    syscall::exit(&ctx);
    0
}

#[tracepoint]
pub fn inet_sock_set_state(ctx: TracePointContext) -> u32 {
    tcp::set_state(&ctx);
    0
}

#[tracepoint]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    tcp::retransmit(&ctx);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

/// The hash of the sources this object was built from (`ebpf/source-hash.sh`, passed in by
/// `ebpf/build.sh`), in the object's own bytes: a test reads it back from the embedded object.
#[no_mangle]
#[used]
static FLIGHTREC_SOURCE_HASH: [u8; 64] = source_hash(option_env!("FLIGHTREC_SOURCE_HASH"));

const fn source_hash(hash: Option<&str>) -> [u8; 64] {
    let mut out = [b'0'; 64];
    if let Some(h) = hash {
        let b = h.as_bytes();
        let mut i = 0;
        while i < b.len() && i < 64 {
            out[i] = b[i];
            i += 1;
        }
    }
    out
}
