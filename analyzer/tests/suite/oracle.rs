//! The golden outputs checked once against the raw tables, read with the parquet crate by code that
//! shares nothing with the analyzer: all segments' rows merged and sorted, intervals matched in one
//! pass, groups and names resolved from the raw `tasks` tables and the manifest. A golden that was
//! blessed from a wrong analysis fails here.
use std::collections::{BTreeMap, HashMap};

use arrow::{
    array::{Array, AsArray, RecordBatch},
    datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type},
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::*;

/// Every segment of a capture, oldest first.
struct Raw {
    segments: Vec<std::path::PathBuf>,
    manifest: serde_json::Value,
}

impl Raw {
    fn open(dir: &Path) -> Raw {
        let mut segments: Vec<_> = std::fs::read_dir(dir.join("segments"))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
            .collect();
        segments.sort();
        let manifest =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        Raw { segments, manifest }
    }

    /// (segment index, batch) of every batch of a table.
    fn table(&self, name: &str) -> Vec<(usize, RecordBatch)> {
        let mut out = Vec::new();
        for (i, s) in self.segments.iter().enumerate() {
            let f = std::fs::File::open(s.join(format!("{name}.parquet"))).unwrap();
            for b in ParquetRecordBatchReaderBuilder::try_new(f)
                .unwrap()
                .build()
                .unwrap()
            {
                out.push((i, b.unwrap()));
            }
        }
        out
    }

    /// tid → comm, per segment, from each segment's `tasks` table.
    fn comms(&self) -> Vec<HashMap<i32, String>> {
        let mut out = vec![HashMap::new(); self.segments.len()];
        for (seg, b) in self.table("tasks") {
            let (tid, comm) = (col_i32(&b, "tid"), col_str(&b, "comm"));
            for i in 0..b.num_rows() {
                out[seg].insert(tid[i], comm[i].clone());
            }
        }
        out
    }

    /// The earliest event of the capture: where `--from 1s` counts from.
    fn start(&self) -> u64 {
        EVENT_TABLES
            .iter()
            .flat_map(|t| self.table(t))
            .flat_map(|(_, b)| col_u64(&b, "ts"))
            .min()
            .unwrap()
    }
}

const EVENT_TABLES: [&str; 7] = [
    "sched_switch",
    "sched_wakeup",
    "process",
    "profile",
    "block",
    "syscall",
    "tcp",
];

fn column<'a>(b: &'a RecordBatch, name: &str) -> &'a dyn Array {
    b.column_by_name(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .as_ref()
}

fn col_i32(b: &RecordBatch, name: &str) -> Vec<i32> {
    column(b, name)
        .as_primitive::<Int32Type>()
        .values()
        .to_vec()
}

fn col_i64(b: &RecordBatch, name: &str) -> Vec<i64> {
    column(b, name)
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn col_u32(b: &RecordBatch, name: &str) -> Vec<u32> {
    column(b, name)
        .as_primitive::<UInt32Type>()
        .values()
        .to_vec()
}

fn col_u64(b: &RecordBatch, name: &str) -> Vec<u64> {
    column(b, name)
        .as_primitive::<UInt64Type>()
        .values()
        .to_vec()
}

fn col_bool(b: &RecordBatch, name: &str) -> Vec<bool> {
    let a = column(b, name).as_boolean();
    (0..a.len()).map(|i| a.value(i)).collect()
}

fn col_str(b: &RecordBatch, name: &str) -> Vec<String> {
    let a = arrow::compute::cast(column(b, name), &DataType::Utf8).unwrap();
    let a = a.as_string::<i32>();
    (0..a.len()).map(|i| a.value(i).to_string()).collect()
}

/// count, min, max and sum of a group's durations.
#[derive(Debug, Default, PartialEq, Eq)]
struct Stats {
    count: u64,
    min: u64,
    max: u64,
    total: u64,
}

impl Stats {
    fn add(&mut self, d: u64) {
        self.min = if self.count == 0 { d } else { self.min.min(d) };
        self.max = self.max.max(d);
        self.count += 1;
        self.total += d;
    }
}

/// A latency report's groups as name → stats.
fn groups(report: &serde_json::Value) -> BTreeMap<String, Stats> {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["name"].as_str().unwrap().to_string(),
                Stats {
                    count: g["count"].as_u64().unwrap(),
                    min: g["min"].as_u64().unwrap(),
                    max: g["percentiles"]["max"].as_u64().unwrap(),
                    total: g["total"].as_u64().unwrap(),
                },
            )
        })
        .collect()
}

