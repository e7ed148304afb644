//! Command line of `flightrec-analyze`: a thin layer over the library's analyses.
pub(crate) mod common;

use std::{
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    time::Duration,
};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};

pub use common::Common;
use common::{json, open, require_events, stacks_output};

use crate::{
    flame, latency,
    offcpu::{self, State},
    profile,
    summary::summary,
};

/// flightrec-analyze: latency, off-CPU, profiles and flame graphs from flightrec captures.
#[derive(Debug, Parser)]
#[command(name = "flightrec-analyze", version, about)]
pub struct Cli {
    /// What to compute.
    #[command(subcommand)]
    pub command: Command,
}

/// Off-CPU selection options.
#[derive(Debug, Args, Clone)]
pub struct OffcpuArgs {
    /// Which switch-outs count.
    #[arg(long, value_enum, default_value_t = State::All)]
    pub state: State,
    /// Ignore off-CPU intervals shorter than this (e.g. 1ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub min: Option<Duration>,
    /// Ignore off-CPU intervals longer than this.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub max: Option<Duration>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Host, time range, events, losses, and the top processes on and off CPU.
    Summary {
        #[command(flatten)]
        common: Common,
    },
    /// Latency distribution: run queue, block I/O or syscalls.
    Latency {
        #[command(flatten)]
        common: Common,
        /// Which latency.
        #[arg(long, value_enum)]
        kind: latency::Kind,
        /// One histogram per process, comm, disk (block) or syscall (syscall).
        #[arg(long, value_enum)]
        by: Option<latency::By>,
    },
    /// Off-CPU time by stack (offcputime).
    Offcpu {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        offcpu: OffcpuArgs,
        /// One line per stack, `comm;frame;... microseconds`, for flame graph tools.
        #[arg(long)]
        folded: bool,
        /// Stacks to show in text output.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// On-CPU samples by stack (profile).
    Profile {
        #[command(flatten)]
        common: Common,
        /// One line per stack, `comm;frame;... samples`.
        #[arg(long)]
        folded: bool,
        /// Stacks to show in text output.
        #[arg(long, default_value_t = 20)]
        top: usize,
    },
    /// Read every table of every segment and check it against its metadata.
    Verify {
        #[command(flatten)]
        common: Common,
    },
    /// SQL over captures, snapshots, bundles and lake trees (tables by their schema names, and the
    /// views runq_latency, block_latency, syscall_latency, offcpu, samples, processes).
    Sql {
        /// Captures, snapshots, exported bundles or lake trees, from one or many hosts.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// The query, e.g. "SELECT comm, COUNT(*) FROM samples GROUP BY comm".
        #[arg(short = 'e', long = "execute", value_name = "SQL")]
        query: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = crate::sql::Format::Text)]
        format: crate::sql::Format,
        /// Write the result to this file instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// List the tables and views with their columns.
        #[arg(long, conflicts_with = "query")]
        tables: bool,
        /// Run on an Apache DataFusion Ballista cluster (its scheduler, e.g. df://localhost:50050;
        /// `flightrec-cluster` starts one) instead of in this process. Inputs must be lake trees
        /// at paths every executor can read.
        #[arg(long, value_name = "df://HOST:PORT")]
        cluster: Option<String>,
    },
    /// The capture for other tools: a Perfetto trace, or its stacks for pprof tools and speedscope.
    Convert {
        /// Capture directory.
        capture: PathBuf,
        /// Only this process (pid = thread group id).
        #[arg(long)]
        pid: Option<i32>,
        /// Only threads with this name.
        #[arg(long)]
        comm: Option<String>,
        /// Only tasks in this cgroup or below it.
        #[arg(long)]
        cgroup: Option<String>,
        /// Start of the range, as for the other commands.
        #[arg(long)]
        from: Option<String>,
        /// End of the range (the other commands' --to; here --to names the format).
        #[arg(long)]
        until: Option<String>,
        /// Name user frames from separate debug files found here by build ID.
        #[arg(long)]
        debuginfo_dir: Option<PathBuf>,
        #[command(flatten)]
        offcpu: OffcpuArgs,
        /// Target format.
        #[arg(long = "to", value_enum)]
        format: crate::convert::Format,
        /// On-CPU samples (as `profile`) or off-CPU time (as `offcpu`).
        #[arg(long, value_enum, default_value_t = crate::convert::Kind::Cpu)]
        kind: crate::convert::Kind,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// One self-contained HTML page for a ticket: findings, timeline, heat map, flame graphs,
    /// latency distributions, processes. Opens from disk; loads nothing.
    Report {
        #[command(flatten)]
        common: Common,
        /// Output file, e.g. incident.html.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// The book's other tools (cpudist, execsnoop, exitsnoop, biosnoop, bitesize, syscount).
    #[command(flatten)]
    Tool(crate::tools::cli::Tool),
    /// Interactive SVG flame graph.
    Flamegraph {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        offcpu: OffcpuArgs,
        /// On-CPU (samples) or off-CPU (time blocked).
        #[arg(long, value_enum)]
        kind: flame::Kind,
        /// Output file (default: stdout).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
}

fn offcpu_options(a: &OffcpuArgs) -> offcpu::Options {
    offcpu::Options {
        state: a.state,
        min_ns: a.min.map_or(0, |d| d.as_nanos() as u64),
        max_ns: a.max.map(|d| d.as_nanos() as u64),
    }
}

/// Runs a command; returns what to print on stdout.
pub fn run(cli: Cli) -> Result<String> {
    match cli.command {
        Command::Summary { common } => {
            let (cap, filter) = open(&common)?;
            let s = summary(&cap, &filter)?;
            if common.json {
                json(&s)
            } else {
                Ok(s.render())
            }
        }
        Command::Latency { common, kind, by } => {
            match (kind, by) {
                (latency::Kind::Runq | latency::Kind::Syscall, Some(latency::By::Disk))
                | (latency::Kind::Runq | latency::Kind::Block, Some(latency::By::Syscall)) => {
                    bail!(
                        "--by {by:?} does not apply to --kind {kind:?}",
                        by = by.unwrap()
                    )
                }
                _ => {}
            }
            let (cap, filter) = open(&common)?;
            let needed = match kind {
                latency::Kind::Runq => "sched",
                latency::Kind::Block => "block",
                latency::Kind::Syscall => "syscall",
            };
            require_events(&cap, needed)?;
            let r = latency::latency(&cap, kind, by, &filter)?;
            if common.json {
                return json(&r);
            }
            let mut out = format!("{}\n", r.lost.banner());
            if r.groups.is_empty() {
                out.push_str("no matching events in this range\n");
            }
            for g in &r.groups {
                if let Some(by) = by {
                    let by = format!("{by:?}").to_lowercase();
                    out.push_str(&format!("\n{by} = {}\n", g.name));
                }
                out.push_str(&g.dist.render());
            }
            Ok(out)
        }
        Command::Sql {
            inputs,
            query,
            format,
            output,
            tables,
            cluster,
        } => crate::sql::run(&crate::sql::Options {
            inputs,
            query,
            format,
            output,
            tables,
            cluster,
        }),
        Command::Verify { mut common } => {
            // Verify reads every file to find damage: each one is a problem it lists.
            common.strict = true;
            let (cap, _) = open(&common)?;
            let v = crate::verify::verify(&cap)?;
            let out = if common.json { json(&v)? } else { v.render() };
            if !v.ok {
                // The report goes out, and the exit status says the capture is damaged.
                print!("{out}");
                bail!("{} is damaged", common.capture.display());
            }
            Ok(out)
        }
        Command::Offcpu {
            common,
            offcpu: o,
            folded,
            top,
        } => {
            let (cap, filter) = open(&common)?;
            let r = offcpu::offcpu(&cap, &filter, &offcpu_options(&o))?;
            stacks_output(&r, &common, folded, top)
        }
        Command::Tool(tool) => tool.run(),
        Command::Profile {
            common,
            folded,
            top,
        } => {
            let (cap, filter) = open(&common)?;
            let r = profile::profile(&cap, &filter)?;
            stacks_output(&r, &common, folded, top)
        }
        Command::Convert {
            capture,
            pid,
            comm,
            cgroup,
            from,
            until,
            debuginfo_dir,
            offcpu: o,
            format,
            kind,
            output,
        } => {
            let (cap, filter) = open(&Common {
                capture,
                pid,
                comm,
                cgroup,
                from,
                to: until,
                json: false,
                debuginfo_dir,
                strict: false,
            })?;
            use crate::convert::Format;
            if matches!(format, Format::Perfetto | Format::Chrome) {
                let stats = crate::convert::write_trace(&cap, &filter, format, &output)?;
                if let Some(stats) = stats {
                    eprintln!(
                        "{}: {} switches and wakings, {} CPU samples, {} block requests",
                        output.display(),
                        stats.sched_events,
                        stats.samples,
                        stats.block_requests
                    );
                }
                eprintln!("{}", crate::lost::Lost::in_range(&cap, &filter).banner());
                return Ok(String::new());
            }
            let report = match kind {
                crate::convert::Kind::Cpu => profile::profile(&cap, &filter)?,
                crate::convert::Kind::Offcpu => offcpu::offcpu(&cap, &filter, &offcpu_options(&o))?,
            };
            crate::convert::write(&cap, &filter, &report, format, kind, &output)?;
            eprintln!("{}", report.banner());
            Ok(String::new())
        }
        Command::Report { common, output } => {
            let (cap, filter) = open(&common)?;
            let html = crate::report::build(&cap, &filter)?;
            std::fs::write(&output, &html)
                .with_context(|| format!("cannot write {}", output.display()))?;
            eprintln!(
                "{}: {} KiB; open it in a browser",
                output.display(),
                html.len() / 1024
            );
            Ok(String::new())
        }
        Command::Flamegraph {
            common,
            offcpu: o,
            kind,
            output,
        } => {
            let (cap, filter) = open(&common)?;
            let (r, what) = match kind {
                flame::Kind::Oncpu => (profile::profile(&cap, &filter)?, "On-CPU"),
                flame::Kind::Offcpu => (
                    offcpu::offcpu(&cap, &filter, &offcpu_options(&o))?,
                    "Off-CPU Time",
                ),
                flame::Kind::Offwake => {
                    require_events(&cap, "sched")?;
                    let opts = crate::wakeups::Options {
                        min_ns: o.min.map_or(0, |d| d.as_nanos() as u64),
                        max_ns: o.max.map(|d| d.as_nanos() as u64),
                    };
                    let kind = crate::wakeups::Kind::Offwake;
                    let r = crate::wakeups::wake_stacks(&cap, &filter, kind, opts)?;
                    (r, "Off-Wake Time")
                }
                flame::Kind::Faults => {
                    require_events(&cap, "fault")?;
                    let r = profile::count_stacks(
                        &cap,
                        &filter,
                        flightrec_schemas::Table::Fault,
                        "faults",
                    )?;
                    (r, "Page Fault")
                }
                flame::Kind::Locks => {
                    require_events(&cap, "lock")?;
                    let (_, r) = crate::tools::klockstat::klockstat(&cap, &filter)?;
                    (r, "Kernel Lock Wait")
                }
            };
            let title = format!(
                "{what} Flame Graph: {} ({})",
                cap.manifest.host,
                cap.root.display()
            );
            match output {
                Some(path) => {
                    let f = File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let mut w = BufWriter::new(f);
                    flame::write_svg(&r, kind, &title, &mut w)?;
                    w.flush()?;
                    eprintln!("{}", r.banner());
                    Ok(String::new())
                }
                None => {
                    let mut buf = Vec::new();
                    flame::write_svg(&r, kind, &title, &mut buf)?;
                    eprintln!("{}", r.banner());
                    Ok(String::from_utf8(buf)?)
                }
            }
        }
    }
}
