//! Soak: the recorder runs for `--minutes` with a `--window` under a mixed load (a paced pipe
//! switch storm (perf bench sched pipe), disk writes with fsync, TCP connections on loopback, process churn); every minute
//! its RSS, open file descriptors, the capture's disk use and the window's length are sampled. They
//! must stay flat once the window is full: a leak shows as a column that keeps growing.
use std::{
    io::{Read, Write},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result};

use crate::util::{dir_bytes, release_bins, table};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// How long to record.
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    /// The recorder's window, minutes.
    #[arg(long, default_value_t = 5)]
    window: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 60)]
    every: u64,
    /// Keep the capture (its path is printed) instead of deleting it.
    #[arg(long)]
    keep: bool,
}

/// The load's counters.
#[derive(Default)]
struct Load {
    stop: AtomicBool,
    roundtrips: AtomicU64,
    writes: AtomicU64,
    connections: AtomicU64,
    processes: AtomicU64,
}

/// Starts the four generators; each paces itself so the machine stays usable.
fn start_load(load: &Arc<Load>, dir: &std::path::Path) -> Vec<std::thread::JoinHandle<()>> {
    let mut threads = Vec::new();
    // Switch storm: Debian's perf (a stripped distribution binary, as a service would be) runs
    // 500 pipe round trips every 100 ms: 5 000 a second, 20 000 switches and wake-ups.
    let l = load.clone();
    threads.push(std::thread::spawn(move || {
        while !l.stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            let ok = Command::new("perf")
                .args(["bench", "sched", "pipe", "-l", "500"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                l.roundtrips.fetch_add(500, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100).saturating_sub(t.elapsed()));
        }
    }));
    // Disk: 1 MiB written and fsynced every 100 ms, into a file rewritten in place.
    let (l, file) = (load.clone(), dir.join("soak-writes"));
    threads.push(std::thread::spawn(move || {
        let block = vec![7u8; 1 << 20];
        while !l.stop.load(Ordering::Relaxed) {
            if let Ok(mut f) = std::fs::File::create(&file) {
                let _ = f.write_all(&block);
                let _ = f.sync_all();
                l.writes.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }));
    // TCP: a connection on loopback every 20 ms, 4 KiB each way.
    let l = load.clone();
    threads.push(std::thread::spawn(move || {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let addr = listener.local_addr().expect("address");
        let server = std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { break };
                let mut b = [0u8; 4096];
                if s.read_exact(&mut b).is_err() || b[0] == 0 {
                    break;
                }
                let _ = s.write_all(&b);
            }
        });
        while !l.stop.load(Ordering::Relaxed) {
            if let Ok(mut c) = std::net::TcpStream::connect(addr) {
                let mut b = [1u8; 4096];
                if c.write_all(&b).is_ok() && c.read_exact(&mut b).is_ok() {
                    l.connections.fetch_add(1, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Ok(mut c) = std::net::TcpStream::connect(addr) {
            let _ = c.write_all(&[0u8; 4096]);
        }
        let _ = server.join();
    }));
    // Process churn: a short-lived process every 50 ms.
    let l = load.clone();
    threads.push(std::thread::spawn(move || {
        while !l.stop.load(Ordering::Relaxed) {
            if Command::new("/bin/true").status().is_ok() {
                l.processes.fetch_add(1, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }));
    threads
}

/// A line of a live process's status (`VmRSS`, `RssAnon`, `RssFile`), KiB.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Open file descriptors of a live process.
fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// The window the capture holds now: (segments, seconds from the oldest segment's start to the
/// newest one's end), from the segments' own metadata.
fn window(cap: &std::path::Path) -> (usize, f64) {
    let mut spans = Vec::new();
    for e in std::fs::read_dir(cap.join("segments"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let Ok(text) = std::fs::read_to_string(e.path().join("segment.json")) else {
            continue;
        };
        let Ok(m) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if let (Some(s), Some(t)) = (m["start_ns"].as_u64(), m["end_ns"].as_u64()) {
            spans.push((s, t));
        }
    }
    let first = spans.iter().map(|s| s.0).min().unwrap_or(0);
    let last = spans.iter().map(|s| s.1).max().unwrap_or(0);
    (spans.len(), last.saturating_sub(first) as f64 / 1e9)
}

/// Runs the soak and prints the table of samples.
pub fn run(a: Args) -> Result<()> {
    let bins = release_bins()?;
    let work = std::env::temp_dir().join("flightrec-bench-soak");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let cap = work.join("capture");
    let mut recorder = Command::new(bins.join("flightrec"))
        .args(["record", "--quiet", "--segment", "10s", "--window"])
        .arg(format!("{}m", a.window))
        .args([
            "--events",
            "sched,process,profile,block,signal,oom,reclaim,tcp",
            "--dir",
        ])
        .arg(&cap)
        .stdin(Stdio::null())
        .spawn()
        .context("starting the recorder")?;
    let pid = recorder.id();
    std::thread::sleep(Duration::from_secs(2));
    let load = Arc::new(Load::default());
    let threads = start_load(&load, &work);
    let start = Instant::now();
    let mut rows = Vec::new();
    let header = [
        "minute",
        "RSS",
        "of it anonymous",
        "of it mapped files",
        "open fds",
        "disk",
        "segments",
        "window",
        "round trips",
        "writes",
        "connections",
        "processes",
    ];
    while start.elapsed() < Duration::from_secs(a.minutes * 60) {
        std::thread::sleep(Duration::from_secs(a.every));
        let (segments, span) = window(&cap);
        let row = vec![
            format!("{:.0}", start.elapsed().as_secs_f64() / 60.0),
            format!("{:.1} MiB", status_kib(pid, "VmRSS") as f64 / 1024.0),
            format!("{:.1} MiB", status_kib(pid, "RssAnon") as f64 / 1024.0),
            format!("{:.1} MiB", status_kib(pid, "RssFile") as f64 / 1024.0),
            fds(pid).to_string(),
            format!("{:.1} MiB", dir_bytes(&cap) as f64 / (1 << 20) as f64),
            segments.to_string(),
            format!("{span:.0} s"),
            load.roundtrips.load(Ordering::Relaxed).to_string(),
            load.writes.load(Ordering::Relaxed).to_string(),
            load.connections.load(Ordering::Relaxed).to_string(),
            load.processes.load(Ordering::Relaxed).to_string(),
        ];
        // Each row as it comes: a run cut short still leaves its samples.
        eprintln!("{}", row.join(" | "));
        rows.push(row);
    }
    load.stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGINT) };
    recorder.wait()?;
    // What the final window says about itself: its events and losses, the recorder's cost.
    let summary = Command::new(bins.join("flightrec-analyze"))
        .arg("summary")
        .arg(&cap)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default();
    table(&header, &rows);
    println!();
    for l in summary.lines().filter(|l| {
        l.starts_with("WARNING")
            || l.starts_with("lost events")
            || l.starts_with("events")
            || l.starts_with("cost")
    }) {
        println!("{l}");
    }
    println!(
        "flightrec-bench soak --minutes {} --window {} --every {}",
        a.minutes, a.window, a.every
    );
    if a.keep {
        println!("capture kept in {}", cap.display());
    } else {
        let _ = std::fs::remove_dir_all(&work);
    }
    Ok(())
}
