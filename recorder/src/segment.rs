//! Writes a finished segment: one zstd Parquet file per table and `segment.json`, assembled under a
//! hidden temporary directory that is renamed into place only when complete.
use std::{
    fs::{self, File, OpenOptions},
    io::Write,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use anyhow::{bail, Context, Result};
use arrow::record_batch::RecordBatch;
use flightrec_schemas::{
    manifest::segment_dir_name, Manifest, SegmentMeta, Table, MANIFEST_FILE, SEGMENTS_DIR,
    SEGMENT_META_FILE,
};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, Encoding, ZstdLevel},
    file::properties::WriterProperties,
    schema::types::ColumnPath,
};

/// Checks that `path`, if it exists, is a real directory (not a symlink) owned by the user running
/// the recorder: a directory prepared by someone else, or a symlink planted in it, would let them
/// redirect what a privileged recorder writes.
pub fn check_owned_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    if meta.file_type().is_symlink() {
        bail!(
            "{} is a symbolic link; refusing to follow it (use the real path)",
            path.display()
        );
    }
    if !meta.is_dir() {
        bail!("{} exists and is not a directory", path.display());
    }
    // SAFETY: no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        bail!(
            "{} is owned by uid {}, not by the user running flightrec (uid {me}); refusing to write into it",
            path.display(),
            meta.uid()
        );
    }
    Ok(())
}

/// Takes the capture directory's lock, held for as long as the returned file is open: one recorder
/// per directory, and salvaging never races a live recorder. `None` when another process holds it.
pub fn try_lock_capture(dir: &Path) -> Result<Option<File>> {
    use std::os::{fd::AsRawFd, unix::fs::OpenOptionsExt};
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW)
        .open(dir)
        .with_context(|| format!("cannot open {}", dir.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(f));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(None);
    }
    Err(e).with_context(|| format!("cannot lock {}", dir.display()))
}

/// Creates a directory readable by its owner only.
pub fn private_dir(path: &Path) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Creates a file readable by its owner only; fails if it exists.
pub fn private_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn properties(schema: &arrow::datatypes::Schema) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(3).expect("valid level"),
        ))
        .set_created_by(format!("flightrec {}", env!("CARGO_PKG_VERSION")));
    // Numbers are written plain and left to zstd: a dictionary hashes every value, which cost the
    // recorder about a tenth of its CPU at high event rates for ~9% smaller files (2.4 vs 2.6
    // bytes per event on the pipe benchmark). Strings (names, paths) keep their dictionaries.
    for f in schema.fields() {
        if f.data_type().is_primitive() || f.data_type() == &arrow::datatypes::DataType::Boolean {
            b = b.set_column_dictionary_enabled(ColumnPath::from(f.name().as_str()), false);
        }
    }
    // Timestamps rise steadily: delta encoding beats plain there.
    for col in ["ts", "sector", "skaddr"] {
        b = b.set_column_encoding(ColumnPath::from(col), Encoding::DELTA_BINARY_PACKED);
    }
    b.build()
}

/// A table's rows as the batches they came in (a segment's checkpoints), written in order.
pub type TableBatches = (Table, Vec<RecordBatch>);

/// Writes the rows of `batches`, one after the other, to `path` as one Parquet file of `table`
/// and syncs it. Returns the file size.
pub fn write_parquet(path: &Path, table: Table, batches: &[RecordBatch]) -> Result<u64> {
    let file = private_file(path)?;
    let schema = table.schema();
    let props = properties(&schema);
    let mut w = ArrowWriter::try_new(file, schema, Some(props))?;
    for batch in batches {
        w.write(batch)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let file = w.into_inner()?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

/// Writes `contents` to `path` through a temporary file and a rename, so readers see the old or
/// the new file, never half of one, and syncs both: the new file survives a power cut.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    replace_file(path, contents, true)
}

/// [`write_atomic`], synced to disk only when `durable`: without, the file still survives the
/// process being killed (the kernel has it), which is all a journal twice a second needs.
pub fn replace_file(path: &Path, contents: &[u8], durable: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = private_file(&tmp)?;
    f.write_all(contents)?;
    if durable {
        f.sync_all()?;
    }
    fs::rename(&tmp, path).with_context(|| format!("cannot rename into {}", path.display()))?;
    if durable {
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The directory of segment `id` in `capture`.
pub fn segment_path(capture: &Path, id: u64) -> PathBuf {
    capture.join(SEGMENTS_DIR).join(segment_dir_name(id))
}

/// Writes a segment's tables and metadata; returns the metadata with its size filled in. On failure
/// (a full disk, say) nothing of the segment is left behind.
pub fn write_segment(
    capture: &Path,
    tables: &[TableBatches],
    meta: SegmentMeta,
) -> Result<SegmentMeta> {
    let tmp = capture
        .join(SEGMENTS_DIR)
        .join(format!(".{}.tmp", segment_dir_name(meta.id)));
    let result = write_segment_into(capture, &tmp, tables, meta);
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

fn write_segment_into(
    capture: &Path,
    tmp: &Path,
    tables: &[TableBatches],
    mut meta: SegmentMeta,
) -> Result<SegmentMeta> {
    let segments = capture.join(SEGMENTS_DIR);
    if tmp.exists() {
        fs::remove_dir_all(tmp)?;
    }
    private_dir(tmp)?;
    let mut bytes = 0;
    for (table, batches) in tables {
        let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
        meta.rows.insert(table.name().to_string(), rows);
        bytes += write_parquet(&tmp.join(table.file_name()), *table, batches)?;
    }
    // `bytes` counts segment.json too, which holds `bytes`: settle on the size that includes itself
    // (two rounds at most: only the number's digit count can change it).
    meta.bytes = bytes;
    let json = loop {
        let json = serde_json::to_vec_pretty(&meta)?;
        let total = bytes + json.len() as u64;
        if total == meta.bytes {
            break json;
        }
        meta.bytes = total;
    };
    let mut f = private_file(&tmp.join(SEGMENT_META_FILE))?;
    f.write_all(&json)?;
    f.sync_all()?;
    let dst = segment_path(capture, meta.id);
    fs::rename(tmp, &dst).with_context(|| format!("cannot rename into {}", dst.display()))?;
    sync_dir(&segments)?;
    Ok(meta)
}

/// Writes the manifest atomically.
pub fn write_manifest(capture: &Path, manifest: &Manifest) -> Result<()> {
    write_atomic(
        &capture.join(MANIFEST_FILE),
        &serde_json::to_vec_pretty(manifest)?,
    )
}

/// Removes what a crash left half-written (temporary segment directories and files).
pub fn remove_partial(capture: &Path) -> Result<usize> {
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(capture.join(SEGMENTS_DIR)) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            fs::remove_dir_all(e.path())?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Finished segments found on disk, oldest first.
pub fn finished_segments(capture: &Path) -> Vec<SegmentMeta> {
    let mut v: Vec<SegmentMeta> = fs::read_dir(capture.join(SEGMENTS_DIR))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| SegmentMeta::read(&e.path().join(SEGMENT_META_FILE)).ok())
        .collect();
    v.sort_by_key(|m| m.id);
    v
}
