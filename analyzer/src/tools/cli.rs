//! The command line of the book's other tools: one subcommand each, flattened into
//! `flightrec-analyze`'s, with the same filters (`Common`), `--json` and loss reporting.
use anyhow::Result;
use clap::{Args, Subcommand};

use flightrec_schemas::Table;

use crate::{
    cli::common::{json, open, require_events, stacks_output, Common},
    wakeups::{wake_stacks, Kind, Options},
};

/// How the stack tools print: folded lines for a flame graph, or the top stacks (callers for
/// klockstat) for people.
#[derive(Debug, Args)]
pub struct StackOut {
    /// One line per stack, `comm;frame;... value` (microseconds for times), for a flame graph.
    #[arg(long)]
    folded: bool,
    /// Stacks (klockstat: callers) to show in text output.
    #[arg(long, default_value_t = 20)]
    top: usize,
}

/// The intervals offwaketime and wakeuptime count.
#[derive(Debug, Args)]
pub struct WakeRange {
    /// Leave out intervals shorter than this (e.g. 1ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    min: Option<std::time::Duration>,
    /// Leave out intervals longer than this.
    #[arg(long, value_parser = humantime::parse_duration)]
    max: Option<std::time::Duration>,
}

/// offwaketime or wakeuptime.
fn wake(common: Common, range: WakeRange, out: StackOut, kind: Kind) -> Result<String> {
    let (cap, filter) = open(&common)?;
    require_events(&cap, "sched")?;
    if !cap.manifest.config.waker_stacks {
        eprintln!(
            "note: this capture has no waker stacks (record with --waker-stacks): wakers are shown by name"
        );
    }
    let opts = Options {
        min_ns: range.min.map_or(0, |d| d.as_nanos() as u64),
        max_ns: range.max.map(|d| d.as_nanos() as u64),
    };
    let r = wake_stacks(&cap, &filter, kind, opts)?;
    stacks_output(&r, &common, out.folded, out.top)
}

