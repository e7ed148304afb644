//! The drain: decodes what the ring buffer holds into the open segment's batch, unwinding user
//! stacks and keeping the per-process maps current as execs, forks and exits go by.
use aya::maps::{MapData, RingBuf};

use super::{Recorder, DRAIN_BUDGET};
use crate::decode::{decode, Record};

impl Recorder {
    /// Decodes queued records, at most [`DRAIN_BUDGET`]; true when it stopped with records left.
    pub(super) fn drain(&mut self, ring: &mut RingBuf<MapData>) -> bool {
        let mut bytes = 0u64;
        let mut left = DRAIN_BUDGET;
        while left > 0 {
            let Some(item) = ring.next() else { break };
            left -= 1;
            // Each record also takes an 8-byte header in the ring.
            bytes += item.len().next_multiple_of(8) as u64 + 8;
            match decode(&item) {
                Ok(rec) => {
                    let rec = self.glue.trim(&self.ksyms, rec);
                    let user = match &rec {
                        Record::Exec(e, _) => {
                            self.maps.exec(e.hdr.tgid as i32, e.hdr.ts);
                            self.unwinder.forget_thread(e.hdr.tid as i32);
                            self.unwinder.forget_thread(e.old_pid);
                            None
                        }
                        Record::Fork(e) => {
                            self.maps.fork(e.hdr.tgid as i32, e.child_pid);
                            None
                        }
                        Record::Exit(e) => {
                            self.unwinder.forget_thread(e.pid);
                            if e.group_dead != 0 {
                                self.maps.exit(e.hdr.tgid as i32, self.segment_id);
                            }
                            None
                        }
                        rec => rec.user_stack().and_then(|(h, u)| {
                            let (tgid, tid) = (h.tgid as i32, h.tid as i32);
                            self.unwinder.unwind(&mut self.maps, tgid, tid, h.ts, u)
                        }),
                    };
                    self.batch
                        .push(&rec, user.as_ref(), &mut self.tasks, self.segment_id);
                    // Frames are placed in their modules now, with the mappings they were
                    // unwound with: a later exec must not rename them.
                    self.batch.normalize_fresh(&self.maps);
                    if !self.watch.is_empty() && self.fired.is_none() {
                        self.fired = self.watch.observe(&rec);
                    }
                }
                Err(_) => self.batch.decode_error(),
            }
        }
        self.ring_peak = self.ring_peak.max(bytes);
        left == 0
    }
}
