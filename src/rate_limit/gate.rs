//! The gate map: which keys are closed, until when, and who probes them.

use super::Key;
use crate::{backoff::Backoff, error::Error, retry_after::MAX_HINT};
use std::{
    collections::{BTreeSet, HashMap},
    fmt,
    future::Future,
    hash::{BuildHasherDefault, Hasher},
    pin::pin,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    task::Poll,
    time::Duration,
};
use tokio::{sync::watch, time::Instant};

/// The default for [`RateLimitGates::with_max_keys`]: 10,000 keys.
pub const DEFAULT_MAX_KEYS: usize = 10_000;

/// How long an expired entry is kept when no request for its key arrives: long enough that
/// the next request for the key is still its probe, and another rejection still doubles the
/// backoff.
pub(crate) const LINGER: Duration = Duration::from_secs(30);

/// The gates of every rate-limited key, shared by every clone of the services that use it.
///
/// `Clone` shares: give the same map to two stacks with
/// [`RateLimitBackoffLayer::gates`](super::RateLimitBackoffLayer::gates) and a rate limit seen by
/// one closes the path for both.
///
/// Only closed keys are stored; an open key costs nothing. At most
/// [`max_keys`](Self::max_keys) keys are tracked. Expired entries are dropped 30 s after they
/// expire if no request for their key arrives (until then the next request for the key is its
/// probe, and another rejection doubles the backoff). When the map is full, expired entries
/// go first, and then the key whose gate would open soonest is forgotten (its gate opens
/// early and its waiters are let through): the newest rejection is the one the server just
/// reported, and forgetting a key fails open, never shut.
///
/// ```
/// use tower_api_retry::rate_limit::{RateLimitBackoffLayer, RateLimitGates};
///
/// let gates = RateLimitGates::with_max_keys(1_000);
/// let for_reads = RateLimitBackoffLayer::new().gates(gates.clone());
/// let for_writes = RateLimitBackoffLayer::new().fail_fast().gates(gates.clone());
/// assert!(gates.is_empty());
/// # let _ = (for_reads, for_writes);
/// ```
#[derive(Clone)]
pub struct RateLimitGates {
    shared: Arc<Shared>,
}

struct Shared {
    /// `entries.len()`, readable without the lock: zero is the fast path.
    tracked: AtomicUsize,
    max_keys: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<Key, Entry, BuildHasherDefault<IdHasher>>,
    /// Entries by the time their gate opens: expired ones first.
    by_until: BTreeSet<(Instant, Key)>,
    next_probe: u64,
}

struct Entry {
    until: Instant,
    /// Consecutive rejections of this key's probes (1 after the first rate limit).
    rejections: u32,
    last_delay: Duration,
    /// The request currently probing this key, if any.
    probe: Option<u64>,
    /// Bumped on every change; dropped with the entry, which wakes every waiter too.
    changed: watch::Sender<()>,
}

/// What a request arriving at its key's gate does.
pub(crate) enum Check {
    /// The key is open: send.
    Open,
    /// The key's time is up and nobody probes it: send as its probe.
    Probe(u64),
    /// Wait for a change, or until `wake` (the gate's time, or the deadline).
    Wait {
        changed: watch::Receiver<()>,
        wake: Instant,
    },
    /// The gate will not open before the deadline: fail with the time left.
    Fail(Duration),
}

impl Default for RateLimitGates {
    fn default() -> Self {
        RateLimitGates::new()
    }
}

impl fmt::Debug for RateLimitGates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitGates")
            .field("closed", &self.len())
            .field("max_keys", &self.max_keys())
            .finish()
    }
}

impl RateLimitGates {
    /// An empty map tracking at most 10,000 keys.
    pub fn new() -> RateLimitGates {
        RateLimitGates::with_max_keys(DEFAULT_MAX_KEYS)
    }

