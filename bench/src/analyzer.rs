//! Off-CPU analysis speed: a capture with at least `--switches` switch events is recorded from a
//! pipe ping-pong (kept in target/bench-capture for reuse), then `offcpu --folded` and an off-CPU
//! flame graph are timed over several rounds, and the same off-CPU sums as SQL over the `offcpu`
//! view, on the capture, on its lake export, and on a two-executor Ballista cluster over the lake.
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use anyhow::{bail, Context, Result};

use crate::util::{
    capture_summary, dir_bytes, events, median, parse_count, perf_samples, release_bins, table,
    time_sh,
};

/// Options.
#[derive(clap::Args)]
pub struct Args {
    /// Switch events the capture must hold.
    #[arg(long, default_value = "10M", value_parser = parse_count)]
    switches: u64,
    /// Timed rounds per measurement.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Capture to use (recorded when missing).
    #[arg(long, default_value = "target/bench-capture")]
    capture: PathBuf,
    /// Seconds of the same ping-pong recorded with perf record for the perf script + inferno
    /// comparison (0 skips it).
    #[arg(long, default_value_t = 5)]
    perf_seconds: u64,
}

/// Records `secs` of the ping-pong with perf and times perf script | inferno-collapse-perf |
/// inferno-flamegraph on it; returns (events, median time).
fn perf_pipeline(bins: &str, secs: u64, rounds: usize) -> Result<Option<(u64, Duration)>> {
    let have = |t: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !have("perf") || !have("inferno-collapse-perf") || !have("inferno-flamegraph") {
        eprintln!("skipping the perf comparison: needs perf and inferno (cargo install inferno)");
        return Ok(None);
    }
    let data = std::env::temp_dir().join("flightrec-bench-perf.data");
    let mut load = Command::new(format!("{bins}/flightrec-workload"))
        .args(["--pingpong", "100000000"])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    let status = crate::util::perf_record_switches()
        .args(["-g", "-a", "-o"])
        .arg(&data)
        .args(["--", "sleep", &secs.to_string()])
        .status();
    let _ = load.kill();
    let _ = load.wait();
    if !status?.success() {
        bail!("perf record failed");
    }
    let samples = perf_samples(&data)?;
    let mut times = Vec::new();
    for _ in 0..rounds {
        times.push(time_sh(&format!(
            "perf script -i {} 2>/dev/null | inferno-collapse-perf | inferno-flamegraph > /dev/null",
            data.display()
        ))?);
    }
    let _ = std::fs::remove_file(&data);
    Ok(Some((samples, median(times))))
}

