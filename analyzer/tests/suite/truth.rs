//! Results checked against what the recorded workload is known to have done, and against the raw
//! tables of the capture read independently of the analysis code.
use super::*;

#[test]
fn offcpu_of_the_sleeper_is_the_time_it_slept() {
    let f = fixture("basic");
    let (n, ms) = (
        f.info["sleeps"].as_u64().unwrap(),
        f.info["sleep_ms"].as_u64().unwrap(),
    );
    let r = json(&[
        "offcpu",
        f.dir.to_str().unwrap(),
        "--pid",
        &f.pid.to_string(),
        "--state",
        "interruptible",
    ]);
    // All stacks through nanosleep: a sleep whose user stack walked differently is its own row.
    let sleeps: Vec<&serde_json::Value> = r["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["folded"].as_str().unwrap().contains("do_nanosleep"))
        .collect();
    let got: u64 = sleeps.iter().map(|s| s["value"].as_u64().unwrap()).sum();
    let count: u64 = sleeps.iter().map(|s| s["count"].as_u64().unwrap()).sum();
    let want = n * ms * 1_000_000;
    // nanosleep never returns early; each interval starts a few microseconds after the timer was
    // armed (the switch-out follows it) and ends with the wake-up plus the wait for a CPU, well
    // under 1.25 ms per sleep on a machine that is not saturated: [500, 525] ms for 20 × 25 ms.
    assert!(
        got + n * 20_000 >= want && got <= want + n * 1_250_000,
        "slept {got} ns, want {want} ns + at most 1.25 ms per sleep"
    );
    assert_eq!(count, n, "one interval per sleep");
    assert!(sleeps.iter().all(|s| s["folded"]
        .as_str()
        .unwrap()
        .starts_with("flightrec-workl;")));
}

#[test]
fn pingpong_run_queue_latencies_match_the_wakeups() {
    // Every wake-up (and preemption) of a ping-pong thread is followed by its switch-in, so the
    // run-queue latencies counted must equal wake-ups + preemptions in the raw tables.
    let f = fixture("basic");
    let dir = f.dir.to_str().unwrap();
    let r = json(&[
        "latency",
        dir,
        "--kind",
        "runq",
        "--pid",
        &f.pid.to_string(),
    ]);
    let count = r["groups"][0]["count"].as_u64().unwrap();
    let rounds = f.info["pingpong"].as_u64().unwrap();
    let raw = raw_runq_opens(&f);
    assert!(
        count >= 2 * rounds,
        "{count} latencies, want >= {} (two wake-ups per round)",
        2 * rounds
    );
    assert!(
        count <= raw && raw - count <= 2,
        "analyzer {count}, raw wake-ups + preemptions {raw}"
    );
}

/// Wake-ups + preempted switch-outs of the workload's threads, read straight from Parquet.
fn raw_runq_opens(f: &Fixture) -> u64 {
    use arrow::{
        array::{Array, AsArray},
        datatypes::{Int32Type, Int64Type},
    };
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let read = |p: std::path::PathBuf| -> Vec<arrow::record_batch::RecordBatch> {
        ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(p).unwrap())
            .unwrap()
            .build()
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let mut segs: Vec<_> = std::fs::read_dir(f.dir.join("segments"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    segs.sort();
    let mut threads = std::collections::HashSet::new();
    for s in &segs {
        for b in read(s.join("tasks.parquet")) {
            let (tid, tgid) = (
                b.column_by_name("tid").unwrap().as_primitive::<Int32Type>(),
                b.column_by_name("tgid")
                    .unwrap()
                    .as_primitive::<Int32Type>(),
            );
            for i in 0..b.num_rows() {
                if tgid.is_valid(i) && tgid.value(i) == f.pid {
                    threads.insert(tid.value(i));
                }
            }
        }
    }
    let mut n = 0;
    for s in &segs {
        for b in read(s.join("sched_wakeup.parquet")) {
            let tid = b.column_by_name("tid").unwrap().as_primitive::<Int32Type>();
            n += (0..b.num_rows())
                .filter(|&i| threads.contains(&tid.value(i)))
                .count() as u64;
        }
        for b in read(s.join("sched_switch.parquet")) {
            let prev = b
                .column_by_name("prev_tid")
                .unwrap()
                .as_primitive::<Int32Type>();
            let state = b
                .column_by_name("prev_state")
                .unwrap()
                .as_primitive::<Int64Type>();
            n += (0..b.num_rows())
                // Still runnable as it left: 0 (a yield) or 0x100 (TASK_REPORT_MAX, preempted).
                .filter(|&i| {
                    threads.contains(&prev.value(i))
                        && (state.value(i) == 0 || state.value(i) & 0x100 != 0)
                })
                .count() as u64;
        }
    }
    n
}

#[test]
fn flame_graph_svg_names_the_sleep_path() {
    let f = fixture("basic");
    let out = tempfile::tempdir().unwrap();
    let svg = out.path().join("off.svg");
    ok(&[
        "flamegraph",
        f.dir.to_str().unwrap(),
        "--kind",
        "offcpu",
        "--pid",
        &f.pid.to_string(),
        "-o",
        svg.to_str().unwrap(),
    ]);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<?xml"), "an SVG");
    assert!(text.contains("do_nanosleep"), "kernel frames are named");
    assert!(text.contains("flightrec-workl"));
}
