//! The lanes of paced paths: who goes when, once a gate has closed.
//!
//! A rate limit gives its path a *lane*: a [`Pace`] and the time of its next free slot.
//! Every request for the path, those waiting at the closed gate and those arriving later,
//! takes a slot when it arrives; slots are spaced by the pace, so requests leave in the
//! order they arrived (first come, first served) and never as a herd. When the gate closes
//! again, every slot not yet used moves back by the same amount, so the order holds.
//!
//! A lane is forgotten [`LINGER`](super::policy::LINGER) after its last slot went unused;
//! at most as many lanes are kept as the gate map keeps keys (the least recently used
//! goes first). A forgotten lane only means the next burst is not paced.

use super::{
    Key,
    pace::{Accepted, Pace},
    policy::LINGER,
};
use foldhash::fast::FixedState;
use std::{
    collections::HashMap,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// A place in a lane, taken once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    at: Instant,
    /// The lane's total shift when the slot was taken.
    shift: Duration,
}

#[derive(Debug)]
struct Lane {
    pace: Pace,
    accepted: Accepted,
    /// The next free slot.
    next: Instant,
    /// The last slot taken, with the shift it was taken at.
    last: Option<Slot>,
    /// How far every slot has moved back since the lane began.
    shift: Duration,
    /// The last time the lane was used.
    touched: Instant,
}

/// Every paced path's lane.
#[derive(Debug)]
pub(crate) struct Lanes {
    /// `map.len()`, readable without the lock: zero is the success path.
    tracked: AtomicUsize,
    max: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<Key, Lane, FixedState>,
    /// Idle lanes are dropped at most once a second, by whoever takes a slot then.
    next_sweep: Option<Instant>,
}

