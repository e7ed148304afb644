//! Perfetto: a protobuf trace (`.pftrace`) that ui.perfetto.dev and trace_processor open.
//!
//! Layout, in file order:
//! 1. a clock snapshot (BOOTTIME, MONOTONIC, REALTIME), system info (uname, CPUs, page size) and a
//!    process tree of every task the capture names;
//! 2. per CPU, time-sorted ftrace bundles in `compact_sched` form: every `sched_switch` and every
//!    wake-up (as a waking on the CPU it was recorded on), so the UI draws CPU tracks and derives
//!    thread states and who woke whom;
//! 3. sequence 7: the interned frames, mappings (with build IDs) and callstacks of the CPU
//!    samples, then one `PerfSample` per profile row;
//! 4. sequence 9: block I/O requests as slices on one track per disk (lanes for overlaps).
//!
//! Times: flightrec records CLOCK_MONOTONIC; Perfetto reads ftrace in BOOTTIME. The trace declares
//! the two equal at the capture's anchor (they differ by the time the machine was suspended, which
//! the capture does not know), and REALTIME from the anchor, so wall-clock times line up.
use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};
use arrow::{
    array::Array,
    datatypes::{Int32Type, Int64Type, UInt16Type, UInt32Type, UInt64Type},
};
use flightrec_schemas::Table;
use prost::Message;

use super::{Frames, Origin};
use crate::{
    capture::Capture,
    columns::{opt, prim, strings},
    filter::Filter,
    names::{Stacks, Tasks},
    parallel::selected,
};

mod proto;
use proto::*;

/// Ftrace events per bundle, about what traced writes per page read.
const BUNDLE: usize = 2048;
/// Sequence of the ftrace bundles.
const FTRACE_SEQ: u32 = 1;
/// Sequence of the CPU samples and their interned stacks.
const SAMPLES_SEQ: u32 = 7;
/// Sequence of the block I/O tracks.
const BLOCK_SEQ: u32 = 9;

/// One scheduler event on a CPU.
enum Sched {
    Switch {
        prev_state: i64,
        next: i32,
        prio: i32,
        comm: String,
    },
    Waking {
        tid: i32,
        target_cpu: i32,
        prio: i32,
        comm: String,
    },
}

/// Interned stacks of the samples.
#[derive(Default)]
struct Interner {
    data: InternedData,
    names: HashMap<String, u64>,
    mappings: HashMap<String, u64>,
    frames: HashMap<(String, u64), u64>,
    callstacks: HashMap<Vec<u64>, u64>,
}

fn istr(list: &mut Vec<InternedString>, s: &[u8]) -> u64 {
    let iid = list.len() as u64 + 1;
    list.push(InternedString {
        iid: Some(iid),
        str: Some(s.to_vec()),
    });
    iid
}

/// Raw bytes of a hex build ID (Perfetto interns build IDs as bytes).
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

impl Interner {
    fn mapping(&mut self, origin: Origin) -> u64 {
        let (path, build_id) = match origin {
            Origin::User((path, bid)) => (path.to_string(), bid.map(|b| b.to_string())),
            Origin::Kernel => ("[kernel.kallsyms]".to_string(), None),
            Origin::Unknown => ("[unknown]".to_string(), None),
        };
        if let Some(&iid) = self.mappings.get(&path) {
            return iid;
        }
        let path_iid = istr(&mut self.data.mapping_paths, path.as_bytes());
        let build_id = build_id.map(|b| istr(&mut self.data.build_ids, &hex_bytes(&b)));
        let iid = self.data.mappings.len() as u64 + 1;
        self.data.mappings.push(Mapping {
            iid: Some(iid),
            build_id,
            path_string_ids: vec![path_iid],
        });
        self.mappings.insert(path, iid);
        iid
    }

