//! Sustained throughput: a load of known rate (getppid() calls at a fixed pace, two syscall events
//! each, recorded with `--events syscall` filtered to the generator) held for `--seconds` at rising
//! rates; for each, what was recorded and lost, and the recorder's CPU and peak RSS over its whole
//! run after start-up (read when it is reaped, so the final drain and flush are included). With
//! `--baseline DIR`, another build's recorder runs each rate right after this one's.
use std::{
    io::Write,
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::util::{capture_summary, release_bins, table};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Seconds per rate.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Call rates to try, per second (each call is two events).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100000,250000,500000,1000000"
    )]
    rates: Vec<u64>,
    /// A directory holding another build's `flightrec`, run at each rate right after this build.
    #[arg(long)]
    baseline: Option<std::path::PathBuf>,
}

/// One recording of the generator at one rate.
struct Run {
    per_s: f64,
    generated: u64,
    recorded: u64,
    lost: u64,
    cpu: f64,
    rss_kb: u64,
}

/// utime + stime of a live process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Reaps a child: its CPU time (user + system, s) and peak RSS (KiB) over its whole life, the
/// final drain and flush included.
fn reap(child: &std::process::Child) -> Result<(f64, u64)> {
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: our own child; valid out pointers.
    if unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) } < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok((secs(ru.ru_utime) + secs(ru.ru_stime), ru.ru_maxrss as u64))
}

/// getppid calls of process `pid` recorded in the capture (enter/exit pairs).
fn recorded_calls(bins: &str, cap: &std::path::Path, pid: u32) -> Result<u64> {
    let out = Command::new(format!("{bins}/flightrec-analyze"))
        .args(["latency", "--kind", "syscall", "--by", "syscall", "--json"])
        .args(["--pid", &pid.to_string()])
        .arg(cap)
        .output()?;
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).context("latency --json")?;
    Ok(r["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|g| g["name"] == "getppid")
        .and_then(|g| g["count"].as_u64())
        .unwrap_or(0))
}

/// Runs the benchmark.
pub fn run(a: Args) -> Result<()> {
    let bins = release_bins()?;
    let bins = bins.to_str().context("utf-8 path")?.to_string();
    let mut builds = vec![("this build", bins.clone())];
    if let Some(b) = &a.baseline {
        builds.push(("--baseline", b.to_str().context("utf-8 path")?.to_string()));
    }
    let work = std::env::temp_dir().join("flightrec-bench-throughput");
    let mut rows = Vec::new();
    let mut best = None;
    for &rate in &a.rates {
        for (i, (name, recorder)) in builds.iter().enumerate() {
            let r = one(&bins, recorder, rate, a.seconds, &work)?;
            // The best rate is this build's (the first); the baseline is only beside it.
            if i == 0 && r.lost == 0 && r.recorded == r.generated {
                best = Some(best.map_or(r.per_s, |b: f64| b.max(r.per_s)));
            }
            rows.push(vec![
                name.to_string(),
                format!("{rate}"),
                format!("{:.0}", r.per_s),
                r.generated.to_string(),
                r.recorded.to_string(),
                r.lost.to_string(),
                format!("{:.0}%", 100.0 * r.cpu / a.seconds as f64),
                format!("{:.2}", r.cpu / a.seconds as f64 / (r.per_s / 1e6)),
                format!("{:.0} MiB", r.rss_kb as f64 / 1024.0),
            ]);
        }
    }
    println!(
        "\nSustained load of known rate for {} s each (syscall events of one process):\n",
        a.seconds
    );
    table(
        &[
            "recorder",
            "calls/s asked",
            "events/s generated",
            "generated",
            "recorded",
            "lost",
            "recorder CPU (one core)",
            "cores per M events/s",
            "recorder peak RSS",
        ],
        &rows,
    );
    match best {
        Some(b) => println!("\nhighest rate held with zero loss: {:.0} events/s", b),
        None => println!("\nno rate was held with zero loss"),
    }
    println!(
        "\nreproduce: cargo run --release -p flightrec-bench -- throughput --seconds {}",
        a.seconds
    );
    Ok(())
}

/// Records the generator at `rate` calls/s for `seconds` with the `flightrec` in `recorder`
/// (the generator and the analyzer from `bins`).
fn one(bins: &str, recorder: &str, rate: u64, seconds: u64, work: &std::path::Path) -> Result<Run> {
    // SAFETY: no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let _ = std::fs::remove_dir_all(work);
    let cap = work.join("capture");
    // The generator waits for a line on stdin, so the recorder can filter on its pid: only
    // its own events are recorded and counted.
    let mut gen = Command::new(format!("{bins}/flightrec-workload"))
        .args([
            "--wait",
            "--syscall-rate",
            &rate.to_string(),
            "--syscall-secs",
            &seconds.to_string(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut rec = Command::new(format!("{recorder}/flightrec"))
        .args([
            "record",
            "--quiet",
            "--events",
            "syscall",
            "--pid",
            &gen.id().to_string(),
            "--segment",
            "5s",
            "--ringbuf-size",
            "64MiB",
            "--dir",
        ])
        .arg(&cap)
        .spawn()?;
    while !cap.join("manifest.json").exists() {
        if rec.try_wait()?.is_some() {
            bail!("flightrec exited; run as root");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Start-up (the /proc scan, loading) is not the cost of a rate: subtract it.
    let cpu0 = cpu_ticks(rec.id()).unwrap_or(0) as f64 / hz;
    let gen_pid = gen.id();
    gen.stdin.take().context("stdin")?.write_all(b"go\n")?;
    let out = gen.wait_with_output()?;
    let calls: u64 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("syscalls "))
        .and_then(|v| v.trim().parse().ok())
        .context("the generator reports its calls")?;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
    let (cpu, rss_kb) = reap(&rec)?;
    let summary = capture_summary(bins, &cap).context("reading the capture")?;
    let generated = calls * 2;
    Ok(Run {
        per_s: generated as f64 / seconds as f64,
        generated,
        recorded: 2 * recorded_calls(bins, &cap, gen_pid)?,
        lost: summary["lost"]["total"].as_u64().unwrap_or(0),
        cpu: cpu - cpu0,
        rss_kb,
    })
}
