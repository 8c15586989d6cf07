//! The outage-detection policy. A path is watched once it answers with an
//! [outage signal](crate::OutageSignals): its answers are counted over about a second (two
//! buckets, the older fading), and its gate closes when the contract's [`OutageRule`] says
//! the signals are an outage. Unwatched paths cost one atomic load (a 64-bit filter).

use super::Key;
use crate::contract::OutageRule;
use crate::sync::lock;
use foldhash::fast::FixedState;
use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// The width of one bucket of the window.
pub(crate) const BUCKET: Duration = Duration::from_secs(1);

/// A watched path with no signal for this long is forgotten.
pub(crate) const QUIET: Duration = Duration::from_secs(2);

/// The answers of one watched path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Window {
    /// When the current bucket began.
    start: Instant,
    /// (answers, signals) of the current bucket.
    current: (u32, u32),
    /// (answers, signals) of the bucket before.
    previous: (u32, u32),
    /// Signals since the last other answer.
    consecutive: u32,
    /// The last signal.
    last_signal: Instant,
    /// The path's gate closed for an outage: it stays so until its probe is answered.
    out: bool,
}

impl Window {
    /// A window opened by a first signal at `now`.
    pub(crate) fn new(now: Instant) -> Window {
        Window {
            start: now,
            current: (0, 0),
            previous: (0, 0),
            consecutive: 0,
            last_signal: now,
            out: false,
        }
    }

    /// Moves the buckets on to `now`.
    fn roll(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.start);
        if age < BUCKET {
            return;
        }
        // Buckets stay aligned: a bucket is never shorter than `BUCKET`.
        if age < 2 * BUCKET {
            (self.previous, self.start) = (self.current, self.start + BUCKET);
        } else {
            (self.previous, self.start) = ((0, 0), now);
        }
        self.current = (0, 0);
    }

    /// (answers, signals) of the last second: the current bucket and the share of the
    /// previous one that still falls within the second.
    pub(crate) fn counts(&self, now: Instant) -> (f64, f64) {
        let into = now.saturating_duration_since(self.start).as_secs_f64() / BUCKET.as_secs_f64();
        let keep = (1.0 - into).clamp(0.0, 1.0);
        (
            f64::from(self.current.0) + keep * f64::from(self.previous.0),
            f64::from(self.current.1) + keep * f64::from(self.previous.1),
        )
    }

    /// An answer that is not a signal.
    pub(crate) fn answered(&mut self, now: Instant) {
        self.roll(now);
        self.current.0 = self.current.0.saturating_add(1);
        self.consecutive = 0;
    }

    /// A signal: returns `true` when, by `rule`, the path is out.
    pub(crate) fn signalled(&mut self, now: Instant, rule: &OutageRule) -> bool {
        self.roll(now);
        self.current.0 = self.current.0.saturating_add(1);
        self.current.1 = self.current.1.saturating_add(1);
        self.consecutive = self.consecutive.saturating_add(1);
        self.last_signal = now;
        let (answers, signals) = self.counts(now);
        rule.trips(self.consecutive, answers, signals)
    }

    /// No signal for [`QUIET`], and not out: the path may be forgotten.
    pub(crate) fn quiet(&self, now: Instant) -> bool {
        !self.out && now.saturating_duration_since(self.last_signal) >= QUIET
    }
}

/// Every watched path.
#[derive(Debug)]
pub(crate) struct Health {
    /// The filter bits of the watched keys: zero when none is.
    filter: AtomicU64,
    max: AtomicUsize,
    inner: Mutex<HashMap<Key, Window, FixedState>>,
}

impl Health {
    /// Watches at most `max` paths at once.
    pub(crate) fn new(max: usize) -> Health {
        Health {
            filter: AtomicU64::new(0),
            max: AtomicUsize::new(max),
            inner: Mutex::new(HashMap::default()),
        }
    }

    fn publish(&self, map: &HashMap<Key, Window, FixedState>) {
        let bits = map.keys().fold(0, |bits, k| bits | k.filter_bit());
        self.filter.store(bits, Ordering::Relaxed);
    }

