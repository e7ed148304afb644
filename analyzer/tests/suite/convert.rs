//! `convert --to pprof` read by the real consumer: `go tool pprof` (Debian `golang-go`) lists the
//! same per-function flat values and the same total as `profile` and `offcpu` on the fixture, and
//! sees the modules' build IDs.
use std::{collections::BTreeMap, process::Command};

use flightrec_analyzer::{
    capture::Capture, filter::Filter, offcpu, profile, stackagg::StackReport,
};

use super::*;

/// `go tool pprof ARGS FILE`'s stdout, or None (skipped) without Go.
fn pprof(args: &[&str], file: &Path) -> Option<String> {
    let out = match Command::new("go")
        .args(["tool", "pprof", "-symbolize=none"])
        .args(args)
        .arg(file)
        .env("HOME", std::env::temp_dir())
        .output()
    {
        Ok(out) => out,
        Err(_) => {
            flightrec_tests::skip("go (Debian golang-go) is not installed");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "go tool pprof {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

/// Flat value per leaf function of a report (stacks with a frame below the process name).
fn leaf_flats(r: &StackReport) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for s in &r.stacks {
        let frames: Vec<&str> = s.folded.split(';').collect();
        if frames.len() > 1 {
            *m.entry(frames[frames.len() - 1].to_string()).or_insert(0) += s.value;
        }
    }
    m
}

/// (total, nonzero flat per function) from `pprof -top` (values in `unit`-less numbers).
fn top(text: &str, suffix: &str) -> (u64, BTreeMap<String, u64>) {
    let num = |t: &str| -> u64 { t.trim_end_matches(suffix).parse().expect("a number") };
    let total = text
        .lines()
        .find_map(|l| l.split("Total samples = ").nth(1))
        .and_then(|t| t.split_whitespace().next())
        .map(num)
        .expect("a total line");
    let mut flats = BTreeMap::new();
    let rows = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"));
    for line in rows.skip(1) {
        // flat flat% sum% cum cum% name (the name may hold spaces)
        let mut rest = line.trim_start();
        let mut cols = Vec::new();
        for _ in 0..5 {
            let end = rest.find(' ').expect("five columns");
            cols.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
        let flat = num(cols[0]);
        if flat > 0 {
            flats.insert(rest.to_string(), flat);
        }
    }
    (total, flats)
}

/// `convert` of the fixture: (success, stderr).
fn convert_to(format: &str, extra: &[&str], out: &Path) -> (bool, String) {
    let f = fixture("basic");
    let mut args = vec![
        "convert",
        f.dir.to_str().unwrap(),
        "--to",
        format,
        "-o",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    let (ok, _, err) = analyze(&args);
    (ok, err)
}

fn convert(kind: &str, out: &Path) {
    let (ok, err) = convert_to("pprof", &["--kind", kind], out);
    assert!(ok, "convert --kind {kind}: {err}");
}

#[test]
fn go_tool_pprof_reads_the_on_cpu_profile_as_profile_counts_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cpu.pb.gz");
    convert("cpu", &file);
    let Some(text) = pprof(&["-top", "-nodefraction=0", "-sample_index=samples"], &file) else {
        return;
    };
    let cap = Capture::open(&fixture("basic").dir).unwrap();
    let want = profile::profile(&cap, &Filter::default()).unwrap();
    let (total, flats) = top(&text, "");
    assert_eq!(total, want.total, "{text}");
    assert_eq!(flats, leaf_flats(&want), "{text}");
    assert!(flats.contains_key("flightrec_workload_burn"), "{text}");
    // CPU time = samples x the sampling period.
    let cpu = pprof(&["-top", "-sample_index=cpu", "-unit=ns"], &file).unwrap();
    let period = 1_000_000_000 / cap.manifest.config.freq_hz;
    assert_eq!(top(&cpu, "ns").0, want.total * period, "{cpu}");

    // Modules and their build IDs, as the recording host read them.
    let raw = pprof(&["-raw"], &file).unwrap();
    let mappings: Vec<&str> = raw
        .lines()
        .skip_while(|l| *l != "Mappings")
        .skip(1)
        .collect();
    assert!(
        mappings.iter().any(|m| m.contains("/flightrec-workload ")
            && m.split_whitespace().last() == Some("[FN]")
            && m.split_whitespace()
                .any(|w| w.len() == 40 && w.bytes().all(|b| b.is_ascii_hexdigit()))),
        "no mapping of flightrec-workload with a build ID:\n{}",
        mappings.join("\n")
    );
    assert!(mappings.iter().any(|m| m.contains("[kernel.kallsyms]")));
}

#[test]
fn go_tool_pprof_reads_the_off_cpu_profile_as_offcpu_sums_it() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("offcpu.pb.gz");
    convert("offcpu", &file);
    let Some(text) = pprof(&["-top", "-nodefraction=0", "-unit=ns"], &file) else {
        return;
    };
    let cap = Capture::open(&fixture("basic").dir).unwrap();
    let want = offcpu::offcpu(&cap, &Filter::default(), &offcpu::Options::default()).unwrap();
    let (total, flats) = top(&text, "ns");
    assert_eq!(total, want.total, "{text}");
    assert_eq!(flats, leaf_flats(&want), "{text}");
    let events = pprof(&["-top", "-sample_index=events"], &file).unwrap();
    let intervals: u64 = want.stacks.iter().map(|s| s.count).sum();
    assert_eq!(top(&events, "").0, intervals, "{events}");
}

#[test]
fn convert_refuses_an_empty_selection_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("x.pb.gz");
    let (ok, err) = convert_to("pprof", &["--comm", "no-such-process"], &out);
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("no stacks"), "{err}");
    assert!(!out.exists(), "nothing written for nothing");
}

