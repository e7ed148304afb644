//! Overhead and size: `perf bench sched pipe` alone and under each tracer, rounds alternating
//! between configurations so drift on a shared machine hits all of them alike; medians reported as
//! slowdown against the untraced run. Also bytes on disk per recorded event, flightrec's capture
//! next to perf.data for the same run.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::util::{capture_summary, dir_bytes, events, median, perf_samples, release_bins, table};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Round trips of `perf bench sched pipe` per run.
    #[arg(long, default_value_t = 100_000)]
    loops: u64,
    /// Rounds (each runs every configuration once).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// A directory holding another build's `flightrec` (e.g. of the previous commit): measured in
    /// the same rounds, for a before/after ratio.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
    /// More arguments for this build's `flightrec record` (e.g. "--stack-copy 0").
    #[arg(long, default_value = "", allow_hyphen_values = true)]
    flightrec_args: String,
    /// The two sides as threads of one process (`perf bench sched pipe -T`): one of them is not
    /// its process's main thread, whose stack top the programs look up differently.
    #[arg(long)]
    threads: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Config {
    Nothing,
    Flightrec,
    Baseline,
    PerfRecord,
    Offcputime,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Nothing => "nothing",
            Config::Flightrec => "flightrec record --events sched",
            Config::Baseline => "flightrec record --events sched (--baseline build)",
            Config::PerfRecord => "perf record -e sched:sched_switch -e sched:sched_wakeup -g -a",
            Config::Offcputime => "offcputime (libbpf-tools)",
        }
    }
}

struct Tracer {
    child: Child,
}

impl Tracer {
    fn stop(mut self) -> Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        self.child.wait()?;
        Ok(())
    }
}

