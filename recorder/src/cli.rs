//! Command-line parsing of `flightrec`.
use std::{path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use flightrec_common::Source;

use crate::{probes::Attach, trigger::Trigger};

/// flightrec: a flight recorder for Linux. Keeps the last minutes of kernel events on disk.
#[derive(Debug, Parser)]
#[command(name = "flightrec", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Record kernel events into a rolling window of Parquet segments in DIR.
    Record(RecordArgs),
    /// Freeze the window of the recorder running on DIR into DIR/snapshots/NAME (hard links).
    Snapshot {
        /// Capture directory of a running recorder.
        #[arg(long)]
        dir: PathBuf,
        /// Snapshot name (default: snapshot-<UTC time>).
        #[arg(long)]
        name: Option<String>,
    },
    /// Turn the journal a killed recorder left in DIR into a finished segment (the next
    /// `record` and `export` on DIR do this too).
    Salvage {
        /// Capture directory.
        dir: PathBuf,
    },
    /// Check what this machine's kernel offers the recorder: one line per piece, what is lost
    /// without a missing one and how to fix it.
    Check {
        /// Event sources to check for (default: all).
        #[arg(long, value_parser = parse_events)]
        events: Option<Sources>,
    },
    /// Write a capture or snapshot into one tar file for a ticket (-o), or captures from many
    /// hosts into one Hive-partitioned Parquet tree for SQL engines (--lake).
    Export {
        /// Capture or snapshot directories (bundles too, with --lake).
        #[arg(required = true)]
        captures: Vec<PathBuf>,
        /// Output file (one capture).
        #[arg(short, long, required_unless_present = "lake", conflicts_with = "lake")]
        output: Option<PathBuf>,
        /// Lake directory: DIR/<table>/host=<host>/date=<yyyy-mm-dd>/<capture>.parquet.
        #[arg(long, value_name = "DIR")]
        lake: Option<PathBuf>,
    },
}

/// Arguments of `flightrec record`.
#[derive(Debug, Args)]
pub struct RecordArgs {
    /// Capture directory (created 0700 if missing; an existing capture's window is continued).
    #[arg(long, env = "FLIGHTREC_DIR")]
    pub dir: PathBuf,
    /// Stop after this long (e.g. 30s, 5m); default: until Ctrl-C or SIGTERM.
    #[arg(long, value_parser = parse_duration, env = "FLIGHTREC_DURATION")]
    pub duration: Option<Duration>,
    /// Keep this much history; older segments are deleted.
    #[arg(long, default_value = "10m", value_parser = parse_duration, env = "FLIGHTREC_WINDOW")]
    pub window: Duration,
    /// Keep at most this many bytes of segments (e.g. 512MiB, 2GiB).
    #[arg(long, default_value = "2GiB", value_parser = parse_bytes, env = "FLIGHTREC_MAX_SIZE")]
    pub max_size: u64,
    /// Length of one segment.
    #[arg(long, default_value = "10s", value_parser = parse_duration, env = "FLIGHTREC_SEGMENT")]
    pub segment: Duration,
    /// Event sources, comma separated: sched, process, profile, block, syscall, tcp, signal, oom,
    /// irq, reclaim, lock, fault, or all.
    #[arg(long, default_value = "sched,process,profile,block,signal,oom,reclaim", value_parser = parse_events, env = "FLIGHTREC_EVENTS")]
    pub events: Sources,
    /// Profile sampling frequency per CPU, Hz.
    #[arg(long, default_value_t = 49, value_parser = clap::value_parser!(u64).range(1..=10_000), env = "FLIGHTREC_FREQ")]
    pub freq: u64,
    /// Ring buffer size: a power of two, at least 64KiB.
    #[arg(long, default_value = "16MiB", value_parser = parse_ringbuf, env = "FLIGHTREC_RINGBUF_SIZE")]
    pub ringbuf_size: u64,
    /// Bytes of user stack copied with a switch-out (and with a profile sample) of a thread whose
    /// stack depth is not known yet, for unwinding frameless code with CFI; once a thread's depth is
    /// learned, its whole stack is copied (up to 32KiB). 0 copies nothing: frame pointers only.
    #[arg(long, default_value = "1KiB", value_parser = parse_stack_copy, env = "FLIGHTREC_STACK_COPY")]
    pub stack_copy: u64,
    /// Also record the waker's kernel and user stacks at every wake-up (`sched_waking`), for
    /// offwaketime and wakeuptime: about as costly again as the switches' stacks.
    #[arg(long, env = "FLIGHTREC_WAKER_STACKS")]
    pub waker_stacks: bool,
    /// How the scheduler's programs attach: auto (as BTF raw tracepoints where the kernel has BTF
    /// and is 6.1 or later: the kernel formats no trace record for them) or tracepoints. Both
    /// write the same records.
    #[arg(long, value_enum, default_value_t = Attach::Auto, env = "FLIGHTREC_ATTACH")]
    pub attach: Attach,
    /// Record syscalls of this process only.
    #[arg(long, env = "FLIGHTREC_PID")]
    pub pid: Option<u32>,
    /// Record syscalls of tasks with this comm only.
    #[arg(long, env = "FLIGHTREC_COMM")]
    pub comm: Option<String>,
    /// Freeze the window automatically when a condition is seen: runq>DURATION (run-queue
    /// latency), block>DURATION (block I/O latency), exit:signal[=N] (a process killed by a
    /// signal), exit:code[=N] (a process exiting non-zero), exit:oom (a process chosen by the OOM
    /// killer); add ,pid=N or ,comm=NAME to watch one process or thread name
    /// (runq>20ms,comm=postgres). May be given several times.
    #[arg(long = "trigger", env = "FLIGHTREC_TRIGGER", value_delimiter = ';')]
    pub triggers: Vec<Trigger>,
    /// After a trigger, keep recording this long before freezing.
    #[arg(long, default_value = "5s", value_parser = parse_duration_or_zero, env = "FLIGHTREC_POST")]
    pub post: Duration,
    /// After a trigger fired, ignore further matches for this long.
    #[arg(long, default_value = "60s", value_parser = parse_duration_or_zero, env = "FLIGHTREC_COOLDOWN")]
    pub cooldown: Duration,
    /// Leave command-line arguments and file paths out of the capture (executables, exec file
    /// names, source paths; modules keep only their file name).
    #[arg(long, env = "FLIGHTREC_REDACT")]
    pub redact: bool,
    /// No status line.
    #[arg(long, short, env = "FLIGHTREC_QUIET")]
    pub quiet: bool,
    /// Read settings from this file (TOML, a [record] table of the options above; default
    /// $FLIGHTREC_CONFIG, else /etc/flightrec/flightrec.toml when it exists). The command line
    /// wins over the environment (FLIGHTREC_<OPTION>), which wins over the file.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print the effective settings (and where each came from) as a config file, and exit.
    #[arg(long)]
    pub print_config: bool,
}

