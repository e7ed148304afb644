//! Block I/O as slices: one track per disk, each request a slice from issue to completion on the
//! first lane of the disk that is free (slices on one track must nest; overlapping requests do
//! not), so concurrent requests show side by side.
use std::collections::{BTreeMap, HashMap};

use anyhow::Result;
use arrow::datatypes::{UInt32Type, UInt64Type};
use flightrec_schemas::Table;

use super::proto::*;
use crate::{
    capture::{Capture, Segment},
    columns::{opt, prim, strings},
    filter::Filter,
};

/// One completed request.
pub struct Request {
    /// Issue, monotonic ns.
    pub issue: u64,
    /// Completion, monotonic ns.
    pub done: u64,
    /// Device number.
    pub dev: u32,
    /// `RWBS bytes B @sector`.
    pub name: String,
}

/// Completed requests of `segs` issued in the range, by issue time.
pub fn requests(segs: &[&Segment], filter: &Filter) -> Result<Vec<Request>> {
    let mut rows = Vec::new();
    for seg in segs {
        let cols = ["ts", "event", "dev", "sector", "bytes", "rwbs"];
        for b in seg.read(Table::Block, &cols)? {
            let (ts, dev, sector) = (
                prim::<UInt64Type>(&b, "ts"),
                prim::<UInt32Type>(&b, "dev"),
                prim::<UInt64Type>(&b, "sector"),
            );
            let (event, rwbs) = (strings(&b, "event"), strings(&b, "rwbs"));
            let bytes = prim::<UInt32Type>(&b, "bytes");
            for i in 0..b.num_rows() {
                let label = format!(
                    "{} {} B @{}",
                    rwbs.value(i),
                    opt(bytes, i).unwrap_or(0),
                    sector.value(i)
                );
                rows.push((
                    ts.value(i),
                    event.value(i) == "issue",
                    dev.value(i),
                    sector.value(i),
                    label,
                ));
            }
        }
    }
    rows.sort_by_key(|r| r.0);
    // Issue -> completion of the same (dev, sector), as `latency --kind block` pairs them.
    let mut open: HashMap<(u32, u64), (u64, String)> = HashMap::new();
    let mut out = Vec::new();
    for (ts, issue, dev, sector, label) in rows {
        if issue {
            if filter.in_range(ts) {
                open.insert((dev, sector), (ts, label));
            }
        } else if let Some((t0, name)) = open.remove(&(dev, sector)) {
            out.push(Request {
                issue: t0,
                done: ts.max(t0),
                dev,
                name,
            });
        }
    }
    out.sort_by_key(|r| (r.issue, r.done));
    Ok(out)
}

/// Track descriptors and slice events of the block requests, on sequence `seq`.
pub fn packets(
    cap: &Capture,
    segs: &[&Segment],
    filter: &Filter,
    seq: u32,
) -> Result<Vec<TracePacket>> {
    let reqs = requests(segs, filter)?;
    let mut out = Vec::new();
    // Per disk: its track and its lanes' end times.
    let mut disks: BTreeMap<u32, (u64, Vec<u64>)> = BTreeMap::new();
    let mut events: Vec<(u64, TrackEvent)> = Vec::new();
    let descriptor = |uuid: u64, name: String, parent: Option<u64>| TracePacket {
        trusted_packet_sequence_id: Some(seq),
        track_descriptor: Some(TrackDescriptor {
            uuid: Some(uuid),
            name: Some(name),
            parent_uuid: parent,
        }),
        ..Default::default()
    };
    for r in &reqs {
        let (disk_uuid, lanes) = disks.entry(r.dev).or_insert_with(|| {
            let uuid = 0xb10c_0000_0000 | ((r.dev as u64) << 8);
            let mm = format!("{}:{}", r.dev >> 20, r.dev & 0xfffff);
            let name = cap.manifest.devices.get(&mm).cloned().unwrap_or(mm);
            out.push(descriptor(uuid, format!("block I/O {name}"), None));
            (uuid, Vec::new())
        });
        let lane = match lanes.iter().position(|&end| end <= r.issue) {
            Some(l) => l,
            None => {
                lanes.push(0);
                let l = lanes.len() - 1;
                out.push(descriptor(
                    *disk_uuid + 1 + l as u64,
                    format!("lane {}", l + 1),
                    Some(*disk_uuid),
                ));
                l
            }
        };
        lanes[lane] = r.done;
        let track = *disk_uuid + 1 + lane as u64;
        events.push((
            r.issue,
            TrackEvent {
                r#type: Some(TYPE_SLICE_BEGIN),
                track_uuid: Some(track),
                name: Some(r.name.clone()),
            },
        ));
        events.push((
            r.done,
            TrackEvent {
                r#type: Some(TYPE_SLICE_END),
                track_uuid: Some(track),
                name: None,
            },
        ));
    }
    events.sort_by_key(|e| e.0);
    if let Some(first) = out.first_mut() {
        first.sequence_flags = Some(SEQ_INCREMENTAL_STATE_CLEARED);
    }
    out.extend(events.into_iter().map(|(ts, e)| TracePacket {
        timestamp: Some(ts),
        trusted_packet_sequence_id: Some(seq),
        sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
        track_event: Some(e),
        ..Default::default()
    }));
    Ok(out)
}