    /// Changes the most paths watched at once.
    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// `true` when `key` may be watched: one relaxed atomic load.
    #[inline]
    pub(crate) fn may_watch(&self, key: Key) -> bool {
        self.filter.load(Ordering::Relaxed) & key.filter_bit() != 0
    }

    /// `key` answered with something that is not a signal (callers look at
    /// [`may_watch`](Self::may_watch) first).
    #[inline(never)]
    pub(crate) fn answered(&self, key: Key, now: Instant) {
        let mut map = lock(&self.inner);
        let Some(w) = map.get_mut(&key) else {
            return;
        };
        if w.quiet(now) {
            map.remove(&key);
            self.publish(&map);
        } else {
            w.answered(now);
        }
    }

    /// `key` answered with a signal: returns `true` when, by `rule`, the path is out (it is
    /// then marked out until its gate reopens: see [`is_out`](Self::is_out)).
    pub(crate) fn signalled(&self, key: Key, now: Instant, rule: &OutageRule) -> bool {
        self.trip(key, now, |w| w.signalled(now, rule))
    }

    /// Another process of the fleet closed `key`'s gate for an outage: it is held as out here
    /// too. Returns `false` when it already was (or nothing is watched). Only a store shared
    /// by a fleet calls it.
    #[allow(dead_code)]
    pub(crate) fn mark_out(&self, key: Key, now: Instant) -> bool {
        self.trip(key, now, |_| true)
    }

    /// Watches `key` (making room for it) and marks it out when it is not yet and `trips`
    /// says so; returns whether it did.
    fn trip(&self, key: Key, now: Instant, trips: impl FnOnce(&mut Window) -> bool) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        if max == 0 {
            return false;
        }
        let mut map = lock(&self.inner);
        if !map.contains_key(&key) {
            make_room(&mut map, now, max);
            map.insert(key, Window::new(now));
        }
        let w = map.get_mut(&key).expect("inserted above");
        let out = !w.out && trips(w);
        if out {
            *w = Window {
                out: true,
                ..Window::new(now)
            };
        }
        self.publish(&map);
        out
    }

    /// `key`'s gate closed for an outage: its probe's signal says the outage goes on
    /// (a gate closed for a rate limit, or by another process, is opened by any answer).
    pub(crate) fn is_out(&self, key: Key) -> bool {
        self.may_watch(key) && lock(&self.inner).get(&key).is_some_and(|w| w.out)
    }

    /// `key`'s gate opened: it starts afresh.
    pub(crate) fn forget(&self, key: Key) {
        if self.may_watch(key) {
            let mut map = lock(&self.inner);
            if map.remove(&key).is_some() {
                self.publish(&map);
            }
        }
    }
}