impl Lanes {
    /// No lane, at most `max` of them.
    pub(crate) fn new(max: usize) -> Lanes {
        Lanes {
            tracked: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a lane half-written: recover.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `true` when no path is paced: one relaxed atomic load.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.tracked.load(Ordering::Relaxed) == 0
    }

    pub(crate) fn len(&self) -> usize {
        self.tracked.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max(&self, max: usize) {
        self.max.store(max, Ordering::Relaxed);
    }

    /// Takes the next slot of `key`'s lane, at `not_before` at the earliest (the gate's
    /// time). `None` when the path is not paced: go.
    pub(crate) fn reserve(&self, key: Key, now: Instant, not_before: Instant) -> Option<Slot> {
        let mut inner = self.lock();
        if inner.next_sweep.is_none_or(|t| t <= now) {
            inner.next_sweep = Some(now + Duration::from_secs(1));
            inner.map.retain(|_, lane| !idle(lane, now));
            self.tracked.store(inner.map.len(), Ordering::Relaxed);
        }
        let lane = inner.map.get_mut(&key)?;
        let at = lane.next.max(now).max(not_before);
        lane.next = at + lane.pace.interval(at);
        lane.touched = now;
        let slot = Slot {
            at,
            shift: lane.shift,
        };
        lane.last = Some(slot);
        Some(slot)
    }

    /// `slot` went as the probe, before any slot after it: the slots that follow answer to
    /// the probe, so the probe's own interval is given back. A probe rejected again then
    /// leaves the next request at the gate's new time, not one interval after it.
    pub(crate) fn probe_took(&self, key: Key, slot: Slot) {
        if let Some(lane) = self.lock().map.get_mut(&key)
            && lane.last == Some(slot)
        {
            lane.next = slot.at;
            lane.last = None;
        }
    }

    /// `key`'s probe, sent at `sent`, was answered at `now` and the gate opened: the slots
    /// after it count from the answer, so a slow probe does not leave a herd of slots that
    /// fell due while it was out.
    pub(crate) fn opened(&self, key: Key, sent: Instant, now: Instant) {
        if let Some(lane) = self.lock().map.get_mut(&key) {
            let delta = now.saturating_duration_since(sent);
            lane.shift = lane.shift.saturating_add(delta);
            lane.next = lane.next.max(sent) + delta;
            lane.touched = now;
        }
    }

    /// When `slot` of `key`'s lane is due, after every move since it was taken; `now` when
    /// the lane was forgotten.
    pub(crate) fn due(&self, key: Key, slot: Slot, now: Instant) -> Instant {
        match self.lock().map.get(&key) {
            Some(lane) => slot.at + lane.shift.saturating_sub(slot.shift),
            None => now,
        }
    }

    /// A request of `key`'s lane got an answer that is not a rate limit.
    pub(crate) fn succeeded(&self, key: Key, now: Instant) {
        if let Some(lane) = self.lock().map.get_mut(&key) {
            lane.accepted.count(now);
        }
    }

    /// `key`'s gate closed until `until` (it was closed until `before`, or open). Every slot
    /// not yet used moves back past `until`. With `counts` (the first rejection, or the
    /// probe's), the pace drops below what the server accepted; a path without a lane gets
    /// one, starting slowly.
    pub(crate) fn rejected(
        &self,
        key: Key,
        now: Instant,
        before: Option<Instant>,
        until: Instant,
        counts: bool,
    ) {
        if self.max.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut inner = self.lock();
        let map = &mut inner.map;
        if let Some(lane) = map.get_mut(&key) {
            let base = before.map_or(now, |b| b.max(now));
            let delta = until.saturating_duration_since(base);
            lane.shift = lane.shift.saturating_add(delta);
            lane.next = lane.next.max(now) + delta;
            lane.touched = now;
            if counts {
                let accepted = lane.accepted.rate(now, lane.pace.since());
                lane.pace.rejected(now, accepted, until);
            }
            return;
        }
        self.make_room(map, now);
        map.insert(
            key,
            Lane {
                pace: Pace::slow_start(until),
                accepted: Accepted::new(now),
                next: until,
                last: None,
                shift: Duration::ZERO,
                touched: now,
            },
        );
        self.tracked.store(map.len(), Ordering::Relaxed);
    }

    /// Drops the lanes idle for [`LINGER`], then, when still full, the least recently used.
    fn make_room(&self, map: &mut HashMap<Key, Lane, FixedState>, now: Instant) {
        let max = self.max.load(Ordering::Relaxed);
        if map.len() < max {
            return;
        }
        map.retain(|_, lane| !idle(lane, now));
        while map.len() >= max {
            let Some(oldest) = map.iter().min_by_key(|(_, l)| l.touched).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
    }

    /// Drops the lanes idle for [`LINGER`].
    #[cfg(test)]
    pub(crate) fn sweep(&self, now: Instant) {
        if self.is_empty() {
            return;
        }
        let mut inner = self.lock();
        inner.map.retain(|_, lane| !idle(lane, now));
        self.tracked.store(inner.map.len(), Ordering::Relaxed);
    }
}

/// Unused since [`LINGER`], and no slot still to come.
fn idle(lane: &Lane, now: Instant) -> bool {
    lane.touched
        .max(lane.next)
        .checked_add(LINGER)
        .is_some_and(|t| t <= now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rate_limit::pace::INITIAL_RATE;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn an_unpaced_path_has_no_slot() {
        let lanes = Lanes::new(10);
        let t0 = Instant::now();
        assert!(lanes.is_empty());
        assert_eq!(lanes.reserve(Key::of("k"), t0, t0), None);
    }

    #[test]
    fn slots_are_paced_and_first_come_first_served() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        let reopen = t0 + MS(1000);
        lanes.rejected(k, t0, None, reopen, true);
        assert_eq!(lanes.len(), 1);
        // Arrivals while closed queue behind the reopening, one pace interval apart.
        let gap = Duration::from_secs_f64(1.0 / INITIAL_RATE);
        let slots: Vec<Instant> = (0..5)
            .map(|i| lanes.reserve(k, t0 + MS(i), t0).unwrap())
            .map(|s| lanes.due(k, s, t0))
            .collect();
        assert_eq!(slots[0], reopen);
        for pair in slots.windows(2) {
            assert!(pair[1] > pair[0], "first come, first served");
            assert!(pair[1] - pair[0] <= gap);
        }
        // Other keys are not paced.
        assert_eq!(lanes.reserve(Key::of("j"), t0, t0), None);
    }

    #[test]
    fn closing_again_moves_every_unused_slot_back_in_order() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        lanes.rejected(k, t0, None, t0 + MS(1000), true);
        let a = lanes.reserve(k, t0, t0).unwrap();
        let b = lanes.reserve(k, t0, t0).unwrap();
        let (due_a, due_b) = (lanes.due(k, a, t0), lanes.due(k, b, t0));
        // The probe is rejected at 1 s: closed until 3 s.
        let now = t0 + MS(1000);
        lanes.rejected(k, now, Some(t0 + MS(1000)), t0 + MS(3000), true);
        assert_eq!(lanes.due(k, a, now), due_a + MS(2000));
        assert_eq!(lanes.due(k, b, now), due_b + MS(2000));
        // A later arrival queues behind both.
        let c = lanes.reserve(k, now, t0 + MS(3000)).unwrap();
        assert!(lanes.due(k, c, now) > lanes.due(k, b, now));
        // A straggler's rejection that does not extend the gate moves nothing.
        lanes.rejected(k, now, Some(t0 + MS(3000)), t0 + MS(2000), false);
        assert_eq!(lanes.due(k, a, now), due_a + MS(2000));
    }

    #[test]
    fn idle_lanes_go_and_the_bound_holds() {
        let lanes = Lanes::new(3);
        let t0 = Instant::now();
        for i in 0..10u32 {
            lanes.rejected(Key::of(&i), t0 + MS(u64::from(i)), None, t0, true);
            assert!(lanes.len() <= 3);
        }
        // The newest are kept.
        assert!(lanes.reserve(Key::of(&9u32), t0, t0).is_some());
        assert!(lanes.reserve(Key::of(&0u32), t0, t0).is_none());
        lanes.sweep(t0 + LINGER + Duration::from_secs(2));
        assert!(lanes.is_empty());
        let none = Lanes::new(0);
        none.rejected(Key::of("k"), t0, None, t0, true);
        assert!(none.is_empty());
    }
}
