//! `flightrec-analyze sql`: SQL over captures and lake trees on embedded Apache DataFusion.
//!
//! Every capture table is a SQL table of the same name ([`source`]), unioned over all segments and
//! inputs, in the lake schema (`schemas/lake.md`); the book's analyses are views ([`views`],
//! `schemas/sql/`) with the analyzer's pairing rules. Results print as [`output`] formats.
use std::path::PathBuf;

use anyhow::{bail, Result};
use datafusion::prelude::{SessionConfig, SessionContext};

pub mod cluster;
pub mod native;
pub mod output;
pub mod parity;
pub mod source;
pub mod views;

pub use output::Format;
use source::Input;

/// Options of `sql`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Captures, snapshots, bundles and lake trees.
    pub inputs: Vec<PathBuf>,
    /// The query (one statement).
    pub query: Option<String>,
    /// Output format.
    pub format: Format,
    /// Output file.
    pub output: Option<PathBuf>,
    /// List tables and views instead.
    pub tables: bool,
    /// A Ballista scheduler, `df://HOST:PORT`, to run the query on.
    pub cluster: Option<String>,
}

/// A DataFusion error on one line, with where to look.
fn one_line(e: impl std::fmt::Display) -> String {
    let text = e.to_string();
    let text: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!(
        "{} (`flightrec-analyze sql CAPTURE --tables` lists the tables, views and columns)",
        text.join(" ")
    )
}

/// A session with every table and view of `inputs` registered: `runq_latency` and `offcpu`
/// computed natively when every input is a local capture ([`native`]), all else by its SQL.
pub async fn session(inputs: &[Input]) -> Result<SessionContext> {
    session_with(inputs, true).await
}

/// [`session`], with the native views or (`native` false) every view by its SQL.
pub async fn session_with(inputs: &[Input], native: bool) -> Result<SessionContext> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(true);
    let ctx = SessionContext::new_with_config(config);
    let natives = source::register(&ctx, inputs, native).await?;
    register_views(&ctx, &natives).await?;
    Ok(ctx)
}

/// Creates the views of `schemas/sql` in `ctx`, whose tables are registered, but those in `skip`.
async fn register_views(ctx: &SessionContext, skip: &[&str]) -> Result<()> {
    for (name, text) in views::VIEWS {
        if skip.contains(&name) {
            continue;
        }
        if let Err(e) = ctx.sql(text).await {
            bail!("view {name} of schemas/sql does not plan: {}", one_line(e));
        }
    }
    Ok(())
}

async fn list_tables(ctx: &SessionContext) -> Result<String> {
    let mut out = String::new();
    let tables = source::SqlTable::all()
        .into_iter()
        .map(|t| (t.name(), "table"));
    for (name, kind) in tables.chain(views::VIEWS.map(|(v, _)| (v, "view"))) {
        let df = ctx.table(name).await?;
        let cols: Vec<String> = df
            .schema()
            .fields()
            .iter()
            .map(|f| format!("{} {}", f.name(), f.data_type()))
            .collect();
        out.push_str(&format!("{name} ({kind}): {}\n", cols.join(", ")));
    }
    Ok(out)
}

async fn run_async(opts: &Options, inputs: Vec<Input>) -> Result<String> {
    let ctx = match &opts.cluster {
        Some(url) => cluster::session(url, &inputs).await?,
        None => session(&inputs).await?,
    };
    if opts.tables {
        return list_tables(&ctx).await;
    }
    let Some(query) = opts.query.as_deref() else {
        bail!("no query: give one with -e 'SELECT ...', or --tables to list what there is");
    };
    let df = ctx
        .sql(query)
        .await
        .map_err(|e| anyhow::anyhow!(one_line(e)))?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let batches = df.collect().await.map_err(|e| match &opts.cluster {
        Some(url) => cluster::explain(url, &e),
        None => anyhow::anyhow!(one_line(e)),
    })?;
    output::render(schema, &batches, opts.format, opts.output.as_deref())
}

/// Runs `sql`: the query's result as text (empty when written to a file).
pub fn run(opts: &Options) -> Result<String> {
    if opts.format == Format::Parquet && opts.output.is_none() {
        bail!("--format parquet needs -o FILE");
    }
    let inputs = opts
        .inputs
        .iter()
        .map(|p| Input::open(p))
        .collect::<Result<Vec<_>>>()?;
    block_on(run_async(opts, inputs))
}

/// Runs `work` to completion on a multi-threaded runtime (DataFusion is async; callers are not).
pub fn block_on<T>(work: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(work)
}
