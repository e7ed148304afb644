//! flightrec's eBPF programs. Entry points are thin; each source lives in its own module and all of
//! them write through [`emit`].
#![no_std]
#![no_main]

mod block;
mod emit;
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

use aya_ebpf::{
    macros::perf_event,
    programs::{BtfTracePointContext, PerfEventContext, TracePointContext},
};

/// What a tracepoint program returns: 1 lets the event go on to every other perf user of the
/// tracepoint. 0 would filter it out for all of them: `perf record -e sched:sched_switch` run
/// beside the recorder would see nothing.
const KEEP_EVENT: u32 = 1;

/// A tracepoint program: like aya's `#[tracepoint]`, but returning [`KEEP_EVENT`] (aya's always
/// returns 0, which hides the event from every other perf user of the tracepoint).
macro_rules! tracepoint {
    ($name:ident, $body:expr) => {
        #[no_mangle]
        #[link_section = "tracepoint"]
        pub fn $name(ctx: *mut core::ffi::c_void) -> u32 {
            let ctx = TracePointContext::new(ctx);
            let body: fn(&TracePointContext) = $body;
            body(&ctx);
            KEEP_EVENT
        }
    };
}

/// A BTF raw tracepoint program (`tp_btf`); the recorder names the tracepoint when it loads it.
/// What it returns is ignored.
macro_rules! btf_tracepoint {
    ($name:ident, $body:expr) => {
        #[no_mangle]
        #[link_section = "tp_btf"]
        pub fn $name(ctx: *mut core::ffi::c_void) -> i32 {
            let ctx = BtfTracePointContext::new(ctx);
            let body: fn(&BtfTracePointContext) = $body;
            body(&ctx);
            0
        }
    };
}

btf_tracepoint!(sched_switch_btf, |ctx| sched::switch_btf(ctx));
btf_tracepoint!(sched_waking_btf, |ctx| sched::waking_btf(ctx));
btf_tracepoint!(sched_wakeup_btf, |ctx| sched::wakeup_btf(ctx, false));
btf_tracepoint!(sched_wakeup_new_btf, |ctx| sched::wakeup_btf(ctx, true));
tracepoint!(sched_switch, |ctx| sched::switch(ctx));
tracepoint!(sched_waking, |ctx| sched::waking(ctx));
tracepoint!(sched_wakeup, |ctx| sched::wakeup(ctx, false));
tracepoint!(sched_wakeup_new, |ctx| sched::wakeup(ctx, true));
tracepoint!(sched_process_exec, |ctx| process::exec(ctx));
tracepoint!(sched_process_fork, |ctx| process::fork(ctx));
tracepoint!(sched_process_exit, |ctx| process::exit(ctx));
tracepoint!(block_rq_issue, |ctx| block::request(ctx, false));
tracepoint!(block_rq_complete, |ctx| block::request(ctx, true));
tracepoint!(sys_enter, |ctx| syscall::enter(ctx));
tracepoint!(sys_exit, |ctx| syscall::exit(ctx));
tracepoint!(inet_sock_set_state, |ctx| tcp::set_state(ctx));
tracepoint!(tcp_retransmit_skb, |ctx| tcp::retransmit(ctx));
tracepoint!(tcp_send_reset, |ctx| tcp::send_reset(ctx));
tracepoint!(tcp_receive_reset, |ctx| tcp::receive_reset(ctx));
tracepoint!(signal_generate, |ctx| signal::generate(ctx));
tracepoint!(mark_victim, |ctx| oom::mark_victim(ctx));
tracepoint!(irq_handler_entry, |ctx| irq::handler_entry(ctx));
tracepoint!(irq_handler_exit, |ctx| irq::handler_exit(ctx));
tracepoint!(softirq_entry, |ctx| irq::softirq(ctx, false));
tracepoint!(softirq_exit, |ctx| irq::softirq(ctx, true));
tracepoint!(mm_vmscan_direct_reclaim_begin, |ctx| reclaim::begin(ctx, false));
tracepoint!(mm_vmscan_direct_reclaim_end, |ctx| reclaim::end(ctx, false));
tracepoint!(mm_vmscan_memcg_reclaim_begin, |ctx| reclaim::begin(ctx, true));
tracepoint!(mm_vmscan_memcg_reclaim_end, |ctx| reclaim::end(ctx, true));
tracepoint!(contention_begin, |ctx| lock::begin(ctx));
tracepoint!(contention_end, |ctx| lock::end(ctx));
tracepoint!(page_fault_user, |ctx| fault::page_fault_user(ctx));

#[perf_event]
pub fn profile_cpu_clock(ctx: PerfEventContext) -> u32 {
    profile::sample(&ctx);
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
