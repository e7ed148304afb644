//! The live status line on stderr.
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Instant,
};

use crate::{host, writer::DiskStats};

pub use flightrec_schemas::human_bytes;

/// Status line state.
pub struct Status {
    enabled: bool,
    tty: bool,
    last: Instant,
    last_events: u64,
    printed: u64,
}

impl Status {
    /// A status line; on a terminal it rewrites itself, elsewhere it prints every 10 s.
    pub fn new(enabled: bool, tty: bool) -> Status {
        Status {
            enabled,
            tty,
            last: Instant::now(),
            last_events: 0,
            printed: 0,
        }
    }

    /// Shows the current rates.
    pub fn update(&mut self, events: u64, lost: u64, disk: &Arc<Mutex<DiskStats>>) {
        let elapsed = self.last.elapsed().as_secs_f64().max(1e-3);
        let rate = (events - self.last_events) as f64 / elapsed;
        self.last = Instant::now();
        self.last_events = events;
        self.printed += 1;
        if !self.enabled || (!self.tty && !self.printed.is_multiple_of(10)) {
            return;
        }
        let d = disk.lock().expect("stats lock").clone();
        let span = d
            .oldest_ns
            .map(|o| (host::monotonic_ns().saturating_sub(o)) / 1_000_000_000)
            .unwrap_or(0);
        let line = format!(
            "flightrec: {rate:>9.0} events/s | lost {lost} | {} on disk in {} segments | window {}m{:02}s{}",
            human_bytes(d.bytes),
            d.segments,
            span / 60,
            span % 60,
            if d.failed > 0 {
                format!(" | {} segments ({} events) failed to write", d.failed, d.unwritten_events)
            } else {
                String::new()
            }
        );
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{line}");
        } else {
            let _ = writeln!(err, "{line}");
        }
    }

    /// Ends the status line.
    pub fn finish(&self) {
        if self.enabled && self.tty && self.printed > 0 {
            eprintln!();
        }
    }
}