/// Room for one more path in `map`, of at most `max`: the quiet ones go, then, when it is full
/// of paths failing now, the one whose last signal is oldest (forgetting fails open).
fn make_room(map: &mut HashMap<Key, Window, FixedState>, now: Instant, max: usize) {
    if map.len() >= max {
        map.retain(|_, w| !w.quiet(now));
    }
    if map.len() >= max {
        let oldest = map
            .iter()
            .min_by_key(|(_, w)| w.last_signal)
            .map(|(k, _)| *k);
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{contract::OutageRule, contract::OutageSignals};

    impl Health {
        /// How many paths are watched.
        pub(crate) fn len(&self) -> usize {
            lock(&self.inner).len()
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn consecutive_signals_trip() {
        let rule = OutageRule::DEFAULT;
        assert_eq!(
            (rule.consecutive, (rule.min_answers, rule.percent)),
            (10, (20, 80))
        );
        let t = Instant::now();
        let mut w = Window::new(t);
        for i in 0..9 {
            assert!(!w.signalled(t + MS(i), &rule), "signal {i}");
        }
        assert!(w.signalled(t + MS(9), &rule));
        // Another answer between them starts the run again.
        let mut w = Window::new(t);
        for i in 0..20 {
            let now = t + MS(300 * i);
            assert!(!w.signalled(now, &rule), "signal {i}");
            w.answered(now);
            w.answered(now);
        }
    }

    #[test]
    fn random_failures_below_the_ratio_never_trip() {
        // 30 % of answers fail at random, 100 answers a second, for a minute. (Ten in a row
        // happen by chance about once in 170,000 answers: half an hour at this rate.)
        let rule = OutageRule::DEFAULT;
        let t = Instant::now();
        let mut w = Window::new(t);
        let mut rng = 0x5eed_u64;
        for i in 0..6_000u64 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let now = t + MS(10 * i);
            if rng % 10 < 3 {
                assert!(!w.signalled(now, &rule), "answer {i}");
            } else {
                w.answered(now);
            }
        }
    }

    #[test]
    fn one_request_in_ten_never_trips() {
        let rule = OutageRule::DEFAULT.signals(OutageSignals::DEFAULT | OutageSignals::INTERNAL);
        let t = Instant::now();
        let mut w = Window::new(t);
        for i in 0..10_000u64 {
            let now = t + MS(i);
            if i % 10 == 3 {
                assert!(!w.signalled(now, &rule), "answer {i}");
            } else {
                w.answered(now);
            }
        }
    }

    #[test]
    fn the_ratio_trips_at_its_threshold() {
        // 1 failure in a row at most, but half of the answers: trips once 10 are seen.
        let rule = OutageRule::DEFAULT.consecutive(100).ratio(10, 50);
        let t = Instant::now();
        let mut w = Window::new(t);
        let mut tripped = None;
        for i in 0..40u64 {
            let now = t + MS(10 * i);
            if i % 2 == 0 {
                w.answered(now);
            } else if w.signalled(now, &rule) {
                tripped = Some(i);
                break;
            }
        }
        assert_eq!(tripped, Some(9));
        // Below the ratio: 40 % (three answers, then two signals).
        let mut w = Window::new(t);
        for i in 0..1000u64 {
            let now = t + MS(10 * i);
            if i % 5 >= 3 {
                assert!(!w.signalled(now, &rule));
            } else {
                w.answered(now);
            }
        }
    }

    #[test]
    fn old_answers_fade() {
        let rule = OutageRule::DEFAULT.consecutive(100).ratio(10, 50);
        let t = Instant::now();
        let mut w = Window::new(t);
        for i in 0..9 {
            w.answered(t + MS(i));
        }
        // Ten seconds later, the old successes count for nothing: a few signals are the
        // whole window, but fewer than the minimum of answers.
        let later = t + Duration::from_secs(10);
        for i in 0..9 {
            assert!(!w.signalled(later + MS(i), &rule));
        }
        assert!(w.signalled(later + MS(9), &rule));
        assert_eq!(w.counts(later + MS(9)), (10.0, 10.0));
    }

    #[test]
    fn a_watched_path_is_forgotten_when_quiet() {
        let h = Health::new(100);
        let (k, other) = (Key::of("k"), Key::of("other"));
        let t = Instant::now();
        assert!(!h.may_watch(k));
        assert!(!h.signalled(k, t, &OutageRule::DEFAULT));
        assert!(h.may_watch(k));
        h.answered(k, t + MS(10));
        assert_eq!(h.len(), 1);
        h.answered(k, t + QUIET);
        assert_eq!(h.len(), 0);
        assert!(!h.may_watch(k));
        // A trip hands the path over to its gate.
        for i in 0..9 {
            assert!(!h.signalled(other, t + MS(i), &OutageRule::DEFAULT));
        }
        assert!(h.signalled(other, t + MS(9), &OutageRule::DEFAULT));
        assert!(h.is_out(other) && !h.is_out(k));
        // Out until its gate opens, however long that takes.
        h.answered(other, t + Duration::from_secs(60));
        assert!(h.is_out(other));
        h.forget(other);
        assert!(!h.is_out(other));
        assert_eq!(h.len(), 0);
        // Bounded.
        let small = Health::new(3);
        for i in 0..100u32 {
            small.signalled(Key::of(&i), t, &OutageRule::DEFAULT);
            assert!(small.len() <= 3);
        }
        let none = Health::new(0);
        assert!(!none.signalled(k, t, &OutageRule::DEFAULT.consecutive(1)));
        assert_eq!(none.len(), 0);
    }
}