    fn frame(&mut self, name: &str, frames: &Frames) -> u64 {
        let mapping = self.mapping(frames.origin(name));
        if let Some(&iid) = self.frames.get(&(name.to_string(), mapping)) {
            return iid;
        }
        let fname = match self.names.get(name) {
            Some(&n) => n,
            None => {
                let n = istr(&mut self.data.function_names, name.as_bytes());
                self.names.insert(name.to_string(), n);
                n
            }
        };
        let iid = self.data.frames.len() as u64 + 1;
        self.data.frames.push(Frame {
            iid: Some(iid),
            function_name_id: Some(fname),
            mapping_id: Some(mapping),
            rel_pc: Some(0),
        });
        self.frames.insert((name.to_string(), mapping), iid);
        iid
    }

    /// The callstack of frame names, root first.
    fn callstack(&mut self, names: &[&str], frames: &Frames) -> u64 {
        let ids: Vec<u64> = names.iter().map(|n| self.frame(n, frames)).collect();
        if let Some(&iid) = self.callstacks.get(&ids) {
            return iid;
        }
        let iid = self.data.callstacks.len() as u64 + 1;
        self.data.callstacks.push(Callstack {
            iid: Some(iid),
            frame_ids: ids.clone(),
        });
        self.callstacks.insert(ids, iid);
        iid
    }
}

/// The header packets: clocks, system, processes and threads.
fn header(cap: &Capture, segs: &[&crate::capture::Segment]) -> Result<Vec<TracePacket>> {
    let a = &cap.manifest.clock;
    let clocks = [
        (CLOCK_BOOTTIME, a.monotonic_ns),
        (CLOCK_MONOTONIC, a.monotonic_ns),
        (CLOCK_REALTIME, a.realtime_ns.max(0) as u64),
    ];
    let mut out = vec![
        TracePacket {
            timestamp: Some(a.monotonic_ns),
            clock_snapshot: Some(ClockSnapshot {
                clocks: clocks
                    .iter()
                    .map(|&(id, ts)| Clock {
                        clock_id: Some(id),
                        timestamp: Some(ts),
                    })
                    .collect(),
            }),
            ..Default::default()
        },
        TracePacket {
            system_info: Some(SystemInfo {
                utsname: Some(Utsname {
                    sysname: Some("Linux".into()),
                    release: Some(cap.manifest.kernel_release.clone()),
                    machine: Some(cap.manifest.arch.clone()),
                }),
                page_size: Some(4096),
                num_cpus: Some(cap.manifest.cpus),
            }),
            ..Default::default()
        },
    ];
    let mut processes: BTreeMap<i32, Process> = BTreeMap::new();
    let mut threads: BTreeMap<i32, Thread> = BTreeMap::new();
    for seg in segs {
        for b in seg.read(Table::Tasks, &["tid", "tgid", "ppid", "comm", "cmdline"])? {
            let (tid, tgid, ppid) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "tgid"),
                prim::<Int32Type>(&b, "ppid"),
            );
            let (comm, cmdline) = (strings(&b, "comm"), strings(&b, "cmdline"));
            for i in 0..b.num_rows() {
                let t = tid.value(i);
                let g = opt(tgid, i).unwrap_or(t);
                threads.insert(
                    t,
                    Thread {
                        tid: Some(t),
                        name: Some(comm.value(i).to_string()),
                        tgid: Some(g),
                    },
                );
                if t == g {
                    let line = if cmdline.is_valid(i) && !cmdline.value(i).is_empty() {
                        cmdline.value(i)
                    } else {
                        comm.value(i)
                    };
                    processes.insert(
                        g,
                        Process {
                            pid: Some(g),
                            ppid: opt(ppid, i),
                            cmdline: vec![line.to_string()],
                        },
                    );
                }
            }
        }
    }
    out.push(TracePacket {
        timestamp: Some(a.monotonic_ns),
        process_tree: Some(ProcessTree {
            processes: processes.into_values().collect(),
            threads: threads.into_values().collect(),
        }),
        ..Default::default()
    });
    Ok(out)
}

