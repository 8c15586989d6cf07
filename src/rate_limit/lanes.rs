//! The pacing policy: a rate limit gives its path a *lane*, a [`Pace`] (or an announced
//! [`Budget`]) and a schedule of numbered tickets. Ticket *n* is due one interval after
//! ticket *n − 1*, so requests leave in arrival order; the schedule is computed, not stored,
//! so a closure, an opening or a new pace moves every waiting ticket at once. Idle lanes are
//! forgotten: that only means the next burst is not paced.

use crate::quota::Quota;

use super::{
    Key,
    budget::Budget,
    filter::{KeyFilter, KeyMap},
    notify::{Waiter, Waiters},
    pace::{Accepted, DOUBLING, INITIAL_RATE, Pace},
    policy::LINGER,
};
use crate::sync::lock;
use foldhash::fast::FixedState;
use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// After an outage, a lane's pace doubles up to this many times the rate at which its
/// callers join it (see [`Joins`]).
pub(crate) const RAMP_HEADROOM: f64 = 2.0;

/// Callers keep up with a lane when this many join for each ticket that goes: the queue
/// shrinks by less than a tenth of what went (a request in flight is not in the queue).
const KEEPING_UP: f64 = 0.9;

/// The callers that took a ticket of a lane, counted over one [`DOUBLING`] at a time: the
/// demand its ramp after an outage follows. While the queue does not shrink (a worker pool
/// waits for each answer), the ramp goes on doubling; once it shrinks, the ramp stops at
/// [`RAMP_HEADROOM`] times the rate at which callers join.
#[derive(Clone, Copy, Debug)]
struct Joins {
    since: Instant,
    count: u32,
    /// The callers waiting when the count began.
    waiting: u64,
}

impl Joins {
    fn new(since: Instant, waiting: u64) -> Joins {
        Joins {
            since,
            count: 0,
            waiting,
        }
    }

    /// One more caller at `now`, with `waiting` callers in the lane before it, and the lane's
    /// pace at `rate`. Once a [`DOUBLING`] has passed, returns the ramp's cap by the
    /// callers' demand over it (this one not counted) and starts counting again.
    fn join(&mut self, now: Instant, waiting: u64, rate: f64) -> Option<f64> {
        let over = now.saturating_duration_since(self.since);
        let cap = (over >= DOUBLING).then(|| {
            let joined = f64::from(self.count);
            // The queue went from `self.waiting` to `waiting` with `count` joins.
            let gone = (joined + self.waiting as f64 - waiting as f64).max(0.0);
            let joined = joined / over.as_secs_f64();
            // (Two tickets of slack: the probe's, which went out of turn, and one in flight.)
            let demand = if f64::from(self.count) + 2.0 >= KEEPING_UP * gone {
                joined.max(rate)
            } else {
                joined
            };
            RAMP_HEADROOM * demand
        });
        if cap.is_some() {
            *self = Joins::new(now, waiting);
        }
        self.count = self.count.saturating_add(1);
        cap
    }
}

/// A place in a lane, taken once per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    ticket: u64,
    /// When the ticket was due when it was taken; it holds while the lane's epoch does.
    at: Instant,
    epoch: u64,
    /// The slot counted against an announced budget: its request must say when it lands.
    pub(crate) budgeted: bool,
}

/// What taking a ticket gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// The path is not paced: go.
    Unpaced,
    /// A ticket.
    Slot(Slot),
    /// The ticket would be due at this instant, after the request's deadline: none was
    /// taken, and the lane is as it was.
    TooLate(Instant),
}

/// A request's places in the lanes of its key and of its quota's scope.
#[derive(Debug, Default)]
pub(crate) struct Turn {
    path: Option<Slot>,
    scope: Option<Slot>,
    /// The scope of the request's announced quota, when it is not the key itself.
    scope_key: Option<Key>,
    /// The request must not be sent twice: it leaves the probe role to one that may be.
    pub(crate) once: bool,
}

impl Turn {
    /// No place taken yet; `scope` when the quota's scope is not the request's key; `once`
    /// when the request must not be sent twice.
    pub(crate) fn new(scope_key: Option<Key>, once: bool) -> Turn {
        Turn {
            path: None,
            scope: None,
            scope_key,
            once,
        }
    }

    /// The lanes whose budget counted this request: each must hear when it lands.
    pub(crate) fn landing(&self, key: Key) -> [Option<Key>; 2] {
        [
            self.path.filter(|s| s.budgeted).map(|_| key),
            self.scope.filter(|s| s.budgeted).and(self.scope_key),
        ]
    }
}

#[derive(Clone, Copy, Debug)]
struct Lane {
    pace: Pace,
    /// The announced quota, when the server gives one: it paces the lane instead of `pace`.
    budget: Option<Budget>,
    accepted: Accepted,
    joins: Joins,
    /// The next ticket.
    issued: u64,
    /// One past the latest ticket that went.
    gone: u64,
    /// The schedule of the tickets waiting when the lane last closed or opened: ticket `base`
    /// is due at `base_at`, each later one at the pace after the one before.
    base: u64,
    base_at: Instant,
    /// When the next ticket is due.
    next: Instant,
    /// Bumped when a closure or an opening moves every waiting ticket: a slot taken in an
    /// earlier epoch is due by the schedule, one of this epoch at its own time.
    epoch: u64,
    /// The last time the lane was used.
    touched: Instant,
    /// A scope's lane made by evidence: dropped after [`QUIET`] without a rejection.
    widened: Option<Instant>,
    /// The end of the latest closure the lane has seen.
    closed_until: Option<Instant>,
    /// Closed for an outage: the tickets issued when it closed, and when.
    outage_since: Option<(u64, Instant)>,
    /// When the probe of the lane's key went: the first ticket after it waits its gap.
    probe_went: Option<Instant>,
}

