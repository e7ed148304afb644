//! `flightrec record`: drain the ring buffer, cut segments on time, hand them to the writer, show a
//! status line, stop cleanly on Ctrl-C, SIGTERM or `--duration`.
use std::{
    io::IsTerminal,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use aya::maps::{MapData, RingBuf};
use flightrec_common::{Source, SOURCE_COUNT};
use flightrec_schemas::{
    Cost, Manifest, RecordConfig, SegmentMeta, SourceCounts, FORMAT_VERSION, MANIFEST_FILE,
};
use tokio::{
    io::{unix::AsyncFd, Interest},
    signal::unix::{signal, SignalKind},
    time::{interval, sleep_until, MissedTickBehavior},
};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

mod drain;

use crate::{
    batch::{BatchCounts, SegmentBatch},
    control, host, journal,
    ksyms::{KernelSymbols, TracingGlue},
    probes::{KernelCounters, ProbeOptions, Probes},
    segment, snapshot,
    status::Status,
    tasks::TaskTable,
    trigger::{Fired, Trigger, Watch},
    unwind::{UnwindStats, Unwinder},
    usersyms::UserMaps,
    writer::{Checkpoint, Job, Work, Writer},
};

/// Cut a segment early past this many rows, to bound memory under a flood.
const MAX_SEGMENT_ROWS: u64 = 2_000_000;
/// Drain at least this often: records written without a wake-up wait at most this long.
const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// Records decoded per drain pass before the loop looks at its timers again: under a flood the ring
/// never empties, and a drain that ran until it did would never cut a segment.
const DRAIN_BUDGET: usize = 32 * 1024;
/// Append the open segment's new rows to its journal this often: what `kill -9` may lose.
const JOURNAL_EVERY: Duration = Duration::from_millis(500);

/// Options of a recording.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    /// Capture directory.
    pub dir: PathBuf,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Rolling window.
    pub window: Duration,
    /// Size cap.
    pub max_size: u64,
    /// Segment length.
    pub segment: Duration,
    /// Probes to load.
    pub probes: ProbeOptions,
    /// Drop command lines and file paths from the capture.
    pub redact: bool,
    /// Conditions that freeze the window.
    pub triggers: Vec<Trigger>,
    /// Recording after a trigger, before the freeze.
    pub post: Duration,
    /// Quiet time after a trigger.
    pub cooldown: Duration,
    /// No status line.
    pub quiet: bool,
}

/// Totals of a finished recording.
#[derive(Clone, Debug, Default)]
pub struct RecordSummary {
    /// Event rows written.
    pub events: u64,
    /// Events lost for any reason.
    pub lost: u64,
    /// Segments kept at the end.
    pub segments: usize,
    /// Bytes of kept segments.
    pub bytes: u64,
    /// Segments that failed to write.
    pub failed_segments: u64,
    /// Wall time recorded.
    pub elapsed: Duration,
    /// What the unwinder did.
    pub unwind: UnwindStats,
}

fn per_source(values: &[u64; SOURCE_COUNT], sources: &[Source]) -> SourceCounts {
    sources
        .iter()
        .map(|s| (s.name().to_string(), values[*s as usize]))
        .collect()
}

fn new_manifest(opts: &RecordOptions) -> Manifest {
    Manifest {
        format_version: FORMAT_VERSION,
        host: host::hostname(),
        kernel_release: host::kernel_release(),
        arch: std::env::consts::ARCH.to_string(),
        boot_id: host::boot_id(),
        cpus: host::cpus(),
        recorder_version: env!("CARGO_PKG_VERSION").to_string(),
        clock: host::clock_anchor(),
        config: RecordConfig {
            events: opts
                .probes
                .sources
                .iter()
                .map(|s| s.name().to_string())
                .collect(),
            freq_hz: opts.probes.freq_hz,
            segment_ns: opts.segment.as_nanos() as u64,
            window_ns: opts.window.as_nanos() as u64,
            max_size_bytes: opts.max_size,
            ringbuf_bytes: opts.probes.ringbuf_bytes as u64,
            syscall_pid: opts.probes.syscall_pid,
            syscall_comm: opts.probes.syscall_comm.clone(),
            redacted: opts.redact,
            waker_stacks: opts.probes.waker_stacks && opts.probes.sources.contains(&Source::Sched),
            raw_tracepoints: Vec::new(),
        },
        devices: host::block_devices(),
        segments: Vec::new(),
        frozen: None,
        unwritten: Vec::new(),
    }
}