/// The tools' subcommands.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// How long tasks ran on a CPU each time, as a histogram (cpudist).
    Cpudist {
        #[command(flatten)]
        common: Common,
        /// One histogram per process (cpudist -P) or thread (cpudist -L).
        #[arg(long, value_enum)]
        by: Option<super::cpudist::By>,
        /// Only stretches that ended with the task still runnable (preempted), as BCC's and
        /// libbpf-tools' cpudist count them.
        #[arg(long)]
        preempted: bool,
    },
    /// Every block request: time, process, disk, direction, sector, bytes, latency (biosnoop).
    Biosnoop {
        #[command(flatten)]
        common: Common,
    },
    /// Block request sizes per process name, as a histogram (bitesize).
    Bitesize {
        #[command(flatten)]
        common: Common,
    },
    /// Syscalls counted and timed per syscall or per process, the most frequent first (syscount -L).
    Syscount {
        #[command(flatten)]
        common: Common,
        /// Per process instead of per syscall (syscount -P).
        #[arg(long)]
        per_process: bool,
        /// Rows to print.
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Every successful exec: time, process, pid, parent, command line (execsnoop).
    Execsnoop {
        #[command(flatten)]
        common: Common,
        /// Print the executed file only, never the arguments (they can hold secrets).
        #[arg(long)]
        redact: bool,
    },
    /// Every process exit: time, process, pid, parent, age, exit code or signal (exitsnoop).
    Exitsnoop {
        #[command(flatten)]
        common: Common,
        /// Thread exits too, not only whole processes (exitsnoop -T).
        #[arg(long)]
        threads: bool,
        /// Only exits with a non-zero code or a signal (exitsnoop -x).
        #[arg(long)]
        failed: bool,
    },
    /// Run-queue length: the share of time each CPU's queue had 0, 1, 2, ... tasks waiting
    /// (runqlen; exact from the switches and wake-ups, not sampled).
    Runqlen {
        #[command(flatten)]
        common: Common,
        /// One histogram per CPU (runqlen -C).
        #[arg(long)]
        per_cpu: bool,
    },
    /// Everything that happened to a process (--pid, --comm) or on a CPU (--cpu) in a range, one
    /// event per line across the tables: switches, wake-ups, process events, syscalls, block I/O,
    /// samples, TCP.
    Timeline {
        #[command(flatten)]
        common: Common,
        /// Only events on this CPU.
        #[arg(long)]
        cpu: Option<u16>,
        /// Print at most this many events (the first ones).
        #[arg(long, default_value_t = 10_000)]
        limit: usize,
    },
    /// Signals sent: time, sender, signal, target, result (killsnoop).
    Killsnoop {
        #[command(flatten)]
        common: Common,
        /// Also signals the kernel raised itself (SIGCHLD at exits, SIGSEGV at faults, timers),
        /// not only those sent with kill(), tkill(), tgkill() or sigqueue().
        #[arg(long)]
        all: bool,
    },
    /// OOM kills: the victim, its memory, and the task that invoked the OOM killer (oomkill).
    Oomkill {
        #[command(flatten)]
        common: Common,
    },
    /// Kernel lock contention: time waited per caller, with the stacks (klockstat; needs
    /// `--events ...,lock`).
    Klockstat {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        out: StackOut,
    },
    /// Off-CPU time by the blocked stack joined with the stack of the task that woke it, the
    /// waker drawn upside down on top (offwaketime; waker stacks need `--waker-stacks`).
    Offwaketime {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        range: WakeRange,
        #[command(flatten)]
        out: StackOut,
    },
    /// Time blocked until the wake-up, by the waker's stack (wakeuptime; waker stacks need
    /// `--waker-stacks`).
    Wakeuptime {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        range: WakeRange,
        #[command(flatten)]
        out: StackOut,
    },
    /// Page faults taken in user mode, counted per user stack (faults; needs `--events ...,fault`).
    Faults {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        out: StackOut,
    },
    /// Each reclaim a task had to do before its allocation went on, direct or memory-cgroup, with
    /// its latency and pages (drsnoop).
    Drsnoop {
        #[command(flatten)]
        common: Common,
    },
    /// Time in each hard IRQ handler (hardirqs).
    Hardirqs {
        #[command(flatten)]
        common: Common,
    },
    /// Time in each softirq vector (softirqs).
    Softirqs {
        #[command(flatten)]
        common: Common,
    },
    /// One line per TCP connection that closed: owner, addresses, ports, lifetime (tcplife).
    Tcplife {
        #[command(flatten)]
        common: Common,
    },
    /// Active TCP opens (connect): time, owner, addresses, port (tcpconnect).
    Tcpconnect {
        #[command(flatten)]
        common: Common,
    },
    /// Passive TCP opens (accept): time, owner, remote and local address and port (tcpaccept).
    Tcpaccept {
        #[command(flatten)]
        common: Common,
    },
    /// TCP connect latency, SYN_SENT to ESTABLISHED, per active open (tcpconnlat).
    Tcpconnlat {
        #[command(flatten)]
        common: Common,
    },
    /// Every retransmitted TCP segment: time, owner, addresses, state (tcpretrans).
    Tcpretrans {
        #[command(flatten)]
        common: Common,
    },
    /// TCP resets sent and received: time, owner, addresses, state, the kernel's reason for a sent
    /// one (`NO_SOCKET`, `TCP_ABORT_ON_CLOSE`, ...).
    Tcpreset {
        #[command(flatten)]
        common: Common,
    },
}

/// A tool's output: its report as JSON with `--json`, else the capture's losses and `text`.
fn output<R: serde::Serialize>(
    common: &Common,
    r: &R,
    lost: &crate::lost::Lost,
    text: impl FnOnce() -> String,
) -> Result<String> {
    if common.json {
        return json(r);
    }
    Ok(format!("{}\n{}", lost.banner(), text()))
}

/// hardirqs' or softirqs' output.
fn irqs(common: Common, kind: super::irqs::Kind) -> Result<String> {
    let (cap, filter) = open(&common)?;
    require_events(&cap, "irq")?;
    let r = super::irqs::irqs(&cap, &filter, kind)?;
    output(&common, &r, &r.lost, || r.render(kind))
}

/// A TCP tool's output.
fn tcp(common: Common, tool: super::tcp::report::Tool) -> Result<String> {
    let (cap, filter) = open(&common)?;
    require_events(&cap, "tcp")?;
    let r = super::tcp::report::report(&cap, &filter, tool)?;
    output(&common, &r, &r.lost, || r.render(&cap, &filter, tool))
}