/// Every paced path's lane.
#[derive(Debug)]
pub(crate) struct Lanes {
    /// `map.len()`, readable without the lock: zero is the success path.
    tracked: AtomicUsize,
    max: AtomicUsize,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Its keys are counted in the filter every request reads first.
    map: KeyMap<Lane>,
    /// Idle lanes are dropped at most once a second, by whoever takes a slot then.
    next_sweep: Option<Instant>,
    /// The last key rejected in each scope, and when: the evidence that widens a limit.
    recent: HashMap<Key, (Key, Instant), FixedState>,
    /// The requests waiting for a ticket of a lane, woken (the entry dropped) when its
    /// schedule moves: a ticket may be due sooner.
    waiting: HashMap<Key, Waiters, FixedState>,
    /// Each lane's waiting tickets that will not go (their requests gave up, or a moved
    /// schedule put them past their deadlines), as ranges `start..end`: the next callers take
    /// them, so a queue of given-up tickets never holds the path idle.
    dead: HashMap<Key, BTreeMap<u64, u64>, FixedState>,
}

/// The most ranges of dead tickets a lane keeps; past it, more are not reused (each costs
/// its slot once, when its time passes). Ranges lie between tickets still waiting, so this
/// many take as many waiting requests: a queue that gives up all at once, in any order, stays
/// well under it.
const MAX_DEAD_RANGES: usize = 1 << 16;

impl Inner {
    /// `key`'s schedule moved: its waiting requests look again.
    fn moved(&mut self, key: Key) {
        self.waiting.remove(&key);
    }
}

