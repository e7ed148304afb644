//! Block I/O as slices: one track per disk, each request a slice from issue to completion on the
//! first lane of the disk that is free (slices on one track must nest; overlapping requests do
//! not), so concurrent requests show side by side.
use std::collections::BTreeMap;

use anyhow::Result;

use super::proto::*;
use crate::{
    capture::{Capture, Segment},
    filter::Filter,
    tools::biosnoop::{completed, Completed},
};

/// A request's slice name: `RWBS bytes B @sector`.
pub fn label(r: &Completed) -> String {
    format!("{} {} B @{}", r.rwbs, r.bytes, r.sector)
}

/// Track descriptors and slice events of the block requests, on sequence `seq`.
pub fn packets(
    cap: &Capture,
    segs: &[&Segment],
    filter: &Filter,
    seq: u32,
) -> Result<Vec<TracePacket>> {
    let (reqs, _) = completed(segs, filter)?;
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
            let name = cap.disk_name(r.dev);
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
                name: Some(label(r)),
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
