//! `signal`: every signal generated, with its sender (current), target and result.
use anyhow::Result;
use flightrec_common::{Config, SignalOffsets};

use super::{Kernel, Tracepoint};
use crate::tracefs::Format;

pub const TRACEPOINTS: &[Tracepoint] = &[("signal_generate", "signal", "signal_generate")];

pub fn configure(c: &mut Config, k: &Kernel) -> Result<()> {
    c.signal = signal_offsets(&(k.format)("signal", "signal_generate")?)?;
    Ok(())
}

/// Offsets of `signal:signal_generate`.
pub fn signal_offsets(f: &Format) -> Result<SignalOffsets> {
    Ok(SignalOffsets {
        record_len: f.record_len()?,
        sig: f.offset("sig", &[4])?,
        errno: f.offset("errno", &[4])?,
        code: f.offset("code", &[4])?,
        comm: f.offset("comm", &[16])?,
        pid: f.offset("pid", &[4])?,
        group: f.offset("group", &[4])?,
        result: f.offset("result", &[4])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::{read_format, tracefs_root};

    #[test]
    fn this_kernel_signal_format_parses() {
        let Ok(root) = tracefs_root() else {
            flightrec_tests::skip("tracefs is not available (needs root)");
            return;
        };
        let f = read_format(&root, "signal", "signal_generate").unwrap();
        signal_offsets(&f).unwrap();
    }
}
