//! The writer thread: encodes finished segments to Parquet off the drain path, enforces the rolling
//! window and keeps the manifest current. It is fed through a bounded channel, so a writer that falls
//! behind stalls draining and the kernel counts the drops instead of the recorder growing.
use std::{
    fs,
    path::PathBuf,
    sync::{mpsc, Arc, Mutex},
    thread,
};

use anyhow::{anyhow, Result};
use arrow::record_batch::RecordBatch;
use flightrec_schemas::{Manifest, SegmentMeta, Table, UnwrittenSegment};

use crate::{
    host,
    journal::Journal,
    segment,
    usersyms::{Frame, Symbolizer},
    window,
};

/// A finished segment on its way to disk.
pub struct Job {
    /// Its tables, each as the batches its rows came in.
    pub tables: Vec<crate::segment::TableBatches>,
    /// Its metadata (sizes are filled in when written).
    pub meta: SegmentMeta,
    /// Its user frames, normalized, to be symbolized here.
    pub frames: Vec<Frame>,
}

/// Rows of the open segment for its write-ahead journal.
pub struct Checkpoint {
    /// New rows: lookup tables first, then events.
    pub tables: Vec<(Table, RecordBatch)>,
    /// The segment's metadata so far.
    pub meta: SegmentMeta,
    /// User frames of the new stacks, normalized, to be symbolized here.
    pub frames: Vec<Frame>,
}

/// Work for the writer thread, done in order: a freeze sent after a segment includes it.
pub enum Work {
    /// Write a segment, delete its journal and apply the window.
    Segment(Box<Job>),
    /// Append to the open segment's journal.
    Journal(Box<Checkpoint>),
    /// Freeze the current window into `snapshots/<name>/`; the path (or why not) is sent back.
    Freeze {
        /// Snapshot name.
        name: String,
        /// Why.
        reason: String,
        /// Monotonic ns of the cause.
        cause_ns: u64,
        /// Where the answer goes.
        reply: tokio::sync::oneshot::Sender<Result<PathBuf, String>>,
    },
}

/// What the status line shows about the files.
#[derive(Clone, Debug, Default)]
pub struct DiskStats {
    /// Bytes of all kept segments.
    pub bytes: u64,
    /// Segments kept.
    pub segments: usize,
    /// Start of the oldest kept segment, monotonic ns.
    pub oldest_ns: Option<u64>,
    /// Segments that could not be written.
    pub failed: u64,
    /// Events in the segments that could not be written: lost too.
    pub unwritten_events: u64,
    /// The last write error.
    pub last_error: Option<String>,
}

/// Handle to the writer thread.
pub struct Writer {
    tx: Option<mpsc::SyncSender<Work>>,
    handle: Option<thread::JoinHandle<Manifest>>,
    /// Shared with the status line.
    pub stats: Arc<Mutex<DiskStats>>,
}

