//! `syscall`: raw syscall enter and exit, optionally of one process or thread name.
use anyhow::{bail, Result};
use flightrec_common::{Config, SyscallOffsets, COMM_LEN};

use super::{Filters, Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("sys_enter", "raw_syscalls", "sys_enter"),
    ("sys_exit", "raw_syscalls", "sys_exit"),
];

pub fn configure(c: &mut Config, k: &Kernel, opts: &Filters) -> Result<()> {
    c.syscall = syscall_offsets(
        &(k.format)("raw_syscalls", "sys_enter")?,
        &(k.format)("raw_syscalls", "sys_exit")?,
    )?;
    c.syscall_tgid = opts.syscall_pid.unwrap_or(0);
    if let Some(comm) = opts.syscall_comm {
        let b = comm.as_bytes();
        if b.is_empty() || b.len() >= COMM_LEN {
            bail!("--comm must be 1 to {} bytes, got {comm:?}", COMM_LEN - 1);
        }
        c.syscall_comm[..b.len()].copy_from_slice(b);
    }
    Ok(())
}

/// Offsets of `raw_syscalls:sys_enter` and `sys_exit`.
pub fn syscall_offsets(enter: &Format, exit: &Format) -> Result<SyscallOffsets> {
    Ok(SyscallOffsets {
        enter_id: enter.offset("id", &[8])?,
        exit_id: exit.offset("id", &[8])?,
        exit_ret: exit.offset("ret", &[8])?,
    })
}