#[test]
fn block_by_disk_matches_the_raw_requests() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    // (ts, issue?, dev, sector), in time order; a completion ends the request issued at its
    // (dev, sector).
    let mut rows = Vec::new();
    for (_, b) in raw.table("block") {
        let (ts, ev, dev, sector) = (
            col_u64(&b, "ts"),
            col_str(&b, "event"),
            col_u32(&b, "dev"),
            col_u64(&b, "sector"),
        );
        for i in 0..b.num_rows() {
            rows.push((ts[i], ev[i] == "issue", dev[i], sector[i]));
        }
    }
    rows.sort_by_key(|r| r.0);
    let mut open: HashMap<(u32, u64), u64> = HashMap::new();
    let mut want: BTreeMap<String, Stats> = BTreeMap::new();
    for (ts, issue, dev, sector) in rows {
        if issue {
            open.insert((dev, sector), ts);
        } else if let Some(t0) = open.remove(&(dev, sector)) {
            let mm = format!("{}:{}", dev >> 20, dev & 0xfffff);
            let disk = raw.manifest["devices"][&mm]
                .as_str()
                .unwrap_or(&mm)
                .to_string();
            want.entry(disk).or_default().add(ts - t0);
        }
    }
    let got = groups(&json(&[
        "latency",
        f.dir.to_str().unwrap(),
        "--kind",
        "block",
        "--by",
        "disk",
    ]));
    assert_eq!(got, want);
}

#[test]
fn syscall_by_syscall_matches_the_raw_enters_and_exits() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let mut rows = Vec::new();
    for (_, b) in raw.table("syscall") {
        let (ts, tid, tgid, enter, id) = (
            col_u64(&b, "ts"),
            col_i32(&b, "tid"),
            col_i32(&b, "tgid"),
            col_bool(&b, "enter"),
            col_i32(&b, "id"),
        );
        for i in 0..b.num_rows() {
            rows.push((ts[i], tid[i], tgid[i], enter[i], id[i]));
        }
    }
    rows.sort_by_key(|r| r.0);
    let mut open: HashMap<i32, (u64, i32)> = HashMap::new();
    let mut by_id: BTreeMap<i32, Stats> = BTreeMap::new();
    for (ts, tid, tgid, enter, id) in rows {
        if enter {
            if tgid == f.pid {
                open.insert(tid, (ts, id));
            }
        } else if let Some((t0, id)) = open.remove(&tid) {
            by_id.entry(id).or_default().add(ts - t0);
        }
    }
    let got = groups(&json(&[
        "latency",
        f.dir.to_str().unwrap(),
        "--kind",
        "syscall",
        "--by",
        "syscall",
        "--pid",
        &f.pid.to_string(),
    ]));
    // x86_64 numbers, fixed by the kernel's ABI: the names the analyzer gives must be these.
    for (id, name) in [(0, "read"), (1, "write"), (228, "clock_gettime")] {
        assert_eq!(got.get(name), by_id.get(&id), "syscall {id} ({name})");
    }
    let mut got: Vec<_> = got.into_values().collect();
    let mut want: Vec<_> = by_id.into_values().collect();
    got.sort_by_key(|s| (s.count, s.total));
    want.sort_by_key(|s| (s.count, s.total));
    assert_eq!(got, want, "every syscall's distribution");
}