/// speedscope's own build (the npm package's `dist/release`, FLIGHTREC_SPEEDSCOPE_DIR, which
/// `.ci/run` unpacks) opens `file` in headless Chromium from disk; returns the DOM it rendered.
fn speedscope_dom(file: &Path, name: &str) -> Option<String> {
    let Ok(dir) = std::env::var("FLIGHTREC_SPEEDSCOPE_DIR") else {
        flightrec_tests::skip("FLIGHTREC_SPEEDSCOPE_DIR (the speedscope npm package) is not set");
        return None;
    };
    let index = Path::new(&dir).join("dist/release/index.html");
    assert!(index.is_file(), "{} missing", index.display());
    // What speedscope's CLI does: a script that hands the file over, named in the URL.
    let loader = file.with_extension("load.js");
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(std::fs::read(file).unwrap());
    std::fs::write(
        &loader,
        format!("speedscope.loadFileFromBase64(\"{name}\", \"{b64}\")"),
    )
    .unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--allow-file-access-from-files",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!(
            "file://{}#localProfilePath={}",
            index.display(),
            loader.display()
        ))
        .output()
        .expect("chromium (Debian chromium) runs");
    assert!(out.status.success(), "chromium failed");
    Some(String::from_utf8_lossy(&out.stdout).to_string())
}

#[test]
fn speedscope_opens_the_converted_profile_with_a_profile_per_process() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cpu.speedscope.json");
    let (ok, err) = convert_to("speedscope", &[], &file);
    assert!(ok, "{err}");
    // The weights are profile's samples x the period, per process name.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let cap = Capture::open(&f.dir).unwrap();
    let want = profile::profile(&cap, &Filter::default()).unwrap();
    let period = 1_000_000_000 / cap.manifest.config.freq_hz;
    let profiles = doc["profiles"].as_array().unwrap();
    let weights: u64 = profiles
        .iter()
        .flat_map(|p| p["weights"].as_array().unwrap())
        .map(|w| w.as_u64().unwrap())
        .sum();
    assert_eq!(weights, want.total * period);
    let comms: std::collections::BTreeSet<&str> = want
        .stacks
        .iter()
        .map(|s| s.folded.split(';').next().unwrap())
        .collect();
    assert_eq!(profiles.len(), comms.len());

    let Some(dom) = speedscope_dom(&file, "profile.speedscope.json") else {
        return;
    };
    assert!(
        dom.contains("<title>flightrec on-CPU profile of vm"),
        "speedscope did not take the file:\n{dom}"
    );
    assert!(!dom.contains("Something went wrong"), "{dom}");
    assert!(
        dom.contains(&format!("(1/{})", comms.len())),
        "one profile per process: {dom}"
    );
    let first = profiles[0]["name"].as_str().unwrap();
    assert_eq!(first, "flightrec-workl (on-CPU)", "the busiest first");
    assert!(dom.contains(first), "{dom}");
}

