//! `summary`: what a capture holds, what was lost, who used and waited for the CPU, and how whole
//! the user stacks are ([`stacks`]).
pub mod chain;
pub mod stacks;

use std::fmt::Write;

use rustc_hash::FxHashMap as HashMap;

use arrow::datatypes::{Int32Type, UInt16Type, UInt64Type};
use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Result},
    columns::prim,
    filter::{wall_clock, Filter},
    hist::fmt_ns,
    intervals::{stitch, Intervals},
    lost::Lost,
    names::Tasks,
    parallel::{map_segments, selected},
};

/// A process and a time.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessTime {
    /// Process id.
    pub pid: i32,
    /// Its name.
    pub comm: String,
    /// Its cgroup, where recorded.
    pub cgroup: Option<String>,
    /// ns on or off CPU.
    pub ns: u64,
}

/// CPU time of one cgroup (its processes' samples).
#[derive(Clone, Debug, Serialize)]
pub struct CgroupTime {
    pub cgroup: String,
    pub ns: u64,
}

/// Result of `summary`.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Recording host.
    pub host: String,
    /// Its kernel.
    pub kernel_release: String,
    /// Its architecture.
    pub arch: String,
    /// Its CPUs.
    pub cpus: u32,
    /// Recorder version.
    pub recorder_version: String,
    /// Sources recorded.
    pub events_recorded: Vec<String>,
    /// First event, wall clock (UTC).
    pub start: String,
    /// Last event, wall clock (UTC).
    pub end: String,
    /// Span in ns.
    pub duration_ns: u64,
    /// Segments covered.
    pub segments: usize,
    /// Bytes of those segments.
    pub bytes: u64,
    /// Rows per event table.
    pub events: std::collections::BTreeMap<String, u64>,
    /// Losses.
    pub lost: Lost,
    /// Context switches that ran but are not in the capture, found where a CPU's chain of switches
    /// breaks ([`chain`]); lost or skipped `sched` records account for some of them.
    pub unreported_switches: u64,
    /// Processes by estimated CPU time (profile samples / frequency).
    pub top_cpu: Vec<ProcessTime>,
    /// Processes by off-CPU time of their threads.
    pub top_offcpu: Vec<ProcessTime>,
    /// CPU time per cgroup (from profile samples), where the capture records cgroups.
    pub top_cgroups_cpu: Vec<CgroupTime>,
    /// For a snapshot: why it was taken, when (UTC), and the cause's time.
    pub frozen: Option<(String, String, String)>,
    /// What recording cost, over the covered segments.
    pub cost: CostSummary,
    /// Distinct user frames per segment, summed, and how many had no symbol.
    pub user_frames: (u64, u64),
    /// The modules those without a symbol are in, most first.
    pub unnamed_modules: Vec<stacks::UnnamedModule>,
    /// Per process, how many user stacks are whole and why the others stop short (most stacks
    /// first); `None` for a capture recorded before stacks said so.
    pub user_stacks: Option<Vec<stacks::ProcessStacks>>,
    /// True when `--from`/`--to` cut a segment: `events` and the top lists are of the range,
    /// `segments`, `bytes`, `lost`, `cost` and `user_frames` of the whole segments it touches.
    pub whole_segments: bool,
}

/// Rows per event table in the filter's time range: from the segment's metadata when the range
/// holds the whole segment, else by reading the `ts` column.
fn events_in_range(
    seg: &crate::capture::Segment,
    filter: &Filter,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut out = std::collections::BTreeMap::new();
    let whole = filter.covers(seg.meta.first_event_ns, seg.meta.last_event_ns);
    // Tables a segment does not list were added to the format after it was written: not recorded,
    // so not shown as zero.
    let listed = |t: &Table| seg.meta.rows.is_empty() || seg.meta.rows.contains_key(t.name());
    for t in Table::ALL
        .into_iter()
        .filter(|t| t.is_event_table() && listed(t))
    {
        let n = if whole {
            seg.meta.rows.get(t.name()).copied().unwrap_or(0)
        } else {
            let mut n = 0;
            for b in seg.read(t, &["ts"])? {
                let ts = prim::<UInt64Type>(&b, "ts");
                n += ts.values().iter().filter(|&&v| filter.in_range(v)).count() as u64;
            }
            n
        };
        out.insert(t.name().to_string(), n);
    }
    Ok(out)
}

/// The recorder's own cost, as it measured it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CostSummary {
    /// Time in the eBPF programs, ns.
    pub bpf_ns: u64,
    /// Program runs.
    pub bpf_runs: u64,
    /// Recorder process CPU time, ns.
    pub recorder_cpu_ns: u64,
    /// Largest amount found queued in the ring buffer by one drain, bytes.
    pub ring_peak_bytes: u64,
    /// Ring buffer size, bytes.
    pub ring_bytes: u64,
    /// Wall time the segments span, ns.
    pub wall_ns: u64,
}

