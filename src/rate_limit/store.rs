//! Where the gates' state is kept: the [`GateStore`] trait and the in-process
//! [`MemoryStore`]. Every process reads its own `MemoryStore` (its *view*); changes go
//! through the gates' `GateStore`, which for the Redis store also tells the fleet.

use super::{
    Key,
    filter::{KeyFilter, KeyMap},
    notify::{Waiter, Waiters},
    policy::{self, Entry, ProbeId},
};
use crate::quota::Quota;
use crate::sync::lock;
use std::{
    any::Any,
    collections::BTreeSet,
    fmt,
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// The fleet's answer to a probe about to go: `true` when it may go; `false` when the
/// fleet said to wait (the store merged what it said, and gave the local probe role back).
pub(crate) type Lease = Pin<Box<dyn Future<Output = bool> + Send>>;

/// The changes to the gates' state. Every method is atomic with respect to the others and
/// wakes the key's waiters ([notify](super::notify)) when its entry changed.
pub(crate) trait GateStore: Any + fmt::Debug + Send + Sync {
    /// Closes `key` for `wait` from `now`, or extends it ([`policy::closed_again`]). A new
    /// key makes room first: expired entries go, then the key that opens soonest. Returns
    /// the key's entry, or `None` when no keys are tracked (`max_keys` 0). `outage`: closed
    /// for an outage, which only a probe's answer that is no outage signal ends.
    fn close(
        &self,
        key: Key,
        now: Instant,
        wait: Duration,
        probe: Option<ProbeId>,
        outage: bool,
    ) -> Option<Entry>;

    /// `key`'s probe got an answer that is not a rate limit: forgets the key. Only the
    /// current probe opens ([`policy::is_probe`]); returns whether it did.
    fn open(&self, key: Key, probe: ProbeId) -> bool;

    /// `key`'s probe ended without an answer: the role is free again and the waiters are
    /// woken, so one of them takes it. Returns whether `probe` was the current probe.
    fn release_probe(&self, key: Key, probe: ProbeId) -> bool;

    /// How many processes share an announced quota, each spending its share: 1 but for a
    /// store shared by a fleet.
    fn sharers(&self) -> u32 {
        1
    }

    /// A quota announced to this process for `scope` (its window and reset bounded by the
    /// layer): a store shared by a fleet tells the other processes.
    fn announce(&self, _scope: Key, _quota: &Quota, _reset: Duration) {}

    /// Whether this process's probe `probe` of `key` must first ask the other processes
    /// sharing the store; `None`: it goes.
    fn lease(&self, _key: Key, _probe: ProbeId) -> Option<Lease> {
        None
    }
}

/// The in-process store: the closed keys in a map, ordered by the time their gate opens.
pub(crate) struct MemoryStore {
    /// `State::slots.len()`, readable without the lock: zero is the success path.
    tracked: AtomicUsize,
    max_keys: AtomicUsize,
    /// The keys of `State::slots` (and of the lanes sharing it), readable without the lock.
    filter: Arc<KeyFilter>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Keys are hashes already, so the map's own hashing is the cheapest foldhash there is;
    /// its keys are counted in the filter every request reads first.
    slots: KeyMap<Slot>,
    /// Every entry by the time its gate opens: the expired ones, and then the one that opens
    /// soonest, come first.
    by_until: BTreeSet<(Instant, Key)>,
    next_probe: ProbeId,
}

#[derive(Debug)]
struct Slot {
    entry: Entry,
    /// Dropped with the slot, which wakes every waiter.
    waiters: Waiters,
}

impl MemoryStore {
    /// An empty store tracking at most `max_keys` keys, counting them in `filter`.
    pub(crate) fn with_filter(max_keys: usize, filter: Arc<KeyFilter>) -> MemoryStore {
        MemoryStore {
            tracked: AtomicUsize::new(0),
            max_keys: AtomicUsize::new(max_keys),
            filter: filter.clone(),
            state: Mutex::new(State {
                slots: KeyMap::new(filter),
                by_until: BTreeSet::new(),
                next_probe: 0,
            }),
        }
    }

    /// The filter counting this store's keys.
    #[inline]
    pub(crate) fn filter(&self) -> &KeyFilter {
        &self.filter
    }

    fn publish(&self, st: &State) {
        self.tracked.store(st.slots.len(), Ordering::Relaxed);
    }

    /// `true` when no key is tracked. The success path: one relaxed atomic load, no lock.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.tracked.load(Ordering::Relaxed) == 0
    }

    /// How many keys are tracked (closed, being probed, or expired and not yet dropped).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    /// The most keys tracked at once.
    #[inline]
    pub(crate) fn max_keys(&self) -> usize {
        self.max_keys.load(Ordering::Relaxed)
    }

    /// Changes the bound; a smaller one takes effect when the next key is closed.
    pub(crate) fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys, Ordering::Relaxed);
    }

    /// `key`'s entry, with a subscription to its next change taken at the same time (so no
    /// change between the two is missed). Drops the entries that expired
    /// [`LINGER`](policy::LINGER) ago first.
    pub(crate) fn get(&self, key: Key, now: Instant) -> Option<(Entry, Waiter)> {
        let mut st = lock(&self.state);
        if st.sweep(now) > 0 {
            self.publish(&st);
        }
        st.slots
            .get(&key)
            .map(|slot| (slot.entry, slot.waiters.subscribe()))
    }

    /// `key`'s entry as it is: no sweep, no subscription.
    pub(crate) fn peek(&self, key: Key) -> Option<Entry> {
        lock(&self.state).slots.get(&key).map(|slot| slot.entry)
    }

    /// Sets `key`'s entry to what `next` makes of it (`None`: the key is new, after making
    /// room for it as [`GateStore::close`] says). Wakes the key's waiters when it changed;
    /// returns the entry, `None` with `max_keys` 0.
    pub(crate) fn update(
        &self,
        key: Key,
        now: Instant,
        next: impl FnOnce(Option<&Entry>) -> Entry,
    ) -> Option<Entry> {
        let mut st = lock(&self.state);
        if let Some(slot) = st.slots.get(&key) {
            let next = next(Some(&slot.entry));
            if next != slot.entry {
                st.set(key, next);
            }
            return Some(next);
        }
        let max = self.max_keys();
        if max == 0 {
            return None;
        }
        if st.slots.len() >= max {
            st.sweep(now);
            while st.slots.len() >= max {
                st.evict_first();
            }
        }
        let entry = next(None);
        st.insert(key, entry, Waiters::new());
        self.publish(&st);
        Some(entry)
    }

    /// Forgets `key` if `forget` says so of its entry, which wakes its waiters. Returns
    /// whether it did.
    pub(crate) fn remove_if(&self, key: Key, forget: impl FnOnce(&Entry) -> bool) -> bool {
        let mut st = lock(&self.state);
        if !st.slots.get(&key).is_some_and(|s| forget(&s.entry)) {
            return false;
        }
        st.remove(key);
        self.publish(&st);
        true
    }

    /// Makes the caller `key`'s probe if the policy says one is due
    /// ([`policy::probe_due`]): its time is up and nobody probes it.
    pub(crate) fn try_acquire_probe(&self, key: Key, now: Instant) -> Option<ProbeId> {
        let mut st = lock(&self.state);
        let entry = st.slots.get(&key)?.entry;
        if !policy::probe_due(&entry, now) {
            return None;
        }
        st.next_probe += 1;
        let id = st.next_probe;
        let slot = st.slots.get_mut(&key)?;
        // Nobody waits for this change: a waiter of a key whose probe is due would have
        // taken the role itself.
        slot.entry.probe = Some(id);
        Some(id)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("tracked", &self.len())
            .field("max_keys", &self.max_keys())
            .finish()
    }
}

