//! `block`: request issue and completion.
use anyhow::Result;
use flightrec_common::{BlockOffsets, Config};

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[
    ("block_rq_issue", "block", "block_rq_issue"),
    ("block_rq_complete", "block", "block_rq_complete"),
];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    c.block_issue = block_offsets(&(k.format)("block", "block_rq_issue")?, false)?;
    c.block_complete = block_offsets(&(k.format)("block", "block_rq_complete")?, true)?;
    Ok(())
}

/// Offsets of `block_rq_issue` (`complete` false) or `block_rq_complete`.
pub fn block_offsets(f: &Format, complete: bool) -> Result<BlockOffsets> {
    Ok(BlockOffsets {
        dev: f.offset("dev", &[4])?,
        sector: f.offset("sector", &[8])?,
        nr_sector: f.offset("nr_sector", &[4])?,
        bytes_or_error: if complete {
            f.offset("error", &[4])?
        } else {
            f.offset("bytes", &[4])?
        },
        rwbs: f.field("rwbs", &[8, 10, 16])?.offset,
    })
}
