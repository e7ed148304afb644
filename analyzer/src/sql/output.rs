//! Printing query results: an aligned table, CSV, JSON (an array of objects), Parquet, or folded
//! lines for flame graphs.
use std::{fs::File, io::Write, path::Path};

use anyhow::{bail, Context, Result};
use arrow::{array::Array, datatypes::SchemaRef, record_batch::RecordBatch};
use datafusion::arrow::{csv, json, util::pretty};

/// Output format of `sql`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    #[default]
    Text,
    /// CSV with a header line.
    Csv,
    /// A JSON array of objects.
    Json,
    /// A Parquet file (needs -o).
    Parquet,
    /// `stack value` lines for flame graph tools, from a query of two columns (folded stack, number).
    Folded,
}

/// Two-column rows as `first second` lines.
fn folded(batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for b in batches {
        if b.num_columns() != 2 {
            bail!(
                "--format folded needs two columns (folded stack, value); the query gives {}",
                b.num_columns()
            );
        }
        for i in 0..b.num_rows() {
            let text = |c: usize| -> Result<String> {
                Ok(arrow::util::display::array_value_to_string(b.column(c), i)?)
            };
            if b.column(0).is_valid(i) && b.column(1).is_valid(i) {
                writeln!(out, "{} {}", text(0)?, text(1)?)?;
            }
        }
    }
    Ok(out)
}

/// Renders `batches` as `format`, to `output` or returned as text.
pub fn render(
    schema: SchemaRef,
    batches: &[RecordBatch],
    format: Format,
    output: Option<&Path>,
) -> Result<String> {
    let bytes = match format {
        Format::Text => {
            let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
            let table = if rows == 0 {
                pretty::pretty_format_batches(&[RecordBatch::new_empty(schema)])?
            } else {
                pretty::pretty_format_batches(batches)?
            };
            format!(
                "{table}\n({rows} row{})\n",
                if rows == 1 { "" } else { "s" }
            )
            .into_bytes()
        }
        Format::Csv => {
            let mut buf = Vec::new();
            let mut w = csv::WriterBuilder::new().with_header(true).build(&mut buf);
            if batches.is_empty() {
                w.write(&RecordBatch::new_empty(schema))?;
            }
            for b in batches {
                w.write(b)?;
            }
            drop(w);
            buf
        }
        Format::Json => {
            let mut buf = Vec::new();
            let mut w = json::ArrayWriter::new(&mut buf);
            for b in batches {
                w.write(b)?;
            }
            w.finish()?;
            if buf.is_empty() {
                buf.extend_from_slice(b"[]");
            }
            buf.push(b'\n');
            buf
        }
        Format::Folded => folded(batches)?,
        Format::Parquet => {
            let Some(path) = output else {
                bail!("--format parquet needs -o FILE");
            };
            let f =
                File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
            let mut w = parquet::arrow::ArrowWriter::try_new(f, schema, None)?;
            for b in batches {
                w.write(b)?;
            }
            w.close()?;
            return Ok(String::new());
        }
    };
    match output {
        Some(path) => {
            File::create(path)
                .and_then(|mut f| f.write_all(&bytes))
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(String::new())
        }
        None => Ok(String::from_utf8_lossy(&bytes).into_owned()),
    }
}
