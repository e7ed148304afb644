//! `oom`: the OOM killer's victims (`oom:mark_victim`), with the task that invoked it (current).
use anyhow::Result;
use flightrec_common::{Config, OomOffsets};

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[("mark_victim", "oom", "mark_victim")];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    c.oom = oom_offsets(&(k.format)("oom", "mark_victim")?)?;
    Ok(())
}

/// Offsets of `oom:mark_victim`: `pid` always; the rest since Linux 6.1 (`u32::MAX` before).
pub fn oom_offsets(f: &Format) -> Result<OomOffsets> {
    let opt = |name: &str, sizes: &[u32]| -> Result<u32> {
        if f.has(name) {
            f.offset(name, sizes)
        } else {
            Ok(u32::MAX)
        }
    };
    Ok(OomOffsets {
        pid: f.offset("pid", &[4])?,
        comm: if f.has("comm") {
            f.string("comm")?
        } else {
            u32::MAX
        },
        total_vm: opt("total_vm", &[8])?,
        anon_rss: opt("anon_rss", &[8])?,
        file_rss: opt("file_rss", &[8])?,
        shmem_rss: opt("shmem_rss", &[8])?,
        uid: opt("uid", &[4])?,
        pgtables: opt("pgtables", &[8])?,
        oom_score_adj: opt("oom_score_adj", &[2])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::{read_format, tracefs_root};

    #[test]
    fn this_kernel_oom_format_parses() {
        let Ok(root) = tracefs_root() else {
            flightrec_tests::skip("tracefs is not available (needs root)");
            return;
        };
        let o = oom_offsets(&read_format(&root, "oom", "mark_victim").unwrap()).unwrap();
        assert_ne!(o.total_vm, u32::MAX, "6.18 has the memory fields");
    }
}
