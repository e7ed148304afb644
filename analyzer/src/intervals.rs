//! Matching "open" and "close" events into durations (wake-up → switch-in, issue → completion,
//! enter → exit, switch-out → switch-in) per segment in parallel, then stitching the intervals that
//! cross segment boundaries, in order.
use std::hash::Hash;

// Keys are thread ids and (device, sector) pairs: FxHash is several times faster than SipHash here,
// and the input is a capture file, not an adversary that could force collisions to any effect
// beyond slowness.
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

/// One segment's matching state.
#[derive(Debug)]
pub struct Intervals<K, V> {
    pending: HashMap<K, (u64, V)>,
    opened: HashSet<K>,
    first_close: HashMap<K, u64>,
    /// Opens replaced by a later open of their key before any close: intervals whose end the
    /// input lacks, left out.
    superseded: u64,
}

impl<K: Hash + Eq + Clone, V> Default for Intervals<K, V> {
    fn default() -> Self {
        Intervals {
            pending: HashMap::default(),
            opened: HashSet::default(),
            first_close: HashMap::default(),
            superseded: 0,
        }
    }
}

impl<K: Hash + Eq + Clone, V> Intervals<K, V> {
    /// `key` opens at `ts` carrying `value` (replacing an unmatched earlier open, as runqlat does).
    #[inline]
    pub fn open(&mut self, key: K, ts: u64, value: V) {
        if !self.opened.contains(&key) {
            self.opened.insert(key.clone());
        }
        if self.pending.insert(key, (ts, value)).is_some() {
            self.superseded += 1;
        }
    }

    /// `key` closes at `ts`: returns the value and duration when it was open in this segment. A
    /// close with no open of its key earlier in the segment is remembered for stitching.
    #[inline]
    pub fn close(&mut self, key: &K, ts: u64) -> Option<(V, u64)> {
        if let Some((t0, v)) = self.pending.remove(key) {
            return Some((v, ts.saturating_sub(t0)));
        }
        if !self.opened.contains(key) && !self.first_close.contains_key(key) {
            self.first_close.insert(key.clone(), ts);
        }
        None
    }

    /// `key` begins at this point an interval that is not measured (filtered out): an open one,
    /// here or carried from an earlier segment, is left out and counted like a replaced open,
    /// and a later close belongs to the new one, never to an earlier open.
    #[inline]
    pub fn cancel(&mut self, key: &K) {
        if self.pending.remove(key).is_some() {
            self.superseded += 1;
        }
        if !self.opened.contains(key) {
            self.opened.insert(key.clone());
        }
    }

    /// Converts the values still open at the end of the segment (e.g. resolving segment-local ids).
    pub fn map<W>(self, mut f: impl FnMut(&K, V) -> W) -> Intervals<K, W> {
        Intervals {
            pending: self
                .pending
                .into_iter()
                .map(|(k, (t, v))| {
                    let w = f(&k, v);
                    (k, (t, w))
                })
                .collect(),
            opened: self.opened,
            first_close: self.first_close,
            superseded: self.superseded,
        }
    }
}

/// Joins intervals across consecutive segments (oldest first), calling `done` for each interval
/// that opened in one segment and closed in a later one. Returns how many intervals were left out
/// in all because their key opened again before anything closed it (their end is not in the
/// input); those still open at the end are not counted.
pub fn stitch<K: Hash + Eq + Clone, V>(
    parts: Vec<Intervals<K, V>>,
    mut done: impl FnMut(V, u64),
) -> u64 {
    let mut carry: HashMap<K, (u64, V)> = HashMap::default();
    let mut superseded = 0;
    for part in parts {
        superseded += part.superseded;
        let mut next = HashMap::default();
        for (k, (t0, v)) in carry {
            if let Some(close) = part.first_close.get(&k) {
                done(v, close.saturating_sub(t0));
            } else if !part.opened.contains(&k) {
                // Nothing happened to it in this segment: still open.
                next.insert(k, (t0, v));
            } else {
                superseded += 1;
            }
        }
        next.extend(part.pending);
        carry = next;
    }
    superseded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_within_and_across_segments() {
        let mut a: Intervals<u32, &str> = Intervals::default();
        a.open(1, 10, "x");
        assert_eq!(a.close(&1, 15), Some(("x", 5)));
        assert_eq!(
            a.close(&2, 20),
            None,
            "closed before any open: kept for stitching"
        );
        a.open(3, 30, "y");
        a.open(4, 40, "z");
        let mut b: Intervals<u32, &str> = Intervals::default();
        assert_eq!(b.close(&3, 50), None);
        b.open(4, 60, "z2"); // re-opened: the old open of 4 is superseded
        let mut c: Intervals<u32, &str> = Intervals::default();
        c.close(&4, 70);
        let mut got = Vec::new();
        let left_out = stitch(vec![a, b, c], |v, d| got.push((v, d)));
        got.sort();
        assert_eq!(got, vec![("y", 20), ("z2", 10)]);
        assert_eq!(left_out, 1, "z opened again in b before anything closed it");
    }

    #[test]
    fn open_intervals_survive_quiet_segments() {
        let mut a: Intervals<u32, u8> = Intervals::default();
        a.open(7, 100, 1);
        let b: Intervals<u32, u8> = Intervals::default();
        let mut c: Intervals<u32, u8> = Intervals::default();
        c.close(&7, 400);
        let mut got = Vec::new();
        assert_eq!(stitch(vec![a, b, c], |v, d| got.push((v, d))), 0);
        assert_eq!(got, vec![(1, 300)]);
    }

    #[test]
    fn a_cancel_ends_an_open_carried_from_an_earlier_segment() {
        let mut a: Intervals<u32, u8> = Intervals::default();
        a.open(9, 100, 1);
        let mut b: Intervals<u32, u8> = Intervals::default();
        b.cancel(&9);
        assert_eq!(b.close(&9, 300), None, "the cancelled interval's close");
        let mut got = Vec::new();
        assert_eq!(stitch(vec![a, b], |v, d| got.push((v, d))), 1);
        assert!(
            got.is_empty(),
            "never 200 ns from a's open to b's close: {got:?}"
        );
    }

    #[test]
    fn an_open_replaced_within_a_segment_is_counted() {
        let mut a: Intervals<u32, u8> = Intervals::default();
        a.open(5, 10, 1);
        a.open(5, 40, 2);
        assert_eq!(a.close(&5, 45), Some((2, 5)));
        a.open(5, 50, 3);
        let mut got = Vec::new();
        assert_eq!(stitch(vec![a], |v, d| got.push((v, d))), 1);
        assert!(
            got.is_empty(),
            "still open at the end: neither done nor left out"
        );
    }
}
