//! A bounded memo for the unwinder's caches: two generations of a hash map.
//!
//! Lookups try the young generation, then the old one (a hit there moves young). When the young
//! generation is full it becomes the old one, and the previous old one is emptied to be the next
//! young one: an entry survives while it is used at least once a generation (LRU, approximately,
//! without bookkeeping per entry). Both tables keep their capacity when emptied, so memory is
//! allocated once, stays at two generations' worth, and does not climb in steps as a table
//! doubles or sawtooth as a full one is cleared.
use std::hash::Hash;

use rustc_hash::FxHashMap as HashMap;

/// Two generations of at most `generation` entries each.
pub struct Memo<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    generation: usize,
}

impl<K: Hash + Eq + Copy, V> Memo<K, V> {
    /// A memo holding at most `2 * generation` entries.
    pub fn new(generation: usize) -> Memo<K, V> {
        Memo {
            young: HashMap::default(),
            old: HashMap::default(),
            generation: generation.max(1),
        }
    }

    /// The value for `key`, if it is still held.
    pub fn get(&mut self, key: &K) -> Option<&V> {
        if !self.young.contains_key(key) {
            let value = self.old.remove(key)?;
            self.insert(*key, value);
        }
        self.young.get(key)
    }

    /// Holds `value` for `key`, retiring the old generation when the young one is full.
    pub fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.generation && !self.young.contains_key(&key) {
            std::mem::swap(&mut self.young, &mut self.old);
            self.young.clear();
        }
        self.young.insert(key, value);
    }

    /// Entries held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_is_used_and_stays_bounded() {
        let mut m = Memo::new(4);
        for k in 0..4u32 {
            m.insert(k, k * 10);
        }
        // Full young generation: the next insert retires it whole.
        m.insert(4, 40);
        assert_eq!(m.len(), 5);
        // 0 is used (moved young); 1..=3 are not.
        assert_eq!(m.get(&0), Some(&0));
        for k in 5..7u32 {
            m.insert(k, k * 10);
        }
        // Young is {4, 0, 5, 6}: the next insert drops 1..=3, never used again.
        m.insert(7, 70);
        assert_eq!(m.get(&1), None);
        assert_eq!(m.get(&3), None);
        assert_eq!(m.get(&0), Some(&0));
        assert_eq!(m.get(&7), Some(&70));
        for k in 0..1000u32 {
            m.insert(k, k);
            assert!(m.len() <= 8, "{} entries", m.len());
        }
    }
}
