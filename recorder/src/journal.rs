//! The write-ahead journal of the open segment, so that `kill -9` loses at most the last checkpoint
//! interval of events instead of the whole open segment.
//!
//! Every checkpoint (twice a second) appends the rows decoded since the previous one to
//! `segments/.<id>.journal/<table>.arrows`, one Arrow IPC stream per table in the final schema, and
//! rewrites the segment's metadata so far. The data reaches the kernel with each checkpoint; a killed
//! process loses nothing the kernel already has, so no fsync is needed for the bound (a power cut is
//! a different promise, kept by the finished segments). When the segment is finished its journal
//! is deleted. [`salvage`] turns the journal a killed recorder left into a finished segment: every
//! complete IPC message is kept, a torn last one is dropped; streams an earlier version wrote,
//! without columns added since, are salvaged with those columns null.
use std::{
    collections::{HashMap, HashSet},
    fs::{self, File},
    io::{BufReader, BufWriter},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use arrow::{
    array::{new_null_array, Int32Array, UInt32Array, UInt64Array},
    compute::{concat_batches, take_record_batch},
    datatypes::{Schema, SchemaRef},
    ipc::{reader::StreamReader, writer::StreamWriter},
    record_batch::RecordBatch,
};
use flightrec_schemas::{
    journal_dir_name, journal_id, SegmentMeta, Table, SEGMENTS_DIR, SEGMENT_META_FILE,
};

use crate::segment;

/// The journal of one open segment, written on the writer thread.
pub struct Journal {
    id: u64,
    dir: PathBuf,
    streams: HashMap<Table, StreamWriter<BufWriter<File>>>,
}

fn stream_name(table: Table) -> String {
    format!("{}.arrows", table.name())
}

/// The journal directory of segment `id`.
pub fn journal_path(capture: &Path, id: u64) -> PathBuf {
    capture.join(SEGMENTS_DIR).join(journal_dir_name(id))
}

impl Journal {
    /// Starts the journal of segment `id`, replacing any left from before.
    pub fn create(capture: &Path, id: u64) -> Result<Journal> {
        let dir = journal_path(capture, id);
        if dir.exists() {
            fs::remove_dir_all(&dir)?;
        }
        segment::private_dir(&dir)?;
        Ok(Journal {
            id,
            dir,
            streams: HashMap::new(),
        })
    }

    /// The segment it journals.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Appends one checkpoint: the tables in the order given (lookup tables before the events
    /// that refer to them), then the metadata so far.
    pub fn append(&mut self, tables: &[(Table, RecordBatch)], meta: &SegmentMeta) -> Result<()> {
        for (table, batch) in tables {
            if batch.num_rows() == 0 && *table != Table::Tasks {
                continue;
            }
            let w = match self.streams.entry(*table) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let file = segment::private_file(&self.dir.join(stream_name(*table)))?;
                    e.insert(StreamWriter::try_new_buffered(file, &table.schema())?)
                }
            };
            w.write(batch)
                .with_context(|| format!("journal of segment {}: {}", self.id, table.name()))?;
            w.flush()?;
        }
        segment::replace_file(
            &self.dir.join(SEGMENT_META_FILE),
            &serde_json::to_vec_pretty(meta)?,
            false,
        )
    }

    /// Deletes the journal (its segment is finished, or given up).
    pub fn remove(self) {
        drop(self.streams);
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Every complete batch of a journal stream; a torn or garbled tail ends it.
fn read_stream(path: &Path, table: Table) -> Result<Vec<RecordBatch>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", path.display())),
    };
    let reader = match StreamReader::try_new(BufReader::new(file), None) {
        Ok(r) => r,
        // Killed before the schema message was complete: nothing in it.
        Err(_) => return Ok(Vec::new()),
    };
    let want = table.schema();
    if reader.schema() == want {
        return Ok(reader.map_while(Result::ok).collect());
    }
    let Some(plan) = earlier_schema(&reader.schema(), &want, table) else {
        bail!(
            "{} was written with another schema (by another flightrec version?)",
            path.display()
        );
    };
    reader
        .map_while(Result::ok)
        .map(|b| widen(&b, &want, &plan))
        .collect()
}

/// Where each column of `want` is in `found`, when `found` is `want` as an earlier version wrote
/// it: the same columns but some of those added later (which are nullable), and nothing else.
/// A journal an older recorder left is then salvaged by a newer one, its new columns null.
fn earlier_schema(found: &Schema, want: &Schema, table: Table) -> Option<Vec<Option<usize>>> {
    let plan: Vec<Option<usize>> = want
        .fields()
        .iter()
        .map(|f| match found.column_with_name(f.name()) {
            Some((i, g)) if g.data_type() == f.data_type() => Some(Some(i)),
            None if f.is_nullable() && table.added_later().contains(&f.name().as_str()) => {
                Some(None)
            }
            _ => None,
        })
        .collect::<Option<_>>()?;
    (plan.iter().flatten().count() == found.fields().len()).then_some(plan)
}