impl Lanes {
    /// No lane, at most `max` of them, their keys counted in `filter`.
    pub(crate) fn with_filter(max: usize, filter: Arc<KeyFilter>) -> Lanes {
        Lanes {
            tracked: AtomicUsize::new(0),
            max: AtomicUsize::new(max),
            inner: Mutex::new(Inner {
                map: KeyMap::new(filter),
                next_sweep: None,
                recent: HashMap::default(),
                waiting: HashMap::default(),
                dead: HashMap::default(),
            }),
        }
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

    /// Takes the next ticket of `key`'s lane, due at `not_before` at the earliest (the gate's
    /// time), for a request that may go no later than `deadline`.
    pub(crate) fn reserve(
        &self,
        key: Key,
        now: Instant,
        not_before: Instant,
        deadline: Instant,
    ) -> Reserve {
        let mut inner = lock(&self.inner);
        if inner.next_sweep.is_none_or(|t| t <= now) {
            inner.next_sweep = Some(now + Duration::from_secs(1));
            let Inner {
                map,
                recent,
                waiting,
                dead,
                ..
            } = &mut *inner;
            map.retain(|_, lane| !idle(lane, now));
            recent.retain(|_, (_, at)| now.saturating_duration_since(*at) < WIDEN_WITHIN);
            // The waiters of a forgotten lane go at once.
            waiting.retain(|k, _| map.contains_key(k));
            dead.retain(|k, _| map.contains_key(k));
            self.tracked.store(map.len(), Ordering::Relaxed);
        }
        let Inner { map, dead, .. } = &mut *inner;
        let Some(lane) = map.get_mut(&key) else {
            return Reserve::Unpaced;
        };
        if let Some(slot) = dead
            .get_mut(&key)
            .and_then(|dead| lane.revive(dead, now, not_before, deadline))
        {
            return Reserve::Slot(slot);
        }
        let before = *lane;
        let slot = lane.take(now, not_before);
        if slot.at > deadline {
            // A request that will not go takes no place and spends no budget.
            *lane = before;
            return Reserve::TooLate(slot.at);
        }
        if lane.epoch != before.epoch {
            inner.moved(key);
        }
        Reserve::Slot(slot)
    }

    /// When a request for `key` goes, `not_before` at the earliest (the gate's time), by its
    /// places in the lanes of its key and scope (taken at its first call): `Ok(None)` now,
    /// `Ok(Some((due, moved)))` at `due` or when a lane's schedule moves, and `Err(left)` when
    /// that is past `deadline` (its places are given back).
    #[allow(clippy::type_complexity)]
    pub(crate) fn turn(
        &self,
        key: Key,
        turn: &mut Turn,
        now: Instant,
        not_before: Instant,
        deadline: Instant,
    ) -> Result<Option<(Instant, Option<Waiter>)>, Duration> {
        for (lane, scope) in [(Some(key), false), (turn.scope_key, true)] {
            let place = if scope {
                &mut turn.scope
            } else {
                &mut turn.path
            };
            if let Some(lane) = lane
                && place.is_none()
            {
                match self.reserve(lane, now, not_before, deadline) {
                    Reserve::Unpaced => {}
                    Reserve::Slot(s) => *place = Some(s),
                    Reserve::TooLate(due) => {
                        self.give_back(key, turn);
                        return Err(due - now);
                    }
                }
            }
        }
        let (mut due, mut moved) = (not_before, None);
        if let Some(s) = turn.path {
            let (at, waiter) = self.due_watched(key, s, now);
            (due, moved) = (due.max(at), waiter);
        }
        if let (Some(scope), Some(s)) = (turn.scope_key, turn.scope) {
            let (at, waiter) = self.due_watched(scope, s, now);
            if at > due {
                (due, moved) = (at, waiter);
            }
        }
        if due <= now {
            if let Some(s) = turn.path {
                self.went(key, s);
            }
            if let (Some(scope), Some(s)) = (turn.scope_key, turn.scope) {
                self.went(scope, s);
            }
            return Ok(None);
        }
        if due > deadline {
            self.give_back(key, turn);
            return Err(due - now);
        }
        Ok(Some((due, moved)))
    }

    /// The request will not go (too late, or given up): its places in any budget are given
    /// back, and it holds none.
    pub(crate) fn give_back(&self, key: Key, turn: &mut Turn) {
        for k in turn.landing(key).into_iter().flatten() {
            self.landed(k);
        }
        let places = [(Some(key), turn.path), (turn.scope_key, turn.scope)];
        if places.iter().any(|(_, slot)| slot.is_some()) {
            let mut inner = lock(&self.inner);
            let Inner { map, dead, .. } = &mut *inner;
            for (key, slot) in places {
                if let (Some(key), Some(slot)) = (key, slot)
                    && let Some(lane) = map.get(&key)
                    && slot.ticket >= lane.first_waiting()
                {
                    bury(
                        dead.entry(key).or_default(),
                        slot.ticket,
                        lane.first_waiting(),
                    );
                }
            }
        }
        *turn = Turn::new(turn.scope_key, turn.once);
    }

    /// When `slot` of `key`'s lane is due now (`now` when the lane was forgotten), and,
    /// when that is later, a subscription that wakes when the lane's schedule moves.
    pub(crate) fn due_watched(
        &self,
        key: Key,
        slot: Slot,
        now: Instant,
    ) -> (Instant, Option<Waiter>) {
        let mut inner = lock(&self.inner);
        let due = match inner.map.get(&key) {
            Some(lane) if lane.epoch == slot.epoch => slot.at,
            Some(lane) => lane.due(slot.ticket),
            None => return (now, None),
        };
        if due <= now {
            return (due, None);
        }
        let waiter = inner
            .waiting
            .entry(key)
            .or_insert_with(Waiters::new)
            .subscribe();
        (due, Some(waiter))
    }

    /// `slot`'s request went: the tickets before it no longer hold the schedule back.
    pub(crate) fn went(&self, key: Key, slot: Slot) {
        if let Some(lane) = lock(&self.inner).map.get_mut(&key) {
            lane.gone = lane.gone.max(slot.ticket + 1);
        }
    }

    /// `turn`'s request went at `now` as the probe, which any request may be, out of turn:
    /// the tickets before it still wait, so it moves the schedule on only when it was the
    /// first waiting.
    pub(crate) fn probed(&self, key: Key, turn: &Turn, now: Instant) {
        if let Some(lane) = lock(&self.inner).map.get_mut(&key) {
            lane.probe_went = Some(now);
            if let Some(slot) = turn.path
                && lane.first_waiting() == slot.ticket
            {
                lane.gone = lane.gone.max(slot.ticket + 1);
            }
        }
    }

    /// `key`'s gate opened at `now` (its probe was answered): the tickets still waiting go
    /// from now, at the pace, not all at once for the time the probe was out; the first one
    /// no sooner than the pace's gap after the probe (a server that allows no burst rejects
    /// a request right behind it).
    pub(crate) fn opened(&self, key: Key, now: Instant) {
        let mut inner = lock(&self.inner);
        if let Some(lane) = inner.map.get_mut(&key) {
            lane.pace.reopened(now);
            if let Some((issued, since)) = lane.outage_since.take() {
                // The rate at which the callers asked while the path was out.
                // The first [`DOUBLING`] doubles freely; then the callers' rate caps it.
                let closed = now.saturating_duration_since(since).as_secs_f64().max(0.1);
                let asked = lane.issued.saturating_sub(issued) as f64 / closed;
                lane.pace = Pace::ramp(now, RAMP_HEADROOM * asked.max(INITIAL_RATE));
                lane.joins = Joins::new(now, lane.issued - lane.first_waiting());
            }
            let at = match lane.probe_went.take() {
                Some(went) => now.max(went + lane.pace.interval(now)),
                None => now,
            };
            let first = lane.first_waiting();
            lane.rebase(at, first);
            lane.new_epoch();
            inner.moved(key);
        }
    }

    /// A response for `key`'s scope announced `quota`, `reset` already bounded by the layer
    /// (the request that carried it has landed). Makes the scope's lane when the quota is the
    /// first one seen.
    pub(crate) fn announced(&self, key: Key, now: Instant, quota: &Quota, reset: Duration) {
        let Some(remaining) = quota.remaining else {
            return;
        };
        if self.max.load(Ordering::Relaxed) == 0 {
            return;
        }
        let ends = now + reset;
        let mut inner = lock(&self.inner);
        let map = &mut inner.map;
        if !map.contains_key(&key) {
            self.make_room(map, now);
            map.insert(key, Lane::new(now, now));
            self.tracked.store(map.len(), Ordering::Relaxed);
        }
        let Some(lane) = map.get_mut(&key) else {
            return;
        };
        lane.touched = now;
        let window = quota.window.unwrap_or(reset);
        match &mut lane.budget {
            Some(b) => b.announced(now, remaining, ends, quota.limit, window),
            None => {
                lane.budget = Some(Budget::new(now, remaining, ends, quota.limit, window));
                let first = lane.first_waiting();
                if lane.due(first) > now {
                    lane.rebase(now, first);
                    inner.moved(key);
                }
            }
        }
    }

    /// A request that took a slot of `key`'s budget is no longer in flight.
    pub(crate) fn landed(&self, key: Key) {
        if let Some(b) = lock(&self.inner)
            .map
            .get_mut(&key)
            .and_then(|l| l.budget.as_mut())
        {
            b.landed();
        }
    }

    /// `key`, of `scope` (its authority), was rejected and its gate closed until `until`.
    /// A second key of the scope rejected within [`WIDEN_WITHIN`] (or a scope that already
    /// has a lane) closes the scope's lane too.
    pub(crate) fn scope_rejected(&self, scope: Key, key: Key, now: Instant, until: Instant) {
        let widen = {
            let mut inner = lock(&self.inner);
            if let Some(lane) = inner.map.get_mut(&scope) {
                if lane.widened.is_some() {
                    lane.widened = Some(now);
                }
                true
            } else {
                let seen = inner.recent.get(&scope).copied();
                match seen {
                    Some((other, at))
                        if other != key && now.saturating_duration_since(at) < WIDEN_WITHIN =>
                    {
                        true
                    }
                    _ => {
                        if inner.recent.len() >= self.max.load(Ordering::Relaxed) {
                            inner.recent.clear();
                        }
                        inner.recent.insert(scope, (key, now));
                        false
                    }
                }
            }
        };
        if !widen {
            return;
        }
        let existed = !self.is_empty() && lock(&self.inner).map.contains_key(&scope);
        self.rejected(scope, now, None, until, true);
        if !existed && let Some(lane) = lock(&self.inner).map.get_mut(&scope) {
            tracing::debug!(scope = %scope, "rate-limit gate: rejections on several paths, the limit is the whole server's");
            lane.widened = Some(now);
        }
    }

    /// A request of `key`'s lane got an answer that is not a rate limit.
    pub(crate) fn succeeded(&self, key: Key, now: Instant) {
        if let Some(lane) = lock(&self.inner).map.get_mut(&key) {
            lane.accepted.count(now);
        }
    }

    /// `key`'s gate closed until `until` (it was closed until `before`, or open). Every slot
    /// not yet used moves back past `until`. With `counts` (the first rejection, or the
    /// probe's), the pace learns from what the server took (see [`Pace::rejected`]); a path
    /// without a lane gets one, starting slowly.
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
        let mut inner = lock(&self.inner);
        let map = &mut inner.map;
        if let Some(lane) = map.get_mut(&key) {
            // A scope's lane has no gate of its own: it remembers its last closure, so
            // rejections of several of its keys at once close it once, not once each.
            let counts = counts && (before.is_some() || lane.closed_until.is_none_or(|u| u <= now));
            lane.closed_until = Some(lane.closed_until.map_or(until, |u| u.max(until)));
            lane.touched = now;
            if counts {
                lane.pace.rejected(now, &lane.accepted, until);
                lane.accepted.reopens(until);
            }
            if counts || lane.next < until {
                let first = lane.first_waiting();
                lane.rebase(until, first);
                lane.new_epoch();
            }
            return;
        }
        self.make_room(map, now);
        let mut lane = Lane::new(now, until);
        lane.closed_until = Some(until);
        map.insert(key, lane);
        self.tracked.store(map.len(), Ordering::Relaxed);
    }

