//! `process`: exec, fork and exit (with the exit code, from `task_struct` by BTF).
use anyhow::{bail, Result};
use flightrec_common::{Config, ProcessOffsets};

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("sched_process_exec", "sched", "sched_process_exec"),
    ("sched_process_fork", "sched", "sched_process_fork"),
    ("sched_process_exit", "sched", "sched_process_exit"),
];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    c.process = process_offsets(
        &(k.format)("sched", "sched_process_exec")?,
        &(k.format)("sched", "sched_process_fork")?,
        &(k.format)("sched", "sched_process_exit")?,
    )?;
    c.process.task_exit_code = (k.btf_offset)("task_struct", "exit_code");
    c.process.mm_arg_start = (k.btf_offset)("mm_struct", "arg_start");
    c.process.mm_arg_end = (k.btf_offset)("mm_struct", "arg_end");
    Ok(())
}

/// Offsets of exec, fork and exit.
pub fn process_offsets(exec: &Format, fork: &Format, exit: &Format) -> Result<ProcessOffsets> {
    let filename = exec.field("filename", &[])?;
    if !filename.data_loc {
        bail!(
            "sched_process_exec filename is not a __data_loc string on this kernel: not supported"
        );
    }
    Ok(ProcessOffsets {
        exec_filename: filename.offset,
        exec_pid: exec.offset("pid", &[4])?,
        exec_old_pid: exec.offset("old_pid", &[4])?,
        fork_parent_pid: fork.offset("parent_pid", &[4])?,
        fork_child_pid: fork.offset("child_pid", &[4])?,
        fork_child_comm: fork.string("child_comm")?,
        exit_comm: exit.string("comm")?,
        exit_pid: exit.offset("pid", &[4])?,
        exit_prio: exit.offset("prio", &[4])?,
        exit_group_dead: exit.offset("group_dead", &[1])?,
        // Not a tracepoint field: filled in from the kernel's BTF by the loader.
        task_exit_code: 0,
        mm_arg_start: 0,
        mm_arg_end: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::{read_format, tracefs_root};

    #[test]
    fn this_kernel_process_formats_parse() {
        let Ok(root) = tracefs_root() else {
            flightrec_tests::skip("tracefs is not available (needs root)");
            return;
        };
        let exec = read_format(&root, "sched", "sched_process_exec").unwrap();
        let fork = read_format(&root, "sched", "sched_process_fork").unwrap();
        let exit = read_format(&root, "sched", "sched_process_exit").unwrap();
        process_offsets(&exec, &fork, &exit).unwrap();
    }
}
