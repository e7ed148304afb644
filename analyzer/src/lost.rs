//! Lost events of the segments an analysis covered: every output states them.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    capture::{Capture, Segment},
    filter::Filter,
    parallel::selected,
};

/// Losses over a set of segments.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Lost {
    /// All losses.
    pub total: u64,
    /// Ring buffer full, per source.
    pub ringbuf: BTreeMap<String, u64>,
    /// Program runs the kernel skipped, per source.
    pub missed: BTreeMap<String, u64>,
    /// Records that could not be decoded.
    pub decode_errors: u64,
    /// Failed stack walks (events kept without that stack), per source.
    pub stack_errors: BTreeMap<String, u64>,
    /// Events of segments the recorder could not write (a full disk), in the range.
    pub unwritten: u64,
    /// Segments with losses: (id, lost), the unwritten ones included.
    pub segments: Vec<(u64, u64)>,
}

fn add(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

impl Lost {
    /// The losses of the segments the filter's range touches, and of the segments the recorder
    /// could not write there.
    pub fn in_range(cap: &Capture, filter: &Filter) -> Lost {
        let mut l = Lost::of(selected(cap, filter));
        for u in &cap.manifest.unwritten {
            if filter.overlaps(Some(u.start_ns), Some(u.end_ns)) {
                l.unwritten += u.events();
                l.total += u.events();
                l.segments.push((u.id, u.events()));
            }
        }
        l.segments.sort_unstable();
        l
    }

    /// Sums the losses of `segments`.
    pub fn of<'a>(segments: impl IntoIterator<Item = &'a Segment>) -> Lost {
        let mut l = Lost::default();
        for s in segments {
            let m = &s.meta;
            add(&mut l.ringbuf, &m.lost);
            add(&mut l.missed, &m.missed);
            add(&mut l.stack_errors, &m.stack_errors);
            l.decode_errors += m.decode_errors;
            let t = m.total_lost();
            if t > 0 {
                l.segments.push((m.id, t));
            }
            l.total += t;
        }
        l
    }

    /// One line for the top of a text report: prominent when anything was lost.
    pub fn banner(&self) -> String {
        if self.total == 0 {
            return "lost events: 0".to_string();
        }
        let mut parts = Vec::new();
        for (k, v) in self.ringbuf.iter().filter(|e| *e.1 > 0) {
            parts.push(format!("{k} {v} (ring buffer full)"));
        }
        for (k, v) in self.missed.iter().filter(|e| *e.1 > 0) {
            parts.push(format!("{k} {v} (skipped by the kernel)"));
        }
        if self.decode_errors > 0 {
            parts.push(format!("{} undecodable", self.decode_errors));
        }
        if self.unwritten > 0 {
            parts.push(format!(
                "{} in segments the recorder could not write (disk full?)",
                self.unwritten
            ));
        }
        format!(
            "WARNING: {} events LOST in this range: {}; results undercount",
            self.total,
            parts.join(", ")
        )
    }
}
