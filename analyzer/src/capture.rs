//! Opening a capture and reading only the columns and segments an analysis needs.
//!
//! Damage costs only what is damaged: opened leniently (the analysis commands, unless `--strict`),
//! a table file that cannot be read reads as empty and is recorded as [`Damage`], and a segment
//! whose metadata cannot be read is left out and recorded; every report states them with the
//! losses. Opened strictly (`verify`, exports, `--strict`), the first damage is the error.
use std::{
    fs::{self, File},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use arrow::{datatypes::Schema, record_batch::RecordBatch};
use flightrec_schemas::{
    Manifest, ManifestError, SegmentMeta, Table, MANIFEST_FILE, SEGMENTS_DIR, SEGMENT_META_FILE,
};
use parquet::arrow::{arrow_reader::ParquetRecordBatchReaderBuilder, ProjectionMask};

/// Why a capture or one of its files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Not a directory holding a manifest.
    #[error("{0} is not a flightrec capture (no {MANIFEST_FILE})")]
    NotACapture(String),
    /// Manifest or segment metadata unreadable.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// No finished segment.
    #[error(
        "{0} holds no finished segment: nothing was recorded yet, or every segment was evicted"
    )]
    Empty(String),
    /// No finished segment, but the journal of an open one.
    #[error(
        "{0} holds no finished segment yet, only the journal of the open one: a running recorder finishes it; after a crash, `flightrec salvage {0}` does"
    )]
    OnlyJournal(String),
    /// A table file is missing.
    #[error("{0} is missing: the segment is incomplete")]
    MissingTable(String),
    /// A table file is not readable Parquet.
    #[error("{path} is not a readable Parquet file ({reason}): the capture is damaged")]
    Parquet {
        /// The file.
        path: String,
        /// The cause.
        reason: String,
    },
    /// A table lacks a column or has it with another type.
    #[error("{path}: {problem}: not a flightrec table of this format version")]
    Schema {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// An exported bundle that cannot be read safely.
    #[error(transparent)]
    Bundle(#[from] crate::bundle::BundleError),
    /// Other I/O.
    #[error("cannot read {path}: {cause}")]
    Io {
        /// The path.
        path: String,
        /// The cause.
        cause: std::io::Error,
    },
}

/// Result of capture reading.
pub type Result<T> = std::result::Result<T, CaptureError>;

/// A table file, or a whole segment, that could not be read: its events are lost to the analysis.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Damage {
    /// The segment's id; `None` when its metadata is unreadable (`dir` says which).
    pub segment: Option<u64>,
    /// The segment's directory name.
    pub dir: String,
    /// The table; `None` for the whole segment.
    pub table: Option<String>,
    /// The segment's time range (monotonic ns), where its metadata gives it.
    pub start_ns: Option<u64>,
    pub end_ns: Option<u64>,
    /// The rows the segment's metadata lists for the table: events lost to the analysis.
    pub rows: u64,
    /// Why it could not be read.
    pub reason: String,
}

/// One finished segment.
#[derive(Clone, Debug)]
pub struct Segment {
    /// Its metadata.
    pub meta: SegmentMeta,
    /// Its directory.
    pub dir: PathBuf,
    /// A damaged table is an error (else it reads as empty and is recorded in `damage`).
    pub strict: bool,
    /// Tables found damaged so far (shared by clones).
    pub damage: Arc<Mutex<Vec<Damage>>>,
}

/// An opened capture.
#[derive(Clone, Debug)]
pub struct Capture {
    /// Where it is (for a bundle, the private directory it was unpacked into).
    pub root: PathBuf,
    /// The unpacked bundle, removed when the last clone is dropped.
    _unpacked: Option<Arc<tempfile::TempDir>>,
    /// Its manifest.
    pub manifest: Manifest,
    /// Finished segments, oldest first.
    pub segments: Vec<Segment>,
    /// Ids of open segments found as write-ahead journals (`segments/.<id>.journal`): recording
    /// now, or left by a recorder that was killed and not yet salvaged.
    pub journals: Vec<u64>,
    /// Segments left out because their metadata could not be read (lenient opening only).
    pub damaged: Vec<Damage>,
}

impl Capture {
    /// A block device's name on the recording host (`vda`), or its `major:minor`.
    pub fn disk_name(&self, dev: u32) -> String {
        let mm = format!("{}:{}", dev >> 20, dev & 0xfffff);
        self.manifest.devices.get(&mm).cloned().unwrap_or(mm)
    }

    /// Opens a capture directory, or a bundle written by `flightrec export`; any damage is an
    /// error.
    pub fn open(path: &Path) -> Result<Capture> {
        Capture::open_with(path, true)
    }

