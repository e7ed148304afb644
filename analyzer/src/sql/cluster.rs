//! `sql --cluster df://HOST:PORT`: the same tables and views, planned here and run by an Apache
//! DataFusion Ballista cluster (`flightrec-cluster scheduler` and `executor`s).
//!
//! Only lake trees can be read there: the plan names the lake's Parquet files (a `ListingTable`
//! per table, Hive partitions `host` and `date`), and every executor opens them by that path. A
//! table the lake lacks (no rows were ever exported into it) becomes an empty view of typed NULLs,
//! which travels in the plan like the views do, so every view plans on any lake.
use std::{path::PathBuf, sync::Arc};

use anyhow::{bail, Context, Result};
use ballista::prelude::SessionContextExt;
use datafusion::{
    datasource::listing::{ListingTable, ListingTableUrl},
    prelude::SessionContext,
};

use super::source::{lake_table, listing, Input, SqlTable};

/// The scheduler's address from `df://HOST:PORT`.
fn scheduler(url: &str) -> Result<&str> {
    match url.strip_prefix("df://") {
        Some(rest) if !rest.is_empty() && !rest.contains('/') => Ok(rest),
        _ => bail!("--cluster {url}: expected df://HOST:PORT, the Ballista scheduler"),
    }
}

/// A query's failure on the cluster in one line: an unreachable scheduler said as such.
pub fn explain(url: &str, e: &datafusion::error::DataFusionError) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("tcp connect error") || text.contains("transport error") {
        let why = if text.contains("Connection refused") {
            "connection refused"
        } else {
            "no connection"
        };
        return anyhow::anyhow!(
            "cannot reach the Ballista scheduler at {url} ({why}): start one with `flightrec-cluster scheduler`"
        );
    }
    anyhow::anyhow!(super::one_line(e))
}

/// `table` where no lake has it: its directory under the first lake, where no file is, read
/// as a file table like the others. (A view of typed NULLs would be simpler, but the optimizer
/// folds it into plans that Ballista 55 fails to deserialize.)
fn missing(lakes: &[&PathBuf], table: SqlTable) -> Result<ListingTable> {
    let root = lakes
        .first()
        .context("--cluster needs a lake tree")?
        .canonicalize()?;
    let url = ListingTableUrl::parse(format!("{}/{}/", root.display(), table.name()))?;
    listing(vec![url], table.file_schema())
}

/// A session on the cluster at `url` with every table of the lakes in `inputs` and the views.
pub async fn session(url: &str, inputs: &[Input]) -> Result<SessionContext> {
    let addr = scheduler(url)?;
    let mut lakes: Vec<&PathBuf> = Vec::new();
    for input in inputs {
        match input {
            Input::Lake(root) => lakes.push(root),
            Input::Capture(cap) => bail!(
                "--cluster reads lake trees only, and {} is a capture: write it into a lake with `flightrec export --lake DIR CAPTURE`",
                cap.root.display()
            ),
        }
    }
    let ctx = SessionContext::remote(&format!("df://{addr}"))
        .await
        .with_context(|| format!("cannot reach the Ballista scheduler at {url}"))?;
    for table in SqlTable::all() {
        let name = table.name();
        match lake_table(&lakes, name, table.file_schema())? {
            Some(files) => ctx.register_table(name, Arc::new(files))?,
            None => ctx.register_table(name, Arc::new(missing(&lakes, table)?))?,
        };
    }
    super::register_views(&ctx, &[]).await?;
    Ok(ctx)
}
