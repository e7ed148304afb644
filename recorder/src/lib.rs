//! flightrec's recorder: load the eBPF programs, drain their ring buffer, and keep a rolling window
//! of self-contained zstd Parquet segments on disk.
//!
//! Pipeline: [`probes`] loads and attaches the programs with offsets from [`tracefs`]; [`record`]
//! drains the ring buffer with tokio, [`decode`]s records and appends them to a [`batch`] (Arrow
//! builders, [`stacks`] deduplicated, names from [`tasks`] and [`ksyms`]); every `--segment` the batch is
//! finished and handed to the [`writer`] thread, which writes a [`segment`] and applies the
//! [`window`]. Between cuts, checkpoints append the new rows to the open segment's [`journal`], which
//! a restart after `kill -9` salvages.

pub mod batch;
pub mod btf;
pub mod cli;
pub mod config;
pub mod control;
pub mod decode;
pub mod export;
pub mod host;
pub mod journal;
pub mod ksyms;
pub mod preflight;
pub mod probes;
pub mod procmaps;
pub mod record;
pub mod segment;
pub mod snapshot;
pub mod sources;
pub mod stacks;
pub mod status;
pub mod tasks;
pub mod tracefs;
pub mod trigger;
pub mod unwind;
pub mod usersyms;
pub mod window;
pub mod writer;