/// Run-queue latencies of threads whose wait began in [from, to): (tid, segment of the start,
/// duration). A wait begins at a wake-up or at a switch-out with prev_state 0 or 0x100.
fn runq_waits(raw: &Raw, from: u64, to: u64) -> Vec<(i32, usize, u64)> {
    // (ts, order, segment, tid opened, tid closed); wake-ups sort before switches at one ts.
    let mut ev = Vec::new();
    for (seg, b) in raw.table("sched_wakeup") {
        for (ts, tid) in col_u64(&b, "ts").into_iter().zip(col_i32(&b, "tid")) {
            ev.push((ts, 0, seg, tid, 0));
        }
    }
    for (seg, b) in raw.table("sched_switch") {
        let (ts, prev, state, next) = (
            col_u64(&b, "ts"),
            col_i32(&b, "prev_tid"),
            col_i64(&b, "prev_state"),
            col_i32(&b, "next_tid"),
        );
        for i in 0..b.num_rows() {
            let runnable = state[i] == 0 || state[i] & 0x100 != 0;
            ev.push((ts[i], 1, seg, if runnable { prev[i] } else { 0 }, next[i]));
        }
    }
    ev.sort();
    let mut open: HashMap<i32, (u64, usize)> = HashMap::new();
    let mut out = Vec::new();
    for (ts, _, seg, opened, closed) in ev {
        if closed > 0 {
            if let Some((t0, s)) = open.remove(&closed) {
                out.push((closed, s, ts - t0));
            }
        }
        if opened > 0 && ts >= from && ts < to {
            open.insert(opened, (ts, seg));
        }
    }
    out
}

#[test]
fn runq_by_comm_in_a_window_matches_the_raw_wakeups_and_switches() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let start = raw.start();
    let comms = raw.comms();
    let mut want: BTreeMap<String, Stats> = BTreeMap::new();
    for (tid, seg, d) in runq_waits(&raw, start + 1_000_000_000, start + 3_000_000_000) {
        let comm = comms[seg].get(&tid).cloned().unwrap_or("[unknown]".into());
        want.entry(comm).or_default().add(d);
    }
    let got = groups(&json(&[
        "latency",
        f.dir.to_str().unwrap(),
        "--kind",
        "runq",
        "--by",
        "comm",
        "--from",
        "1s",
        "--to",
        "3s",
    ]));
    assert_eq!(got, want);
}

#[test]
fn time_window_counts_exactly_the_waits_that_began_in_it() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let dir = f.dir.to_str().unwrap();
    let start = raw.start();
    let count = |args: &[&str]| json(args)["groups"][0]["count"].as_u64().unwrap();
    let all = count(&["latency", dir, "--kind", "runq"]);
    let part = count(&[
        "latency", dir, "--kind", "runq", "--from", "1s", "--to", "2s",
    ]);
    assert_eq!(all, runq_waits(&raw, 0, u64::MAX).len() as u64);
    assert_eq!(
        part,
        runq_waits(&raw, start + 1_000_000_000, start + 2_000_000_000).len() as u64
    );
    assert!(part > 0 && part < all, "window {part} of {all}");
}

/// Off-CPU intervals: from a thread's switch-out (not the idle task's) to its next switch-in, as
/// (tid, tgid, segment of the switch-out, duration).
fn offcpu_intervals(raw: &Raw) -> Vec<(i32, i32, usize, u64)> {
    let mut ev = Vec::new();
    for (seg, b) in raw.table("sched_switch") {
        let (ts, prev, tgid, next) = (
            col_u64(&b, "ts"),
            col_i32(&b, "prev_tid"),
            col_i32(&b, "prev_tgid"),
            col_i32(&b, "next_tid"),
        );
        for i in 0..b.num_rows() {
            ev.push((ts[i], seg, prev[i], tgid[i], next[i]));
        }
    }
    ev.sort();
    let mut open: HashMap<i32, (u64, i32, usize)> = HashMap::new();
    let mut out = Vec::new();
    for (ts, seg, prev, tgid, next) in ev {
        if let Some((t0, g, s)) = open.remove(&next) {
            out.push((next, g, s, ts - t0));
        }
        if prev != 0 {
            open.insert(prev, (ts, tgid, seg));
        }
    }
    out
}

#[test]
fn offcpu_min_10ms_matches_the_raw_switches() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let comms = raw.comms();
    let mut want: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (tid, _, seg, d) in offcpu_intervals(&raw) {
        if d >= 10_000_000 {
            let comm = comms[seg].get(&tid).cloned().unwrap_or("[unknown]".into());
            let e = want.entry(comm).or_default();
            e.0 += 1;
            e.1 += d;
        }
    }
    let r = json(&["offcpu", f.dir.to_str().unwrap(), "--min", "10ms"]);
    let mut got: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in r["stacks"].as_array().unwrap() {
        let comm = s["folded"].as_str().unwrap().split(';').next().unwrap();
        let e = got.entry(comm.to_string()).or_default();
        e.0 += s["count"].as_u64().unwrap();
        e.1 += s["value"].as_u64().unwrap();
    }
    assert_eq!(got, want, "(intervals, ns) per thread name");
}