fn record(bins: &str, capture: &PathBuf, switches: u64) -> Result<()> {
    let _ = std::fs::remove_dir_all(capture);
    eprintln!("recording a ping-pong until the capture holds {switches} switch events...");
    let mut rec = Command::new(format!("{bins}/flightrec"))
        .arg("record")
        .arg("--dir")
        .arg(capture)
        .args([
            "--events",
            "sched",
            "--segment",
            "10s",
            "--window",
            "1h",
            "--max-size",
            "8GiB",
            "--quiet",
        ])
        .spawn()
        .context("starting flightrec (run as root)")?;
    while !capture.join("manifest.json").exists() {
        if rec.try_wait()?.is_some() {
            bail!("flightrec exited; run the benchmark as root");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Ping-pong in chunks until the finished segments hold enough switches.
    while switch_events(bins, capture) < switches {
        let status = Command::new(format!("{bins}/flightrec-workload"))
            .args(["--pingpong", "500000"])
            .stdout(std::process::Stdio::null())
            .status()?;
        if !status.success() {
            bail!("workload failed");
        }
    }
    // SAFETY: signalling our own child.
    unsafe { libc::kill(rec.id() as i32, libc::SIGINT) };
    rec.wait()?;
    Ok(())
}

/// Switch events in the capture; 0 while it has none (not recorded yet, or still recording).
fn switch_events(bins: &str, capture: &Path) -> u64 {
    capture_summary(bins, capture).map_or(0, |s| events(&s, "sched_switch"))
}

/// Runs the benchmark.
pub fn run(a: Args) -> Result<()> {
    let bins = release_bins()?;
    let bins = bins.to_str().context("utf-8 path")?.to_string();
    let analyze = format!("{bins}/flightrec-analyze");
    let mut n = switch_events(&bins, &a.capture);
    if n < a.switches {
        record(&bins, &a.capture, a.switches)?;
        n = switch_events(&bins, &a.capture);
    }
    let cap = a.capture.display().to_string();
    let size: u64 = dir_bytes(&a.capture);
    let mut folded = Vec::new();
    let mut flame = Vec::new();
    let lake = a.capture.with_extension("lake");
    let _ = std::fs::remove_dir_all(&lake);
    let export = time_sh(&format!(
        "{bins}/flightrec export --lake {} {cap} 2>/dev/null",
        lake.display()
    ))?;
    let query = "SELECT folded, SUM(offcpu_ns) FROM offcpu GROUP BY folded";
    let runq_query = "SELECT COUNT(*), SUM(latency_ns), MAX(latency_ns) FROM runq_latency";
    let (mut sql_cap, mut sql_lake) = (Vec::new(), Vec::new());
    let (mut runq, mut runq_sql, mut runq_cap) = (Vec::new(), Vec::new(), Vec::new());
    let (mut sql_cluster, mut runq_cluster) = (Vec::new(), Vec::new());
    // Two executors of one task each: the two CPUs of this machine, as the embedded engine has.
    let cluster = crate::cluster::Cluster::start(&bins, 2, 1)?;
    for _ in 0..a.rounds {
        sql_cluster.push(time_sh(&format!(
            "{analyze} sql --cluster {} {} --format csv -e '{query}' >/dev/null",
            cluster.url,
            lake.display()
        ))?);
        runq_cluster.push(time_sh(&format!(
            "{analyze} sql --cluster {} {} --format csv -e '{runq_query}' >/dev/null",
            cluster.url,
            lake.display()
        ))?);
        runq.push(time_sh(&format!(
            "{analyze} latency {cap} --kind runq >/dev/null 2>&1"
        ))?);
        runq_sql.push(time_sh(&format!(
            "{analyze} sql {} --format csv -e '{runq_query}' >/dev/null",
            lake.display()
        ))?);
        runq_cap.push(time_sh(&format!(
            "{analyze} sql {cap} --format csv -e '{runq_query}' >/dev/null"
        ))?);
        sql_cap.push(time_sh(&format!(
            "{analyze} sql {cap} --format csv -e '{query}' >/dev/null"
        ))?);
        sql_lake.push(time_sh(&format!(
            "{analyze} sql {} --format csv -e '{query}' >/dev/null",
            lake.display()
        ))?);
        folded.push(time_sh(&format!(
            "{analyze} offcpu {cap} --folded 2>/dev/null"
        ))?);
        flame.push(time_sh(&format!(
            "{analyze} flamegraph {cap} --kind offcpu -o /dev/null 2>/dev/null"
        ))?);
    }
    // The ticket view and the Perfetto trace, once each: (time, bytes).
    let report_file = a.capture.with_extension("html");
    let report = time_sh(&format!(
        "{analyze} report {cap} -o {} 2>/dev/null",
        report_file.display()
    ))?;
    let report_bytes = std::fs::metadata(&report_file)?.len();
    let trace_file = a.capture.with_extension("pftrace");
    let trace = time_sh(&format!(
        "{analyze} convert {cap} --to perfetto -o {} 2>/dev/null",
        trace_file.display()
    ))?;
    let trace_bytes = std::fs::metadata(&trace_file)?.len();
    let rate = |d: Duration| format!("{:.2} M/s", n as f64 / d.as_secs_f64() / 1e6);
    let (f, g) = (median(folded), median(flame));
    let (sc, sl) = (median(sql_cap), median(sql_lake));
    let (rq, rs, rc) = (median(runq), median(runq_sql), median(runq_cap));
    let (cs, cr) = (median(sql_cluster), median(runq_cluster));
    drop(cluster);
    let perf = if a.perf_seconds > 0 {
        perf_pipeline(&bins, a.perf_seconds, a.rounds)?
    } else {
        None
    };
    println!(
        "\nOff-CPU analysis of {n} switch events ({:.1} MiB capture), median of {} rounds:\n",
        size as f64 / 1048576.0,
        a.rounds
    );
    table(
        &["analysis", "time", "switch events/s"],
        &[
            vec![
                "offcpu --folded".into(),
                format!("{:.3} s", f.as_secs_f64()),
                rate(f),
            ],
            vec![
                "flamegraph --kind offcpu".into(),
                format!("{:.3} s", g.as_secs_f64()),
                rate(g),
            ],
            vec![
                format!("sql '{query}' on the capture"),
                format!("{:.3} s", sc.as_secs_f64()),
                rate(sc),
            ],
            vec![
                "the same on its lake export".into(),
                format!("{:.3} s", sl.as_secs_f64()),
                rate(sl),
            ],
            vec![
                "the same on a Ballista cluster (2 executors)".into(),
                format!("{:.3} s", cs.as_secs_f64()),
                rate(cs),
            ],
            vec![
                "latency --kind runq".into(),
                format!("{:.3} s", rq.as_secs_f64()),
                rate(rq),
            ],
            vec![
                format!("sql '{runq_query}' on the capture"),
                format!("{:.3} s", rc.as_secs_f64()),
                rate(rc),
            ],
            vec![
                "the same on its lake export".into(),
                format!("{:.3} s", rs.as_secs_f64()),
                rate(rs),
            ],
            vec![
                "the same on a Ballista cluster (2 executors)".into(),
                format!("{:.3} s", cr.as_secs_f64()),
                rate(cr),
            ],
            vec![
                format!(
                    "report -o (once; {:.2} MiB)",
                    report_bytes as f64 / 1048576.0
                ),
                format!("{:.3} s", report.as_secs_f64()),
                rate(report),
            ],
            vec![
                format!(
                    "convert --to perfetto (once; {:.1} MiB)",
                    trace_bytes as f64 / 1048576.0
                ),
                format!("{:.3} s", trace.as_secs_f64()),
                rate(trace),
            ],
            vec![
                "flightrec export --lake (once)".into(),
                format!("{:.3} s", export.as_secs_f64()),
                rate(export),
            ],
        ],
    );
    println!(
        "\nSQL over the offcpu view takes {:.1}x (capture) and {:.1}x (lake) the time of offcpu --folded; runq_latency {:.1}x (capture) and {:.1}x (lake) latency --kind runq. Lake: {:.1} MiB.",
        sc.as_secs_f64() / f.as_secs_f64(),
        sl.as_secs_f64() / f.as_secs_f64(),
        rc.as_secs_f64() / rq.as_secs_f64(),
        rs.as_secs_f64() / rq.as_secs_f64(),
        dir_bytes(&lake) as f64 / 1048576.0
    );
    if let Some((events, t)) = perf {
        println!(
            "\nperf script | inferno-collapse-perf | inferno-flamegraph on {events} sched_switch samples ({} s of the same ping-pong):\n",
            a.perf_seconds
        );
        table(
            &["pipeline", "time", "events/s"],
            &[vec![
                "perf script, inferno-collapse-perf, inferno-flamegraph".into(),
                format!("{:.3} s", t.as_secs_f64()),
                format!("{:.3} M/s", events as f64 / t.as_secs_f64() / 1e6),
            ]],
        );
        let ours = n as f64 / g.as_secs_f64();
        let theirs = events as f64 / t.as_secs_f64();
        println!(
            "\nflightrec's off-CPU flame graph processes {:.0}x as many events per second.",
            ours / theirs.max(1.0)
        );
    }
    println!(
        "\nreproduce: cargo run --release -p flightrec-bench -- analyzer --switches {} --rounds {}",
        a.switches, a.rounds
    );
    Ok(())
}
