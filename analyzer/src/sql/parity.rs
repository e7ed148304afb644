//! The views' contract, checked: on a capture, `runq_latency`, `block_latency`,
//! `syscall_latency`, `offcpu` and `samples` give exactly what the analyzer's `latency`,
//! `offcpu` and `profile` give (counts, sums, nearest-rank percentiles, log2 buckets, per folded
//! stack sums). The tests run it on the fixtures, on lake trees and on fresh recordings; anyone
//! porting the views to another engine can compare against the same numbers.
use std::collections::BTreeMap;

use anyhow::Result;
use arrow::{
    array::{Array, AsArray},
    datatypes::Int64Type,
    record_batch::RecordBatch,
};
use datafusion::prelude::SessionContext;

use super::source::Input;
use crate::{
    capture::Capture,
    filter::Filter,
    hist::Distribution,
    latency::{self, Kind},
    offcpu, profile,
};

/// Nearest-rank percentiles and log2 µs buckets of a view's duration column, as `hist.rs` makes
/// them, in SQL every engine runs.
pub fn distribution_sql(view: &str, column: &str) -> String {
    let p = |q: &str| format!("MIN(CASE WHEN rn >= CEIL(CAST({q} AS DOUBLE) * n) THEN d END)");
    format!(
        "WITH r AS (SELECT {column} AS d, ROW_NUMBER() OVER (ORDER BY {column}) AS rn, \
         COUNT(*) OVER () AS n FROM {view}) \
         SELECT COUNT(*) AS count, MIN(d) AS min, SUM(d) AS total, {} AS p50, {} AS p90, \
         {} AS p99, {} AS p999, MAX(d) AS max FROM r",
        p("0.50"),
        p("0.90"),
        p("0.99"),
        p("0.999")
    )
}

/// log2 buckets (bucket i = [2^i, 2^(i+1)) µs, 0 µs in bucket 0) of a view's duration column.
pub fn buckets_sql(view: &str, column: &str) -> String {
    format!(
        "SELECT CASE WHEN {column} / 1000 < 1 THEN 0 \
         ELSE CAST(FLOOR(LOG2(CAST({column} / 1000 AS DOUBLE))) AS BIGINT) END AS bucket, \
         COUNT(*) AS n FROM {view} GROUP BY 1 ORDER BY 1"
    )
}

async fn query(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.collect().await?)
}

fn int(b: &RecordBatch, col: usize, row: usize) -> u64 {
    let c = arrow::compute::cast(b.column(col), &arrow::datatypes::DataType::Int64)
        .expect("integer column");
    let c = c.as_primitive::<Int64Type>();
    if c.is_null(row) {
        0
    } else {
        c.value(row) as u64
    }
}

/// Distribution of a view column, in the analyzer's shape.
async fn sql_distribution(ctx: &SessionContext, view: &str, column: &str) -> Result<Distribution> {
    let b = &query(ctx, &distribution_sql(view, column)).await?[0];
    let mut d = Distribution {
        count: int(b, 0, 0),
        min: int(b, 1, 0),
        total: int(b, 2, 0),
        ..Default::default()
    };
    d.percentiles.p50 = int(b, 3, 0);
    d.percentiles.p90 = int(b, 4, 0);
    d.percentiles.p99 = int(b, 5, 0);
    d.percentiles.p999 = int(b, 6, 0);
    d.percentiles.max = int(b, 7, 0);
    let mut counts = BTreeMap::new();
    for b in query(ctx, &buckets_sql(view, column)).await? {
        for i in 0..b.num_rows() {
            counts.insert(int(&b, 0, i), int(&b, 1, i));
        }
    }
    // The analyzer lists buckets from the first to the last non-empty one, empty ones included.
    if let (Some(&lo), Some(&hi)) = (counts.keys().next(), counts.keys().next_back()) {
        for i in lo..=hi {
            let low_us = if i == 0 { 0 } else { 1u64 << i };
            d.histogram.push(crate::hist::Bucket {
                low: low_us * 1000,
                high: (1u64 << (i + 1)) * 1000,
                count: counts.get(&i).copied().unwrap_or(0),
            });
        }
    }
    Ok(d)
}

/// Sum and count per folded stack of a view, in SQL every engine runs.
pub fn folded_sql(view: &str, value: &str) -> String {
    format!("SELECT folded, SUM({value}) AS total, COUNT(*) AS n FROM {view} GROUP BY folded")
}

/// The queries that pin the views down: per latency view its distribution and buckets, per
/// stack view its folded sums. (name, SQL).
pub fn contract_queries() -> Vec<(String, String)> {
    let mut q = Vec::new();
    for view in ["runq_latency", "block_latency", "syscall_latency"] {
        q.push((
            format!("{view} distribution"),
            distribution_sql(view, "latency_ns"),
        ));
        q.push((format!("{view} buckets"), buckets_sql(view, "latency_ns")));
    }
    q.push(("offcpu folded".into(), folded_sql("offcpu", "offcpu_ns")));
    q.push(("samples folded".into(), folded_sql("samples", "1")));
    q
}

