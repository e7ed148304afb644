//! `fault`: page faults taken in user mode, with the user stack that faulted (faults). Opt-in: a
//! process that starts or touches fresh memory faults thousands of times a second.
use anyhow::Result;
use flightrec_common::{Config, FaultOffsets};

use super::{Kernel, Tracepoint};

pub const TRACEPOINTS: &[Tracepoint] = &[("page_fault_user", "exceptions", "page_fault_user")];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    let f = (k.format)("exceptions", "page_fault_user")?;
    c.fault = FaultOffsets {
        address: f.offset("address", &[8])?,
        ip: f.offset("ip", &[8])?,
        error_code: f.offset("error_code", &[8])?,
    };
    Ok(())
}
