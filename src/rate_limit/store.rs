//! Where the gates' state is kept: the [`GateStore`] trait and the in-process
//! [`MemoryStore`].
//!
//! A store keeps what the [policy] decides and never decides itself: each
//! method applies one of the policy's rules to one key atomically (so two requests never
//! both become a key's probe), keeps the bound on the number of keys, and wakes the key's
//! waiters ([notify](super::notify)) when its entry changes.
//!
//! [`MemoryStore`] is the one store today: a map of the closed keys, ordered by the time
//! their gate opens (for sweeping and eviction), behind one mutex, with the number of keys
//! readable without the lock (zero is the success path). A store shared by several
//! processes would implement the same trait (its local view a `MemoryStore`, so the success
//! path never waits on the network) and pass the same `conformance` tests; `snapshot` and
//! `resync` are there so such a view can be replaced wholesale.

use super::{
    Key,
    filter::{KeyFilter, KeyMap},
    notify::{Waiter, Waiters},
    policy::{self, Entry, ProbeId},
};
use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// What the gate needs kept. Every method is atomic with respect to the others.
pub(crate) trait GateStore: Send + Sync + 'static {
    /// `true` when no key is tracked. The success path: one relaxed atomic load, no lock.
    fn is_empty(&self) -> bool;

    /// How many keys are tracked (closed, being probed, or expired and not yet dropped).
    fn len(&self) -> usize;

    /// The most keys tracked at once.
    fn max_keys(&self) -> usize;

    /// Changes the bound; a smaller one takes effect when the next key is closed.
    fn set_max_keys(&self, max_keys: usize);

    /// `key`'s entry, with a subscription to its next change taken at the same time (so no
    /// change between the two is missed). Drops the entries that expired
    /// [`LINGER`](policy::LINGER) ago first.
    fn get(&self, key: Key, now: Instant) -> Option<(Entry, Waiter)>;

    /// `key`'s entry as it is: no sweep, no subscription.
    fn peek(&self, key: Key) -> Option<Entry>;

    /// Closes `key` for `wait` from `now`, or extends it ([`policy::closed_again`]: never
    /// earlier; when `probe` is the current probe, the probe role ends and the rejection
    /// counts). A new key is closed with one rejection, after making room for it: expired
    /// entries go first, then the key that opens soonest (forgetting a key fails open, never
    /// shut). Wakes the key's waiters when its entry changed. Returns the key's entry, or
    /// `None` when the store tracks no keys at all (`max_keys` 0).
    fn close(
        &self,
        key: Key,
        now: Instant,
        wait: Duration,
        probe: Option<ProbeId>,
    ) -> Option<Entry>;

    /// Makes the caller `key`'s probe if the policy says one is due
    /// ([`policy::probe_due`]): its time is up and nobody probes it.
    fn try_acquire_probe(&self, key: Key, now: Instant) -> Option<ProbeId>;

    /// `key`'s probe got an answer that is not a rate limit: forgets the key, which wakes its
    /// waiters. Only the current probe opens ([`policy::opens`]); returns whether it did.
    fn open(&self, key: Key, probe: ProbeId) -> bool;

    /// `key`'s probe ended without an answer: the role is free again and the waiters are
    /// woken, so one of them takes it. Returns whether `probe` was the current probe.
    fn release_probe(&self, key: Key, probe: ProbeId) -> bool;

    /// Another process closed `key` for `wait` from `now`, after `rejections` consecutive
    /// rejections, the last one closing it for `last_delay`: the entry's time moves later
    /// (never earlier) and it keeps the higher count, so the next probe's backoff continues
    /// the fleet's. A new key is made room for as [`close`](Self::close) does. Wakes the
    /// key's waiters when its entry changed; returns the entry, `None` with `max_keys` 0.
    #[cfg_attr(not(any(test, feature = "redis")), allow(dead_code))]
    fn merge(
        &self,
        key: Key,
        now: Instant,
        wait: Duration,
        rejections: u32,
        last_delay: Duration,
    ) -> Option<Entry>;

    /// Another process's probe opened `key`: forgets it, which wakes its waiters. Returns
    /// whether it was tracked.
    #[cfg_attr(not(any(test, feature = "redis")), allow(dead_code))]
    fn forget(&self, key: Key) -> bool;

    /// Every tracked key and its entry, the soonest to open first.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "for a store that mirrors another; tested here")
    )]
    fn snapshot(&self) -> Vec<(Key, Entry)>;

    /// Replaces every entry with `entries` (at most `max_keys` of them, the ones that open
    /// last; expired ones are dropped). The waiters of every key whose entry changed or went
    /// are woken; a key that stays as it was keeps its waiters asleep.
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "for a store that mirrors another; tested here")
    )]
    fn resync(&self, entries: Vec<(Key, Entry)>, now: Instant);
}

