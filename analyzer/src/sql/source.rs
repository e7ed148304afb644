//! What `sql` reads: local captures (directories, snapshots, exported bundles), converted to the
//! lake schema segment by segment as a query reads them, and lake trees, read as Hive-partitioned
//! Parquet so that `WHERE host = ...` and `WHERE date = ...` skip whole directories. Both give
//! every table the same columns ([`crate::lake::tables::schema`]).
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{bail, Context, Result};
use arrow::{
    datatypes::{DataType, SchemaRef},
    record_batch::RecordBatch,
};
use datafusion::{
    catalog::{streaming::StreamingTable, MemTable, TableProvider},
    datasource::{
        file_format::parquet::ParquetFormat,
        listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl},
    },
    error::DataFusionError,
    execution::{SendableRecordBatchStream, TaskContext},
    physical_plan::{stream::RecordBatchStreamAdapter, streaming::PartitionStream},
    prelude::SessionContext,
};
use flightrec_schemas::{Table, MANIFEST_FILE};
use futures::StreamExt;

use super::native::View;
use crate::{
    capture::Capture,
    lake::{
        meta::MetaTable,
        tables::{file_schema, schema, segment_rows, Ident, PARTITIONS},
    },
};

/// One input of `sql`.
pub enum Input {
    /// A capture, snapshot or bundle.
    Capture(Box<Capture>),
    /// A lake tree written by `flightrec export --lake`.
    Lake(PathBuf),
}

/// A table `sql` offers: a capture table or one made from manifests.
#[derive(Clone, Copy, Debug)]
pub enum SqlTable {
    /// A table of the capture format.
    Capture(Table),
    /// `captures` or `segments`.
    Meta(MetaTable),
}

impl SqlTable {
    /// Every one, capture tables first.
    pub fn all() -> Vec<SqlTable> {
        Table::ALL
            .map(SqlTable::Capture)
            .into_iter()
            .chain(MetaTable::ALL.map(SqlTable::Meta))
            .collect()
    }

    /// Its SQL name, also its directory in a lake.
    pub fn name(self) -> &'static str {
        match self {
            SqlTable::Capture(t) => t.name(),
            SqlTable::Meta(m) => m.name(),
        }
    }

    /// Its columns as a lake file stores them.
    pub(crate) fn file_schema(self) -> SchemaRef {
        match self {
            SqlTable::Capture(t) => file_schema(t),
            SqlTable::Meta(m) => m.file_schema(),
        }
    }

    /// Its columns as SQL sees them.
    pub(crate) fn schema(self) -> SchemaRef {
        match self {
            SqlTable::Capture(t) => schema(t),
            SqlTable::Meta(m) => m.schema(),
        }
    }
}

impl Input {
    /// Opens `path` as whichever it is.
    pub fn open(path: &Path) -> Result<Input> {
        if path.is_file() || path.join(MANIFEST_FILE).is_file() {
            return Ok(Input::Capture(Box::new(Capture::open(path)?)));
        }
        let is_lake = SqlTable::all()
            .into_iter()
            .any(|t| path.join(t.name()).is_dir());
        if path.is_dir() && is_lake {
            return Ok(Input::Lake(path.to_path_buf()));
        }
        bail!(
            "{} is neither a flightrec capture, snapshot or bundle, nor a lake tree written by `flightrec export --lake`",
            path.display()
        )
    }
}

/// One segment's table of one capture, converted when a query reads it.
#[derive(Debug)]
struct SegmentPart {
    cap: Arc<Capture>,
    ident: Arc<Ident>,
    segment: usize,
    table: Table,
    schema: SchemaRef,
}

impl PartitionStream for SegmentPart {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (cap, ident, segment, table) = (
            self.cap.clone(),
            self.ident.clone(),
            self.segment,
            self.table,
        );
        blocking_stream(self.schema.clone(), move || {
            segment_rows(&cap, &ident, &cap.segments[segment], table)
        })
    }
}

/// The batches `work` makes on a blocking thread, as a stream (errors as DataFusion's).
fn blocking_stream(
    schema: SchemaRef,
    work: impl FnOnce() -> Result<Vec<RecordBatch>> + Send + 'static,
) -> SendableRecordBatchStream {
    let rows = futures::stream::once(async move { tokio::task::spawn_blocking(work).await })
        .flat_map(|r| {
            let batches = match r {
                Ok(Ok(b)) => b.into_iter().map(Ok).collect(),
                Ok(Err(e)) => vec![Err(DataFusionError::External(e.into()))],
                Err(e) => vec![Err(DataFusionError::External(Box::new(e)))],
            };
            futures::stream::iter(batches)
        });
    Box::pin(RecordBatchStreamAdapter::new(schema, rows))
}

/// A view of one capture computed natively ([`View`]) when a query reads it.
#[derive(Debug)]
struct NativePart {
    cap: Arc<Capture>,
    ident: Arc<Ident>,
    view: View,
    schema: SchemaRef,
}