/// Opens the capture directory: a new one, or an existing capture of this boot whose window is
/// continued, salvaging what a killed recorder left in its journal. Returns the manifest to
/// continue from and the directory's lock, held while recording.
fn open_capture(opts: &RecordOptions) -> Result<(Manifest, std::fs::File)> {
    // Not dir.join(""): its trailing slash would make the check follow a symlinked DIR.
    segment::check_owned_dir(&opts.dir)?;
    for sub in [flightrec_schemas::SEGMENTS_DIR, snapshot::SNAPSHOTS_DIR] {
        segment::check_owned_dir(&opts.dir.join(sub))?;
    }
    for file in [MANIFEST_FILE, control::SOCKET] {
        let p = opts.dir.join(file);
        if fs_is_symlink(&p) {
            bail!("{} is a symbolic link; refusing to follow it", p.display());
        }
    }
    segment::private_dir(&opts.dir.join(flightrec_schemas::SEGMENTS_DIR))?;
    let Some(lock) = segment::try_lock_capture(&opts.dir)? else {
        bail!(
            "another flightrec is recording into {}; stop it first or use another directory",
            opts.dir.display()
        );
    };
    segment::remove_partial(&opts.dir)?;
    let mut manifest = new_manifest(opts);
    let path = opts.dir.join(MANIFEST_FILE);
    if path.exists() {
        let old = Manifest::read(&path)?;
        if old.boot_id != manifest.boot_id {
            bail!(
                "{} holds a capture from another boot; record into a new directory",
                opts.dir.display()
            );
        }
        // Keep the clock anchor of the first start so every segment maps to wall time the same way.
        manifest.clock = old.clock;
    }
    journal::salvage(&opts.dir)?.report(&opts.dir, opts.quiet);
    manifest.segments = segment::finished_segments(&opts.dir);
    Ok((manifest, lock))
}

fn fs_is_symlink(p: &std::path::Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
}

/// Says on stderr where an automatic freeze went, once the writer has done it.
fn report_freeze(answer: tokio::sync::oneshot::Receiver<Result<PathBuf, String>>, quiet: bool) {
    tokio::spawn(async move {
        match answer.await {
            Ok(Ok(path)) if !quiet => {
                eprintln!("\nflightrec: froze the window into {}", path.display())
            }
            Ok(Err(e)) => eprintln!("\nflightrec: snapshot failed: {e}"),
            _ => {}
        }
    });
}

/// Records until stopped. Runs its own single-threaded tokio runtime.
pub fn run(opts: RecordOptions) -> Result<RecordSummary> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(record(opts))
}

struct Recorder {
    probes: Probes,
    tasks: TaskTable,
    ksyms: KernelSymbols,
    /// Leading kernel frames of the BPF programs and the tracing glue, cut from stacks.
    glue: TracingGlue,
    maps: UserMaps,
    unwinder: Unwinder,
    writer: Writer,
    batch: SegmentBatch,
    sources: Vec<Source>,
    segment_id: u64,
    segment_start: u64,
    counters: KernelCounters,
    events: u64,
    lost: u64,
    watch: Watch,
    /// A trigger that fired, waiting for its freeze.
    fired: Option<Fired>,
    /// Drop command lines and file paths.
    redact: bool,
    /// Recorder CPU time at the start of the segment, ns.
    cpu_ns: u64,
    /// Most bytes one drain found in the ring during this segment.
    ring_peak: u64,
    /// A checkpoint the busy writer could not take yet; the next one is merged into it.
    pending: Option<Box<Checkpoint>>,
    /// When the programs were detached (stopping).
    detached_ns: Option<u64>,
}