    /// `key` closed at `now` for an outage, until `until`. An outage says nothing of the
    /// server's capacity: the lane ramps up from a slow start when it reopens (see [`Joins`]).
    pub(crate) fn outage(&self, key: Key, now: Instant, until: Instant) {
        if let Some(lane) = lock(&self.inner).map.get_mut(&key) {
            lane.pace = Pace::slow_start(until);
            // Tickets taken from now on follow the slow start, not the pace it replaced.
            lane.new_epoch();
            if lane.outage_since.is_none() {
                lane.outage_since = Some((lane.issued, now));
            }
        }
    }

    /// Drops the lanes idle for [`LINGER`], then, when still full, the least recently used.
    fn make_room(&self, map: &mut KeyMap<Lane>, now: Instant) {
        let max = self.max.load(Ordering::Relaxed);
        if map.len() < max {
            return;
        }
        map.retain(|_, lane| !idle(lane, now));
        if map.len() < max {
            return;
        }
        // Still full: forget the least recently used tenth at once, so a flood of new keys
        // costs one pass per tenth of the bound, not one per key.
        let mut by_use: Vec<(Instant, Key)> = map.iter().map(|(k, l)| (l.touched, *k)).collect();
        let drop = (map.len() + 1 - max).max(max / 10).min(by_use.len());
        if drop > 0 && drop < by_use.len() {
            by_use.select_nth_unstable(drop - 1);
        }
        for (_, key) in by_use.into_iter().take(drop) {
            map.remove(&key);
        }
    }
}

impl Lane {
    /// A lane made at `now` whose first ticket is due at `first`, starting slowly.
    fn new(now: Instant, first: Instant) -> Lane {
        let pace = Pace::slow_start(first);
        let accepted = Accepted::new(first);
        Lane {
            pace,
            budget: None,
            accepted,
            joins: Joins::new(now, 0),
            issued: 0,
            gone: 0,
            base: 0,
            base_at: first,
            next: first,
            epoch: 0,
            touched: now,
            widened: None,
            closed_until: None,
            outage_since: None,
            probe_went: None,
        }
    }