impl Writer {
    /// Starts the thread for `capture`, continuing `manifest`'s window.
    pub fn start(capture: PathBuf, mut manifest: Manifest, redact: bool) -> Result<Writer> {
        let (tx, rx) = mpsc::sync_channel::<Work>(1);
        let stats = Arc::new(Mutex::new(DiskStats::default()));
        let shared = stats.clone();
        segment::write_manifest(&capture, &manifest)?;
        let handle = thread::Builder::new()
            .name("flightrec-writer".into())
            .spawn(move || {
                let mut symbolizer = Symbolizer::new(redact);
                let mut journal: Option<Journal> = None;
                // A segment whose journal failed (a full disk): a journal missing earlier
                // checkpoints would salvage into rows pointing at stacks it lacks, so it stops.
                let mut journal_failed: Option<u64> = None;
                for work in rx {
                    let mut job = match work {
                        Work::Segment(job) => *job,
                        Work::Journal(c) => {
                            let id = c.meta.id;
                            if journal_failed == Some(id) {
                                continue;
                            }
                            if let Err(e) =
                                append_journal(&capture, &mut journal, &mut symbolizer, *c)
                            {
                                if let Some(j) = journal.take() {
                                    j.remove();
                                }
                                journal_failed = Some(id);
                                shared.lock().expect("stats lock").last_error =
                                    Some(format!("journal of segment {id}: {e:#}"));
                            }
                            continue;
                        }
                        Work::Freeze {
                            name,
                            reason,
                            cause_ns,
                            reply,
                        } => {
                            let _ = reply.send(
                                crate::snapshot::freeze(
                                    &capture, &manifest, &name, &reason, cause_ns,
                                )
                                .map_err(|e| format!("{e:#}")),
                            );
                            continue;
                        }
                    };
                    let id = job.meta.id;
                    let (frames, counts) = symbolizer.table(&job.frames);
                    job.tables.push((Table::UserFrames, vec![frames]));
                    job.meta.user_frames = counts.frames;
                    job.meta.user_frames_unknown = counts.unknown;
                    let rows: std::collections::BTreeMap<String, u64> = job
                        .tables
                        .iter()
                        .filter(|(t, _)| t.is_event_table())
                        .map(|(t, b)| {
                            let n = b.iter().map(|b| b.num_rows() as u64).sum();
                            (t.name().to_string(), n)
                        })
                        .collect();
                    let events: u64 = rows.values().sum();
                    let span = (job.meta.start_ns, job.meta.end_ns);
                    let written = segment::write_segment(&capture, &job.tables, job.meta);
                    // Finished or given up either way: its journal has done its job.
                    match journal.take() {
                        Some(j) if j.id() == id => j.remove(),
                        other => journal = other,
                    }
                    match written {
                        Ok(meta) => manifest.segments.push(meta),
                        Err(e) => {
                            // Most likely the disk is full: make room by giving up the oldest
                            // segment (never the snapshots), so the next segment can be written.
                            if manifest.segments.len() > 1 {
                                let oldest = manifest.segments.remove(0);
                                let _ =
                                    fs::remove_dir_all(segment::segment_path(&capture, oldest.id));
                            }
                            // The capture says what it lacks: the analyses count these events as
                            // lost for any range that touches the segment.
                            manifest.unwritten.push(UnwrittenSegment {
                                id,
                                start_ns: span.0,
                                end_ns: span.1,
                                rows,
                                error: format!("{e:#}"),
                            });
                            let mut s = shared.lock().expect("stats lock");
                            s.failed += 1;
                            s.unwritten_events += events;
                            s.last_error = Some(format!("segment {id}: {e:#}"));
                        }
                    }
                    // The window ends where recording is: at the newest segment's end, not at
                    // the time this write finished (a slow disk must not shrink the window).
                    let now = manifest
                        .segments
                        .last()
                        .map_or_else(host::monotonic_ns, |s| s.end_ns);
                    let evict = window::plan_eviction(
                        &manifest.segments,
                        now,
                        manifest.config.window_ns,
                        manifest.config.max_size_bytes,
                    );
                    for id in &evict {
                        let _ = fs::remove_dir_all(segment::segment_path(&capture, *id));
                    }
                    manifest.segments.retain(|s| !evict.contains(&s.id));
                    // Losses older than the window are out of it, like the segments.
                    let horizon = now.saturating_sub(manifest.config.window_ns);
                    manifest.unwritten.retain(|u| u.end_ns >= horizon);
                    let manifest_result = segment::write_manifest(&capture, &manifest);
                    let mut s = shared.lock().expect("stats lock");
                    s.bytes = manifest.segments.iter().map(|m| m.bytes).sum();
                    s.segments = manifest.segments.len();
                    s.oldest_ns = manifest.segments.first().map(|m| m.start_ns);
                    if let Err(e) = manifest_result {
                        s.last_error = Some(format!("manifest: {e:#}"));
                    }
                }
                manifest
            })?;
        Ok(Writer {
            tx: Some(tx),
            handle: Some(handle),
            stats,
        })
    }

    /// Queues work unless the writer is busy; gives it back then.
    pub fn try_send(&self, work: Work) -> Result<Option<Work>> {
        match self
            .tx
            .as_ref()
            .ok_or_else(|| anyhow!("writer closed"))?
            .try_send(work)
        {
            Ok(()) => Ok(None),
            Err(mpsc::TrySendError::Full(work)) => Ok(Some(work)),
            Err(mpsc::TrySendError::Disconnected(_)) => Err(anyhow!("the writer thread stopped")),
        }
    }

    /// Queues work; blocks while the writer is busy with the previous item.
    pub fn send(&self, work: Work) -> Result<()> {
        self.tx
            .as_ref()
            .ok_or_else(|| anyhow!("writer closed"))?
            .send(work)
            .map_err(|_| anyhow!("the writer thread stopped"))
    }

    /// Flushes everything and returns the final manifest.
    pub fn finish(mut self) -> Result<Manifest> {
        drop(self.tx.take());
        self.handle
            .take()
            .expect("joined once")
            .join()
            .map_err(|_| anyhow!("the writer thread panicked"))
    }
}

/// Symbolizes a checkpoint's new user frames and appends it to the journal of its segment, starting
/// that journal on the segment's first checkpoint.
fn append_journal(
    capture: &std::path::Path,
    journal: &mut Option<Journal>,
    symbolizer: &mut Symbolizer,
    mut c: Checkpoint,
) -> Result<()> {
    let id = c.meta.id;
    if journal.as_ref().is_none_or(|j| j.id() != id) {
        if let Some(old) = journal.take() {
            old.remove();
        }
        *journal = Some(Journal::create(capture, id)?);
    }
    let (frames, _) = symbolizer.table(&c.frames);
    // Before the events that refer to them.
    c.tables.insert(0, (Table::UserFrames, frames));
    journal
        .as_mut()
        .expect("just set")
        .append(&c.tables, &c.meta)
}