fn parse_duration_or_zero(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected a duration like 0s, 5s, 1m)"))
}

/// A parsed `--events` list.
#[derive(Clone, Debug)]
pub struct Sources(pub Vec<Source>);

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration like 500ms, 30s, 10m, 1h)"))?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

fn parse_bytes(s: &str) -> Result<u64, String> {
    let n = parse_size::parse_size(s)
        .map_err(|e| format!("{e} (expected a size like 512MiB or 2GiB)"))?;
    if n == 0 {
        return Err("must be more than zero".into());
    }
    Ok(n)
}

fn parse_stack_copy(s: &str) -> Result<u64, String> {
    let n = parse_size::parse_size(s).map_err(|e| format!("{e} (expected a size like 1KiB)"))?;
    if n > flightrec_common::MAX_WINDOW as u64 {
        return Err(format!(
            "{n} bytes: at most {} bytes of stack are copied with one event",
            flightrec_common::MAX_WINDOW
        ));
    }
    Ok(n)
}

fn parse_ringbuf(s: &str) -> Result<u64, String> {
    let n = parse_bytes(s)?;
    if !n.is_power_of_two() || !(64 * 1024..=1 << 30).contains(&n) {
        return Err(format!(
            "{n} bytes: the ring buffer must be a power of two between 64KiB and 1GiB"
        ));
    }
    Ok(n)
}

fn parse_events(s: &str) -> Result<Sources, String> {
    let mut v = Vec::new();
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            v.extend(Source::ALL);
            continue;
        }
        let src = Source::ALL
            .into_iter()
            .find(|x| x.name() == name)
            .ok_or_else(|| {
                let names: Vec<_> = Source::ALL.iter().map(|x| x.name()).collect();
                format!(
                    "unknown event source {name:?}; choose from {}, or all",
                    names.join(", ")
                )
            })?;
        v.push(src);
    }
    v.sort();
    v.dedup();
    if v.is_empty() {
        return Err("no event source given".into());
    }
    Ok(Sources(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_human_forms() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon")
            .unwrap_err()
            .contains("expected a duration"));
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("2GiB").unwrap(), 2 << 30);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_ringbuf("3MiB").unwrap_err().contains("power of two"));
        assert_eq!(parse_ringbuf("4MiB").unwrap(), 4 << 20);
    }

    #[test]
    fn parses_event_lists() {
        assert_eq!(
            parse_events("block,sched").unwrap().0,
            vec![Source::Sched, Source::Block]
        );
        assert_eq!(parse_events("all").unwrap().0.len(), Source::ALL.len());
        assert!(parse_events("sched,bogus")
            .unwrap_err()
            .contains("unknown event source \"bogus\""));
        assert!(parse_events(",").is_err());
    }
}