impl Recorder {
    /// Closes the open segment and queues a freeze of the window after it.
    fn freeze(
        &mut self,
        ring: &mut RingBuf<MapData>,
        name: String,
        reason: String,
        cause_ns: u64,
    ) -> Result<tokio::sync::oneshot::Receiver<Result<PathBuf, String>>> {
        self.drain(ring);
        self.cut()?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.writer.send(Work::Freeze {
            name,
            reason,
            cause_ns,
            reply,
        })?;
        Ok(answer)
    }

    /// Drains until the ring is empty (when stopping or cutting).
    fn drain_all(&mut self, ring: &mut RingBuf<MapData>) {
        while self.drain(ring) {}
    }

    /// The open segment's metadata from its start to `end`, given the kernel counters `now`.
    fn meta(&self, now: &KernelCounters, counts: &BatchCounts, end: u64, cpu: u64) -> SegmentMeta {
        let prev = &self.counters;
        let delta = |a: &[u64; SOURCE_COUNT], b: &[u64; SOURCE_COUNT]| {
            per_source(
                &std::array::from_fn::<u64, SOURCE_COUNT, _>(|i| a[i] - b[i]),
                &self.sources,
            )
        };
        SegmentMeta {
            id: self.segment_id,
            start_ns: self.segment_start,
            end_ns: end,
            first_event_ns: counts.first_ts,
            last_event_ns: counts.last_ts,
            emitted: delta(&now.emitted, &prev.emitted),
            lost: delta(&now.lost, &prev.lost),
            stack_errors: per_source(&counts.stack_errors, &self.sources),
            missed: delta(&now.progs.missed, &prev.progs.missed),
            decode_errors: counts.decode_errors,
            cost: Cost {
                bpf_ns: delta(&now.progs.run_ns, &prev.progs.run_ns),
                bpf_runs: delta(&now.progs.runs, &prev.progs.runs),
                recorder_cpu_ns: cpu - self.cpu_ns,
                ring_peak_bytes: self.ring_peak,
            },
            clock: Some(crate::host::clock_anchor()),
            ..Default::default()
        }
    }

    /// Hands the rows decoded since the last checkpoint to the writer for the journal. A busy
    /// writer is not waited for: the rows wait for the next checkpoint instead.
    fn checkpoint(&mut self) -> Result<()> {
        let (mut tables, mut frames) = self.batch.checkpoint(&self.tasks, &self.ksyms, &self.maps);
        if tables
            .iter()
            .all(|(t, b)| !t.is_event_table() || b.num_rows() == 0)
            && self.pending.is_none()
        {
            return Ok(());
        }
        let now = self.probes.counters()?;
        let meta = self.meta(
            &now,
            &self.batch.counts,
            host::monotonic_ns(),
            host::process_cpu_ns(),
        );
        if let Some(p) = self.pending.take() {
            let Checkpoint {
                tables: t0,
                frames: f0,
                ..
            } = *p;
            tables.splice(0..0, t0);
            frames.splice(0..0, f0);
        }
        let work = Work::Journal(Box::new(Checkpoint {
            tables,
            meta,
            frames,
        }));
        if let Some(Work::Journal(back)) = self.writer.try_send(work)? {
            self.pending = Some(back);
        }
        Ok(())
    }

    fn cut(&mut self) -> Result<()> {
        let now = self.probes.counters()?;
        let batch = std::mem::replace(&mut self.batch, SegmentBatch::new(self.redact));
        let (tables, frames, counts) = batch.finish(&self.tasks, &self.ksyms, &self.maps);
        let cpu = host::process_cpu_ns();
        // After the programs were detached no event can follow: the segment ends there, however
        // long the last drain took.
        let end = self.detached_ns.unwrap_or_else(host::monotonic_ns);
        let meta = self.meta(&now, &counts, end, cpu);
        self.counters = now;
        self.cpu_ns = cpu;
        self.ring_peak = 0;
        // The segment itself is on its way: a checkpoint still waiting for the writer is moot.
        self.pending = None;
        self.events += counts.rows.iter().sum::<u64>();
        self.lost += meta.total_lost();
        self.writer.send(Work::Segment(Box::new(Job {
            tables,
            meta,
            frames,
        })))?;
        self.tasks.prune(self.segment_id);
        self.maps.prune(self.segment_id);
        self.segment_id += 1;
        self.segment_start = end;
        Ok(())
    }
}