/// Each query's rows over `inputs`, every value as text (null as empty), rows sorted: for
/// comparing with another engine's answers. Run here, or on the Ballista cluster at `cluster`.
pub fn rows_as_text(
    inputs: Vec<Input>,
    queries: &[(String, String)],
    cluster: Option<&str>,
) -> Result<Vec<Vec<Vec<String>>>> {
    super::block_on(async {
        let ctx = match cluster {
            Some(url) => super::cluster::session(url, &inputs).await?,
            None => super::session(&inputs).await?,
        };
        let mut out = Vec::new();
        for (_, sql) in queries {
            out.push(text_rows(&query(&ctx, sql).await?));
        }
        Ok(out)
    })
}

/// Every value as text (null as empty), rows sorted.
fn text_rows(batches: &[arrow::record_batch::RecordBatch]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for b in batches {
        for i in 0..b.num_rows() {
            rows.push(
                b.columns()
                    .iter()
                    .map(|c| {
                        if c.is_null(i) {
                            String::new()
                        } else {
                            arrow::util::display::array_value_to_string(c, i).unwrap_or_default()
                        }
                    })
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}

/// All rows of `view` over `inputs` as text, sorted: computed natively where the session does
/// ([`super::native`]), or (`native` false) by the view's SQL.
pub fn view_rows(inputs: &[Input], view: &str, native: bool) -> Result<Vec<Vec<String>>> {
    super::block_on(async {
        let ctx = super::session_with(inputs, native).await?;
        Ok(text_rows(
            &query(&ctx, &format!("SELECT * FROM {view}")).await?,
        ))
    })
}

/// Sum and count per folded stack of a view.
async fn sql_folded(
    ctx: &SessionContext,
    view: &str,
    value: &str,
) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut out = BTreeMap::new();
    for b in query(ctx, &folded_sql(view, value)).await? {
        let f = arrow::compute::cast(b.column(0), &arrow::datatypes::DataType::Utf8)?;
        let f = f.as_string::<i32>();
        for i in 0..b.num_rows() {
            out.insert(f.value(i).to_string(), (int(&b, 1, i), int(&b, 2, i)));
        }
    }
    Ok(out)
}

fn analyzer_folded(r: &crate::stackagg::StackReport) -> BTreeMap<String, (u64, u64)> {
    r.stacks
        .iter()
        .map(|s| (s.folded.clone(), (s.value, s.count)))
        .collect()
}

/// What one comparison found.
#[derive(Debug, Default)]
pub struct Parity {
    /// Human-readable lines: what was compared and with which counts.
    pub compared: Vec<String>,
    /// What differed; empty when the views equal the analyzer.
    pub mismatches: Vec<String>,
}

/// Compares the views over `inputs` with the analyzer on `cap` (the same capture, maybe in
/// another form: a lake tree, a bundle).
pub fn compare(cap: &Capture, inputs: Vec<Input>) -> Result<Parity> {
    super::block_on(async {
        let ctx = super::session(&inputs).await?;
        let all = Filter::default();
        let mut p = Parity::default();
        for (kind, view, column) in [
            (Kind::Runq, "runq_latency", "latency_ns"),
            (Kind::Block, "block_latency", "latency_ns"),
            (Kind::Syscall, "syscall_latency", "latency_ns"),
        ] {
            let want = latency::latency(cap, kind, None, &all)?
                .groups
                .into_iter()
                .next()
                .map(|g| g.dist)
                .unwrap_or_default();
            let got = sql_distribution(&ctx, view, column).await?;
            p.compared.push(format!("{view}: {} intervals", got.count));
            if got != want {
                p.mismatches
                    .push(format!("{view}: sql {got:?}\n  analyzer {want:?}"));
            }
        }
        for (view, value, report) in [
            (
                "offcpu",
                "offcpu_ns",
                offcpu::offcpu(cap, &all, &Default::default())?,
            ),
            ("samples", "1", profile::profile(cap, &all)?),
        ] {
            let want = analyzer_folded(&report);
            let got = sql_folded(&ctx, view, value).await?;
            p.compared
                .push(format!("{view}: {} folded stacks", got.len()));
            for k in want.keys().chain(got.keys()) {
                if want.get(k) != got.get(k) {
                    p.mismatches.push(format!(
                        "{view} {k}: sql {:?}, analyzer {:?}",
                        got.get(k),
                        want.get(k)
                    ));
                }
            }
        }
        Ok(p)
    })
}
