//! The lake: captures from many hosts as one Hive-partitioned Parquet tree that any SQL engine
//! reads (DataFusion here, Ballista, Spark, DuckDB, Trino), and the same rows for SQL over local
//! captures. [`tables`] turns a segment's tables into the lake schema in portable [`types`],
//! [`meta`] makes the `captures` and `segments` tables from manifests, [`write`] writes the tree.
//! The layout is documented in `schemas/lake.md`.

pub mod meta;
pub mod tables;
pub mod types;
pub mod write;