impl Tool {
    /// Runs the tool; its output as text (or JSON with `--json`).
    pub fn run(self) -> Result<String> {
        match self {
            Tool::Cpudist {
                common,
                by,
                preempted,
            } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "sched")?;
                let r = super::cpudist::cpudist(&cap, &filter, by, preempted)?;
                output(&common, &r, &r.lost, || {
                    let mut out = String::new();
                    if r.groups.is_empty() {
                        out.push_str("no matching events in this range\n");
                    }
                    for g in &r.groups {
                        if by.is_some() {
                            out.push_str(&format!("\n{}\n", g.name));
                        }
                        out.push_str(&g.dist.render());
                    }
                    out
                })
            }
            Tool::Biosnoop { common } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "block")?;
                let r = super::biosnoop::biosnoop(&cap, &filter)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Bitesize { common } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "block")?;
                let r = super::biosnoop::biosnoop(&cap, &filter)?;
                let sizes = r.sizes();
                if common.json {
                    return json(&serde_json::json!({"processes": sizes, "lost": r.lost}));
                }
                let mut out = r.lost.banner();
                out.push('\n');
                for s in &sizes {
                    out.push_str(&s.render());
                }
                Ok(out)
            }
            Tool::Syscount {
                common,
                per_process,
                top,
            } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "syscall")?;
                let r = super::syscount::syscount(&cap, &filter, per_process, top)?;
                output(&common, &r, &r.lost, || r.render(per_process))
            }
            Tool::Execsnoop { common, redact } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "process")?;
                let r = super::execsnoop::execsnoop(&cap, &filter, redact)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Exitsnoop {
                common,
                threads,
                failed,
            } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "process")?;
                let opts = super::exitsnoop::Options { threads, failed };
                let r = super::exitsnoop::exitsnoop(&cap, &filter, opts)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Runqlen { common, per_cpu } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "sched")?;
                let r = super::runqlen::runqlen(&cap, &filter)?;
                output(&common, &r, &r.lost, || {
                    if !per_cpu {
                        return r.all.render();
                    }
                    let cpus = r.cpus.iter();
                    cpus.map(|q| format!("\ncpu = {}\n{}", q.cpu.unwrap_or(0), q.render()))
                        .collect()
                })
            }
            Tool::Timeline { common, cpu, limit } => {
                let (cap, filter) = open(&common)?;
                let sel = super::timeline::Select {
                    filter: &filter,
                    cpu,
                };
                let r = super::timeline::timeline(&cap, &sel, limit)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Killsnoop { common, all } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "signal")?;
                let r = super::killsnoop::killsnoop(&cap, &filter, all)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Oomkill { common } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "oom")?;
                let r = super::oomkill::oomkill(&cap, &filter)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Drsnoop { common } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "reclaim")?;
                let r = super::drsnoop::drsnoop(&cap, &filter)?;
                output(&common, &r, &r.lost, || r.render())
            }
            Tool::Klockstat { common, out } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "lock")?;
                let (r, stacks) = super::klockstat::klockstat(&cap, &filter)?;
                if out.folded {
                    return stacks_output(&stacks, &common, true, out.top);
                }
                output(&common, &r, &r.lost, || r.render(out.top))
            }
            Tool::Offwaketime { common, range, out } => wake(common, range, out, Kind::Offwake),
            Tool::Wakeuptime { common, range, out } => wake(common, range, out, Kind::Wakeup),
            Tool::Faults { common, out } => {
                let (cap, filter) = open(&common)?;
                require_events(&cap, "fault")?;
                let r = crate::profile::count_stacks(&cap, &filter, Table::Fault, "faults")?;
                stacks_output(&r, &common, out.folded, out.top)
            }
            Tool::Hardirqs { common } => irqs(common, super::irqs::Kind::Hard),
            Tool::Softirqs { common } => irqs(common, super::irqs::Kind::Soft),
            Tool::Tcplife { common } => tcp(common, super::tcp::report::Tool::Life),
            Tool::Tcpconnect { common } => tcp(common, super::tcp::report::Tool::Connect),
            Tool::Tcpaccept { common } => tcp(common, super::tcp::report::Tool::Accept),
            Tool::Tcpconnlat { common } => tcp(common, super::tcp::report::Tool::Connlat),
            Tool::Tcpretrans { common } => tcp(common, super::tcp::report::Tool::Retrans),
            Tool::Tcpreset { common } => tcp(common, super::tcp::report::Tool::Reset),
        }
    }
}
