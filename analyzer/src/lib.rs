//! flightrec-analyze: the analyses of *BPF Performance Tools*, computed exactly from the raw events of
//! a flightrec capture, on any machine and without privileges.
//!
//! Pipeline: [`capture`] opens a capture and reads only the needed columns of the needed segments;
//! each analysis ([`latency`], [`offcpu`], [`profile`], [`summary`]) runs per segment in parallel
//! ([`parallel`]) with that segment's own names ([`names`]), matches events into intervals
//! ([`intervals`]) and stitches the ones crossing segment boundaries; results are distributions
//! ([`hist`]) or stacks ([`stackagg`]), printed as text, JSON, folded lines or flame graphs
//! ([`flame`]). Every result carries the losses of the segments it covered ([`lost`]).
//!
//! [`sql`] answers any other question in SQL over captures and [`lake`] trees, with the same
//! analyses as views.

pub mod bundle;
pub mod capture;
pub mod cli;
pub mod columns;
pub mod convert;
pub mod filter;
pub mod flame;
pub mod hist;
pub mod intervals;
pub mod lake;
pub mod latency;
pub mod lost;
pub mod names;
pub mod offcpu;
pub mod parallel;
pub mod profile;
pub mod report;
pub mod sql;
pub mod stackagg;
pub mod summary;
pub mod syscalls;
pub mod tools;
pub mod verify;
pub mod wakeups;
