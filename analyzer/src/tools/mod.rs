//! The book's other tools, each answered from a capture after the fact: `cpudist` and `runqlen`
//! (from the switches and wake-ups), `execsnoop` and `exitsnoop` (from the process events),
//! `killsnoop` and `oomkill` (from signals and OOM kills), `hardirqs` and `softirqs` (from the
//! interrupts), `drsnoop` (from memory reclaim), `faults` and `klockstat` (from page faults and
//! kernel lock contention, by stack), `biosnoop` and `bitesize` (from the
//! block requests), `syscount` (from the syscalls), `tcplife`,
//! `tcpconnect`, `tcpaccept`, `tcpconnlat` and `tcpretrans` (from the TCP state changes), and
//! `timeline` (all of them, for one process or CPU, merged in time order). Each
//! prints what its BCC/libbpf-tools peer prints, with the analyzer's filters, `--json`, and the
//! capture's losses.
pub mod biosnoop;
pub mod cli;
pub mod cpudist;
pub mod drsnoop;
pub mod execsnoop;
pub mod exitsnoop;
pub mod irqs;
pub mod killsnoop;
pub mod klockstat;
pub mod oomkill;
pub mod procs;
pub mod runqlen;
pub mod stretches;
pub mod syscount;
pub mod tcp;
pub mod timeline;

use crate::{capture::Capture, filter::wall_clock};

/// A monotonic timestamp as the tools print it: UTC wall clock with milliseconds.
fn time(cap: &Capture, ts: u64) -> String {
    wall_clock(&cap.manifest.clock, ts)
}
