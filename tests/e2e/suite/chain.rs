//! `summary` counts the switches a capture lacks from the breaks in each CPU's chain of switches.
use std::process::Stdio;

use arrow::compute::filter_record_batch;
use parquet::arrow::ArrowWriter;

use super::*;

/// Records a ping-pong, then takes switches out of the capture where each CPU's chain was whole
/// around them: each one taken out must add exactly one unreported switch to `summary`'s count.
#[test]
fn summary_counts_each_switch_taken_out_of_a_real_recording() {
    require_root!();
    let _quiet = quiet();
    let cap = tempfile::tempdir().unwrap();
    let rec = Recording::start(cap.path(), &["--events", "sched", "--segment", "30s"]);
    let out = workload()
        .args(["--pingpong", "3000"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    rec.stop();
    let count = || {
        analyze_json(&["summary", cap.path().to_str().unwrap()])["unreported_switches"]
            .as_u64()
            .expect("unreported_switches in summary --json")
    };
    let before = count();

    let c = Capture::open(cap.path());
    let dirs = c.segment_dirs();
    let seg = dirs
        .iter()
        .max_by_key(|d| {
            read_parquet(&d.join("sched_switch.parquet"))
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>()
        })
        .unwrap();
    let file = seg.join("sched_switch.parquet");
    let batches = read_parquet(&file);
    // Every row as (batch, index, cpu, ts, prev, next); per CPU in time order.
    let mut rows = Vec::new();
    for (n, b) in batches.iter().enumerate() {
        let (ts, cpu) = (u64s(b, "ts"), u16s(b, "cpu"));
        let (prev, next) = (i32s(b, "prev_tid"), i32s(b, "next_tid"));
        for i in 0..b.num_rows() {
            rows.push((
                n,
                i,
                cpu[i].unwrap(),
                ts[i].unwrap(),
                prev[i].unwrap(),
                next[i].unwrap(),
            ));
        }
    }
    rows.sort_unstable_by_key(|r| (r.2, r.3));
    // A row whose CPU's chain is whole from the switch before it to the one after it; taken out,
    // the switch after it names a task leaving the CPU that the switch before it did not put on.
    // Picked rows are apart, so each break is its own.
    let mut drop = std::collections::HashSet::new();
    let mut last_pick = 0;
    for w in 1..rows.len().saturating_sub(2) {
        let (a, r, b, c2) = (rows[w - 1], rows[w], rows[w + 1], rows[w + 2]);
        let same_cpu = a.2 == r.2 && r.2 == b.2 && b.2 == c2.2;
        if same_cpu
            && a.5 == r.4
            && r.5 == b.4
            && b.5 == c2.4
            && w >= last_pick + 4
            && drop.len() < 5
        {
            drop.insert((r.0, r.1));
            last_pick = w;
        }
    }
    assert_eq!(
        drop.len(),
        5,
        "five switches with a whole chain around them"
    );
    let props = parquet::file::properties::WriterProperties::builder().build();
    let tmp = file.with_extension("tmp");
    let mut w = ArrowWriter::try_new(
        fs::File::create(&tmp).unwrap(),
        batches[0].schema(),
        Some(props),
    )
    .unwrap();
    for (n, b) in batches.iter().enumerate() {
        let keep: arrow::array::BooleanArray = (0..b.num_rows())
            .map(|i| Some(!drop.contains(&(n, i))))
            .collect();
        w.write(&filter_record_batch(b, &keep).unwrap()).unwrap();
    }
    w.close().unwrap();
    fs::rename(&tmp, &file).unwrap();

    let after = count();
    report(&format!(
        "chain: summary finds {before} unreported switches in the recording, {after} with 5 taken out"
    ));
    assert_eq!(after, before + 5, "each switch taken out is one unreported");
}