    /// Opens a capture that may be damaged: unreadable tables and segments are left out and
    /// recorded ([`Capture::damage`]) unless `strict`.
    pub fn open_with(path: &Path, strict: bool) -> Result<Capture> {
        if !path.is_file() {
            return Capture::open_dir(path, strict);
        }
        let tmp = tempfile::Builder::new()
            .prefix("flightrec-bundle-")
            .tempdir()
            .map_err(|cause| CaptureError::Io {
                path: std::env::temp_dir().display().to_string(),
                cause,
            })?;
        crate::bundle::unpack(path, tmp.path())?;
        let mut cap = Capture::open_dir(tmp.path(), strict).map_err(|e| match e {
            CaptureError::NotACapture(_) => CaptureError::NotACapture(path.display().to_string()),
            other => other,
        })?;
        cap._unpacked = Some(Arc::new(tmp));
        Ok(cap)
    }

    /// Opens a capture directory. Segments are what is on disk with a `segment.json` (a recorder
    /// that died may not have listed its last segment in the manifest).
    pub fn open_dir(root: &Path, strict: bool) -> Result<Capture> {
        let manifest_path = root.join(MANIFEST_FILE);
        if !manifest_path.is_file() {
            return Err(CaptureError::NotACapture(root.display().to_string()));
        }
        let manifest = Manifest::read(&manifest_path)?;
        let seg_root = root.join(SEGMENTS_DIR);
        let entries = fs::read_dir(&seg_root).map_err(|cause| CaptureError::Io {
            path: seg_root.display().to_string(),
            cause,
        })?;
        let mut segments = Vec::new();
        let mut journals = Vec::new();
        let mut damaged = Vec::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(id) = flightrec_schemas::journal_id(&name) {
                journals.push(id);
                continue;
            }
            if name.starts_with('.') || !e.path().is_dir() {
                continue;
            }
            let meta_path = e.path().join(SEGMENT_META_FILE);
            if !meta_path.is_file() {
                continue;
            }
            let meta = match SegmentMeta::read(&meta_path) {
                Ok(m) => m,
                Err(e) if !strict => {
                    damaged.push(Damage {
                        segment: None,
                        dir: name,
                        table: None,
                        start_ns: None,
                        end_ns: None,
                        rows: 0,
                        reason: e.to_string(),
                    });
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            segments.push(Segment {
                meta,
                dir: e.path(),
                strict,
                damage: Arc::default(),
            });
        }
        segments.sort_by_key(|s| s.meta.id);
        journals.sort_unstable();
        if segments.is_empty() && !journals.is_empty() {
            return Err(CaptureError::OnlyJournal(root.display().to_string()));
        }
        if segments.is_empty() {
            if let Some(d) = damaged.first() {
                return Err(CaptureError::Parquet {
                    path: root.join(SEGMENTS_DIR).join(&d.dir).display().to_string(),
                    reason: format!("no segment is readable; this one: {}", d.reason),
                });
            }
            return Err(CaptureError::Empty(root.display().to_string()));
        }
        Ok(Capture {
            root: root.to_path_buf(),
            _unpacked: None,
            manifest,
            segments,
            journals,
            damaged,
        })
    }

    /// Everything found damaged so far: segments left out at opening, and tables that could not
    /// be read since.
    pub fn damage(&self) -> Vec<Damage> {
        let mut all = self.damaged.clone();
        for s in &self.segments {
            all.extend(s.damage.lock().expect("damage list").iter().cloned());
        }
        all
    }
}

thread_local! {
    /// Set while this thread decodes a table file.
    static READING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Keeps the panic hook quiet about panics [`Segment::read`] catches (damaged data, reported as an
/// error instead); every other panic is printed as before.
pub fn quiet_decoder_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !READING.with(|r| r.get()) {
            default(info)
        }
    }));
}

/// Checks that every column chunk the footer declares lies inside the file. The parquet crate
/// asserts (panics) on negative offsets or sizes, which a damaged footer can hold.
fn check_chunks(
    meta: &parquet::file::metadata::ParquetMetaData,
    file_len: u64,
) -> std::result::Result<(), String> {
    for rg in meta.row_groups() {
        for c in rg.columns() {
            let start = c.dictionary_page_offset().unwrap_or(c.data_page_offset());
            let len = c.compressed_size();
            let inside = start >= 0
                && len >= 0
                && (start as u64)
                    .checked_add(len as u64)
                    .is_some_and(|end| end <= file_len);
            if !inside {
                return Err(format!(
                    "column chunk {} at {start}+{len} lies outside the file of {file_len} bytes",
                    c.column_path()
                ));
            }
        }
    }
    Ok(())
}

