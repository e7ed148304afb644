//! Chrome's trace-event JSON (the Trace Event Format), the lowest common denominator: chrome's and
//! Perfetto's legacy importers and speedscope read it. Each thread's stretches on a CPU are complete
//! (`X`) events on the thread, CPU samples instant (`i`) events named after their leaf frame with the
//! whole stack in `args`, block requests complete events on one pseudo-thread per disk lane of a
//! `block I/O` pseudo-process (pid 0). Times in microseconds of CLOCK_MONOTONIC.
use std::collections::{BTreeMap, HashMap};
use std::io::Write;

use anyhow::{bail, Result};
use arrow::datatypes::{Int32Type, UInt16Type, UInt32Type, UInt64Type};
use flightrec_schemas::Table;
use serde_json::{json, Value};

use crate::{
    capture::Capture,
    columns::{opt, prim},
    filter::Filter,
    names::{Stacks, Tasks},
    parallel::selected,
};

fn us(ns: u64) -> f64 {
    ns as f64 / 1000.0
}

/// Writes the trace of the segments and range `filter` selects.
pub fn write(cap: &Capture, filter: &Filter, out: impl Write) -> Result<()> {
    if !filter.all_tasks() {
        bail!("a Chrome trace holds every CPU and thread: --pid, --comm and --cgroup do not apply");
    }
    let mut events: Vec<Value> = Vec::new();
    let mut names: BTreeMap<(i32, i32), String> = BTreeMap::new();
    let mut stretches = crate::tools::stretches::Stretches::default();
    for seg in selected(cap, filter) {
        let tasks = Tasks::load(seg)?;
        let pid_of = |tid: i32| tasks.tgid(tid).unwrap_or(tid);
        stretches.add_segment(seg, |st| {
            if filter.in_range(st.from) {
                let (comm, pid) = (tasks.comm(st.tid).to_string(), pid_of(st.tid));
                names.insert((pid, st.tid), comm.clone());
                events.push(json!({"ph": "X", "cat": "sched", "name": comm, "pid": pid,
                    "tid": st.tid, "ts": us(st.from), "dur": us(st.to - st.from),
                    "args": {"cpu": st.cpu}}));
            }
        })?;
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        for b in seg.read(Table::Profile, &["ts", "cpu", "tid", "kstack", "ustack"])? {
            let (ts, cpu, tid) = (
                prim::<UInt64Type>(&b, "ts"),
                prim::<UInt16Type>(&b, "cpu"),
                prim::<Int32Type>(&b, "tid"),
            );
            let (k, u) = (
                prim::<UInt32Type>(&b, "kstack"),
                prim::<UInt32Type>(&b, "ustack"),
            );
            for i in 0..b.num_rows() {
                if !filter.in_range(ts.value(i)) {
                    continue;
                }
                let t = tid.value(i);
                let folded = stacks.fold(tasks.comm(t), opt(k, i), opt(u, i));
                let leaf = folded.rsplit(';').next().unwrap_or_default().to_string();
                events.push(
                    json!({"ph": "i", "s": "t", "cat": "cpu-sample", "name": leaf,
                    "pid": pid_of(t), "tid": t, "ts": us(ts.value(i)),
                    "args": {"cpu": cpu.value(i), "stack": folded}}),
                );
            }
        }
    }
    block_events(cap, filter, &mut events, &mut names)?;
    for ((pid, tid), name) in &names {
        events.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}));
    }
    events.push(json!({"ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": {"name": "block I/O"}}));
    let doc = json!({
        "traceEvents": events,
        "displayTimeUnit": "ns",
        "otherData": {
            "host": cap.manifest.host,
            "kernel": cap.manifest.kernel_release,
            "clock": "CLOCK_MONOTONIC, microseconds",
            "exporter": format!("flightrec-analyze {}", env!("CARGO_PKG_VERSION")),
        },
    });
    serde_json::to_writer(out, &doc)?;
    Ok(())
}

/// Block requests as complete events, one pseudo-thread per disk lane (tid = dev * 64 + lane + 1).
fn block_events(
    cap: &Capture,
    filter: &Filter,
    events: &mut Vec<Value>,
    names: &mut BTreeMap<(i32, i32), String>,
) -> Result<()> {
    let segs = selected(cap, filter);
    let mut lanes: HashMap<u32, Vec<u64>> = HashMap::new();
    let (requests, _) = crate::tools::biosnoop::completed(&segs, filter)?;
    for r in &requests {
        let lanes = lanes.entry(r.dev).or_default();
        let lane = lanes
            .iter()
            .position(|&end| end <= r.issue)
            .unwrap_or_else(|| {
                lanes.push(0);
                lanes.len() - 1
            });
        lanes[lane] = r.done;
        let disk = cap.disk_name(r.dev);
        let tid = (r.dev as i32 & 0xffff) * 64 + lane as i32 + 1;
        names.insert((0, tid), format!("{disk} lane {}", lane + 1));
        events.push(
            json!({"ph": "X", "cat": "block", "name": super::perfetto::block::label(r), "pid": 0, "tid": tid,
            "ts": us(r.issue), "dur": us(r.done - r.issue)}),
        );
    }
    Ok(())
}