impl GateStore for MemoryStore {
    fn close(
        &self,
        key: Key,
        now: Instant,
        wait: Duration,
        probe: Option<ProbeId>,
        _outage: bool,
    ) -> Option<Entry> {
        self.update(key, now, |entry| match entry {
            Some(e) => policy::closed_again(e, now, wait, probe),
            None => Entry::closed(now, wait),
        })
    }

    fn open(&self, key: Key, probe: ProbeId) -> bool {
        self.remove_if(key, |e| policy::is_probe(e, Some(probe)))
    }

    fn release_probe(&self, key: Key, probe: ProbeId) -> bool {
        let mut st = lock(&self.state);
        let Some(slot) = st.slots.get_mut(&key) else {
            return false;
        };
        if !policy::is_probe(&slot.entry, Some(probe)) {
            return false;
        }
        slot.entry.probe = None;
        slot.waiters.wake();
        true
    }
}

impl State {
    /// Drops the entries that expired [`LINGER`](policy::LINGER) ago; returns how many.
    fn sweep(&mut self, now: Instant) -> usize {
        let mut n = 0;
        while let Some(&(until, key)) = self.by_until.first() {
            if !policy::expired(until, now) {
                break;
            }
            self.remove(key);
            n += 1;
        }
        n
    }

    /// Forgets the key whose gate opens soonest: it opens early, and its waiters go.
    fn evict_first(&mut self) {
        if let Some(&(_, key)) = self.by_until.first() {
            tracing::debug!(key = %key, "rate-limit gate: map full, forgetting the key that opens first");
            self.remove(key);
        }
    }

