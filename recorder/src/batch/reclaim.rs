//! Rows of `reclaim`: direct and memcg reclaim begins and ends.
use arrow::array::{ArrayRef, Int32Builder, UInt64Builder};
use flightrec_common::{EventHeader, EventKind, ReclaimEvent};
use flightrec_schemas::Table;

use super::rows::{arc, Current, Dict, Header, Rows};

#[derive(Default)]
pub struct Reclaims {
    h: Header,
    cur: Current,
    event: Dict,
    kind: Dict,
    order: Int32Builder,
    gfp_flags: UInt64Builder,
    nr_reclaimed: UInt64Builder,
}

impl Reclaims {
    pub fn push(&mut self, h: &EventHeader, e: &ReclaimEvent, kind: EventKind) {
        self.h.push(h);
        self.cur.push(h);
        let (event, memcg) = match kind {
            EventKind::DirectReclaimBegin => ("begin", false),
            EventKind::DirectReclaimEnd => ("end", false),
            EventKind::MemcgReclaimBegin => ("begin", true),
            _ => ("end", true),
        };
        let begin = event == "begin";
        self.event.append_value(event);
        self.kind
            .append_value(if memcg { "memcg" } else { "direct" });
        self.order.append_option(begin.then_some(e.order));
        self.gfp_flags.append_option(begin.then_some(e.value));
        self.nr_reclaimed.append_option((!begin).then_some(e.value));
    }
}

impl Rows for Reclaims {
    const TABLE: Table = Table::Reclaim;
    fn columns(&mut self) -> Vec<ArrayRef> {
        let mut cols = self.h.finish();
        cols.extend(self.cur.finish());
        cols.extend([
            arc(self.event.finish()),
            arc(self.kind.finish()),
            arc(self.order.finish()),
            arc(self.gfp_flags.finish()),
            arc(self.nr_reclaimed.finish()),
        ]);
        cols
    }
}
