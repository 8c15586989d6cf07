//! Which keys the gates may be tracking, answered without a lock: every map a request must
//! consult ([`KeyMap`]) counts its keys in one [`KeyFilter`], a counting Bloom filter (two
//! probes, one saturating byte a counter). A key it never heard of goes straight through; a
//! false positive only costs a look-up under the lock.

use super::Key;
use foldhash::fast::FixedState;
use std::{
    collections::HashMap,
    fmt,
    ops::Deref,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU8, Ordering},
    },
};

/// Counters a tracked key gets, at least: the false-positive rate follows from it.
const SLOTS_PER_KEY: usize = 8;
/// The filter never takes more than 4 MiB, whatever the bound on keys.
const MAX_SLOTS: usize = 1 << 22;
const MIN_SLOTS: usize = 64;

/// A counting filter of the keys held by the [`KeyMap`]s that share it.
pub(crate) struct KeyFilter {
    /// Made at the first key tracked: gates that never close cost no memory.
    counts: OnceLock<Box<[AtomicU8]>>,
    /// A power of two.
    slots: usize,
}

impl fmt::Debug for KeyFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFilter")
            .field("slots", &self.slots)
            .field("made", &self.counts.get().is_some())
            .finish()
    }
}

impl KeyFilter {
    /// A filter sized for `max_keys` keys, each possibly held by several maps.
    pub(crate) fn new(max_keys: usize) -> KeyFilter {
        let slots = max_keys
            .saturating_mul(SLOTS_PER_KEY)
            .clamp(MIN_SLOTS, MAX_SLOTS)
            .next_power_of_two();
        KeyFilter {
            counts: OnceLock::new(),
            slots,
        }
    }

    /// The two counters of `key`: one from each half of its hash.
    #[inline]
    fn probes(&self, key: Key) -> [usize; 2] {
        let bits = key.0;
        let mask = self.slots - 1;
        [bits as usize & mask, (bits >> 32) as usize & mask]
    }

    /// `false` only when no map sharing this filter holds `key`: two relaxed loads (one
    /// when nothing was ever tracked).
    #[inline]
    pub(crate) fn may_hold(&self, key: Key) -> bool {
        let Some(counts) = self.counts.get() else {
            return false;
        };
        let [a, b] = self.probes(key);
        counts[a].load(Ordering::Relaxed) != 0 && counts[b].load(Ordering::Relaxed) != 0
    }

    fn add(&self, key: Key) {
        let counts = self
            .counts
            .get_or_init(|| (0..self.slots).map(|_| AtomicU8::new(0)).collect());
        for i in self.probes(key) {
            // Saturates: a full counter stays full (and is never counted down).
            let _ =
                counts[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
        }
    }

    fn remove(&self, key: Key) {
        let Some(counts) = self.counts.get() else {
            return;
        };
        for i in self.probes(key) {
            let _ = counts[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n != 0 && n != u8::MAX).then(|| n - 1)
            });
        }
    }
}

/// A map of keys that counts them in a shared [`KeyFilter`]. Reads go through `Deref`;
/// every change goes through its own methods, so the filter never misses one.
pub(crate) struct KeyMap<V> {
    map: HashMap<Key, V, FixedState>,
    filter: Arc<KeyFilter>,
}

impl<V: fmt::Debug> fmt::Debug for KeyMap<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.map.fmt(f)
    }
}

impl<V> Deref for KeyMap<V> {
    type Target = HashMap<Key, V, FixedState>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<V> Drop for KeyMap<V> {
    fn drop(&mut self) {
        for key in self.map.keys() {
            self.filter.remove(*key);
        }
    }
}

impl<V> KeyMap<V> {
    /// An empty map counting its keys in `filter`.
    pub(crate) fn new(filter: Arc<KeyFilter>) -> KeyMap<V> {
        KeyMap {
            map: HashMap::default(),
            filter,
        }
    }

    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    pub(crate) fn insert(&mut self, key: Key, value: V) -> Option<V> {
        let old = self.map.insert(key, value);
        if old.is_none() {
            self.filter.add(key);
        }
        old
    }

    pub(crate) fn remove(&mut self, key: &Key) -> Option<V> {
        let old = self.map.remove(key);
        if old.is_some() {
            self.filter.remove(*key);
        }
        old
    }

    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&Key, &mut V) -> bool) {
        let filter = &self.filter;
        self.map.retain(|key, value| {
            let kept = keep(key, value);
            if !kept {
                filter.remove(*key);
            }
            kept
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct, well-mixed keys (splitmix64), as the key hasher gives.
    fn key(n: u64) -> Key {
        let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Key(z ^ (z >> 31))
    }

    #[test]
    fn never_forgets_a_held_key_and_forgets_removed_ones() {
        let filter = Arc::new(KeyFilter::new(1_000));
        let mut a = KeyMap::new(filter.clone());
        let mut b = KeyMap::new(filter.clone());
        assert!(!filter.may_hold(key(1)));
        for n in 0..1_000 {
            a.insert(key(n), ());
            b.insert(key(n + 500), ());
        }
        for n in 0..1_500 {
            assert!(filter.may_hold(key(n)), "{n}");
        }
        for n in 0..1_000 {
            a.remove(&key(n));
        }
        b.retain(|k, _| *k != key(600));
        for n in (500..1_500).filter(|&n| n != 600) {
            assert!(filter.may_hold(key(n)), "{n}");
        }
        assert!(filter.may_hold(key(700)));
        drop(b);
        drop(a);
        for n in 0..2_000 {
            assert!(!filter.may_hold(key(n)), "{n}");
        }
    }

    #[test]
    fn a_full_map_rarely_mistakes_an_open_key() {
        let filter = Arc::new(KeyFilter::new(10_000));
        let mut map = KeyMap::new(filter.clone());
        for n in 0..10_000 {
            map.insert(key(n), ());
        }
        let wrong = (10_000..110_000)
            .filter(|&n| filter.may_hold(key(n)))
            .count();
        // Two probes in 131,072 counters holding 10,000 keys: about 2.2 %.
        assert!(wrong < 3_000, "{wrong} of 100,000");
    }

    #[test]
    fn saturated_counters_stay_set() {
        let filter = Arc::new(KeyFilter::new(1));
        let mut map = KeyMap::new(filter.clone());
        // Every key lands in the same two counters: 300 of them saturate both.
        let same = |n: u64| Key(n << 40);
        for n in 0..300 {
            map.insert(same(n), ());
        }
        for n in 0..299 {
            map.remove(&same(n));
        }
        assert!(filter.may_hold(same(299)));
        map.remove(&same(299));
        // Full counters never count down: a false positive, never a false negative.
        assert!(filter.may_hold(same(0)));
    }
}
