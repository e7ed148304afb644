//! Writing captures into a lake tree:
//! `DIR/<table>/host=<host>/date=<yyyy-mm-dd>/<capture>.parquet`, one file per table, capture and
//! UTC date (a capture crossing midnight has two). Files are written under a temporary name and
//! renamed: a reader never sees half a file, and exporting a capture again replaces its files.
use std::{
    collections::BTreeMap,
    fs::{self, File},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use arrow::{
    array::{AsArray, BooleanArray, RecordBatch},
    compute::filter_record_batch,
    datatypes::Schema,
};
use flightrec_schemas::Table;
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::properties::WriterProperties,
};

use super::{
    meta::MetaTable,
    tables::{file_schema, segment_rows, Ident},
};
use crate::capture::Capture;

/// What one capture's export wrote.
#[derive(Debug)]
pub struct Exported {
    /// Its capture id.
    pub capture: String,
    /// Files written.
    pub files: usize,
    /// Event rows written.
    pub rows: u64,
}

/// One table's open files, by date.
struct Files {
    dir: PathBuf,
    name: String,
    schema: Arc<Schema>,
    open: BTreeMap<String, (PathBuf, ArrowWriter<File>)>,
}

impl Files {
    fn new(dir: PathBuf, name: String, schema: Arc<Schema>) -> Files {
        Files {
            dir,
            name,
            schema,
            open: BTreeMap::new(),
        }
    }

    /// Writes lake rows (partition columns last), split by their `date`.
    fn write(&mut self, b: &RecordBatch) -> Result<()> {
        let file_cols = self.schema.fields().len();
        let date = b.column(file_cols + 1).as_string::<i32>();
        let mut dates: Vec<&str> = date.iter().flatten().collect();
        dates.sort_unstable();
        dates.dedup();
        for d in dates {
            let rows = if date.iter().all(|x| x == Some(d)) {
                b.clone()
            } else {
                let keep: BooleanArray = date.iter().map(|x| Some(x == Some(d))).collect();
                filter_record_batch(b, &keep)?
            };
            let rows =
                RecordBatch::try_new(self.schema.clone(), rows.columns()[..file_cols].to_vec())?;
            if !self.open.contains_key(d) {
                let dir = self.dir.join(format!("date={d}"));
                fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                let tmp = dir.join(format!(".{}.parquet.tmp", self.name));
                let props = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
                    .set_max_row_group_row_count(Some(1 << 20))
                    .build();
                let f = File::create(&tmp)
                    .with_context(|| format!("cannot create {}", tmp.display()))?;
                let w = ArrowWriter::try_new(f, self.schema.clone(), Some(props))?;
                self.open.insert(d.to_string(), (tmp, w));
            }
            self.open.get_mut(d).expect("opened").1.write(&rows)?;
        }
        Ok(())
    }

    /// Closes the files and renames them into place; returns how many.
    fn finish(self) -> Result<usize> {
        let n = self.open.len();
        for (_, (tmp, w)) in self.open {
            w.close()?;
            let done = tmp.with_file_name(format!("{}.parquet", self.name));
            fs::rename(&tmp, &done)
                .with_context(|| format!("cannot rename {} into place", tmp.display()))?;
        }
        Ok(n)
    }
}

/// A host name as a partition directory: refused if it could escape or confuse the tree.
fn host_dir(host: &str) -> Result<String> {
    if host.is_empty() || host.starts_with('.') || host.contains(['/', '=', '\\', '\0']) {
        bail!("host name {host:?} cannot be a lake partition");
    }
    Ok(format!("host={host}"))
}

/// Writes every table of `cap` into the lake at `root`.
pub fn export(cap: &Capture, root: &Path) -> Result<Exported> {
    let ident = Ident::of(cap);
    let host = host_dir(&ident.host)?;
    let mut files = 0;
    let mut rows = 0u64;
    for table in Table::ALL {
        let mut out = Files::new(
            root.join(table.name()).join(&host),
            ident.capture.clone(),
            file_schema(table),
        );
        for seg in &cap.segments {
            for b in segment_rows(cap, &ident, seg, table)? {
                if table.is_event_table() {
                    rows += b.num_rows() as u64;
                }
                out.write(&b)?;
            }
        }
        files += out.finish()?;
    }
    for table in MetaTable::ALL {
        let mut out = Files::new(
            root.join(table.name()).join(&host),
            ident.capture.clone(),
            table.file_schema(),
        );
        out.write(&table.rows(cap, &ident)?)?;
        files += out.finish()?;
    }
    Ok(Exported {
        capture: ident.capture,
        files,
        rows,
    })
}
