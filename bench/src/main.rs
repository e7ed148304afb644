//! flightrec's benchmark harness. Runs real workloads on this machine (as root), alternating the
//! configurations being compared round by round, and prints a table of medians with the command to
//! reproduce it. Ratios measured in one run are the claim; absolute times depend on the machine.
//!
//!   cargo run --release -p flightrec-bench -- overhead [--loops 100000] [--rounds 5] [--threads]
//!   cargo run --release -p flightrec-bench -- analyzer [--switches 10M] [--rounds 5]
//!   cargo run --release -p flightrec-bench -- throughput [--seconds 30] [--rates 100000,...]
//!   cargo run --release -p flightrec-bench -- redis [--requests 200000] [--baseline DIR]
//!   cargo run --release -p flightrec-bench -- fuzz [--cases 10000] [--seed 1]
//!   cargo run --release -p flightrec-bench -- soak [--minutes 60] [--window 5]
mod analyzer;
mod cluster;
mod fuzz;
mod overhead;
mod redis;
mod soak;
mod throughput;
mod util;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "flightrec-bench",
    about = "Benchmarks of flightrec on this machine"
)]
struct Cli {
    #[command(subcommand)]
    what: What,
}

#[derive(Subcommand)]
enum What {
    /// Off-CPU analysis speed on a recorded capture with many switch events.
    Analyzer(analyzer::Args),
    /// Slowdown of a context-switch benchmark under flightrec, perf record and offcputime; bytes per event.
    Overhead(overhead::Args),
    /// Highest event rate held with zero loss, with the recorder's CPU and peak RSS.
    Throughput(throughput::Args),
    /// A real service (redis-server under redis-benchmark): the recorder's cost and its stacks.
    Redis(redis::Args),
    /// Damaged and hostile captures and bundles, case by case: no panic, no write outside.
    Fuzz(fuzz::Args),
    /// The recorder for an hour under a mixed load: RSS, open files, disk and window each minute.
    Soak(soak::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().what {
        What::Analyzer(a) => analyzer::run(a),
        What::Overhead(a) => overhead::run(a),
        What::Throughput(a) => throughput::run(a),
        What::Redis(a) => redis::run(a),
        What::Fuzz(a) => fuzz::run(a),
        What::Soak(a) => soak::run(a),
    }
}