async fn record(opts: RecordOptions) -> Result<RecordSummary> {
    crate::trigger::check_sources(&opts.triggers, &opts.probes.sources)?;
    let (mut manifest, _lock) = open_capture(&opts)?;
    let first_id = manifest.segments.last().map_or(0, |s| s.id + 1);
    let tasks = TaskTable::scan_proc();
    let mut probes = Probes::load(&opts.probes)?;
    // After the programs are loaded: they are named in kallsyms then (BPF JIT symbols), so the
    // frames of the tracing glue can be told.
    let ksyms = KernelSymbols::load();
    manifest.config.raw_tracepoints = probes.raw_attached.iter().map(|p| p.to_string()).collect();
    let ring = probes.take_ring()?;
    let stack_tops = probes.take_stack_tops()?;
    let execs = probes.take_execs()?;
    // SAFETY: the AsyncFd owns the ring buffer, so its fd stays open for as long as it is registered.
    let mut ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
        .context("cannot poll the ring buffer")?;
    let writer = Writer::start(opts.dir.clone(), manifest, opts.redact)?;
    let started = Instant::now();
    let mut rec = Recorder {
        probes,
        tasks,
        ksyms,
        glue: TracingGlue::default(),
        maps: UserMaps::with_execs(execs),
        unwinder: Unwinder::new(Some(stack_tops), opts.probes.switch_window > 0),
        writer,
        batch: SegmentBatch::new(opts.redact),
        redact: opts.redact,
        sources: opts.probes.sources.clone(),
        segment_id: first_id,
        segment_start: host::monotonic_ns(),
        counters: KernelCounters::default(),
        events: 0,
        lost: 0,
        watch: Watch::new(opts.triggers.clone()),
        fired: None,
        cpu_ns: host::process_cpu_ns(),
        ring_peak: 0,
        pending: None,
        detached_ns: None,
    };
    // Deadline of a pending trigger's freeze, and the end of its cool-down.
    let mut freeze_at: Option<(tokio::time::Instant, String, String, u64)> = None;
    let mut quiet_until = tokio::time::Instant::now();

    let control = control::bind(&opts.dir)?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigusr1 = signal(SignalKind::user_defined1())?;
    let stop_at = tokio::time::Instant::now()
        + opts
            .duration
            .unwrap_or(Duration::from_secs(100 * 365 * 86400));
    let mut next_cut = tokio::time::Instant::now() + opts.segment;
    let mut drain_tick = interval(DRAIN_EVERY);
    drain_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut status_tick = interval(Duration::from_secs(1));
    let mut next_checkpoint = tokio::time::Instant::now() + JOURNAL_EVERY;
    let mut status = Status::new(!opts.quiet, std::io::stderr().is_terminal());
    let mut backlog = false;

    loop {
        tokio::select! {
            guard = ring.readable_mut() => {
                let mut guard = guard?;
                backlog = rec.drain(guard.get_inner_mut());
                // The kernel signals again at its next wake-up; records left are the backlog's.
                guard.clear_ready();
            }
            _ = drain_tick.tick() => {
                backlog = rec.drain(ring.get_mut());
            }
            // Records left by any drain (out of budget) are drained on right after the other
            // branches had their turn. Only scheduler and profile programs wake user space (see the
            // eBPF `emit`): with other sources alone the timer is all that starts a drain, and one
            // budget per tick capped the recorder at ~0.4 M events/s.
            _ = std::future::ready(()), if backlog => {
                backlog = rec.drain(ring.get_mut());
            }
            // Deadlines (cut, checkpoint, a trigger's freeze, stop) only wake the loop here; they are
            // acted on below, after every branch: under a flood the ring is always ready, and a
            // timer branch racing it was seen to starve for seconds (segments not cut, checkpoints
            // not taken).
            _ = sleep_until(next_cut) => {}
            _ = sleep_until(next_checkpoint) => {}
            _ = status_tick.tick() => {
                status.update(rec.events + rec.batch.rows(), rec.lost, &rec.writer.stats);
            }
            conn = control.accept() => {
                let Ok((stream, _)) = conn else { continue };
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = tokio::io::BufReader::new(read);
                let got = tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line)).await;
                let answer = match (got, control::parse(&line)) {
                    (Ok(Ok(_)), Ok(control::Request::Snapshot(name))) => {
                        match snapshot::check_name(&name) {
                            Ok(()) => Some(rec.freeze(ring.get_mut(), name, "request".into(), host::monotonic_ns())?),
                            Err(e) => {
                                let _ = write.write_all(format!("error {e}\n").as_bytes()).await;
                                None
                            }
                        }
                    }
                    (_, Err(e)) => {
                        let _ = write.write_all(format!("error {e}\n").as_bytes()).await;
                        None
                    }
                    _ => None,
                };
                if let Some(answer) = answer {
                    tokio::spawn(async move {
                        let text = match answer.await {
                            Ok(Ok(path)) => format!("ok {}\n", path.display()),
                            Ok(Err(e)) => format!("error {e}\n"),
                            Err(_) => "error the recorder stopped\n".to_string(),
                        };
                        let _ = write.write_all(text.as_bytes()).await;
                    });
                }
            }
            _ = async { sleep_until(freeze_at.as_ref().expect("guarded").0).await }, if freeze_at.is_some() => {}
            _ = sigusr1.recv() => {
                let answer = rec.freeze(ring.get_mut(), snapshot::default_name("sigusr1"), "SIGUSR1".into(), host::monotonic_ns())?;
                report_freeze(answer, opts.quiet);
            }
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
            _ = sleep_until(stop_at) => {}
        }
        let now = tokio::time::Instant::now();
        if now >= stop_at {
            break;
        }
        if now >= next_cut {
            rec.drain(ring.get_mut());
            rec.cut()?;
            // A late cut does not shift the schedule, nor cause a burst of catch-up cuts.
            while next_cut <= now {
                next_cut += opts.segment;
            }
        } else if rec.batch.rows() >= MAX_SEGMENT_ROWS {
            rec.cut()?;
        }
        if now >= next_checkpoint {
            rec.drain(ring.get_mut());
            rec.checkpoint()?;
            next_checkpoint = now + JOURNAL_EVERY;
        }
        if freeze_at.as_ref().is_some_and(|f| now >= f.0) {
            let (_, name, reason, cause_ns) = freeze_at.take().expect("checked");
            let answer = rec.freeze(ring.get_mut(), name, reason, cause_ns)?;
            report_freeze(answer, opts.quiet);
        }
        if let Some(f) = rec.fired.take() {
            let now = tokio::time::Instant::now();
            if freeze_at.is_none() && now >= quiet_until {
                let name = snapshot::default_name(f.trigger.name());
                if !opts.quiet {
                    eprintln!(
                        "\nflightrec: trigger {} fired; freezing {name} in {:?}",
                        f.trigger, opts.post
                    );
                }
                let reason = f.reason();
                freeze_at = Some((now + opts.post, name, reason, f.at_ns));
                quiet_until = now + opts.post + opts.cooldown;
            }
        }
    }
    // Detach first: then the last drain empties the ring for good and the totals match exactly.
    rec.probes.stop()?;
    rec.detached_ns = Some(host::monotonic_ns());
    rec.drain_all(ring.get_mut());
    rec.cut()?;
    let _ = std::fs::remove_file(opts.dir.join(control::SOCKET));
    status.finish();
    let Recorder {
        writer,
        events,
        lost,
        unwinder,
        ..
    } = rec;
    let stats = writer.stats.clone();
    let manifest = writer.finish()?;
    let stats = stats.lock().expect("stats lock").clone();
    if let Some(e) = &stats.last_error {
        eprintln!("flightrec: last write error: {e}");
    }
    Ok(RecordSummary {
        events: events - stats.unwritten_events,
        lost: lost + stats.unwritten_events,
        segments: manifest.segments.len(),
        bytes: manifest.segments.iter().map(|s| s.bytes).sum(),
        failed_segments: stats.failed,
        elapsed: started.elapsed(),
        unwind: unwinder.stats,
    })
}
