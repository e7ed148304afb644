//! Interactive SVG flame graphs with inferno.
use std::io::Write;

use inferno::flamegraph::{color::BasicPalette, Options, Palette};

use crate::stackagg::StackReport;

/// Which flame graph.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// On-CPU: width = samples.
    Oncpu,
    /// Off-CPU: width = time blocked, in microseconds.
    Offcpu,
    /// Off-CPU time with the waker's stack on top (offwaketime): width = time, in microseconds.
    Offwake,
    /// Page faults: width = faults (needs `--events ...,fault`).
    Faults,
    /// Kernel lock waits: width = time waited, in microseconds (needs `--events ...,lock`).
    Locks,
}

/// Writes the SVG of `report` to `out`.
pub fn write_svg(
    report: &StackReport,
    kind: Kind,
    title: &str,
    out: impl Write,
) -> anyhow::Result<()> {
    let folded = report.folded();
    if folded.is_empty() {
        anyhow::bail!("no stacks in this range to draw (check --pid, --comm, --from and --to)");
    }
    let mut opts = Options::default();
    opts.title = title.to_string();
    match kind {
        Kind::Oncpu => {
            opts.count_name = "samples".into();
            opts.colors = Palette::Basic(BasicPalette::Hot);
        }
        Kind::Offcpu | Kind::Locks | Kind::Offwake => {
            opts.count_name = "us".into();
            opts.colors = Palette::Basic(BasicPalette::Io);
        }
        Kind::Faults => {
            opts.count_name = "faults".into();
            opts.colors = Palette::Basic(BasicPalette::Mem);
        }
    }
    if report.lost.total > 0 {
        opts.subtitle = Some(report.lost.banner());
    }
    inferno::flamegraph::from_lines(&mut opts, folded.lines(), out)?;
    Ok(())
}
