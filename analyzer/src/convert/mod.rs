//! `flightrec-analyze convert`: a capture's stacks in the formats other tools read.
//!
//! The values are exactly those of the analyzer's own commands (`profile` for on-CPU, `offcpu` for
//! off-CPU, same filters), so a converted file and `flightrec-analyze` agree on every total; the
//! frames keep the names the recording host gave them and, for user code, the module and build ID
//! they are in ([`Frames`]).
use std::{
    collections::HashMap,
    fs::File,
    io::{BufWriter, Write},
    path::Path,
};

use anyhow::{bail, Context, Result};

use crate::{
    capture::Capture,
    filter::Filter,
    names::{Module, Stacks},
    parallel::selected,
    stackagg::StackReport,
};

pub mod chrome;
pub mod perfetto;
pub mod pprof;
pub mod speedscope;

/// Target formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// gzipped pprof `profile.proto` (go tool pprof, Pyroscope, Grafana).
    Pprof,
    /// speedscope's JSON (one sampled profile per process name).
    Speedscope,
    /// A Perfetto protobuf trace: CPUs, threads, wake-ups, samples with stacks, block I/O.
    Perfetto,
    /// Chrome trace-event JSON: threads on CPUs, samples, block I/O.
    Chrome,
}

/// Which stacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// CPU samples (as `profile`).
    Cpu,
    /// Time blocked off CPU (as `offcpu`).
    Offcpu,
}

/// What a converted profile covers, for its header.
pub struct Window {
    /// Wall-clock start, ns since the epoch.
    pub start_ns: i64,
    /// Length, ns.
    pub duration_ns: i64,
    /// Profile sampling frequency per CPU (Hz), for on-CPU profiles.
    pub freq_hz: u64,
    /// One line said in the profile's comments (host, capture).
    pub comment: String,
}

/// Where a frame name comes from: a module of user code, or the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// User code in this module.
    User(Module),
    /// A kernel symbol.
    Kernel,
    /// Neither (a marker such as `[truncated: ...]`, or a frame no segment names).
    Unknown,
}

/// Frame names of the selected segments, with where each comes from. A name found in two modules
/// keeps the first (the folded stacks the values come from carry names only).
#[derive(Default)]
pub struct Frames {
    user: HashMap<String, Module>,
    kernel: std::collections::HashSet<String>,
}

impl Frames {
    /// Collects the frames of the segments `filter` selects.
    pub fn load(cap: &Capture, filter: &Filter) -> Result<Frames> {
        let mut f = Frames::default();
        for seg in selected(cap, filter) {
            let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
            for (name, module) in stacks.user_frame_modules() {
                if !f.user.contains_key(name) {
                    f.user.insert(name.to_string(), module.clone());
                }
            }
            for name in stacks.kernel_names() {
                if !f.kernel.contains(name) {
                    f.kernel.insert(name.to_string());
                }
            }
        }
        Ok(f)
    }

    /// Where `name` comes from.
    pub fn origin(&self, name: &str) -> Origin {
        if let Some(m) = self.user.get(name) {
            Origin::User(m.clone())
        } else if self.kernel.contains(name) {
            Origin::Kernel
        } else {
            Origin::Unknown
        }
    }
}

/// Writes the Perfetto or Chrome trace of the capture (the segments and time range `filter` selects) to
/// `path`.
pub fn write_trace(
    cap: &Capture,
    filter: &Filter,
    format: Format,
    path: &Path,
) -> Result<Option<perfetto::Stats>> {
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(f);
    let stats = match format {
        Format::Chrome => {
            chrome::write(cap, filter, &mut w)?;
            None
        }
        _ => Some(perfetto::write(cap, filter, &mut w)?),
    };
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(stats)
}

/// Writes `report` (the values of `profile` or `offcpu` over `filter`) as `format` to `path`.
pub fn write(
    cap: &Capture,
    filter: &Filter,
    report: &StackReport,
    format: Format,
    kind: Kind,
    path: &Path,
) -> Result<()> {
    if report.stacks.is_empty() {
        bail!("no stacks in this range to convert (check --pid, --comm, --from and --to)");
    }
    let frames = Frames::load(cap, filter)?;
    let (start, end) = crate::filter::window(cap, filter);
    let window = Window {
        start_ns: cap.manifest.clock.to_realtime_ns(start),
        duration_ns: end.saturating_sub(start) as i64,
        freq_hz: cap.manifest.config.freq_hz,
        comment: format!(
            "flightrec {} of {} ({})",
            match kind {
                Kind::Cpu => "on-CPU profile",
                Kind::Offcpu => "off-CPU time",
            },
            cap.manifest.host,
            cap.root.display()
        ),
    };
    let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut w = BufWriter::new(f);
    match format {
        Format::Pprof => pprof::write(report, kind, &frames, &window, &mut w)?,
        Format::Speedscope => speedscope::write(report, kind, &frames, &window, &mut w)?,
        Format::Perfetto | Format::Chrome => {
            bail!("a trace is not made of stacks alone: use write_trace")
        }
    }
    w.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
