//! One module per event source: the tracepoint programs it attaches and how it fills the programs'
//! configuration (tracepoint field offsets from tracefs, kernel structure offsets from BTF,
//! filters). A source is a vertical slice: its eBPF program (`ebpf/flightrec-ebpf/src/<source>.rs`),
//! its records (`flightrec-common`'s `<source>.rs`), its module here, its row builders
//! (`batch/<source>.rs`) and its table (`flightrec-schemas`). The profile source is a perf_event
//! program, attached by the loader itself.
use anyhow::Result;
use flightrec_common::{Config, Source};

use crate::tracefs::Format;

pub use sched::{btf_program, raw_program, RAW_STATES_SINCE};

mod block;
mod fault;
mod irq;
mod lock;
mod oom;
mod process;
mod reclaim;
mod sched;
mod signal;
mod syscall;
mod tcp;

pub use tcp::reset_reason;

/// A tracepoint program: (program name in the object, tracefs group, event).
pub type Tracepoint = (&'static str, &'static str, &'static str);

/// What the user asked of the sources (`--pid`/`--comm` filter the syscalls in the kernel).
#[derive(Clone, Copy, Debug, Default)]
pub struct Filters<'a> {
    pub syscall_pid: Option<u32>,
    pub syscall_comm: Option<&'a str>,
}

/// What a source's configuration reads from the running kernel.
pub struct Kernel<'a> {
    /// A tracepoint's format (group, event).
    pub format: &'a dyn Fn(&str, &str) -> Result<Format>,
    /// A field's offset in a kernel structure from BTF (0 when unknown).
    pub btf_offset: &'a dyn Fn(&str, &str) -> u32,
    /// Programs that have a BTF raw tracepoint form may be attached so.
    pub raw_tracepoints: bool,
}

/// The tracepoint programs of `source`.
pub fn tracepoints(source: Source) -> &'static [Tracepoint] {
    match source {
        Source::Sched => sched::TRACEPOINTS,
        Source::Process => process::TRACEPOINTS,
        Source::Profile => &[],
        Source::Block => block::TRACEPOINTS,
        Source::Syscall => syscall::TRACEPOINTS,
        Source::Tcp => tcp::TRACEPOINTS,
        Source::Signal => signal::TRACEPOINTS,
        Source::Oom => oom::TRACEPOINTS,
        Source::Irq => irq::TRACEPOINTS,
        Source::Reclaim => reclaim::TRACEPOINTS,
        Source::Lock => lock::TRACEPOINTS,
        Source::Fault => fault::TRACEPOINTS,
    }
}

/// Fills `source`'s part of the programs' configuration.
pub fn configure(source: Source, c: &mut Config, k: &Kernel, f: &Filters) -> Result<()> {
    match source {
        Source::Sched => sched::configure(c, k),
        Source::Process => process::configure(c, k),
        Source::Profile => Ok(()),
        Source::Block => block::configure(c, k),
        Source::Syscall => syscall::configure(c, k, f),
        Source::Tcp => tcp::configure(c, k),
        Source::Signal => signal::configure(c, k),
        Source::Oom => oom::configure(c, k),
        Source::Irq => irq::configure(c, k),
        Source::Reclaim => reclaim::configure(c, k),
        Source::Lock => lock::configure(c, k),
        Source::Fault => fault::configure(c, k),
    }
}