/// The in-process store: the closed keys in a map, ordered by the time their gate opens.
#[derive(Debug)]
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
    /// An empty store tracking at most `max_keys` keys.
    #[cfg(test)]
    pub(crate) fn new(max_keys: usize) -> MemoryStore {
        MemoryStore::with_filter(max_keys, Arc::new(KeyFilter::new(max_keys)))
    }

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

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters more than losing rate-limit state, so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, st: &State) {
        self.tracked.store(st.slots.len(), Ordering::Relaxed);
    }
}

impl GateStore for MemoryStore {
    #[inline]
    fn is_empty(&self) -> bool {
        self.tracked.load(Ordering::Relaxed) == 0
    }

    #[inline]
    fn len(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    #[inline]
    fn max_keys(&self) -> usize {
        self.max_keys.load(Ordering::Relaxed)
    }

    fn set_max_keys(&self, max_keys: usize) {
        self.max_keys.store(max_keys, Ordering::Relaxed);
    }

    fn get(&self, key: Key, now: Instant) -> Option<(Entry, Waiter)> {
        let mut st = self.lock();
        if st.sweep(now) > 0 {
            self.publish(&st);
        }
        st.slots
            .get(&key)
            .map(|slot| (slot.entry, slot.waiters.subscribe()))
    }

    fn peek(&self, key: Key) -> Option<Entry> {
        self.lock().slots.get(&key).map(|slot| slot.entry)
    }

    fn close(
        &self,
        key: Key,
        now: Instant,
        wait: Duration,
        probe: Option<ProbeId>,
    ) -> Option<Entry> {
        let mut st = self.lock();
        if let Some(slot) = st.slots.get(&key) {
            let next = policy::closed_again(&slot.entry, now, wait, probe);
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
        let entry = Entry::closed(now, wait);
        st.insert(key, entry, Waiters::new());
        self.publish(&st);
        Some(entry)
    }

    fn try_acquire_probe(&self, key: Key, now: Instant) -> Option<ProbeId> {
        let mut st = self.lock();
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

    fn open(&self, key: Key, probe: ProbeId) -> bool {
        let mut st = self.lock();
        if !st
            .slots
            .get(&key)
            .is_some_and(|s| policy::opens(&s.entry, probe))
        {
            return false;
        }
        st.remove(key);
        self.publish(&st);
        true
    }

    fn release_probe(&self, key: Key, probe: ProbeId) -> bool {
        let mut st = self.lock();
        let Some(slot) = st.slots.get_mut(&key) else {
            return false;
        };
        if !policy::opens(&slot.entry, probe) {
            return false;
        }
        slot.entry.probe = None;
        slot.waiters.wake();
        true
    }

    fn merge(
        &self,
        key: Key,
        now: Instant,
        wait: Duration,
        rejections: u32,
        last_delay: Duration,
    ) -> Option<Entry> {
        if self.peek(key).is_none() {
            // A new key: made room for, as a rejection's.
            self.close(key, now, wait, None)?;
        }
        let mut st = self.lock();
        // Gone again since (swept or evicted): it stays gone.
        let entry = st.slots.get(&key)?.entry;
        let mut next = policy::closed_again(&entry, now, wait, None);
        if rejections > next.rejections {
            next.rejections = rejections;
            next.last_delay = last_delay;
        }
        if next != entry {
            st.set(key, next);
        }
        Some(next)
    }

    fn forget(&self, key: Key) -> bool {
        let mut st = self.lock();
        if !st.slots.contains_key(&key) {
            return false;
        }
        st.remove(key);
        self.publish(&st);
        true
    }

    fn snapshot(&self) -> Vec<(Key, Entry)> {
        let st = self.lock();
        st.by_until
            .iter()
            .filter_map(|&(_, key)| Some((key, st.slots.get(&key)?.entry)))
            .collect()
    }

    fn resync(&self, mut entries: Vec<(Key, Entry)>, now: Instant) {
        entries.retain(|(_, e)| !policy::expired(e.until, now));
        // A key listed twice keeps the entry that opens last; then the bound keeps the keys
        // that open last, as closing would.
        entries.sort_by_key(|&(key, e)| (key, e.until));
        entries.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        entries.sort_by_key(|&(key, e)| (e.until, key));
        let max = self.max_keys();
        let skip = entries.len().saturating_sub(max);
        let mut st = self.lock();
        let mut old = st.slots.take();
        st.by_until.clear();
        for (key, entry) in entries.into_iter().skip(skip) {
            let waiters = match old.remove(&key) {
                Some(slot) => {
                    if slot.entry != entry {
                        slot.waiters.wake();
                    }
                    slot.waiters
                }
                None => Waiters::new(),
            };
            if let Some(id) = entry.probe {
                // Ids this store hands out stay unique.
                st.next_probe = st.next_probe.max(id);
            }
            st.insert(key, entry, waiters);
        }
        self.publish(&st);
        // The keys left in `old` are forgotten: dropping their slots wakes their waiters.
        drop(st);
        drop(old);
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

/// The contract of [`GateStore`], for any store: `make(max_keys)` gives an empty one.
#[cfg(test)]
pub(crate) fn conformance<S: GateStore>(make: impl Fn(usize) -> S) {
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
    let e = s.close(a, t0, S(10), None).unwrap();
    assert_eq!(e, Entry::closed(t0, S(10)));
    assert_eq!((s.len(), s.is_empty()), (1, false));
    let (got, waiter) = s.get(a, t0).unwrap();
    assert_eq!((got, s.peek(a)), (e, Some(e)));
    assert!(!waiter.woken());

    // A straggler: a shorter wait changes nothing and wakes nobody; a longer one extends
    // without counting.
    assert_eq!(s.close(a, t0, S(5), None), Some(e));
    assert!(!waiter.woken());
    let e = s.close(a, t0, S(20), None).unwrap();
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
    let e = s.close(a, t0 + S(20), S(2), Some(p1)).unwrap();
    assert_eq!(
        (e.until, e.rejections, e.last_delay, e.probe),
        (t0 + S(22), 2, S(2), None)
    );
    assert!(waiter.woken());
    // The id of an ended probe is stale: its late rejection only extends.
    let e2 = s.close(a, t0 + S(20), S(1), Some(p1)).unwrap();
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
    s.close(a, t0, S(1), None).unwrap();
    s.close(b, t0, S(50), None).unwrap();
    let (_, wa) = s.get(a, t0).unwrap();
    let (_, wb) = s.get(b, t0).unwrap();
    s.close(c, t0 + S(1) + LINGER, S(10), None).unwrap();
    assert_eq!(s.len(), 2);
    assert!(
        s.peek(a).is_none() && wa.woken(),
        "the expired key goes first"
    );
    assert!(s.peek(b).is_some() && !wb.woken());
    s.close(a, t0 + S(1) + LINGER, S(100), None).unwrap();
    assert_eq!(s.len(), 2);
    assert!(s.peek(c).is_none(), "then the key that opens soonest");
    assert!(s.peek(a).is_some() && s.peek(b).is_some());
    // A smaller bound applies at the next new key.
    s.set_max_keys(1);
    assert_eq!((s.max_keys(), s.len()), (1, 2));
    s.close(c, t0 + S(1) + LINGER, S(1000), None).unwrap();
    assert_eq!(s.len(), 1);
    assert!(s.peek(c).is_some());

    // Nothing is kept with a bound of zero.
    let s = make(0);
    assert_eq!(s.close(a, t0, S(10), None), None);
    assert!(s.is_empty());

    // Expired entries are swept by `get`, LINGER after their time, whatever key is asked.
    let s = make(10);
    s.close(a, t0, S(1), None).unwrap();
    s.close(b, t0, S(100), None).unwrap();
    assert!(
        s.get(c, t0 + S(1) + LINGER - Duration::from_nanos(1))
            .is_none()
    );
    assert_eq!(s.len(), 2);
    assert!(s.get(c, t0 + S(1) + LINGER).is_none());
    assert_eq!(s.len(), 1);
    assert!(s.get(b, t0 + S(100) + LINGER).is_none());
    assert!(s.is_empty());

    // Merged from another process: later times and higher counts win, nothing shortens.
    let s = make(10);
    let e = s.merge(a, t0, S(10), 3, S(4)).unwrap();
    assert_eq!(
        (e.until, e.rejections, e.last_delay, e.probe),
        (t0 + S(10), 3, S(4), None)
    );
    let (_, waiter) = s.get(a, t0).unwrap();
    assert_eq!(s.merge(a, t0, S(5), 1, S(1)), Some(e));
    assert!(!waiter.woken(), "nothing changed");
    let p = s.try_acquire_probe(b, t0);
    assert_eq!(p, None);
    let e = s.merge(a, t0, S(20), 2, S(1)).unwrap();
    assert_eq!((e.until, e.rejections, e.last_delay), (t0 + S(20), 3, S(4)));
    assert!(waiter.woken());
    // A probe in flight keeps its role through a merge.
    s.close(b, t0, S(0), None).unwrap();
    let p = s.try_acquire_probe(b, t0).unwrap();
    let e = s.merge(b, t0, S(2), 1, S(1)).unwrap();
    assert_eq!((e.until, e.probe), (t0 + S(2), Some(p)));
    // Forgotten: waiters woken, the count goes down.
    let (_, waiter) = s.get(a, t0).unwrap();
    assert!(s.forget(a));
    assert!(waiter.woken() && s.peek(a).is_none());
    assert!(!s.forget(a));
    assert_eq!(s.len(), 1);
    assert_eq!(make(0).merge(a, t0, S(1), 1, S(1)), None);

    // Snapshot and resync.
    let s = make(10);
    s.close(a, t0, S(30), None).unwrap();
    s.close(b, t0, S(10), None).unwrap();
    let snap = s.snapshot();
    assert_eq!(
        snap,
        [(b, Entry::closed(t0, S(10))), (a, Entry::closed(t0, S(30)))]
    );
    let (_, wa) = s.get(a, t0).unwrap();
    let (_, wb) = s.get(b, t0).unwrap();
    let mut probed = Entry::closed(t0, S(30));
    probed.probe = Some(500);
    let expired = Entry::closed(t0, S(0));
    s.resync(
        vec![(a, Entry::closed(t0, S(30))), (c, probed), (c, expired)],
        t0 + LINGER,
    );
    assert_eq!(s.len(), 2);
    assert!(!wa.woken(), "an unchanged key sleeps on");
    assert!(wb.woken() && s.peek(b).is_none(), "a key that went wakes");
    assert_eq!(s.peek(c), Some(probed));
    assert!(s.release_probe(c, 500));
    let next = s.try_acquire_probe(c, t0 + S(30)).unwrap();
    assert!(next > 500, "ids stay unique after a resync");
    // The bound holds the ones that open last.
    s.set_max_keys(1);
    s.resync(s.snapshot(), t0);
    assert_eq!(s.snapshot().len(), 1);
    assert!(s.peek(c).is_some() || s.peek(a).is_some());
}

#[cfg(test)]
mod tests {
    use super::*;

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
            s.close(key, now, Duration::from_millis((i * 37) % 500), None);
            if let Some(id) = s.try_acquire_probe(Key::of(&(i % 13)), now) {
                if i % 2 == 0 {
                    s.open(Key::of(&(i % 13)), id);
                } else {
                    s.close(
                        Key::of(&(i % 13)),
                        now,
                        Duration::from_millis(100),
                        Some(id),
                    );
                }
            }
            let st = s.lock();
            assert_eq!(st.slots.len(), st.by_until.len());
            assert_eq!(st.slots.len(), s.len());
            assert!(st.slots.len() <= 64);
            for (&k, slot) in st.slots.iter() {
                assert!(st.by_until.contains(&(slot.entry.until, k)));
            }
        }
    }
}