const TOP: usize = 10;
/// Modules listed under `symbols` (those with the most frames without a symbol).
const UNNAMED_MODULES_SHOWN: usize = 5;

/// A process's name and cgroup.
type Named = (String, Option<String>);

fn top(map: HashMap<i32, u64>, names: &HashMap<i32, Named>) -> Vec<ProcessTime> {
    let mut v: Vec<ProcessTime> = map
        .into_iter()
        .map(|(pid, ns)| {
            let (comm, cgroup) = names.get(&pid).cloned().unwrap_or_default();
            ProcessTime {
                pid,
                comm: if comm.is_empty() {
                    "[unknown]".into()
                } else {
                    comm
                },
                cgroup,
                ns,
            }
        })
        .collect();
    v.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.pid.cmp(&b.pid)));
    v.truncate(TOP);
    v
}

/// Summarizes the capture.
pub fn summary(cap: &Capture, filter: &Filter) -> Result<Summary> {
    let segs = selected(cap, filter);
    let freq = cap.manifest.config.freq_hz.max(1);
    let parts = map_segments(&segs, "summary", |seg| {
        let tasks = Tasks::load(seg)?;
        let mut cpu: HashMap<i32, u64> = HashMap::default();
        for b in seg.read(Table::Profile, &["ts", "tgid"])? {
            let (ts, tgid) = (prim::<UInt64Type>(&b, "ts"), prim::<Int32Type>(&b, "tgid"));
            for i in 0..b.num_rows() {
                if filter.in_range(ts.value(i)) {
                    *cpu.entry(tgid.value(i)).or_insert(0) += 1_000_000_000 / freq;
                }
            }
        }
        let mut off: HashMap<i32, u64> = HashMap::default();
        let mut open: Intervals<i32, i32> = Intervals::default();
        let mut seen: std::collections::HashSet<i32> = cpu.keys().copied().collect();
        // (cpu, ts, prev, next) of every switch, for the chain of each CPU.
        let mut switches = Vec::new();
        for b in seg.read(
            Table::SchedSwitch,
            &["ts", "cpu", "prev_tid", "prev_tgid", "next_tid"],
        )? {
            let (ts, on) = (prim::<UInt64Type>(&b, "ts"), prim::<UInt16Type>(&b, "cpu"));
            let (prev, tgid, next) = (
                prim::<Int32Type>(&b, "prev_tid"),
                prim::<Int32Type>(&b, "prev_tgid"),
                prim::<Int32Type>(&b, "next_tid"),
            );
            for i in 0..b.num_rows() {
                switches.push((on.value(i), ts.value(i), prev.value(i), next.value(i)));
                if let Some((p, d)) = open.close(&next.value(i), ts.value(i)) {
                    *off.entry(p).or_insert(0) += d;
                }
                if prev.value(i) != 0 && filter.in_range(ts.value(i)) {
                    open.open(prev.value(i), ts.value(i), tgid.value(i));
                    seen.insert(tgid.value(i));
                } else if prev.value(i) != 0 {
                    open.cancel(&prev.value(i));
                }
            }
        }
        // Every process seen, not only those with a finished interval here: an interval that ends
        // in a later segment is attributed after stitching.
        let names: HashMap<i32, Named> = seen
            .into_iter()
            .map(|p| {
                let cgroup = tasks.cgroup(p).map(str::to_string);
                (p, (tasks.comm(p).to_string(), cgroup))
            })
            .collect();
        let ustacks = stacks::per_process(seg, filter, &tasks)?;
        Ok((
            (seg.meta.id, chain::Chain::of(switches, filter)),
            cpu,
            off,
            open,
            names,
            events_in_range(seg, filter)?,
            ustacks,
        ))
    })?;
    let (mut cpu, mut off, mut names) =
        (HashMap::default(), HashMap::default(), HashMap::default());
    let mut events = std::collections::BTreeMap::new();
    let mut opens = Vec::new();
    let mut ustacks = Vec::new();
    let mut chains = Vec::new();
    for (ch, c, o, open, n, ev, us) in parts {
        chains.push(ch);
        ustacks.push(us);
        for (k, v) in ev {
            *events.entry(k).or_insert(0) += v;
        }
        for (k, v) in c {
            *cpu.entry(k).or_insert(0) += v;
        }
        for (k, v) in o {
            *off.entry(k).or_insert(0) += v;
        }
        names.extend(n);
        opens.push(open);
    }
    stitch(opens, |p, d| *off.entry(p).or_insert(0) += d);
    let unreported_switches = chain::Chain::join(chains);
    // --cgroup keeps the processes of that cgroup in the top lists.
    let kept = |pid: &i32| filter.in_cgroup(names.get(pid).and_then(|n: &Named| n.1.as_deref()));
    cpu.retain(|p, _| kept(p));
    off.retain(|p, _| kept(p));
    let mut by_cgroup: HashMap<String, u64> = HashMap::default();
    for (pid, ns) in &cpu {
        if let Some(c) = names.get(pid).and_then(|n| n.1.clone()) {
            *by_cgroup.entry(c).or_insert(0) += ns;
        }
    }
    let mut top_cgroups_cpu: Vec<CgroupTime> = by_cgroup
        .into_iter()
        .map(|(cgroup, ns)| CgroupTime { cgroup, ns })
        .collect();
    top_cgroups_cpu.sort_by(|a, b| b.ns.cmp(&a.ns).then(a.cgroup.cmp(&b.cgroup)));
    top_cgroups_cpu.truncate(TOP);
    let first = segs
        .iter()
        .filter_map(|s| s.meta.first_event_ns)
        .min()
        .unwrap_or(0);
    let last = segs
        .iter()
        .filter_map(|s| s.meta.last_event_ns)
        .max()
        .unwrap_or(0);
    let (first, last) = (
        filter.from.map_or(first, |f| f.max(first)),
        filter.to.map_or(last, |t| t.min(last)),
    );
    let m = &cap.manifest;
    // Losses, cost and bytes are counted per segment: with a range that cuts a segment they are
    // that whole segment's figures, and say so.
    let whole_segments = segs
        .iter()
        .any(|s| !filter.covers(s.meta.first_event_ns, s.meta.last_event_ns));
    Ok(Summary {
        unreported_switches,
        whole_segments,
        user_stacks: stacks::merge(ustacks),
        host: m.host.clone(),
        kernel_release: m.kernel_release.clone(),
        arch: m.arch.clone(),
        cpus: m.cpus,
        recorder_version: m.recorder_version.clone(),
        events_recorded: m.config.events.clone(),
        start: wall_clock(&m.clock, first),
        end: wall_clock(&m.clock, last),
        duration_ns: last.saturating_sub(first),
        segments: segs.len(),
        bytes: segs.iter().map(|s| s.meta.bytes).sum(),
        events,
        lost: Lost::in_range(cap, filter),
        top_cpu: top(cpu, &names),
        top_offcpu: top(off, &names),
        top_cgroups_cpu,
        cost: {
            let mut c = CostSummary {
                ring_bytes: m.config.ringbuf_bytes,
                ..Default::default()
            };
            for s in &segs {
                let k = &s.meta.cost;
                c.bpf_ns += k.bpf_ns.values().sum::<u64>();
                c.bpf_runs += k.bpf_runs.values().sum::<u64>();
                c.recorder_cpu_ns += k.recorder_cpu_ns;
                c.ring_peak_bytes = c.ring_peak_bytes.max(k.ring_peak_bytes);
                c.wall_ns += s.meta.end_ns.saturating_sub(s.meta.start_ns);
            }
            c
        },
        unnamed_modules: stacks::unnamed_by_module(&segs)?,
        user_frames: segs.iter().fold((0, 0), |(n, u), s| {
            (n + s.meta.user_frames, u + s.meta.user_frames_unknown)
        }),
        frozen: m.frozen.as_ref().map(|f| {
            (
                f.reason.clone(),
                wall_clock(&m.clock, f.frozen_ns),
                wall_clock(&m.clock, f.cause_ns),
            )
        }),
    })
}