/// `b` in schema `want`: its columns where `plan` places them, null columns for the others.
fn widen(b: &RecordBatch, want: &SchemaRef, plan: &[Option<usize>]) -> Result<RecordBatch> {
    let cols = want
        .fields()
        .iter()
        .zip(plan)
        .map(|(f, p)| match p {
            Some(i) => b.column(*i).clone(),
            None => new_null_array(f.data_type(), b.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(want.clone(), cols)?)
}

/// Indices of the first row of each distinct key.
fn first_of_each<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> UInt32Array {
    let mut seen = HashSet::new();
    keys.enumerate()
        .filter_map(|(i, k)| seen.insert(k).then_some(i as u32))
        .collect()
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .expect("journal schema checked")
}

/// The table of a journal: the concatenated checkpoints, where a row may repeat for symbols (the
/// first is kept) and the task table was journaled whole each time (the last is kept).
fn combine(table: Table, batches: Vec<RecordBatch>) -> Result<RecordBatch> {
    let schema = table.schema();
    if table == Table::Tasks {
        return Ok(batches
            .into_iter()
            .last()
            .unwrap_or_else(|| RecordBatch::new_empty(schema)));
    }
    let all = concat_batches(&schema, &batches)?;
    let keep = match table {
        Table::KernelSymbols => first_of_each(column::<UInt64Array>(&all, "addr").values().iter()),
        Table::UserFrames => {
            let tgid = column::<Int32Array>(&all, "tgid");
            let addr = column::<UInt64Array>(&all, "addr");
            first_of_each(tgid.values().iter().zip(addr.values().iter()))
        }
        _ => return Ok(all),
    };
    if keep.len() == all.num_rows() {
        return Ok(all);
    }
    Ok(take_record_batch(&all, &keep)?)
}

/// Earliest and latest event timestamps of the tables.
fn event_span(tables: &[(Table, RecordBatch)]) -> (Option<u64>, Option<u64>) {
    let mut first: Option<u64> = None;
    let mut last: Option<u64> = None;
    for (_, batch) in tables.iter().filter(|(t, _)| t.is_event_table()) {
        let ts = column::<UInt64Array>(batch, "ts");
        if let (Some(lo), Some(hi)) = (arrow::compute::min(ts), arrow::compute::max(ts)) {
            first = Some(first.map_or(lo, |f| f.min(lo)));
            last = Some(last.map_or(hi, |l| l.max(hi)));
        }
    }
    (first, last)
}

/// Turns the journal of segment `id` into a finished segment. `Ok(None)` when it held no events.
fn salvage_one(capture: &Path, id: u64) -> Result<Option<SegmentMeta>> {
    let dir = journal_path(capture, id);
    let meta_path = dir.join(SEGMENT_META_FILE);
    let mut meta = match SegmentMeta::read(&meta_path) {
        Ok(m) => m,
        // Killed before the first checkpoint finished: no rows were promised.
        Err(_) if !meta_path.exists() => SegmentMeta {
            id,
            ..Default::default()
        },
        Err(e) => return Err(e.into()),
    };
    if meta.id != id {
        bail!("{} describes segment {}", meta_path.display(), meta.id);
    }
    let mut tables = Vec::with_capacity(Table::ALL.len());
    for table in Table::ALL {
        let batches = read_stream(&dir.join(stream_name(table)), table)?;
        tables.push((table, combine(table, batches)?));
    }
    let (first, last) = event_span(&tables);
    let Some(last) = last else {
        return Ok(None);
    };
    meta.first_event_ns = first;
    meta.last_event_ns = Some(last);
    if meta.start_ns == 0 {
        meta.start_ns = first.unwrap_or(last);
    }
    meta.end_ns = meta.end_ns.max(last);
    meta.salvaged = true;
    let tables: Vec<crate::segment::TableBatches> =
        tables.into_iter().map(|(t, b)| (t, vec![b])).collect();
    let written = segment::write_segment(capture, &tables, meta)?;
    Ok(Some(written))
}

/// What [`salvage`] did.
#[derive(Debug, Default)]
pub struct Salvaged {
    /// Segments rebuilt from journals.
    pub segments: Vec<SegmentMeta>,
    /// Journals that could not be salvaged, with why; they are left in place.
    pub failed: Vec<(PathBuf, String)>,
}

impl Salvaged {
    /// Says what salvaging the journals of `dir` did: failures always, successes unless `quiet`.
    pub fn report(&self, dir: &Path, quiet: bool) {
        let salvaged = if quiet { &[][..] } else { &self.segments[..] };
        for m in salvaged {
            let events: u64 = m
                .rows
                .iter()
                .filter(|(t, _)| Table::from_name(t).is_some_and(Table::is_event_table))
                .map(|(_, n)| n)
                .sum();
            eprintln!(
                "flightrec: salvaged segment {} of {} from the journal a stopped recorder left ({} events)",
                m.id,
                dir.display(),
                events
            );
        }
        for (path, why) in &self.failed {
            eprintln!(
                "flightrec: cannot salvage {}: {why}; left in place",
                path.display()
            );
        }
    }
}

/// Turns every journal in `capture` into a finished segment and deletes it. A journal whose segment
/// was finished after all (killed between the two) is just deleted. Call only while no recorder
/// runs on the capture.
pub fn salvage(capture: &Path) -> Result<Salvaged> {
    let mut out = Salvaged::default();
    let Ok(entries) = fs::read_dir(capture.join(SEGMENTS_DIR)) else {
        return Ok(out);
    };
    let mut ids: Vec<u64> = entries
        .flatten()
        .filter_map(|e| journal_id(&e.file_name().to_string_lossy()))
        .collect();
    ids.sort_unstable();
    for id in ids {
        let dir = journal_path(capture, id);
        if segment::segment_path(capture, id)
            .join(SEGMENT_META_FILE)
            .exists()
        {
            fs::remove_dir_all(&dir)?;
            continue;
        }
        match salvage_one(capture, id) {
            Ok(meta) => {
                out.segments.extend(meta);
                fs::remove_dir_all(&dir)?;
            }
            Err(e) => out.failed.push((dir, format!("{e:#}"))),
        }
    }
    Ok(out)
}

/// Salvages the journals of a capture no recorder is running on, and lists the new segments in
/// its manifest. `Ok(None)` when a recorder holds the capture (it finishes its own segments).
pub fn salvage_stopped(capture: &Path) -> Result<Option<Salvaged>> {
    let Some(_lock) = segment::try_lock_capture(capture)? else {
        return Ok(None);
    };
    let salvaged = salvage(capture)?;
    let manifest_path = capture.join(flightrec_schemas::MANIFEST_FILE);
    if !salvaged.segments.is_empty() && manifest_path.is_file() {
        let mut manifest = flightrec_schemas::Manifest::read(&manifest_path)?;
        manifest.segments = segment::finished_segments(capture);
        segment::write_manifest(capture, &manifest)?;
    }
    Ok(Some(salvaged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        batch::SegmentBatch,
        decode::{decode, tests::switch_record},
        ksyms::KernelSymbols,
        tasks::TaskTable,
        usersyms::UserMaps,
    };

    /// A journal of two checkpoints: one switch, then two more with a new kernel stack that shares
    /// a frame with the first.
    fn two_checkpoints(capture: &Path) -> Journal {
        let ksyms = KernelSymbols::parse("ffffffff81000000 T schedule\nffffffff82000000 T io\n");
        let mut tasks = TaskTable::default();
        let mut batch = SegmentBatch::default();
        let mut journal = Journal::create(capture, 7).unwrap();
        let meta = SegmentMeta {
            id: 7,
            start_ns: 1,
            end_ns: 2,
            ..Default::default()
        };
        let mut checkpoint = |records: &[Vec<u8>]| {
            for raw in records {
                batch.push(&decode(raw).unwrap(), None, &mut tasks, 7);
            }
            let (tables, _) = batch.checkpoint(&tasks, &ksyms, &UserMaps::default());
            journal.append(&tables, &meta).unwrap();
        };
        checkpoint(&[switch_record(10, 20, 1, &[0xffffffff81000100], -14)]);
        checkpoint(&[
            switch_record(20, 30, 1, &[0xffffffff82000100, 0xffffffff81000100], -14),
            switch_record(30, 10, 1, &[0xffffffff81000100], -14),
        ]);
        journal
    }

    fn rows(meta: &SegmentMeta, table: Table) -> u64 {
        meta.rows[table.name()]
    }

    #[test]
    fn salvage_keeps_every_checkpoint_and_deletes_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        segment::private_dir(&dir.path().join(SEGMENTS_DIR)).unwrap();
        drop(two_checkpoints(dir.path()));
        let s = salvage(dir.path()).unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        let meta = &s.segments[0];
        assert!(meta.salvaged);
        assert_eq!(rows(meta, Table::SchedSwitch), 3);
        assert_eq!(rows(meta, Table::Stacks), 2);
        assert_eq!(rows(meta, Table::KernelSymbols), 2, "the shared frame once");
        assert_eq!(rows(meta, Table::Tasks), 3, "the last task table");
        assert!(!journal_path(dir.path(), 7).exists());
        assert_eq!(segment::finished_segments(dir.path()), vec![meta.clone()]);
    }

    #[test]
    fn a_torn_last_checkpoint_is_dropped_and_the_rest_salvaged() {
        let dir = tempfile::tempdir().unwrap();
        segment::private_dir(&dir.path().join(SEGMENTS_DIR)).unwrap();
        drop(two_checkpoints(dir.path()));
        // Killed in the middle of writing the second checkpoint's switches.
        let path = journal_path(dir.path(), 7).join(stream_name(Table::SchedSwitch));
        let len = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
        let s = salvage(dir.path()).unwrap();
        assert_eq!(rows(&s.segments[0], Table::SchedSwitch), 1);
    }

    #[test]
    fn a_journal_of_another_schema_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        segment::private_dir(&dir.path().join(SEGMENTS_DIR)).unwrap();
        drop(two_checkpoints(dir.path()));
        let j = journal_path(dir.path(), 7);
        // The stacks stream where the switches belong.
        fs::copy(
            j.join(stream_name(Table::Stacks)),
            j.join(stream_name(Table::SchedSwitch)),
        )
        .unwrap();
        let s = salvage(dir.path()).unwrap();
        assert!(s.segments.is_empty());
        assert_eq!(s.failed.len(), 1);
        assert!(
            s.failed[0].1.contains("another schema"),
            "{}",
            s.failed[0].1
        );
        assert!(j.exists(), "left for a newer flightrec");
    }

    #[test]
    fn a_journal_an_earlier_version_wrote_is_salvaged_with_its_new_columns_null() {
        let dir = tempfile::tempdir().unwrap();
        segment::private_dir(&dir.path().join(SEGMENTS_DIR)).unwrap();
        drop(two_checkpoints(dir.path()));
        // The stacks stream as a recorder from before `method` and `truncated` wrote it.
        let path = journal_path(dir.path(), 7).join(stream_name(Table::Stacks));
        let batches = read_stream(&path, Table::Stacks).unwrap();
        let keep: Vec<usize> = (0..batches[0].num_columns())
            .filter(|&i| {
                let name = batches[0].schema().field(i).name().clone();
                !Table::Stacks.added_later().contains(&name.as_str())
            })
            .collect();
        let old: Vec<RecordBatch> = batches.iter().map(|b| b.project(&keep).unwrap()).collect();
        let mut w = StreamWriter::try_new(File::create(&path).unwrap(), &old[0].schema()).unwrap();
        for b in &old {
            w.write(b).unwrap();
        }
        w.finish().unwrap();

        let s = salvage(dir.path()).unwrap();
        assert!(s.failed.is_empty(), "{:?}", s.failed);
        assert_eq!(rows(&s.segments[0], Table::Stacks), 2);
        assert_eq!(rows(&s.segments[0], Table::SchedSwitch), 3);
        // A stream with a column of another type is still refused.
        assert!(earlier_schema(
            &Schema::new(vec![arrow::datatypes::Field::new(
                "stack_id",
                arrow::datatypes::DataType::Utf8,
                false
            )]),
            &Table::Stacks.schema(),
            Table::Stacks
        )
        .is_none());
    }

    #[test]
    fn a_journal_of_a_finished_segment_is_just_deleted() {
        let dir = tempfile::tempdir().unwrap();
        segment::private_dir(&dir.path().join(SEGMENTS_DIR)).unwrap();
        drop(two_checkpoints(dir.path()));
        let first = salvage(dir.path()).unwrap().segments;
        // Killed after the segment was renamed into place, before its journal was deleted.
        drop(two_checkpoints(dir.path()));
        let again = salvage(dir.path()).unwrap();
        assert!(again.segments.is_empty() && again.failed.is_empty());
        assert!(!journal_path(dir.path(), 7).exists());
        assert_eq!(segment::finished_segments(dir.path()), first);
    }

    #[test]
    fn one_process_at_a_time_holds_a_capture() {
        let dir = tempfile::tempdir().unwrap();
        let held = segment::try_lock_capture(dir.path()).unwrap();
        assert!(held.is_some());
        assert!(segment::try_lock_capture(dir.path()).unwrap().is_none());
        drop(held);
        assert!(segment::try_lock_capture(dir.path()).unwrap().is_some());
    }
}