/// Switches and wakings of the selected segments, per CPU, time-sorted.
fn sched_by_cpu(
    segs: &[&crate::capture::Segment],
    filter: &Filter,
) -> Result<BTreeMap<u16, Vec<(u64, Sched)>>> {
    let mut by_cpu: BTreeMap<u16, Vec<(u64, Sched)>> = BTreeMap::new();
    for seg in segs {
        let tasks = Tasks::load(seg)?;
        let cols = ["ts", "cpu", "prev_state", "next_tid", "next_prio"];
        for b in seg.read(Table::SchedSwitch, &cols)? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let state = prim::<Int64Type>(&b, "prev_state");
            let (next, prio) = (
                prim::<Int32Type>(&b, "next_tid"),
                prim::<Int32Type>(&b, "next_prio"),
            );
            for i in 0..b.num_rows() {
                if !filter.in_range(ts.value(i)) {
                    continue;
                }
                let n = next.value(i);
                by_cpu.entry(cpu.value(i)).or_default().push((
                    ts.value(i),
                    Sched::Switch {
                        prev_state: state.value(i),
                        next: n,
                        prio: prio.value(i),
                        comm: if n == 0 {
                            "swapper".into()
                        } else {
                            tasks.comm(n).to_string()
                        },
                    },
                ));
            }
        }
        let cols = ["ts", "cpu", "tid", "prio", "target_cpu"];
        for b in seg.read(Table::SchedWakeup, &cols)? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, prio, target) = (
                prim::<Int32Type>(&b, "tid"),
                prim::<Int32Type>(&b, "prio"),
                prim::<Int32Type>(&b, "target_cpu"),
            );
            for i in 0..b.num_rows() {
                if !filter.in_range(ts.value(i)) {
                    continue;
                }
                by_cpu.entry(cpu.value(i)).or_default().push((
                    ts.value(i),
                    Sched::Waking {
                        tid: tid.value(i),
                        target_cpu: target.value(i),
                        prio: prio.value(i),
                        comm: tasks.comm(tid.value(i)).to_string(),
                    },
                ));
            }
        }
    }
    for events in by_cpu.values_mut() {
        events.sort_by_key(|e| e.0);
    }
    Ok(by_cpu)
}

/// One CPU's events as `compact_sched` bundles.
fn bundles<'a>(cpu: u16, events: &'a [(u64, Sched)]) -> Vec<TracePacket> {
    let mut out = Vec::new();
    for chunk in events.chunks(BUNDLE) {
        let mut c = CompactSched::default();
        let mut comms: HashMap<&str, u32> = HashMap::new();
        let (mut last_switch, mut last_waking) = (0u64, 0u64);
        for (ts, e) in chunk {
            let mut index = |comm: &'a str, table: &mut Vec<String>| -> u32 {
                let next = table.len() as u32;
                *comms.entry(comm).or_insert_with(|| {
                    table.push(comm.to_string());
                    next
                })
            };
            match e {
                Sched::Switch {
                    prev_state,
                    next,
                    prio,
                    comm,
                } => {
                    c.switch_timestamp.push(ts - last_switch);
                    last_switch = *ts;
                    c.switch_prev_state.push(*prev_state);
                    c.switch_next_pid.push(*next);
                    c.switch_next_prio.push(*prio);
                    let i = index(comm, &mut c.intern_table);
                    c.switch_next_comm_index.push(i);
                }
                Sched::Waking {
                    tid,
                    target_cpu,
                    prio,
                    comm,
                } => {
                    c.waking_timestamp.push(ts - last_waking);
                    last_waking = *ts;
                    c.waking_pid.push(*tid);
                    c.waking_target_cpu.push(*target_cpu);
                    c.waking_prio.push(*prio);
                    let i = index(comm, &mut c.intern_table);
                    c.waking_comm_index.push(i);
                    c.waking_common_flags.push(1);
                }
            }
        }
        out.push(TracePacket {
            ftrace_events: Some(FtraceEventBundle {
                cpu: Some(cpu as u32),
                lost_events: None,
                compact_sched: Some(c),
            }),
            trusted_packet_sequence_id: Some(FTRACE_SEQ),
            ..Default::default()
        });
    }
    out
}

