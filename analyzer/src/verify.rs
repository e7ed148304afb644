//! `verify`: reads every column of every table of every segment and checks the row counts against
//! the segment's metadata, so a damaged capture is found before anyone trusts an analysis of it.
use std::fmt::Write;

use flightrec_schemas::Table;
use serde::Serialize;

use crate::{
    capture::{Capture, Segment},
    filter::Filter,
    lost::Lost,
    parallel::map_segments,
};

/// What was found in one segment.
#[derive(Clone, Debug, Serialize)]
pub struct SegmentCheck {
    /// Segment id.
    pub id: u64,
    /// Rows read.
    pub rows: u64,
    /// Problems, empty when the segment is sound.
    pub problems: Vec<String>,
}

/// Result of `verify`.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// Per segment.
    pub segments: Vec<SegmentCheck>,
    /// True when no segment has a problem.
    pub ok: bool,
    /// Open segments still in their write-ahead journal, not checked here.
    pub journals: Vec<u64>,
    /// What the recorder lost while writing the capture: a sound capture can still be incomplete.
    pub lost: Lost,
}

fn check(seg: &Segment) -> SegmentCheck {
    let mut c = SegmentCheck {
        id: seg.meta.id,
        rows: 0,
        problems: Vec::new(),
    };
    for table in Table::ALL {
        // Tables added after a capture was written are absent from it, and that is fine.
        let Some(&want) = seg.meta.rows.get(table.name()) else {
            continue;
        };
        let schema = table.schema();
        let cols: Vec<&str> = schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .filter(|c| !table.added_later().contains(c) || seg.has_column(table, c))
            .collect();
        match seg.read(table, &cols) {
            Ok(batches) => {
                let got: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
                c.rows += got;
                if got != want {
                    c.problems.push(format!(
                        "{}: {got} rows, segment.json says {want}",
                        table.name()
                    ));
                }
            }
            Err(e) => c.problems.push(e.to_string()),
        }
    }
    c
}

/// Verifies every segment of the capture.
pub fn verify(cap: &Capture) -> crate::capture::Result<Verification> {
    let segs: Vec<&Segment> = cap.segments.iter().collect();
    let segments = map_segments(&segs, "verify", |s| Ok(check(s)))?;
    let ok = segments.iter().all(|s| s.problems.is_empty());
    Ok(Verification {
        segments,
        ok,
        journals: cap.journals.clone(),
        lost: Lost::in_range(cap, &Filter::default()),
    })
}

impl Verification {
    /// The text report.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "{}", self.lost.banner());
        for s in &self.segments {
            if s.problems.is_empty() {
                let _ = writeln!(o, "segment {:08}: ok ({} rows)", s.id, s.rows);
            } else {
                for p in &s.problems {
                    let _ = writeln!(o, "segment {:08}: DAMAGED: {p}", s.id);
                }
            }
        }
        for id in &self.journals {
            let _ = writeln!(
                o,
                "segment {id:08}: open, in its journal: a running recorder finishes it; after a crash `flightrec salvage` does"
            );
        }
        let rows: u64 = self.segments.iter().map(|s| s.rows).sum();
        let bad = self
            .segments
            .iter()
            .filter(|s| !s.problems.is_empty())
            .count();
        let _ = writeln!(
            o,
            "{} segments, {rows} rows: {}",
            self.segments.len(),
            if self.ok {
                "ok".to_string()
            } else {
                format!("{bad} damaged")
            }
        );
        o
    }
}