#[test]
fn the_perfetto_trace_holds_every_switch_waking_sample_and_request_as_trace_processor_needs() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("trace.pftrace");
    let (ok, err) = convert_to("perfetto", &[], &file);
    assert!(ok, "{err}");
    let Ok(python) = std::env::var("FLIGHTREC_ENGINES_PYTHON") else {
        flightrec_tests::skip("FLIGHTREC_ENGINES_PYTHON (a python with perfetto) is not set");
        return;
    };
    let out = Command::new(python)
        .arg(fixtures().join("../tests/viewers/perfetto_check.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the trace breaks what trace_processor needs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cap = Capture::open(&f.dir).unwrap();
    let rows = |t: &str| -> u64 {
        cap.segments
            .iter()
            .map(|s| s.meta.rows.get(t).copied().unwrap_or(0))
            .sum()
    };
    assert_eq!(got["switches"], rows("sched_switch"));
    assert_eq!(got["wakings"], rows("sched_wakeup"));
    assert_eq!(got["samples"], rows("profile"));
    let (_, block, _) = analyze(&[
        "latency",
        f.dir.to_str().unwrap(),
        "--kind",
        "block",
        "--json",
    ]);
    let block: serde_json::Value = serde_json::from_str(&block).unwrap();
    assert_eq!(
        got["slices"], block["groups"][0]["count"],
        "one slice per request"
    );
    let has = |key: &str, name: &str| {
        got[key]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.as_str() == Some(name))
    };
    assert!(has("threads", "flightrec-workl"), "{got}");
    assert!(has("functions", "flightrec_workload_burn"), "{got}");
    assert_eq!(
        got["cpus"].as_array().unwrap().len(),
        cap.manifest.cpus as usize
    );
}

#[test]
fn a_perfetto_trace_refuses_a_process_filter_in_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let (ok, err) = convert_to("perfetto", &["--pid", "1"], &tmp.path().join("t.pftrace"));
    assert!(!ok);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn the_chrome_trace_has_each_threads_stretches_on_cpu_apart_and_speedscope_reads_it() {
    let f = fixture("basic");
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("trace.json");
    let (ok, err) = convert_to("chrome", &[], &file);
    assert!(ok, "{err}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let events = doc["traceEvents"].as_array().unwrap();
    // A thread is on one CPU at a time: its stretches never overlap.
    let mut by_thread: BTreeMap<(i64, i64), Vec<(f64, f64)>> = BTreeMap::new();
    for e in events
        .iter()
        .filter(|e| e["ph"] == "X" && e["cat"] == "sched")
    {
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(dur >= 0.0, "{e}");
        by_thread
            .entry((e["pid"].as_i64().unwrap(), e["tid"].as_i64().unwrap()))
            .or_default()
            .push((ts, ts + dur));
    }
    for (t, mut spans) in by_thread.clone() {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(
                w[1].0 >= w[0].1 - 1e-3,
                "thread {t:?} on two CPUs at once: {w:?}"
            );
        }
    }
    let cap = Capture::open(&f.dir).unwrap();
    let samples = events.iter().filter(|e| e["ph"] == "i").count() as u64;
    assert_eq!(
        samples,
        profile::profile(&cap, &Filter::default()).unwrap().total
    );
    let (_, block, _) = analyze(&[
        "latency",
        f.dir.to_str().unwrap(),
        "--kind",
        "block",
        "--json",
    ]);
    let block: serde_json::Value = serde_json::from_str(&block).unwrap();
    let requests = events.iter().filter(|e| e["cat"] == "block").count() as u64;
    assert_eq!(block["groups"][0]["count"], requests);

    let Some(dom) = speedscope_dom(&file, "trace.json") else {
        return;
    };
    assert!(
        dom.contains("<title>trace.json - speedscope</title>"),
        "{dom}"
    );
    assert!(!dom.contains("Something went wrong"), "{dom}");
    // One profile per thread with events (threads and disk lanes).
    let threads: std::collections::BTreeSet<(i64, i64)> = events
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| (e["pid"].as_i64().unwrap(), e["tid"].as_i64().unwrap()))
        .collect();
    assert!(dom.contains(&format!("(1/{})", threads.len())), "{dom}");
}
