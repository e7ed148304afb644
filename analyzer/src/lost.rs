//! Lost events of the segments an analysis covered: every output states them.
use std::collections::BTreeMap;

use serde::Serialize;

use crate::{
    capture::{Capture, Segment},
    filter::{wall_clock, Filter},
    parallel::selected,
};

/// A damaged table or segment, as reports state it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Damaged {
    /// The segment's id (absent when its metadata is unreadable) and directory.
    pub segment: Option<u64>,
    pub dir: String,
    /// The table; absent for a whole segment.
    pub table: Option<String>,
    /// The time range lost (UTC), where the segment's metadata gives it.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Events the segment listed in that table.
    pub rows: u64,
    pub reason: String,
}

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
    /// Table files and segments that could not be read (their rows are counted in `total`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<Damaged>,
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
        let segs = selected(cap, filter);
        let mut l = Lost::of(segs.iter().copied());
        let damage = segs
            .iter()
            .flat_map(|s| s.damage.lock().expect("damage list").clone())
            .chain(cap.damaged.iter().cloned());
        for d in damage {
            l.total += d.rows;
            if let Some(id) = d.segment {
                l.segments.push((id, d.rows));
            }
            let time = |ns: Option<u64>| ns.map(|t| wall_clock(&cap.manifest.clock, t));
            l.damaged.push(Damaged {
                segment: d.segment,
                from: time(d.start_ns),
                to: time(d.end_ns),
                dir: d.dir,
                table: d.table,
                rows: d.rows,
                reason: d.reason,
            });
        }
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
        if self.total == 0 && self.damaged.is_empty() {
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
        for d in &self.damaged {
            let what = match (&d.table, d.segment) {
                (Some(t), Some(id)) => format!("segment {id} {t}"),
                (_, Some(id)) => format!("segment {id}"),
                (_, None) => format!("segment directory {}", d.dir),
            };
            let when = match (&d.from, &d.to) {
                (Some(f), Some(t)) => format!(" {f} .. {t}"),
                _ => String::new(),
            };
            parts.push(format!(
                "{} in DAMAGED {what}{when} ({}; analyzed without it, --strict refuses)",
                d.rows, d.reason
            ));
        }
        format!(
            "WARNING: {} events LOST in this range: {}; results undercount",
            self.total,
            parts.join(", ")
        )
    }
}