    fn insert(&mut self, key: Key, entry: Entry, waiters: Waiters) {
        self.by_until.insert((entry.until, key));
        self.slots.insert(key, Slot { entry, waiters });
    }

    /// Replaces `key`'s entry and wakes its waiters.
    fn set(&mut self, key: Key, entry: Entry) {
        if let Some(slot) = self.slots.get_mut(&key) {
            if slot.entry.until != entry.until {
                self.by_until.remove(&(slot.entry.until, key));
                self.by_until.insert((entry.until, key));
            }
            slot.entry = entry;
            slot.waiters.wake();
        }
    }

    fn remove(&mut self, key: Key) {
        if let Some(slot) = self.slots.remove(&key) {
            self.by_until.remove(&(slot.entry.until, key));
            // Dropping `slot.waiters` wakes every waiter; they find the key open.
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl MemoryStore {
        /// An empty store tracking at most `max_keys` keys.
        pub(crate) fn new(max_keys: usize) -> MemoryStore {
            MemoryStore::with_filter(max_keys, Arc::new(KeyFilter::new(max_keys)))
        }
    }

    /// The contract of a store: `make(max_keys)` gives an empty one.
    fn conformance(make: impl Fn(usize) -> MemoryStore) {
        use policy::LINGER;
        const S: fn(u64) -> Duration = Duration::from_secs;
        let t0 = Instant::now();
        let (a, b, c) = (Key::of("a"), Key::of("b"), Key::of("c"));

        // Empty: nothing tracked, nothing to probe, open or release.
        let s = make(10);
        assert!(s.is_empty());
        assert_eq!((s.len(), s.max_keys()), (0, 10));
        assert!(s.get(a, t0).is_none() && s.peek(a).is_none());
        assert_eq!(s.try_acquire_probe(a, t0), None);
        assert!(!s.open(a, 1) && !s.release_probe(a, 1));

        // A first rejection closes with one rejection.
        let e = s.close(a, t0, S(10), None, false).unwrap();
        assert_eq!(e, Entry::closed(t0, S(10)));
        assert_eq!((s.len(), s.is_empty()), (1, false));
        let (got, waiter) = s.get(a, t0).unwrap();
        assert_eq!((got, s.peek(a)), (e, Some(e)));
        assert!(!waiter.woken());

        // A straggler: a shorter wait changes nothing and wakes nobody; a longer one extends
        // without counting.
        assert_eq!(s.close(a, t0, S(5), None, false), Some(e));
        assert!(!waiter.woken());
        let e = s.close(a, t0, S(20), None, false).unwrap();
        assert_eq!(
            (e.until, e.rejections, e.last_delay),
            (t0 + S(20), 1, S(10))
        );
        assert!(waiter.woken());

        // No probe before the time is up; exactly one after.
        assert_eq!(s.try_acquire_probe(a, t0 + S(19)), None);
        let (_, waiter) = s.get(a, t0 + S(20)).unwrap();
        let p1 = s.try_acquire_probe(a, t0 + S(20)).unwrap();
        assert_eq!(s.try_acquire_probe(a, t0 + S(20)), None);
        assert_eq!(s.peek(a).unwrap().probe, Some(p1));

        // A stale id neither opens nor releases; the probe's rejection counts and re-closes.
        assert!(!s.open(a, p1 + 1000) && !s.release_probe(a, p1 + 1000));
        let e = s.close(a, t0 + S(20), S(2), Some(p1), false).unwrap();
        assert_eq!(
            (e.until, e.rejections, e.last_delay, e.probe),
            (t0 + S(22), 2, S(2), None)
        );
        assert!(waiter.woken());
        // The id of an ended probe is stale: its late rejection only extends.
        let e2 = s.close(a, t0 + S(20), S(1), Some(p1), false).unwrap();
        assert_eq!(e2, e);

        // Released: the role is free again, and the waiters hear of it.
        let (_, waiter) = s.get(a, t0 + S(22)).unwrap();
        let p2 = s.try_acquire_probe(a, t0 + S(22)).unwrap();
        assert_ne!(p2, p1);
        assert!(s.release_probe(a, p2));
        assert!(waiter.woken());
        assert!(!s.release_probe(a, p2));
        let p3 = s.try_acquire_probe(a, t0 + S(22)).unwrap();
        assert!(p3 != p1 && p3 != p2);

        // Opened by the current probe only: forgotten, waiters woken.
        let (_, waiter) = s.get(a, t0 + S(22)).unwrap();
        assert!(!s.open(a, p2));
        assert!(s.open(a, p3));
        assert!(waiter.woken());
        assert!(s.is_empty() && s.peek(a).is_none());
        assert!(!s.open(a, p3));

        // The bound: expired entries go first, then the key that opens soonest.
        let s = make(2);
        s.close(a, t0, S(1), None, false).unwrap();
        s.close(b, t0, S(50), None, false).unwrap();
        let (_, wa) = s.get(a, t0).unwrap();
        let (_, wb) = s.get(b, t0).unwrap();
        s.close(c, t0 + S(1) + LINGER, S(10), None, false).unwrap();
        assert_eq!(s.len(), 2);
        assert!(
            s.peek(a).is_none() && wa.woken(),
            "the expired key goes first"
        );
        assert!(s.peek(b).is_some() && !wb.woken());
        s.close(a, t0 + S(1) + LINGER, S(100), None, false).unwrap();
        assert_eq!(s.len(), 2);
        assert!(s.peek(c).is_none(), "then the key that opens soonest");
        assert!(s.peek(a).is_some() && s.peek(b).is_some());
        // A smaller bound applies at the next new key.
        s.set_max_keys(1);
        assert_eq!((s.max_keys(), s.len()), (1, 2));
        s.close(c, t0 + S(1) + LINGER, S(1000), None, false)
            .unwrap();
        assert_eq!(s.len(), 1);
        assert!(s.peek(c).is_some());

        // Nothing is kept with a bound of zero.
        let s = make(0);
        assert_eq!(s.close(a, t0, S(10), None, false), None);
        assert!(s.is_empty());

        // Expired entries are swept by `get`, LINGER after their time, whatever key is asked.
        let s = make(10);
        s.close(a, t0, S(1), None, false).unwrap();
        s.close(b, t0, S(100), None, false).unwrap();
        assert!(
            s.get(c, t0 + S(1) + LINGER - Duration::from_nanos(1))
                .is_none()
        );
        assert_eq!(s.len(), 2);
        assert!(s.get(c, t0 + S(1) + LINGER).is_none());
        assert_eq!(s.len(), 1);
        assert!(s.get(b, t0 + S(100) + LINGER).is_none());
        assert!(s.is_empty());
    }

    #[test]
    fn memory_store_conforms() {
        conformance(MemoryStore::new);
    }

    #[test]
    fn memory_store_stays_consistent() {
        // Many keys through close / probe / open / expiry: the order and the count follow
        // the map.
        let s = MemoryStore::new(64);
        let t0 = Instant::now();
        for i in 0..1_000u64 {
            let now = t0 + Duration::from_millis(i * 10);
            let key = Key::of(&(i % 97));
            s.close(key, now, Duration::from_millis((i * 37) % 500), None, false);
            if let Some(id) = s.try_acquire_probe(Key::of(&(i % 13)), now) {
                if i % 2 == 0 {
                    s.open(Key::of(&(i % 13)), id);
                } else {
                    s.close(
                        Key::of(&(i % 13)),
                        now,
                        Duration::from_millis(100),
                        Some(id),
                        false,
                    );
                }
            }
            let st = lock(&s.state);
            assert_eq!(st.slots.len(), st.by_until.len());
            assert_eq!(st.slots.len(), s.len());
            assert!(st.slots.len() <= 64);
            for (&k, slot) in st.slots.iter() {
                assert!(st.by_until.contains(&(slot.entry.until, k)));
            }
        }
    }
}
