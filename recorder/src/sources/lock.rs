//! `lock`: kernel lock contention, begin (with the waiter's kernel stack) and end (klockstat).
//! Opt-in: under a contended workload spinlocks alone can contend hundreds of thousands of times
//! a second.
use anyhow::Result;
use flightrec_common::{Config, LockOffsets};

use super::{Kernel, Tracepoint};

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("contention_begin", "lock", "contention_begin"),
    ("contention_end", "lock", "contention_end"),
];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    let (begin, end) = (
        (k.format)("lock", "contention_begin")?,
        (k.format)("lock", "contention_end")?,
    );
    c.lock = LockOffsets {
        begin_lock_addr: begin.offset("lock_addr", &[8])?,
        begin_flags: begin.offset("flags", &[4])?,
        end_lock_addr: end.offset("lock_addr", &[8])?,
        end_ret: end.offset("ret", &[4])?,
    };
    Ok(())
}