#[test]
fn summary_matches_the_raw_tables() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let s = json(&["summary", f.dir.to_str().unwrap()]);
    for t in EVENT_TABLES {
        let rows: usize = raw.table(t).iter().map(|(_, b)| b.num_rows()).sum();
        assert_eq!(s["events"][t].as_u64(), Some(rows as u64), "{t}");
    }
    let (mut first, mut last) = (u64::MAX, 0);
    for t in EVENT_TABLES {
        for (_, b) in raw.table(t) {
            for ts in col_u64(&b, "ts") {
                first = first.min(ts);
                last = last.max(ts);
            }
        }
    }
    assert_eq!(s["duration_ns"].as_u64(), Some(last - first));
    // On CPU: samples × the sampling period, per process.
    let period = 1_000_000_000 / raw.manifest["config"]["freq_hz"].as_u64().unwrap();
    let mut cpu: HashMap<i64, u64> = HashMap::new();
    for (_, b) in raw.table("profile") {
        for tgid in col_i32(&b, "tgid") {
            *cpu.entry(tgid as i64).or_default() += period;
        }
    }
    let mut off: HashMap<i64, u64> = HashMap::new();
    for (_, tgid, _, d) in offcpu_intervals(&raw) {
        *off.entry(tgid as i64).or_default() += d;
    }
    for (list, want) in [("top_cpu", &cpu), ("top_offcpu", &off)] {
        let got = s[list].as_array().unwrap();
        assert!(!got.is_empty(), "{list}");
        for p in got {
            let pid = p["pid"].as_i64().unwrap();
            assert_eq!(p["ns"].as_u64(), want.get(&pid).copied(), "{list} {pid}");
        }
        // The list holds the largest: nothing left out is larger than its last entry.
        let smallest = got.last().unwrap()["ns"].as_u64().unwrap();
        let listed: Vec<i64> = got.iter().map(|p| p["pid"].as_i64().unwrap()).collect();
        assert!(
            want.iter()
                .all(|(pid, ns)| listed.contains(pid) || *ns <= smallest),
            "{list} misses a larger process"
        );
    }
}

#[test]
fn summary_of_a_range_counts_the_range_and_labels_whole_segment_figures() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let dir = f.dir.to_str().unwrap();
    let (from, to) = (raw.start() + 1_000_000_000, raw.start() + 2_000_000_000);
    let s = json(&["summary", dir, "--from", "1s", "--to", "2s"]);
    for t in EVENT_TABLES {
        let n = raw
            .table(t)
            .iter()
            .flat_map(|(_, b)| col_u64(b, "ts"))
            .filter(|ts| *ts >= from && *ts < to)
            .count();
        assert_eq!(s["events"][t].as_u64(), Some(n as u64), "{t} in the range");
    }
    assert!(s["duration_ns"].as_u64().unwrap() <= 1_000_000_000);
    assert_eq!(s["whole_segments"], true, "1 s of 1 s segments cuts two");
    let text = ok(&["summary", dir, "--from", "1s", "--to", "2s"]);
    assert!(
        text.contains("bytes, losses, cost and symbols of these whole segments"),
        "{text}"
    );
    let whole = json(&["summary", dir]);
    assert_eq!(whole["whole_segments"], false);
}

#[test]
fn block_requests_of_the_workload_are_its_direct_writes_and_nothing_else_is_counted() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let writes = f.info["writes"].as_u64().unwrap();
    // Its own O_DIRECT writes are exactly the 4 KiB synchronous writes ("WS") it issued; the rest
    // of its requests are reads of its binary (RA) and the metadata its fsyncs wrote (WSM).
    let (mut direct, mut issued) = (0, HashMap::new());
    let mut rows = Vec::new();
    for (_, b) in raw.table("block") {
        let (ts, ev, tgid, dev, sector, rwbs, bytes) = (
            col_u64(&b, "ts"),
            col_str(&b, "event"),
            col_i32(&b, "tgid"),
            col_u32(&b, "dev"),
            col_u64(&b, "sector"),
            col_str(&b, "rwbs"),
            column(&b, "bytes").as_primitive::<UInt32Type>().clone(),
        );
        for i in 0..b.num_rows() {
            rows.push((ts[i], ev[i] == "issue", tgid[i], dev[i], sector[i]));
            if ev[i] == "issue" && tgid[i] == f.pid && rwbs[i] == "WS" && bytes.value(i) == 4096 {
                direct += 1;
            }
        }
    }
    assert_eq!(direct, writes, "one 4 KiB WS request per O_DIRECT write");
    rows.sort_by_key(|r| r.0);
    let mut completed = 0u64;
    for (_, issue, tgid, dev, sector) in rows {
        if issue {
            issued.insert((dev, sector), tgid);
        } else if issued.remove(&(dev, sector)) == Some(f.pid) {
            completed += 1;
        }
    }
    let r = json(&[
        "latency",
        f.dir.to_str().unwrap(),
        "--kind",
        "block",
        "--pid",
        &f.pid.to_string(),
    ]);
    assert_eq!(
        r["groups"][0]["count"].as_u64(),
        Some(completed),
        "every completed request the workload issued, no other"
    );
}