    /// Takes the next ticket, due at `not_before` at the earliest. Each ticket is due one
    /// interval of the pace of its own time after the one before (so a climbing pace is
    /// followed ticket by ticket), or now when the lane was idle.
    fn take(&mut self, now: Instant, not_before: Instant) -> Slot {
        self.touched = now;
        let first = self.first_waiting();
        if let Some(cap) = self
            .joins
            .join(now, self.issued - first, self.pace.rate(now))
        {
            // A ramp follows its callers' demand: the waiting tickets move with the new cap,
            // the first of them keeping its time.
            let at = self.due(first).max(now);
            if self.pace.recap(now, cap) {
                self.rebase(at, first);
                self.new_epoch();
            }
        }
        if self.next <= now && not_before <= now && self.pace.unramp(now) {
            // The backlog of an outage is gone: the cap holds no longer.
            self.rebase(now, self.issued);
            self.new_epoch();
        }
        if self.next < not_before && self.first_waiting() < self.issued {
            // The gate is closed past the tickets still waiting: they move behind it, in order.
            let first = self.first_waiting();
            self.rebase(not_before, first);
            self.new_epoch();
        }
        let ticket = self.issued;
        self.issued += 1;
        let budgeted = self.budget.is_some();
        let mut at = self.next.max(now).max(not_before);
        self.next = match &mut self.budget {
            Some(b) => {
                let next;
                (at, next) = b.take(at);
                next
            }
            None => at + self.pace.interval(at),
        };
        Slot {
            ticket,
            at,
            epoch: self.epoch,
            budgeted,
        }
    }