    /// An empty map tracking at most `max_keys` keys (0: nothing is ever gated).
    pub fn with_max_keys(max_keys: usize) -> RateLimitGates {
        RateLimitGates {
            shared: Arc::new(Shared {
                tracked: AtomicUsize::new(0),
                max_keys: AtomicUsize::new(max_keys),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The most keys this map tracks.
    pub fn max_keys(&self) -> usize {
        self.shared.max_keys.load(Ordering::Relaxed)
    }

    /// Changes the most keys this map tracks, for every stack sharing it. A smaller bound
    /// takes effect at the next rejection.
    pub fn set_max_keys(&self, max_keys: usize) {
        self.shared.max_keys.store(max_keys, Ordering::Relaxed);
    }

    /// How many keys are tracked: closed, being probed, or expired and not yet dropped.
    pub fn len(&self) -> usize {
        self.shared.tracked.load(Ordering::Relaxed)
    }

    /// `true` when no key is tracked: every request goes straight through.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.shared.tracked.load(Ordering::Relaxed) == 0
    }

    /// How long `key`'s gate stays closed: `None` when it is open (not tracked), zero when its
    /// time is up (the next request is its probe, or the probe is in flight).
    pub fn time_left(&self, key: Key) -> Option<Duration> {
        let now = Instant::now();
        let st = self.lock();
        st.entries
            .get(&key)
            .map(|e| e.until.saturating_duration_since(now))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map inconsistent in a way that
        // matters more than losing rate-limit state, so poisoning is ignored.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, st: &State) {
        self.shared
            .tracked
            .store(st.entries.len(), Ordering::Relaxed);
    }

    /// Decides what a request for `key` does now, given the latest time it may still be sent.
    pub(crate) fn check(&self, key: Key, now: Instant, deadline: Instant) -> Check {
        let mut st = self.lock();
        if st.sweep(now) {
            self.publish(&st);
        }
        let State {
            entries,
            next_probe,
            ..
        } = &mut *st;
        let Some(e) = entries.get_mut(&key) else {
            return Check::Open;
        };
        if e.until <= now {
            if e.probe.is_none() {
                *next_probe += 1;
                e.probe = Some(*next_probe);
                tracing::debug!(key = %key, "rate-limit gate: sending the probe");
                return Check::Probe(*next_probe);
            }
            // The probe is in flight: wait for its outcome, up to the deadline.
            if now >= deadline {
                return Check::Fail(Duration::ZERO);
            }
            return Check::Wait {
                changed: e.changed.subscribe(),
                wake: deadline,
            };
        }
        if e.until > deadline {
            return Check::Fail(e.until - now);
        }
        Check::Wait {
            changed: e.changed.subscribe(),
            wake: e.until,
        }
    }

    /// A rate limit came back for `key`. `probe` is the request's probe id, if it probed.
    pub(crate) fn reject(
        &self,
        key: Key,
        hint: Option<Duration>,
        probe: Option<u64>,
        backoff: &Backoff,
    ) {
        let now = Instant::now();
        let mut st = self.lock();
        let State {
            entries, by_until, ..
        } = &mut *st;
        if let Some(e) = entries.get_mut(&key) {
            if probe.is_some() && e.probe == probe {
                // The probe was rejected: close again, with the next, longer backoff.
                e.probe = None;
                e.rejections = e.rejections.saturating_add(1);
                let delay =
                    hint.unwrap_or_else(|| backoff.delay(e.rejections - 1, Some(e.last_delay)));
                e.last_delay = delay;
                // Never shorter than a straggler's longer hint already made it.
                let until = at(now, delay).max(e.until);
                set_until(by_until, key, e, until);
                tracing::debug!(key = %key, ?delay, rejections = e.rejections, "rate-limit gate: probe rejected");
                e.changed.send_replace(());
            } else if let Some(hint) = hint {
                // A request sent before the gate closed: honour its hint, same backoff level.
                let until = at(now, hint);
                if until > e.until {
                    set_until(by_until, key, e, until);
                    e.changed.send_replace(());
                }
            }
            return;
        }
        let max = self.max_keys();
        if max == 0 {
            return;
        }
        if st.entries.len() >= max {
            st.sweep(now);
            while st.entries.len() >= max {
                st.evict_first();
            }
        }
        let delay = hint.unwrap_or_else(|| backoff.delay(0, None));
        let until = at(now, delay);
        st.by_until.insert((until, key));
        st.entries.insert(
            key,
            Entry {
                until,
                rejections: 1,
                last_delay: delay,
                probe: None,
                changed: watch::Sender::new(()),
            },
        );
        tracing::debug!(key = %key, ?delay, "rate-limit gate: closed");
        self.publish(&st);
    }

    /// `key`'s probe got a response that is not a rate limit: open the gate, release waiters.
    pub(crate) fn open(&self, key: Key, probe: u64) {
        let mut st = self.lock();
        if st.entries.get(&key).is_some_and(|e| e.probe == Some(probe)) {
            st.remove(key);
            tracing::debug!(key = %key, "rate-limit gate: opened");
            self.publish(&st);
        }
    }

    /// `key`'s probe failed without an answer (transport error, dropped): another request
    /// takes the probe role.
    pub(crate) fn hand_on(&self, key: Key, probe: u64) {
        let mut st = self.lock();
        if let Some(e) = st.entries.get_mut(&key)
            && e.probe == Some(probe)
        {
            e.probe = None;
            e.changed.send_replace(());
        }
    }
}

impl State {
    /// Drops entries that expired more than [`LINGER`] ago. Returns whether any went.
    fn sweep(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(&(until, key)) = self.by_until.first() {
            if until.checked_add(LINGER).is_some_and(|t| t > now) {
                break;
            }
            self.remove(key);
            any = true;
        }
        any
    }

    fn evict_first(&mut self) {
        if let Some(&(_, key)) = self.by_until.first() {
            tracing::debug!(key = %key, "rate-limit gate: map full, forgetting the key that opens first");
            self.remove(key);
        }
    }

    fn remove(&mut self, key: Key) {
        if let Some(e) = self.entries.remove(&key) {
            self.by_until.remove(&(e.until, key));
            // Dropping `e.changed` wakes every waiter; they find the key open.
        }
    }
}

fn set_until(by_until: &mut BTreeSet<(Instant, Key)>, key: Key, e: &mut Entry, until: Instant) {
    by_until.remove(&(e.until, key));
    e.until = until;
    by_until.insert((until, key));
}

fn at(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(MAX_HINT))
        .unwrap_or_else(|| now + Duration::from_secs(24 * 60 * 60))
}

/// How a waiting request was let through.
pub(crate) enum Admission {
    Open,
    Probe(u64),
}

/// Waits at `key`'s gate until the request may be sent, or fails at once when it would have to
/// wait past `deadline`. After the probe opens the gate, a waiter waits a random time in
/// `0..spread` so the waiters do not all arrive at once.
pub(crate) async fn wait_turn(
    gates: RateLimitGates,
    key: Key,
    deadline: Instant,
    spread: Duration,
) -> Result<Admission, Error> {
    let mut waited = false;
    loop {
        match gates.check(key, Instant::now(), deadline) {
            Check::Open if waited && !spread.is_zero() => {
                waited = false;
                tokio::time::sleep(spread.mul_f64(rand::random::<f64>())).await;
            }
            Check::Open => return Ok(Admission::Open),
            Check::Probe(id) => return Ok(Admission::Probe(id)),
            Check::Fail(left) => return Err(Error::gate_closed(left)),
            Check::Wait { mut changed, wake } => {
                waited = true;
                let mut sleep = pin!(tokio::time::sleep_until(wake));
                let mut changed = pin!(changed.changed());
                std::future::poll_fn(|cx| {
                    if changed.as_mut().poll(cx).is_ready() || sleep.as_mut().poll(cx).is_ready() {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                })
                .await;
            }
        }
    }
}

/// `HashMap` hasher for [`Key`]s, which are hashes already.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Jitter;

    const B: Backoff = Backoff::new().jitter(Jitter::None);

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn closes_probes_and_opens() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        assert!(matches!(g.check(k, Instant::now(), far()), Check::Open));
        g.reject(k, None, None, &B);
        assert_eq!(g.len(), 1);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(1)));
        assert!(matches!(
            g.check(k, Instant::now(), Instant::now()),
            Check::Fail(d) if d == Duration::from_secs(1)
        ));
        assert!(matches!(
            g.check(k, Instant::now(), far()),
            Check::Wait { .. }
        ));
        // Other keys are not affected.
        assert!(matches!(
            g.check(Key::of("j"), Instant::now(), far()),
            Check::Open
        ));
        tokio::time::advance(Duration::from_secs(1)).await;
        let Check::Probe(id) = g.check(k, Instant::now(), far()) else {
            panic!("expected the probe")
        };
        // Only one probe.
        assert!(matches!(
            g.check(k, Instant::now(), far()),
            Check::Wait { .. }
        ));
        // Probe rejected: 2 s.
        g.reject(k, None, Some(id), &B);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_secs(2)).await;
        let Check::Probe(id) = g.check(k, Instant::now(), far()) else {
            panic!()
        };
        // A stale probe id does nothing; the right one opens.
        g.open(k, id + 100);
        assert_eq!(g.len(), 1);
        g.open(k, id);
        assert!(g.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn hand_on_lets_another_probe() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        g.reject(k, Some(Duration::ZERO), None, &B);
        let Check::Probe(id) = g.check(k, Instant::now(), far()) else {
            panic!()
        };
        g.hand_on(k, id);
        assert!(matches!(g.check(k, Instant::now(), far()), Check::Probe(n) if n != id));
    }

    #[tokio::test(start_paused = true)]
    async fn stragglers_only_extend_with_a_hint() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        g.reject(k, None, None, &B);
        g.reject(k, None, None, &B);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(1)));
        g.reject(k, Some(Duration::from_secs(5)), None, &B);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(5)));
    }

    #[tokio::test(start_paused = true)]
    async fn bounded_and_swept() {
        let g = RateLimitGates::with_max_keys(100);
        for i in 0..10_000u32 {
            g.reject(
                Key::of(&i),
                Some(Duration::from_secs(u64::from(i) + 1)),
                None,
                &B,
            );
            assert!(g.len() <= 100);
        }
        assert_eq!(g.len(), 100);
        // The newest rejections are kept.
        assert!(g.time_left(Key::of(&9_999u32)).is_some());
        assert!(g.time_left(Key::of(&0u32)).is_none());
        tokio::time::advance(Duration::from_secs(20_000) + LINGER).await;
        let _ = g.check(Key::of("x"), Instant::now(), far());
        assert!(g.is_empty());
        let none = RateLimitGates::with_max_keys(0);
        none.reject(Key::of("k"), None, None, &B);
        assert!(none.is_empty());
    }
}