fn start(
    cfg: Config,
    bins: &str,
    baseline: &str,
    extra: &str,
    work: &Path,
) -> Result<Option<Tracer>> {
    let child = match cfg {
        Config::Nothing => return Ok(None),
        Config::Flightrec | Config::Baseline => {
            let dir = work.join(capture_name(cfg));
            let _ = std::fs::remove_dir_all(&dir);
            let bin = if cfg == Config::Baseline {
                baseline
            } else {
                bins
            };
            let mut c = Command::new(format!("{bin}/flightrec"))
                .arg("record")
                .arg("--dir")
                .arg(&dir)
                .args(["--events", "sched", "--segment", "60s", "--quiet"])
                .args(
                    extra
                        .split_whitespace()
                        .filter(|_| cfg == Config::Flightrec),
                )
                .spawn()?;
            while !dir.join("manifest.json").exists() {
                if c.try_wait()?.is_some() {
                    bail!("flightrec exited; run as root");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            c
        }
        Config::PerfRecord => {
            let c = crate::util::perf_record_switches()
                .args(["-e", "sched:sched_wakeup", "-g", "-a", "-o"])
                .arg(work.join("perf.data"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("perf (apt-get install linux-perf)")?;
            // perf has no ready line; its setup takes well under a second here.
            std::thread::sleep(Duration::from_millis(1500));
            c
        }
        Config::Offcputime => {
            let c = Command::new("/usr/sbin/offcputime")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("offcputime (apt-get install libbpf-tools)")?;
            // It prints nothing until it stops; loading its programs takes well under a second.
            std::thread::sleep(Duration::from_millis(1500));
            c
        }
    };
    Ok(Some(Tracer { child }))
}

fn capture_name(cfg: Config) -> &'static str {
    if cfg == Config::Baseline {
        "capture-baseline"
    } else {
        "capture"
    }
}

fn pipe_bench(loops: u64, threads: bool) -> Result<Duration> {
    let mut perf = Command::new("perf");
    perf.args(["bench", "sched", "pipe", "-l", &loops.to_string()]);
    if threads {
        perf.arg("-T");
    }
    let out = perf.output().context("perf bench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let secs: f64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Total time:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no total time in perf bench output: {text}"))?;
    Ok(Duration::from_secs_f64(secs))
}

/// Runs the benchmark.
pub fn run(a: Args) -> Result<()> {
    let bins = release_bins()?;
    let bins = bins.to_str().context("utf-8 path")?.to_string();
    let work = std::env::temp_dir().join("flightrec-bench-overhead");
    std::fs::create_dir_all(&work)?;
    let baseline = a
        .baseline
        .as_ref()
        .map(|d| d.to_str().context("utf-8 path").map(String::from))
        .transpose()?;
    let mut configs = vec![Config::Nothing, Config::Flightrec];
    if baseline.is_some() {
        configs.push(Config::Baseline);
    }
    configs.extend([Config::PerfRecord, Config::Offcputime]);
    let baseline = baseline.unwrap_or_default();
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
    let mut sizes = (0u64, 0u64, 0u64, 0u64);
    // (configuration, BPF ns per program run, recorder CPU as a share of one core) of the
    // flightrec builds, from their first round.
    let mut bpf_per_run: Vec<(Config, f64, f64)> = Vec::new();
    for round in 0..a.rounds {
        eprintln!("round {}/{}", round + 1, a.rounds);
        for (i, cfg) in configs.iter().enumerate() {
            let tracer = start(*cfg, &bins, &baseline, &a.flightrec_args, &work)?;
            let t = pipe_bench(a.loops, a.threads)?;
            if let Some(t) = tracer {
                t.stop()?;
            }
            times[i].push(t);
            if round == 0 {
                match cfg {
                    Config::Flightrec | Config::Baseline => {
                        let cap = work.join(capture_name(*cfg));
                        let summary =
                            capture_summary(&bins, &cap).context("reading the capture")?;
                        let cost = &summary["cost"];
                        bpf_per_run.push((
                            *cfg,
                            cost["bpf_ns"].as_f64().unwrap_or(0.0)
                                / cost["bpf_runs"].as_f64().unwrap_or(1.0).max(1.0),
                            cost["recorder_cpu_ns"].as_f64().unwrap_or(0.0)
                                / cost["wall_ns"].as_f64().unwrap_or(1.0).max(1.0),
                        ));
                        if *cfg == Config::Flightrec {
                            sizes.0 = dir_bytes(&cap.join("segments"));
                            sizes.1 =
                                events(&summary, "sched_switch") + events(&summary, "sched_wakeup");
                        }
                    }
                    Config::PerfRecord => {
                        let data = work.join("perf.data");
                        sizes.2 = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
                        sizes.3 = perf_samples(&data)?;
                    }
                    _ => {}
                }
            }
        }
    }
    let medians: Vec<Duration> = times.into_iter().map(median).collect();
    let base = medians[0].as_secs_f64();
    println!(
        "\nperf bench sched pipe -l {}{}, median of {} alternating rounds:\n",
        a.loops,
        if a.threads { " -T" } else { "" },
        a.rounds
    );
    let rows: Vec<Vec<String>> = configs
        .iter()
        .zip(&medians)
        .map(|(c, m)| {
            vec![
                c.name().to_string(),
                format!("{:.3} s", m.as_secs_f64()),
                format!("{:+.0}%", (m.as_secs_f64() / base - 1.0) * 100.0),
            ]
        })
        .collect();
    table(&["recording", "time", "slowdown vs nothing"], &rows);
    println!("\nflightrec's own cost (first round, from the capture):\n");
    let rows: Vec<Vec<String>> = bpf_per_run
        .iter()
        .map(|(c, ns, cpu)| {
            vec![
                c.name().to_string(),
                format!("{ns:.0} ns"),
                format!("{:.0}%", cpu * 100.0),
            ]
        })
        .collect();
    table(
        &[
            "recording",
            "BPF ns per program run",
            "recorder CPU (one core)",
        ],
        &rows,
    );
    let per = |bytes: u64, n: u64| {
        if n == 0 {
            "n/a".to_string()
        } else {
            format!("{:.1}", bytes as f64 / n as f64)
        }
    };
    println!("\nbytes on disk per recorded event (first round):\n");
    table(
        &["tool", "events", "bytes", "bytes/event"],
        &[
            vec![
                "flightrec (zstd Parquet, stacks deduplicated)".into(),
                sizes.1.to_string(),
                sizes.0.to_string(),
                per(sizes.0, sizes.1),
            ],
            vec![
                "perf.data".into(),
                sizes.3.to_string(),
                sizes.2.to_string(),
                per(sizes.2, sizes.3),
            ],
        ],
    );
    println!(
        "\nreproduce: cargo run --release -p flightrec-bench -- overhead --loops {} --rounds {}",
        a.loops, a.rounds
    );
    Ok(())
}