impl Segment {
    /// True when `table`'s file has `column` (columns added to the format later are absent from
    /// older captures).
    pub fn has_column(&self, table: Table, column: &str) -> bool {
        // Damaged metadata can make the Parquet reader assert (as in `read`): then the column is
        // not there, and reading the table reports the damage.
        READING.with(|r| r.set(true));
        let found = std::panic::catch_unwind(|| {
            File::open(self.dir.join(table.file_name()))
                .ok()
                .and_then(|f| ParquetRecordBatchReaderBuilder::try_new(f).ok())
                .is_some_and(|b| b.schema().column_with_name(column).is_some())
        });
        READING.with(|r| r.set(false));
        found.unwrap_or(false)
    }

    /// Reads `columns` of `table` (all batches of the file). Checks each column's type against the
    /// schema of this format version. A damaged file is an error when the capture was opened
    /// strictly; else it reads as empty and is recorded in [`Segment::damage`].
    pub fn read(&self, table: Table, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        match self.read_or_fail(table, columns) {
            Err(e) if !self.strict => {
                let mut damage = self.damage.lock().expect("damage list");
                if !damage
                    .iter()
                    .any(|d| d.table.as_deref() == Some(table.name()))
                {
                    damage.push(Damage {
                        segment: Some(self.meta.id),
                        dir: self
                            .dir
                            .file_name()
                            .map(|n| n.to_string_lossy().to_string())
                            .unwrap_or_default(),
                        table: Some(table.name().to_string()),
                        start_ns: Some(self.meta.start_ns),
                        end_ns: Some(self.meta.end_ns),
                        rows: self.meta.rows.get(table.name()).copied().unwrap_or(0),
                        reason: e.to_string(),
                    });
                }
                Ok(Vec::new())
            }
            other => other,
        }
    }

    fn read_or_fail(&self, table: Table, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        // The Arrow and Parquet decoders assert on some damaged data instead of returning an
        // error; such a file is damaged like any other, not a crash of the analyzer.
        READING.with(|r| r.set(true));
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.decode(table, columns)));
        READING.with(|r| r.set(false));
        result.unwrap_or_else(|panic| {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown");
            Err(CaptureError::Parquet {
                path: self.dir.join(table.file_name()).display().to_string(),
                reason: format!("the decoder gave up on damaged data: {why}"),
            })
        })
    }

    fn decode(&self, table: Table, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        let path = self.dir.join(table.file_name());
        let shown = path.display().to_string();
        let file = match File::open(&path) {
            Ok(f) => f,
            // A table added to the format after this segment was written (its segment.json does
            // not list it) reads as empty, not as damage.
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && !self.meta.rows.is_empty()
                    && !self.meta.rows.contains_key(table.name()) =>
            {
                return Ok(Vec::new());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(CaptureError::MissingTable(shown))
            }
            Err(e) => {
                return Err(CaptureError::Io {
                    path: shown,
                    cause: e,
                })
            }
        };
        let parquet_err = |e: &dyn std::fmt::Display| CaptureError::Parquet {
            path: shown.clone(),
            reason: e.to_string(),
        };
        let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_err(&e))?;
        check_chunks(builder.metadata(), file_len).map_err(|e| parquet_err(&e))?;
        let expected = table.schema();
        let indices = check_columns(builder.schema(), &expected, columns).map_err(|problem| {
            CaptureError::Schema {
                path: shown.clone(),
                problem,
            }
        })?;
        let mask = ProjectionMask::roots(builder.parquet_schema(), indices);
        let reader = builder
            .with_projection(mask)
            .with_batch_size(64 * 1024)
            .build()
            .map_err(|e| parquet_err(&e))?;
        reader.map(|b| b.map_err(|e| parquet_err(&e))).collect()
    }
}

fn check_columns(
    found: &Arc<Schema>,
    expected: &Schema,
    columns: &[&str],
) -> std::result::Result<Vec<usize>, String> {
    let mut indices = Vec::with_capacity(columns.len());
    for name in columns {
        let want = expected
            .field_with_name(name)
            .map_err(|_| format!("column {name} is not part of the format"))?;
        let (i, have) = found
            .column_with_name(name)
            .ok_or_else(|| format!("column {name} is missing"))?;
        if have.data_type() != want.data_type() {
            return Err(format!(
                "column {name} has type {}, expected {}",
                have.data_type(),
                want.data_type()
            ));
        }
        indices.push(i);
    }
    Ok(indices)
}