/// The CPU samples: interned stacks first, then one `PerfSample` each.
fn samples(
    segs: &[&crate::capture::Segment],
    filter: &Filter,
    frames: &Frames,
) -> Result<Vec<TracePacket>> {
    let mut interner = Interner::default();
    let mut out = Vec::new();
    for seg in segs {
        let stacks = Stacks::load(seg, filter.debuginfo_dir.as_deref())?;
        let mut by_ids: HashMap<(Option<u32>, Option<u32>), u64> = HashMap::new();
        let cols = ["ts", "cpu", "tid", "tgid", "kstack", "ustack"];
        for b in seg.read(Table::Profile, &cols)? {
            let (ts, cpu) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (tid, tgid) = (prim::<Int32Type>(&b, "tid"), prim::<Int32Type>(&b, "tgid"));
            let (k, u) = (
                prim::<UInt32Type>(&b, "kstack"),
                prim::<UInt32Type>(&b, "ustack"),
            );
            for i in 0..b.num_rows() {
                if !filter.in_range(ts.value(i)) {
                    continue;
                }
                let ids = (opt(k, i), opt(u, i));
                let iid = match by_ids.get(&ids) {
                    Some(&iid) => iid,
                    None => {
                        let folded: Vec<String> = [ids.1, ids.0]
                            .into_iter()
                            .flatten()
                            .filter_map(|id| stacks.fold_stack(id))
                            .collect();
                        let names: Vec<&str> = folded.iter().flat_map(|f| f.split(';')).collect();
                        let iid = interner.callstack(&names, frames);
                        by_ids.insert(ids, iid);
                        iid
                    }
                };
                out.push(TracePacket {
                    timestamp: Some(ts.value(i)),
                    trusted_packet_sequence_id: Some(SAMPLES_SEQ),
                    sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
                    perf_sample: Some(PerfSample {
                        cpu: Some(cpu.value(i) as u32),
                        pid: Some(tgid.value(i) as u32),
                        tid: Some(tid.value(i) as u32),
                        callstack_iid: Some(iid),
                    }),
                    ..Default::default()
                });
            }
        }
    }
    out.insert(
        0,
        TracePacket {
            trusted_packet_sequence_id: Some(SAMPLES_SEQ),
            sequence_flags: Some(SEQ_INCREMENTAL_STATE_CLEARED),
            interned_data: Some(interner.data),
            ..Default::default()
        },
    );
    Ok(out)
}

pub mod block;

/// Writes the Perfetto trace of the segments `filter` selects (its time range; the trace holds
/// every CPU and thread, so `--pid` and `--comm` are refused).
pub fn write(cap: &Capture, filter: &Filter, out: &mut impl std::io::Write) -> Result<Stats> {
    if !filter.all_tasks() {
        bail!("a Perfetto trace holds every CPU and thread: --pid, --comm and --cgroup do not apply (select in the UI)");
    }
    let segs = selected(cap, filter);
    let frames = Frames::load(cap, filter)?;
    let mut trace = Trace {
        packet: header(cap, &segs)?,
    };
    let mut stats = Stats::default();
    for (cpu, events) in sched_by_cpu(&segs, filter)? {
        stats.sched_events += events.len() as u64;
        trace.packet.extend(bundles(cpu, &events));
    }
    let samples = samples(&segs, filter, &frames)?;
    stats.samples = samples.len() as u64 - 1;
    trace.packet.extend(samples);
    let block = block::packets(cap, &segs, filter, BLOCK_SEQ)?;
    stats.block_requests = block.iter().filter(|p| is_begin(p)).count() as u64;
    trace.packet.extend(block);
    out.write_all(&trace.encode_to_vec())?;
    Ok(stats)
}

fn is_begin(p: &TracePacket) -> bool {
    p.track_event
        .as_ref()
        .is_some_and(|e| e.r#type == Some(TYPE_SLICE_BEGIN))
}

/// What went into a trace.
#[derive(Debug, Default)]
pub struct Stats {
    /// Switches and wakings.
    pub sched_events: u64,
    /// CPU samples.
    pub samples: u64,
    /// Block requests drawn as slices.
    pub block_requests: u64,
}