    /// A dead ticket for a caller at `now`, when the schedule has one due from then (and
    /// from `not_before`, the gate's time) by `deadline`: the first of them. The dead tickets
    /// already past are dropped. Not for a lane paced by a budget, or reopening after an
    /// outage, whose counts follow every caller.
    fn revive(
        &mut self,
        dead: &mut BTreeMap<u64, u64>,
        now: Instant,
        not_before: Instant,
        deadline: Instant,
    ) -> Option<Slot> {
        if self.budget.is_some() || self.outage_since.is_some() || not_before > now {
            return None;
        }
        let first = self.first_waiting();
        while let Some((&start, &end)) = dead.iter().next() {
            dead.remove(&start);
            // The first ticket of the range still to come: due times grow with the ticket.
            let (mut lo, mut hi) = (start.max(first), end);
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                if self.due(mid) < now {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            if lo >= end {
                continue;
            }
            let at = self.due(lo);
            if at > deadline {
                dead.insert(lo, end);
                return None;
            }
            if lo + 1 < end {
                dead.insert(lo + 1, end);
            }
            self.touched = now;
            return Some(Slot {
                ticket: lo,
                at,
                epoch: self.epoch,
                budgeted: false,
            });
        }
        None
    }

    /// Every waiting ticket moves with the schedule (from `base` at `base_at`, one interval of
    /// the pace of that time apart); the next ticket comes after them.
    fn new_epoch(&mut self) {
        self.epoch = self.epoch.wrapping_add(1);
        self.next = self.due(self.issued);
    }

    /// When `ticket` is due by the schedule: the schedule's base for the tickets before it
    /// (they are late).
    fn due(&self, ticket: u64) -> Instant {
        let after = self
            .pace
            .after(self.base_at, ticket.saturating_sub(self.base));
        self.base_at
            .checked_add(after)
            .unwrap_or(self.base_at + crate::retry_after::MAX_HINT)
    }

    /// The first ticket that has not gone.
    fn first_waiting(&self) -> u64 {
        self.gone.max(self.base).min(self.issued)
    }

    /// `ticket` is due at `at`, the ones after it at the pace.
    fn rebase(&mut self, at: Instant, ticket: u64) {
        self.base = ticket;
        self.base_at = at;
    }
}

/// Adds `ticket` to the ranges of dead tickets, merging neighbours, and drops the ranges
/// already past (`first` is the first ticket still waiting).
fn bury(dead: &mut BTreeMap<u64, u64>, ticket: u64, first: u64) {
    while let Some(past) = dead.first_entry()
        && *past.get() <= first
    {
        past.remove();
    }
    let before = dead
        .range(..=ticket)
        .next_back()
        .map(|(&start, &end)| (start, end));
    if before.is_some_and(|(_, end)| end > ticket) {
        return;
    }
    let joins_before = before
        .filter(|&(_, end)| end == ticket)
        .map(|(start, _)| start);
    let joins_after = dead.contains_key(&(ticket + 1));
    if joins_before.is_none() && !joins_after && dead.len() >= MAX_DEAD_RANGES {
        return;
    }
    let end = match joins_after {
        true => dead.remove(&(ticket + 1)).unwrap_or(ticket + 1),
        false => ticket + 1,
    };
    dead.insert(joins_before.unwrap_or(ticket), end);
}

/// Rejections on two keys of one scope this close together widen the limit to the scope.
pub(crate) const WIDEN_WITHIN: Duration = Duration::from_secs(1);

/// A widened scope narrows again after this long without a rejection.
pub(crate) const QUIET: Duration = Duration::from_secs(30);

/// Unused since [`LINGER`], and no slot still to come; or widened and quiet for [`QUIET`].
fn idle(lane: &Lane, now: Instant) -> bool {
    let unused = lane
        .touched
        .max(lane.next)
        .checked_add(LINGER)
        .is_some_and(|t| t <= now);
    let quiet = lane
        .widened
        .and_then(|at| at.max(lane.next).checked_add(QUIET))
        .is_some_and(|t| t <= now);
    unused || quiet
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_tickets_merge_into_ranges_in_any_order() {
        let mut dead = BTreeMap::new();
        for t in [5, 3, 4, 9, 7, 8, 4, 1] {
            bury(&mut dead, t, 0);
        }
        assert_eq!(
            dead.clone().into_iter().collect::<Vec<_>>(),
            [(1, 2), (3, 6), (7, 10)]
        );
        // The ranges the queue has passed are dropped.
        bury(&mut dead, 12, 6);
        assert_eq!(dead.into_iter().collect::<Vec<_>>(), [(7, 10), (12, 13)]);
        let mut full = BTreeMap::new();
        for t in 0..(2 * MAX_DEAD_RANGES as u64) {
            bury(&mut full, 2 * t, 0);
        }
        assert_eq!(full.len(), MAX_DEAD_RANGES);
        // A neighbour still merges into a full map.
        bury(&mut full, 1, 0);
        assert_eq!(full.len(), MAX_DEAD_RANGES - 1);
    }
    use crate::rate_limit::pace::INITIAL_RATE;

    impl Lanes {
        /// No lane, at most `max` of them.
        pub(crate) fn new(max: usize) -> Lanes {
            Lanes::with_filter(max, Arc::new(KeyFilter::new(max)))
        }

        /// When `slot` of `key`'s lane is due now; `now` when the lane was forgotten.
        pub(crate) fn due(&self, key: Key, slot: Slot, now: Instant) -> Instant {
            self.due_watched(key, slot, now).0
        }

        /// Drops the lanes idle for [`LINGER`].
        pub(crate) fn sweep(&self, now: Instant) {
            if self.is_empty() {
                return;
            }
            let mut inner = lock(&self.inner);
            inner.map.retain(|_, lane| !idle(lane, now));
            self.tracked.store(inner.map.len(), Ordering::Relaxed);
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// A ticket with no deadline to speak of.
    fn take(lanes: &Lanes, key: Key, now: Instant, not_before: Instant) -> Option<Slot> {
        match lanes.reserve(key, now, not_before, now + Duration::from_secs(3600)) {
            Reserve::Slot(s) => Some(s),
            Reserve::Unpaced => None,
            Reserve::TooLate(at) => panic!("too late: {at:?}"),
        }
    }

    fn gap() -> Duration {
        Duration::from_secs_f64(1.0 / INITIAL_RATE)
    }

    #[test]
    fn demand_that_keeps_up_doubles_the_ramp_and_a_shrinking_queue_caps_it() {
        let t0 = Instant::now();
        let over = DOUBLING;
        // A worker pool: 32 waiting, 10 joined as 10 went, at a pace of 40/s: the callers
        // kept up, so they ask for at least the pace.
        let mut pool = Joins::new(t0, 32);
        for _ in 0..10 {
            assert_eq!(pool.join(t0, 32, 40.0), None);
        }
        assert_eq!(pool.join(t0 + over, 32, 40.0), Some(RAMP_HEADROOM * 40.0));
        // An open loop draining its backlog: 10 joined while 20 went; they ask at 40/s.
        let mut open = Joins::new(t0, 500);
        for _ in 0..10 {
            open.join(t0, 500, 80.0);
        }
        assert_eq!(open.join(t0 + over, 490, 80.0), Some(RAMP_HEADROOM * 40.0));
        // An open loop whose backlog still grows asks faster than the pace.
        let mut growing = Joins::new(t0, 100);
        for _ in 0..20 {
            growing.join(t0, 100, 20.0);
        }
        assert_eq!(
            growing.join(t0 + over, 115, 20.0),
            Some(RAMP_HEADROOM * 80.0)
        );
    }

    #[test]
    fn a_schedule_that_moves_wakes_the_requests_waiting_in_its_lane() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        lanes.rejected(k, t0, None, t0 + MS(1000), true);
        lanes.outage(k, t0, t0 + MS(1000));
        let first = take(&lanes, k, t0, t0 + MS(1000)).unwrap();
        let second = take(&lanes, k, t0, t0 + MS(1000)).unwrap();
        let (due, waiter) = lanes.due_watched(k, second, t0);
        assert!(due > t0 + MS(1000));
        let waiter = waiter.expect("a ticket to wait for");
        assert!(!waiter.woken());
        // Reopened: every waiting ticket moves, and its request looks again.
        lanes.went(k, first);
        lanes.opened(k, t0 + MS(1000));
        assert!(waiter.woken());
        // A ticket due now needs no subscription.
        let now = lanes.due(k, second, t0 + MS(1000));
        assert_eq!(lanes.due_watched(k, second, now).1.map(|w| w.woken()), None);
    }

    #[test]
    fn an_unpaced_path_has_no_slot() {
        let lanes = Lanes::new(10);
        let t0 = Instant::now();
        assert!(lanes.is_empty());
        assert_eq!(take(&lanes, Key::of("k"), t0, t0), None);
    }

    #[test]
    fn tickets_are_paced_and_first_come_first_served() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        let reopen = t0 + MS(1000);
        lanes.rejected(k, t0, None, reopen, true);
        assert_eq!(lanes.len(), 1);
        // Arrivals while closed queue behind the reopening, one pace interval apart.
        let due: Vec<Instant> = (0..5)
            .map(|i| take(&lanes, k, t0 + MS(i), reopen).unwrap())
            .map(|s| lanes.due(k, s, t0))
            .collect();
        assert_eq!(due[0], reopen);
        for pair in due.windows(2) {
            // First come, first served, at the pace (which climbs).
            assert!(pair[1] > pair[0] && pair[1] - pair[0] <= gap(), "{pair:?}");
        }
        // Other keys are not paced.
        assert_eq!(take(&lanes, Key::of("j"), t0, t0), None);
    }

    #[test]
    fn closing_again_moves_every_waiting_ticket_in_order() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        lanes.rejected(k, t0, None, t0 + MS(1000), true);
        let probe = take(&lanes, k, t0, t0 + MS(1000)).unwrap();
        let a = take(&lanes, k, t0, t0 + MS(1000)).unwrap();
        let b = take(&lanes, k, t0, t0 + MS(1000)).unwrap();
        // The probe goes at 1 s and is rejected: closed until 3 s.
        let now = t0 + MS(1000);
        lanes.went(k, probe);
        lanes.rejected(k, now, Some(now), t0 + MS(3000), true);
        let (due_a, due_b) = (lanes.due(k, a, now), lanes.due(k, b, now));
        assert_eq!(
            due_a,
            t0 + MS(3000),
            "the first waiting ticket goes when the gate opens"
        );
        assert!(due_b > due_a);
        // A later arrival queues behind both.
        let c = take(&lanes, k, now, t0 + MS(3000)).unwrap();
        assert!(lanes.due(k, c, now) > due_b);
        // A straggler's rejection that does not extend the gate moves nothing.
        lanes.rejected(k, now, Some(t0 + MS(3000)), t0 + MS(2000), false);
        assert_eq!(lanes.due(k, a, now), due_a);
    }