impl Summary {
    /// The text report.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{}", self.lost.banner());
        let _ = writeln!(
            o,
            "host        {} ({}, {} CPUs), kernel {}",
            self.host, self.arch, self.cpus, self.kernel_release
        );
        let _ = writeln!(
            o,
            "recorded    {} by flightrec {}",
            self.events_recorded.join(","),
            self.recorder_version
        );
        let _ = writeln!(
            o,
            "time        {} .. {} ({})",
            self.start,
            self.end,
            fmt_ns(self.duration_ns)
        );
        let _ = writeln!(
            o,
            "segments    {} ({}){}",
            self.segments,
            flightrec_schemas::human_bytes(self.bytes),
            if self.whole_segments {
                "; --from/--to cut them: events and top processes are of the range, bytes, losses, cost and symbols of these whole segments"
            } else {
                ""
            }
        );
        if let Some((reason, at, cause)) = &self.frozen {
            let _ = writeln!(o, "frozen      {at} by {reason} (cause at {cause})");
        }
        let mut ev: Vec<_> = self.events.iter().filter(|e| *e.1 > 0).collect();
        ev.sort();
        let _ = writeln!(
            o,
            "events      {}",
            ev.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.lost.segments.is_empty() {
            let segs: Vec<String> = self
                .lost
                .segments
                .iter()
                .map(|(id, n)| format!("{id}: {n}"))
                .collect();
            let _ = writeln!(o, "lost per segment  {}", segs.join(", "));
        }
        if self.unreported_switches > 0 {
            let sched =
                |m: &std::collections::BTreeMap<String, u64>| m.get("sched").copied().unwrap_or(0);
            let _ = writeln!(
                o,
                "switches    {} the kernel ran but the capture lacks: a CPU's switch took off it \
                 another task than its previous switch put on (lost or skipped sched records \
                 account for at most {}; the rest the kernel never reported)",
                self.unreported_switches,
                sched(&self.lost.ringbuf) + sched(&self.lost.missed)
            );
        }
        let c = &self.cost;
        let pct = |ns: u64| 100.0 * ns as f64 / c.wall_ns.max(1) as f64;
        // The kernel counts runs only while its BPF statistics are on.
        let bpf = if c.bpf_runs == 0 {
            "eBPF programs not measured (the kernel's BPF statistics were off: switching them on \
             needs CAP_SYS_ADMIN, or sysctl kernel.bpf_stats_enabled=1)"
                .to_string()
        } else {
            format!(
                "eBPF programs {} ({:.2}% of one CPU, {} runs, {} per run)",
                fmt_ns(c.bpf_ns),
                pct(c.bpf_ns),
                c.bpf_runs,
                fmt_ns(c.bpf_ns / c.bpf_runs)
            )
        };
        let _ = writeln!(
            o,
            "cost        {bpf}; recorder {} ({:.2}% of one CPU); ring buffer peak {} of {}",
            fmt_ns(c.recorder_cpu_ns),
            pct(c.recorder_cpu_ns),
            flightrec_schemas::human_bytes(c.ring_peak_bytes),
            flightrec_schemas::human_bytes(c.ring_bytes)
        );
        let (frames, unknown) = self.user_frames;
        if frames > 0 && unknown == 0 {
            let _ = writeln!(o, "symbols     {frames} user frames, all with a symbol");
        } else if frames > 0 {
            let _ = writeln!(
                o,
                "symbols     {frames} user frames, {unknown} without a symbol, shown as [unknown:module!fun_START] (START: where their code begins) or [unknown:module+offset]; --debuginfo-dir names them from the debug files of their modules{}",
                if self.unnamed_modules.is_empty() { "" } else { ", these most:" }
            );
        }
        for m in self.unnamed_modules.iter().take(UNNAMED_MODULES_SHOWN) {
            let _ = writeln!(
                o,
                "    {:>7}  {}{}",
                m.frames,
                m.module,
                m.build_id
                    .as_ref()
                    .map(|b| format!("  build ID {b}"))
                    .unwrap_or_default()
            );
        }
        let errs: Vec<String> = self
            .lost
            .stack_errors
            .iter()
            .filter(|e| *e.1 > 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !errs.is_empty() {
            let _ = writeln!(
                o,
                "stack walks that failed (events kept without that stack): {}",
                errs.join(", ")
            );
        }
        if let Some(us) = &self.user_stacks {
            let _ = writeln!(
                o,
                "\nuser stacks (switch-outs and samples) whole from the leaf to the outermost frame:"
            );
            if us.is_empty() {
                let _ = writeln!(o, "    (none)");
            }
            for p in us.iter().take(TOP) {
                let why: Vec<String> = p
                    .truncated
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect();
                let gone = if p.unreadable > 0 {
                    format!(
                        "; {} more taken after it released its memory (exiting), not counted",
                        p.unreadable
                    )
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "    {:>6.1}% of {:>7}  {} ({}){}{gone}",
                    100.0 * p.whole as f64 / p.stacks.max(1) as f64,
                    p.stacks,
                    p.comm,
                    p.pid,
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!("; cut short: {}", why.join(", "))
                    }
                );
            }
        }
        for (title, list) in [
            ("on CPU (from profile samples)", &self.top_cpu),
            ("off CPU (all threads, all states)", &self.top_offcpu),
        ] {
            let _ = writeln!(o, "\ntop processes {title}:");
            if list.is_empty() {
                let _ = writeln!(o, "    (none)");
            }
            for p in list {
                let cg = p
                    .cgroup
                    .as_deref()
                    .filter(|c| *c != "/")
                    .map(|c| format!("  {c}"))
                    .unwrap_or_default();
                let _ = writeln!(o, "    {:>12}  {} ({}){cg}", fmt_ns(p.ns), p.comm, p.pid);
            }
        }
        if self.top_cgroups_cpu.iter().any(|c| c.cgroup != "/") {
            let _ = writeln!(o, "\ntop cgroups on CPU (from profile samples):");
            for c in &self.top_cgroups_cpu {
                let _ = writeln!(o, "    {:>12}  {}", fmt_ns(c.ns), c.cgroup);
            }
        }
        o
    }
}