impl PartitionStream for NativePart {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (cap, ident, view) = (self.cap.clone(), self.ident.clone(), self.view);
        blocking_stream(self.schema.clone(), move || view.rows(&cap, &ident))
    }
}

/// `name` of the lakes at `roots` as one table; `None` when no lake has it.
pub(crate) fn lake_table(
    roots: &[&PathBuf],
    name: &str,
    file: SchemaRef,
) -> Result<Option<ListingTable>> {
    let mut urls = Vec::new();
    for root in roots {
        let dir = root.join(name);
        if dir.is_dir() {
            let dir = dir
                .canonicalize()
                .with_context(|| format!("cannot read {}", dir.display()))?;
            urls.push(ListingTableUrl::parse(format!("{}/", dir.display()))?);
        }
    }
    if urls.is_empty() {
        return Ok(None);
    }
    Ok(Some(listing(urls, file)?))
}

/// The Parquet files under `urls` (none is fine: an empty table), Hive-partitioned.
pub(crate) fn listing(urls: Vec<ListingTableUrl>, file: SchemaRef) -> Result<ListingTable> {
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(
            PARTITIONS
                .iter()
                .map(|p| (p.to_string(), DataType::Utf8))
                .collect(),
        );
    let config = ListingTableConfig::new_with_multi_paths(urls)
        .with_listing_options(options)
        .with_schema(file);
    Ok(ListingTable::try_new(config)?)
}

/// Registers every table of `inputs` in `ctx`, each the union of all inputs. When every input is a
/// local capture and `native` is set, also the [`View`]s, computed natively; returns their names
/// (the other views are SQL).
pub async fn register(
    ctx: &SessionContext,
    inputs: &[Input],
    native: bool,
) -> Result<Vec<&'static str>> {
    let caps: Vec<(Arc<Capture>, Arc<Ident>)> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Capture(c) => Some((Arc::new((**c).clone()), Arc::new(Ident::of(c)))),
            Input::Lake(_) => None,
        })
        .collect();
    let lakes: Vec<&PathBuf> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Lake(p) => Some(p),
            Input::Capture(_) => None,
        })
        .collect();
    for table in SqlTable::all() {
        let (name, schema) = (table.name(), table.schema());
        let local: Arc<dyn TableProvider> = match table {
            SqlTable::Capture(_) if caps.is_empty() => {
                Arc::new(MemTable::try_new(schema.clone(), vec![vec![]])?)
            }
            SqlTable::Capture(table) => {
                let mut parts: Vec<Arc<dyn PartitionStream>> = Vec::new();
                for (cap, ident) in &caps {
                    for segment in 0..cap.segments.len() {
                        parts.push(Arc::new(SegmentPart {
                            cap: cap.clone(),
                            ident: ident.clone(),
                            segment,
                            table,
                            schema: schema.clone(),
                        }));
                    }
                }
                Arc::new(StreamingTable::try_new(schema.clone(), parts)?)
            }
            SqlTable::Meta(meta) => {
                let mut rows = caps
                    .iter()
                    .map(|(cap, ident)| meta.rows(cap, ident).map(|b| vec![b]))
                    .collect::<Result<Vec<_>>>()?;
                if rows.is_empty() {
                    // No local capture: an empty table, unless a lake has it.
                    rows.push(Vec::new());
                }
                Arc::new(MemTable::try_new(schema.clone(), rows)?)
            }
        };
        match (
            lake_table(&lakes, name, table.file_schema())?,
            caps.is_empty(),
        ) {
            (None, _) => {
                ctx.register_table(name, local)?;
            }
            (Some(lake), true) => {
                ctx.register_table(name, Arc::new(lake))?;
            }
            (Some(lake), false) => {
                ctx.register_table(format!("local_{name}"), local)?;
                ctx.register_table(format!("lake_{name}"), Arc::new(lake))?;
                ctx.sql(&format!(
                    "CREATE VIEW {name} AS SELECT * FROM local_{name} UNION ALL SELECT * FROM lake_{name}"
                ))
                .await?;
            }
        }
    }
    if !native || !lakes.is_empty() || caps.is_empty() {
        return Ok(Vec::new());
    }
    let mut names = Vec::new();
    for view in View::ALL {
        let parts: Vec<Arc<dyn PartitionStream>> = caps
            .iter()
            .map(|(cap, ident)| -> Arc<dyn PartitionStream> {
                Arc::new(NativePart {
                    cap: cap.clone(),
                    ident: ident.clone(),
                    view,
                    schema: view.schema(),
                })
            })
            .collect();
        ctx.register_table(
            view.name(),
            Arc::new(StreamingTable::try_new(view.schema(), parts)?),
        )?;
        names.push(view.name());
    }
    Ok(names)
}
