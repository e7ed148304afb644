//! A real service: Debian's `redis-server` serving `redis-benchmark` on loopback, recorded with the
//! default event set (and, with `--baseline DIR`, by another build in the same rounds). Reports the
//! recorder's own cost from each capture (BPF run time and recorder CPU as a share of the machine,
//! BPF time per event), the benchmark's throughput against an unrecorded run, and how good the user
//! stacks are: the share of user frames without a symbol and of whole stacks per process.
use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::util::{capture_summary, median, release_bins, table};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Requests per redis-benchmark run.
    #[arg(long, default_value_t = 200_000)]
    requests: u64,
    /// Rounds (each runs every configuration once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// A directory holding another build's `flightrec`, measured in the same rounds.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
}

const PORT: &str = "16399";

/// A child killed and reaped however the run ends.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn server() -> Result<Reaped> {
    let bin = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("redis-server (apt-get install redis-server redis-tools)")?;
    let child = Command::new(bin)
        .args([
            "--port",
            PORT,
            "--save",
            "",
            "--appendonly",
            "no",
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(500));
    Ok(Reaped(child))
}

/// Runs redis-benchmark; returns requests per second summed over its tests.
fn benchmark(requests: u64) -> Result<f64> {
    let out = Command::new("redis-benchmark")
        .args(["-p", PORT, "-q", "-t", "set,get,lpush,lpop", "-c", "50"])
        .args(["-n", &requests.to_string()])
        .output()
        .context("redis-benchmark (apt-get install redis-tools)")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "SET: 61842.92 requests per second, p50=0.447 msec" (with \r progress before it).
    let rates: Vec<f64> = text
        .split(['\n', '\r'])
        .filter_map(|l| {
            l.split_once(": ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    if rates.is_empty() {
        bail!("no rates in redis-benchmark's output: {text}");
    }
    Ok(rates.iter().sum())
}

struct Costs {
    bpf_share: f64,
    recorder_share: f64,
    ns_per_event: f64,
    frames: u64,
    unknown: u64,
    stacks: Vec<(String, u64, u64)>,
}

fn costs(bins: &str, cap: &Path) -> Result<Costs> {
    let s = capture_summary(bins, cap).context("reading the capture")?;
    let c = &s["cost"];
    let wall = c["wall_ns"].as_f64().unwrap_or(1.0).max(1.0);
    let cpus = s["cpus"].as_f64().unwrap_or(1.0).max(1.0);
    let events: u64 = s["events"]
        .as_object()
        .map(|m| m.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(0);
    let stacks = s["user_stacks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|p| p["comm"].as_str().is_some_and(|c| c.starts_with("redis")))
                .map(|p| {
                    (
                        format!("{} ({})", p["comm"].as_str().unwrap_or(""), p["pid"]),
                        p["whole"].as_u64().unwrap_or(0),
                        p["stacks"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Costs {
        bpf_share: c["bpf_ns"].as_f64().unwrap_or(0.0) / wall / cpus,
        recorder_share: c["recorder_cpu_ns"].as_f64().unwrap_or(0.0) / wall / cpus,
        ns_per_event: c["bpf_ns"].as_f64().unwrap_or(0.0) / events.max(1) as f64,
        frames: s["user_frames"][0].as_u64().unwrap_or(0),
        unknown: s["user_frames"][1].as_u64().unwrap_or(0),
        stacks,
    })
}

fn record(bin: &str, cap: &Path) -> Result<Reaped> {
    let _ = std::fs::remove_dir_all(cap);
    let mut c = Command::new(format!("{bin}/flightrec"))
        .arg("record")
        .arg("--dir")
        .arg(cap)
        .args(["--segment", "60s", "--quiet"])
        .spawn()?;
    while !cap.join("manifest.json").exists() {
        if c.try_wait()?.is_some() {
            bail!("flightrec exited; run as root");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Reaped(c))
}

fn stop(mut r: Reaped) -> Result<()> {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(r.0.id() as i32, libc::SIGINT) };
    r.0.wait()?;
    Ok(())
}

/// Runs the benchmark.
pub fn run(a: Args) -> Result<()> {
    let bins = release_bins()?;
    let bins = bins.to_str().context("utf-8 path")?.to_string();
    let baseline = a
        .baseline
        .as_ref()
        .map(|d| d.to_str().context("utf-8 path").map(String::from))
        .transpose()?;
    let work = std::env::temp_dir().join("flightrec-bench-redis");
    std::fs::create_dir_all(&work)?;
    let mut configs: Vec<(&str, Option<String>)> = vec![
        ("nothing", None),
        ("flightrec (this build)", Some(bins.clone())),
    ];
    if let Some(b) = baseline {
        configs.push(("flightrec (--baseline build)", Some(b)));
    }
    let mut rates: Vec<Vec<Duration>> = vec![Vec::new(); configs.len()];
    let mut first: Vec<Option<Costs>> = (0..configs.len()).map(|_| None).collect();
    for round in 0..a.rounds {
        eprintln!("round {}/{}", round + 1, a.rounds);
        for (i, (_, bin)) in configs.iter().enumerate() {
            let cap = work.join(format!("capture-{i}"));
            let rec = bin.as_deref().map(|b| record(b, &cap)).transpose()?;
            let srv = server()?;
            let rate = benchmark(a.requests)?;
            drop(srv);
            if let Some(r) = rec {
                stop(r)?;
                if round == 0 {
                    first[i] = Some(costs(&bins, &cap)?);
                }
            }
            // Stored as a duration so the shared median helper applies: seconds per M requests.
            rates[i].push(Duration::from_secs_f64(1e6 / rate.max(1.0)));
        }
    }
    let base = median(rates[0].clone()).as_secs_f64();
    println!(
        "\nredis-benchmark -t set,get,lpush,lpop -c 50 -n {} on loopback, median of {} rounds:\n",
        a.requests, a.rounds
    );
    let rows: Vec<Vec<String>> = configs
        .iter()
        .zip(&rates)
        .map(|((name, _), r)| {
            let m = median(r.clone()).as_secs_f64();
            vec![
                name.to_string(),
                format!("{:.0}", 1e6 / m),
                format!("{:+.1}%", (base / m - 1.0) * 100.0),
            ]
        })
        .collect();
    table(
        &["recording", "requests/s (sum of tests)", "vs nothing"],
        &rows,
    );
    println!("\nthe recorder's own cost and its stacks (first round, from each capture):\n");
    let rows: Vec<Vec<String>> = configs
        .iter()
        .zip(&first)
        .filter_map(|((name, _), c)| c.as_ref().map(|c| (name, c)))
        .map(|(name, c)| {
            vec![
                name.to_string(),
                format!("{:.2}%", c.bpf_share * 100.0),
                format!("{:.2}%", c.recorder_share * 100.0),
                format!("{:.2}%", (c.bpf_share + c.recorder_share) * 100.0),
                format!("{:.0} ns", c.ns_per_event),
                format!(
                    "{} of {} ({:.1}%)",
                    c.unknown,
                    c.frames,
                    100.0 * c.unknown as f64 / c.frames.max(1) as f64
                ),
                c.stacks
                    .iter()
                    .map(|(p, w, n)| format!("{p} {:.0}%", 100.0 * *w as f64 / (*n).max(1) as f64))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    table(
        &[
            "recording",
            "BPF (of the machine)",
            "recorder CPU (of the machine)",
            "total",
            "BPF per event",
            "user frames without a symbol",
            "whole user stacks",
        ],
        &rows,
    );
    println!(
        "\nreproduce: cargo run --release -p flightrec-bench -- redis --requests {} --rounds {}",
        a.requests, a.rounds
    );
    Ok(())
}