#[test]
fn profile_samples_lie_in_the_workloads_on_cpu_slices() {
    let f = fixture("basic");
    let raw = Raw::open(&f.dir);
    let period = 1_000_000_000 / raw.manifest["config"]["freq_hz"].as_u64().unwrap();
    let mut threads = std::collections::HashSet::new();
    for (_, b) in raw.table("tasks") {
        let tgid = column(&b, "tgid").as_primitive::<Int32Type>().clone();
        for (tid, tgid) in col_i32(&b, "tid").into_iter().zip(tgid.iter()) {
            if tgid == Some(f.pid) {
                threads.insert(tid);
            }
        }
    }
    let mut switches = Vec::new();
    for (_, b) in raw.table("sched_switch") {
        let cpu = column(&b, "cpu")
            .as_primitive::<arrow::datatypes::UInt16Type>()
            .clone();
        let (ts, prev, next) = (
            col_u64(&b, "ts"),
            col_i32(&b, "prev_tid"),
            col_i32(&b, "next_tid"),
        );
        for i in 0..b.num_rows() {
            switches.push((ts[i], cpu.value(i), prev[i], next[i]));
        }
    }
    let slices = flightrec_tests::on_cpu_slices(switches, &threads);
    let mut samples = Vec::new();
    for (_, b) in raw.table("profile") {
        let cpu = column(&b, "cpu")
            .as_primitive::<arrow::datatypes::UInt16Type>()
            .clone();
        let (ts, tid, tgid) = (col_u64(&b, "ts"), col_i32(&b, "tid"), col_i32(&b, "tgid"));
        for i in 0..b.num_rows() {
            if tgid[i] == f.pid {
                samples.push((ts[i], cpu.value(i), tid[i]));
            }
        }
    }
    // The cpu-clock timer of each CPU ticks every period: a slice of length L on that CPU holds
    // floor(L / period) or ceil(L / period) ticks, and a tick lands on whoever runs. So every
    // sample of the workload lies in one of its slices on that CPU, and the samples are at most
    // the sum of the ceilings. They can be fewer than the floors: the kernel skips a perf_event
    // program without counting it when the timer fires while another BPF program runs on that
    // CPU (here the syscall programs, which the burn loop's clock_gettime calls run often).
    for (ts, cpu, tid) in &samples {
        assert!(
            flightrec_tests::in_a_slice(&slices, *ts, *cpu, *tid),
            "sample at {ts} on cpu {cpu} of {tid} outside every on-CPU slice of it"
        );
    }
    let (floors, ceils) = flightrec_tests::sample_bounds(&slices, period);
    let n = samples.len() as u64;
    assert!(
        n <= ceils && n + 2 >= floors,
        "{n} samples, slices allow {floors}..{ceils}"
    );
    let r = json(&[
        "profile",
        f.dir.to_str().unwrap(),
        "--pid",
        &f.pid.to_string(),
    ]);
    assert_eq!(
        r["total"].as_u64(),
        Some(n),
        "the analyzer counts every sample"
    );
    // The burn is most of its CPU time: its samples cover it to within the two skipped ticks and
    // one partial period, plus the little CPU the rest of the workload used.
    let burn = f.info["burn_ms"].as_u64().unwrap() * 1_000_000;
    assert!(
        n * period <= burn + 50_000_000 && n * period + 3 * period >= burn,
        "{n} samples for {burn} ns of burn"
    );
}
