//! Sustained throughput: a load of known rate (getppid() calls at a fixed pace, two syscall events
//! each, recorded with `--events syscall` filtered to the generator) held for `--seconds` at rising
//! rates; for each, what was recorded and lost, and the recorder's CPU and peak RSS.
use std::{process::Command, time::Duration};

use anyhow::{bail, Context, Result};

use crate::util::{capture_summary, events, release_bins, table};

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
}

fn proc_field(pid: u32, file: &str, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Runs the benchmark.
pub fn run(a: Args) -> Result<()> {
    let bins = release_bins()?;
    let bins = bins.to_str().context("utf-8 path")?.to_string();
    let work = std::env::temp_dir().join("flightrec-bench-throughput");
    let mut rows = Vec::new();
    let mut best = None;
    // SAFETY: no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    for &rate in &a.rates {
        let _ = std::fs::remove_dir_all(&work);
        let cap = work.join("capture");
        let mut rec = Command::new(format!("{bins}/flightrec"))
            .args([
                "record",
                "--quiet",
                "--events",
                "syscall",
                "--comm",
                "flightrec-workl",
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
        let cpu0 = cpu_ticks(rec.id()).unwrap_or(0);
        let out = Command::new(format!("{bins}/flightrec-workload"))
            .args([
                "--syscall-rate",
                &rate.to_string(),
                "--syscall-secs",
                &a.seconds.to_string(),
            ])
            .output()?;
        let calls: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("syscalls "))
            .and_then(|v| v.trim().parse().ok())
            .context("the generator reports its calls")?;
        let cpu = cpu_ticks(rec.id()).unwrap_or(0).saturating_sub(cpu0) as f64 / hz;
        let rss_kb = proc_field(rec.id(), "status", "VmHWM:").unwrap_or(0);
        // SAFETY: signalling our own child.
        unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
        rec.wait()?;
        let summary = capture_summary(&bins, &cap).context("reading the capture")?;
        let recorded = events(&summary, "syscall");
        let lost = summary["lost"]["total"].as_u64().unwrap_or(0);
        let generated = calls * 2;
        let per_s = generated as f64 / a.seconds as f64;
        if lost == 0 && recorded >= generated {
            best = Some(best.map_or(per_s, |b: f64| b.max(per_s)));
        }
        rows.push(vec![
            format!("{rate}"),
            format!("{:.0}", per_s),
            recorded.to_string(),
            lost.to_string(),
            format!("{:.0}%", 100.0 * cpu / a.seconds as f64),
            format!("{:.0} MiB", rss_kb as f64 / 1024.0),
        ]);
    }
    println!(
        "\nSustained load of known rate for {} s each (syscall events of one process):\n",
        a.seconds
    );
    table(
        &[
            "calls/s asked",
            "events/s generated",
            "events recorded",
            "lost",
            "recorder CPU (one core)",
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