    #[test]
    fn a_slow_probe_does_not_leave_a_herd() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        lanes.rejected(k, t0, None, t0 + MS(1000), true);
        let probe = take(&lanes, k, t0, t0 + MS(1000)).unwrap();
        let waiting: Vec<Slot> = (0..10)
            .map(|_| take(&lanes, k, t0, t0 + MS(1000)).unwrap())
            .collect();
        lanes.went(k, probe);
        // The probe's answer comes 20 s later: the waiters go from then, at the pace.
        let answered = t0 + MS(21_000);
        lanes.opened(k, answered);
        let due: Vec<Instant> = waiting.iter().map(|s| lanes.due(k, *s, answered)).collect();
        assert_eq!(due[0], answered);
        for pair in due.windows(2) {
            assert!(pair[1] > pair[0]);
        }
    }

    #[test]
    fn a_quick_probe_answer_leaves_the_next_request_its_gap() {
        // A server that allows no burst rejects a request right behind the probe: the first
        // waiting ticket goes a pace's gap after the probe went, not when its answer came.
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        let reopen = t0 + MS(1000);
        lanes.rejected(k, t0, None, reopen, true);
        let waiting = take(&lanes, k, t0, reopen).unwrap();
        lanes.probed(k, &Turn::default(), reopen);
        let answered = reopen + MS(1);
        lanes.opened(k, answered);
        assert_eq!(lanes.due(k, waiting, answered), reopen + gap());
    }

    #[test]
    fn an_idle_lane_saves_no_burst() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("k"), Instant::now());
        lanes.rejected(k, t0, None, t0, true);
        let later = t0 + MS(10_000);
        let a = take(&lanes, k, later, later).unwrap();
        let b = take(&lanes, k, later, later).unwrap();
        assert_eq!(lanes.due(k, a, later), later);
        assert!(lanes.due(k, b, later) > later);
    }

    #[test]
    fn an_announced_budget_is_spread_and_counted_down() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("scope"), Instant::now());
        let quota = Quota {
            remaining: Some(4),
            limit: Some(10),
            window: Some(Duration::from_secs(1)),
            reset: Some(MS(500)),
        };
        lanes.announced(k, t0, &quota, MS(500));
        let due: Vec<Instant> = (0..6)
            .map(|_| take(&lanes, k, t0, t0).unwrap())
            .map(|s| {
                assert!(s.budgeted);
                lanes.due(k, s, t0)
            })
            .collect();
        // Four spread over the half second left, then the window's end.
        assert_eq!(due[0], t0);
        assert!(due[1] > due[0] && due[3] < t0 + MS(500));
        assert_eq!(due[4], t0 + MS(500));
        assert!(due[5] > due[4]);
        // The server's count, less what is in flight, is the truth.
        for _ in 0..6 {
            lanes.landed(k);
        }
        let zero = Quota {
            remaining: Some(0),
            ..quota
        };
        lanes.announced(k, t0 + MS(100), &zero, MS(400));
        let s = take(&lanes, k, t0 + MS(100), t0).unwrap();
        assert!(lanes.due(k, s, t0) >= t0 + MS(500));
    }

    #[test]
    fn rejections_on_two_keys_of_a_scope_widen_it() {
        let lanes = Lanes::new(10);
        let (scope, t0) = (Key::of("origin"), Instant::now());
        lanes.scope_rejected(scope, Key::of("a"), t0, t0 + MS(1000));
        assert!(
            take(&lanes, scope, t0, t0).is_none(),
            "one key: the path's limit"
        );
        lanes.scope_rejected(scope, Key::of("a"), t0 + MS(10), t0 + MS(1000));
        assert!(take(&lanes, scope, t0, t0).is_none(), "the same key again");
        lanes.scope_rejected(scope, Key::of("b"), t0 + MS(20), t0 + MS(1020));
        let s = take(&lanes, scope, t0 + MS(20), t0).unwrap();
        assert!(
            lanes.due(scope, s, t0) >= t0 + MS(1020),
            "the whole scope waits"
        );
        // Quiet for long enough, it narrows again.
        let quiet = t0 + MS(1020) + QUIET + Duration::from_secs(2);
        assert!(take(&lanes, scope, quiet, quiet).is_none());
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
        assert!(take(&lanes, Key::of(&9u32), t0, t0).is_some());
        assert!(take(&lanes, Key::of(&0u32), t0, t0).is_none());
        lanes.sweep(t0 + LINGER + Duration::from_secs(2));
        assert!(lanes.is_empty());
        let none = Lanes::new(0);
        none.rejected(Key::of("k"), t0, None, t0, true);
        assert!(none.is_empty());
    }

    #[test]
    fn a_budget_keeps_each_tickets_time_and_order() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("scope"), Instant::now());
        let quota = Quota {
            remaining: Some(10),
            limit: Some(10),
            window: Some(Duration::from_secs(10)),
            reset: Some(Duration::from_secs(10)),
        };
        lanes.announced(k, t0, &quota, Duration::from_secs(10));
        let first = take(&lanes, k, t0, t0).unwrap();
        let second = take(&lanes, k, t0, t0).unwrap();
        let (a, b) = (lanes.due(k, first, t0), lanes.due(k, second, t0));
        // Later arrivals do not move the earlier tickets.
        for i in 1..20 {
            take(&lanes, k, t0 + MS(i * 200), t0).unwrap();
        }
        assert_eq!(lanes.due(k, first, t0), a);
        assert_eq!(lanes.due(k, second, t0), b);
        assert!(b > a);
    }

    #[test]
    fn a_ticket_past_the_deadline_is_not_taken() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("scope"), Instant::now());
        let zero = Quota {
            remaining: Some(0),
            limit: Some(5_000),
            window: Some(Duration::from_secs(3_000)),
            reset: Some(Duration::from_secs(3_000)),
        };
        lanes.announced(k, t0, &zero, Duration::from_secs(3_000));
        // A thousand requests that cannot wait that long take nothing...
        for _ in 0..1_000 {
            let r = lanes.reserve(k, t0, t0, t0 + Duration::from_secs(30));
            assert_eq!(r, Reserve::TooLate(t0 + Duration::from_secs(3_000)));
        }
        // ...so the first that can wait goes when the window ends, and the next one soon after.
        let s = take(&lanes, k, t0, t0).unwrap();
        assert_eq!(lanes.due(k, s, t0), t0 + Duration::from_secs(3_000));
    }

    #[test]
    fn a_budget_follows_the_server_window_not_its_rounded_reset() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("scope"), Instant::now());
        let q = |remaining| Quota {
            remaining: Some(remaining),
            limit: Some(4),
            window: Some(Duration::from_secs(1)),
            reset: Some(Duration::from_secs(1)),
        };
        // The server's window turns at 300 ms, but a whole-second reset says up to 1 s.
        lanes.announced(k, t0, &q(3), Duration::from_secs(1));
        // Answers to concurrent requests of the first window, in any order: never a raise.
        lanes.announced(k, t0, &q(1), Duration::from_secs(1));
        lanes.announced(k, t0, &q(2), Duration::from_secs(1));
        let first = take(&lanes, k, t0, t0).unwrap();
        assert_eq!(lanes.due(k, first, t0), t0);
        // One left: the next goes at the local end of the window, which renews it.
        let next = take(&lanes, k, t0, t0).unwrap();
        assert_eq!(lanes.due(k, next, t0), t0 + Duration::from_secs(1));
        lanes.landed(k);
        // At 300 ms an answer shows the server's window turned: the local one moves back to
        // the server's (its end is at most a second from now, not from the local renewal).
        let turn = t0 + MS(300);
        lanes.announced(k, turn, &q(3), Duration::from_secs(1));
        // Two left (one in flight): the third goes when the server's window ends, at 1.3 s,
        // not at 2 s.
        let mut last = turn;
        for _ in 0..3 {
            let s = take(&lanes, k, turn, turn).unwrap();
            last = lanes.due(k, s, turn);
        }
        assert_eq!(last, turn + Duration::from_secs(1));
        // An answer from before the local window began, with a lower count, changes nothing of
        // it; none raises the count without a turn.
        let lanes = Lanes::new(10);
        lanes.announced(k, t0, &q(1), Duration::from_secs(1));
        let a = take(&lanes, k, t0, t0).unwrap();
        let b = take(&lanes, k, t0, t0).unwrap(); // renews at 1 s
        assert_eq!(lanes.due(k, a, t0), t0);
        assert_eq!(lanes.due(k, b, t0), t0 + Duration::from_secs(1));
        lanes.announced(k, t0 + MS(10), &q(0), Duration::from_secs(1));
        let c = take(&lanes, k, t0 + MS(10), t0).unwrap();
        assert!(lanes.due(k, c, t0) > t0 + Duration::from_secs(1));
    }

    #[test]
    fn absurd_announced_counts_do_not_panic() {
        let lanes = Lanes::new(10);
        let (k, t0) = (Key::of("scope"), Instant::now());
        for (remaining, limit) in [
            (u64::MAX, Some(u64::MAX)),
            (u64::from(u32::MAX), None),
            (0, Some(u64::MAX)),
        ] {
            let quota = Quota {
                remaining: Some(remaining),
                limit,
                window: Some(crate::retry_after::MAX_HINT),
                reset: Some(Duration::ZERO),
            };
            lanes.announced(k, t0, &quota, Duration::ZERO);
            for _ in 0..3 {
                let s = take(&lanes, k, t0, t0).unwrap();
                let _ = lanes.due(k, s, t0);
                lanes.landed(k);
            }
        }
    }
}
