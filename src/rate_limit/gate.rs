//! The gate's mechanism, [`RateLimitGates`]: closed, open, probe and waiters, for every key.
//! It decides nothing itself: it puts the rules of one gate, the store and the policies
//! together, and speaks tokio's clock (so paused-clock tests hold).

use super::{
    Key,
    filter::KeyFilter,
    health::Health,
    lanes::{Lanes, Turn},
    notify::Waiter,
    policy::{self, Admit, Policy, ProbeId},
    store::{GateStore, Lease, MemoryStore},
};
use crate::{backoff::Backoff, contract::OutageRule, error::Error, quota::Quota};
use std::{fmt, sync::Arc, time::Duration};
use tokio::time::Instant;

/// Tokio's clock (paused in tests) as the store's instants.
fn clock() -> std::time::Instant {
    Instant::now().into_std()
}

/// The gates of every rate-limited key. `Clone` shares: give the same map to two stacks with
/// [`RateLimitBackoffLayer::gates`](super::RateLimitBackoffLayer::gates) and a rate limit seen
/// by one closes the path for both. Only closed and paced keys are stored, at most
/// [`max_keys`](Self::max_keys); forgetting a key fails open, never shut.
///
/// ```
/// use tower_api_retry::rate_limit::{RateLimitBackoffLayer, RateLimitGates};
///
/// let gates = RateLimitGates::with_max_keys(1_000);
/// let for_reads = RateLimitBackoffLayer::new().gates(gates.clone());
/// let for_writes = RateLimitBackoffLayer::new().fail_fast().gates(gates.clone());
/// assert!(gates.is_empty() && gates.max_keys() == 1_000);
/// # let _ = (for_reads, for_writes);
/// ```
#[derive(Clone)]
pub struct RateLimitGates {
    /// This process's view of the closed keys: what every request reads.
    pub(super) view: Arc<MemoryStore>,
    /// Where changes go: the view itself, or a store shared by a fleet.
    pub(super) store: Arc<dyn GateStore>,
    pub(super) lanes: Arc<Lanes>,
    pub(super) health: Arc<Health>,
    /// The requests that may be sent twice waiting at each key: the probes it prefers.
    pub(super) repeatable: Arc<Repeatable>,
}

/// What a request arriving at its key's gate does.
pub(crate) enum Check {
    /// Send: as the key's probe when its time is up and nobody probes it (`Some`).
    Go(Option<ProbeId>),
    /// The key's time is up and this request holds the local probe role, but the gates are
    /// shared: the fleet says whether it may go.
    Lease(ProbeId, Lease),
    /// Wait for a change of the key (when closed) or of its lane's schedule (when the
    /// request holds a ticket), or until `wake` (the gate's time, the request's slot, or the
    /// deadline).
    Wait {
        changed: Option<Waiter>,
        moved: Option<Waiter>,
        wake: Instant,
    },
    /// The gate will not open before the deadline: fail with the time left; at once when
    /// the request's retry schedule is spent (`true`: see [`RateLimitGates::check`]).
    Fail(Duration, bool),
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
            .field("store", &self.store)
            .finish()
    }
}

impl RateLimitGates {
    /// An empty map tracking at most 10,000 keys.
    pub fn new() -> RateLimitGates {
        RateLimitGates::with_max_keys(10_000)
    }

    /// An empty map tracking at most `max_keys` keys (0: nothing is ever gated).
    pub fn with_max_keys(max_keys: usize) -> RateLimitGates {
        // The store and the lanes count their keys in one filter: a request whose key and
        // scope it has not heard of needs neither.
        let filter = Arc::new(KeyFilter::new(max_keys));
        let view = Arc::new(MemoryStore::with_filter(max_keys, filter.clone()));
        RateLimitGates {
            store: view.clone(),
            view,
            lanes: Arc::new(Lanes::with_filter(max_keys, filter)),
            health: Arc::new(Health::new(max_keys)),
            repeatable: Arc::default(),
        }
    }

    /// The most keys this map tracks.
    pub fn max_keys(&self) -> usize {
        self.view.max_keys()
    }

    /// Changes the most keys this map tracks, for every stack sharing it. A smaller bound
    /// takes effect at the next rejection.
    pub fn set_max_keys(&self, max_keys: usize) {
        self.view.set_max_keys(max_keys);
        self.lanes.set_max(max_keys);
        self.health.set_max(max_keys);
    }

    /// How many keys are tracked: closed, being probed, or expired and not yet dropped.
    pub fn len(&self) -> usize {
        self.view.len()
    }

    /// `true` when no key is tracked and no path is paced: every request goes straight
    /// through.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.view.is_empty() && self.lanes.is_empty()
    }

    /// `true` when neither `key` nor `scope` can be closed or paced: the request goes
    /// straight through, without a lock, however many other keys are closed.
    #[inline]
    pub(crate) fn passes(&self, key: Key, scope: Key) -> bool {
        let filter = self.view.filter();
        !filter.may_hold(key) && (scope == key || !filter.may_hold(scope))
    }

    /// How many paths are paced after a rate limit (see the [module docs](super)).
    pub fn paced(&self) -> usize {
        self.lanes.len()
    }

    /// How long `key`'s gate stays closed: `None` when it is open (not tracked), zero when its
    /// time is up (the next request is its probe, or the probe is in flight).
    pub fn time_left(&self, key: Key) -> Option<Duration> {
        let now = clock();
        self.view
            .peek(key)
            .map(|e| e.until.saturating_duration_since(now))
    }

    /// Decides what a request for `key` does now, given the latest time it may still be sent.
    /// A request still held for an outage at `stop` (the end of its retry schedule) fails
    /// then, as at a closed gate. `turn` is the request's place in the lanes of its key and of
    /// its quota's scope: taken at its first check, kept across checks.
    pub(crate) fn check(
        &self,
        key: Key,
        now: Instant,
        deadline: Instant,
        stop: Option<Instant>,
        turn: &mut Turn,
    ) -> Check {
        let stopped = stop.is_some_and(|stop| now >= stop) && self.health.is_out(key);
        if !stopped {
            return self.admit(key, now, deadline, turn);
        }
        match self.admit(key, now, now, turn) {
            Check::Wait { .. } => Check::Fail(self.time_left(key).unwrap_or_default(), true),
            Check::Fail(left, _) => Check::Fail(left, true),
            go => go,
        }
    }

    /// [`check`](Self::check), for a request that may wait until `deadline`.
    fn admit(&self, key: Key, now: Instant, deadline: Instant, turn: &mut Turn) -> Check {
        let (now, deadline) = (now.into_std(), deadline.into_std());
        loop {
            let entry = self.view.get(key, now);
            let defer = turn.once && entry.is_some() && self.repeatable.waits(key);
            let (not_before, changed) = match entry {
                None => (now, None),
                Some((entry, changed)) => match policy::admit(&entry, now, deadline, defer) {
                    Admit::WaitUntil(until) => (until, Some(changed)),
                    Admit::WaitForProbe { deadline } => {
                        let wake = Instant::from_std(deadline);
                        return Check::Wait {
                            changed: Some(changed),
                            moved: None,
                            wake,
                        };
                    }
                    Admit::Fail(left) => return Check::Fail(left, false),
                    Admit::Probe => match self.view.try_acquire_probe(key, now) {
                        Some(id) => match self.store.lease(key, id) {
                            Some(lease) => return Check::Lease(id, lease),
                            None => return Check::Go(Some(self.probe(key, id, turn))),
                        },
                        // Another request took the role (or the key changed) since the
                        // look-up: look again.
                        None => continue,
                    },
                },
            };
            return match self.lanes.turn(key, turn, now, not_before, deadline) {
                Err(left) => Check::Fail(left, false),
                Ok(None) => Check::Go(None),
                // A request that may be sent twice wakes when the key's time is up, its turn
                // or not: it may be the probe (see `PROBE_GRACE`).
                Ok(Some((due, moved))) => Check::Wait {
                    wake: Instant::from_std(match changed.is_some() && !turn.once {
                        true => due.min(not_before),
                        false => due,
                    }),
                    changed,
                    moved,
                },
            };
        }
    }

    /// The request goes as `key`'s probe.
    fn probe(&self, key: Key, id: ProbeId, turn: &Turn) -> ProbeId {
        tracing::debug!(key = %key, "rate-limit gate: sending the probe");
        self.lanes.probed(key, turn, clock());
        id
    }

    /// A response for a request of `scope` announced `quota`; the layer's `max_closed` bounds
    /// how long its reset holds the scope.
    pub(crate) fn announced(&self, scope: Key, quota: &Quota, max_closed: Duration) {
        let Some(reset) = quota.reset else {
            return;
        };
        let reset = reset.min(max_closed);
        // Announced windows are hints too: none holds a scope past `max_closed`.
        let quota = Quota {
            window: quota.window.map(|w| w.min(max_closed)),
            ..*quota
        };
        // A quota is the fleet's: the other processes hear of it, and each spends its share.
        self.store.announce(scope, &quota, reset);
        let share = quota.shared_by(self.store.sharers());
        self.lanes.announced(scope, clock(), &share, reset);
    }

    /// `key`'s gate closed for a rate limit, or an `outage`; `scope` is its authority, when
    /// another key. Closures of several keys of one scope at once are the scope's (see the
    /// [module docs](super)); after an outage its lane reopens on a slow start.
    pub(crate) fn scope_closed(&self, scope: Key, key: Key, outage: bool) {
        if scope != key
            && let Some(e) = self.view.peek(key)
        {
            let now = clock();
            self.lanes.scope_rejected(scope, key, now, e.until);
            if outage {
                self.lanes.outage(scope, now, e.until);
            }
        }
    }

    /// A request that counted against the budget of `key`'s scope is no longer in flight.
    pub(crate) fn landed(&self, key: Key) {
        self.lanes.landed(key);
    }

    /// A request for `key` got an answer that is not a rate limit: the server accepted it.
    #[inline]
    pub(crate) fn succeeded(&self, key: Key) {
        // Only a paced path counts what the server accepts: the filter rules the others out
        // without the lanes' lock.
        if !self.lanes.is_empty() && self.view.filter().may_hold(key) {
            self.lanes.succeeded(key, clock());
        }
        if self.health.may_watch(key) {
            self.health.answered(key, clock());
        }
    }

    /// A request for `key` got an [outage signal](crate::OutageSignals); `probe` is its
    /// probe id, if it probed; `hint` is the server's, already capped. Returns `false` when
    /// the signal is just an answer: the probe of a gate closed for a rate limit (or by
    /// another process), which any answer but a rate limit opens. On an open key, the signal
    /// is counted, and the key closes when `rule` says the signals are an outage.
    pub(crate) fn outage(
        &self,
        key: Key,
        hint: Option<Duration>,
        probe: Option<ProbeId>,
        backoff: &Backoff,
        rule: &OutageRule,
    ) -> bool {
        if probe.is_some() && !self.health.is_out(key) {
            return false;
        }
        if probe.is_none() && self.view.peek(key).is_none() {
            if !self.health.signalled(key, clock(), rule) {
                return true;
            }
            tracing::debug!(key = %key, "rate-limit gate: transient rejections, the path is out");
        }
        let policy = Policy::new(*backoff, Duration::MAX).for_outage();
        self.close(key, hint, probe, &policy);
        true
    }

    /// A rate limit came back for `key`. `probe` is the request's probe id, if it probed;
    /// `hint` is the server's, already capped by the layer.
    pub(crate) fn reject(
        &self,
        key: Key,
        hint: Option<Duration>,
        probe: Option<ProbeId>,
        backoff: &Backoff,
    ) {
        self.close(key, hint, probe, &Policy::new(*backoff, Duration::MAX));
    }

    /// Closes `key` (or extends its closure) for a rate limit, or, by an outage's `policy`,
    /// for an outage: then the lane ramps up from a slow start when the key reopens.
    fn close(&self, key: Key, hint: Option<Duration>, probe: Option<ProbeId>, policy: &Policy) {
        let now = clock();
        // The jitter sample, drawn only when a backoff delay may be needed.
        let unit = if hint.is_none() {
            rand::random::<f64>()
        } else {
            0.5
        };
        let tracked = self.view.peek(key);
        let by_probe = tracked.is_some_and(|e| policy::is_probe(&e, probe));
        let wait = match &tracked {
            Some(e) => match policy.reclose(e, now, hint, probe, unit) {
                Some(wait) => wait,
                None => return,
            },
            None => policy.close(hint, unit),
        };
        let Some(e) = self.store.close(key, now, wait, probe, policy.outage) else {
            return;
        };
        let counts = tracked.is_none() || by_probe;
        self.lanes
            .rejected(key, now, tracked.map(|t| t.until), e.until, counts);
        if policy.outage && counts {
            self.lanes.outage(key, now, e.until);
        }
        if tracked.is_none() {
            tracing::debug!(key = %key, delay = ?wait, "rate-limit gate: closed");
            crate::telemetry::gate_closed();
        } else if by_probe {
            tracing::debug!(key = %key, delay = ?wait, rejections = e.rejections, "rate-limit gate: probe rejected");
            crate::telemetry::probe("rejected");
        }
    }

    /// `key`'s probe got a response that is not a rate limit: open the gate, release waiters.
    pub(crate) fn open(&self, key: Key, probe: ProbeId) {
        if self.store.open(key, probe) {
            self.health.forget(key);
            self.lanes.opened(key, clock());
            tracing::debug!(key = %key, "rate-limit gate: opened");
            crate::telemetry::probe("opened");
        }
    }

    /// `key`'s probe failed without an answer (transport error, dropped): another request
    /// takes the probe role.
    pub(crate) fn hand_on(&self, key: Key, probe: ProbeId) {
        if self.store.release_probe(key, probe) {
            crate::telemetry::probe("handed_on");
        }
    }
}

/// How many requests that may be sent twice wait at each key: while one does, a request that
/// must not be sent twice leaves the probe role to it (see
/// [`PROBE_GRACE`](policy::PROBE_GRACE)). Only waiting requests touch it.
#[derive(Debug, Default)]
pub(super) struct Repeatable(std::sync::Mutex<Counts>);

type Counts = std::collections::HashMap<Key, u32, foldhash::fast::FixedState>;

impl Repeatable {
    fn waits(&self, key: Key) -> bool {
        crate::sync::lock(&self.0).contains_key(&key)
    }

    fn add(&self, key: Key) {
        *crate::sync::lock(&self.0).entry(key).or_default() += 1;
    }

    fn remove(&self, key: Key) {
        let mut map = crate::sync::lock(&self.0);
        if let Some(n) = map.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                map.remove(&key);
            }
        }
    }
}

/// Waits at `key`'s gate until the request may be sent, or fails when it would have to wait
/// past `deadline`: at once for the layer's own bound, and at the deadline, with
/// `DEADLINE_EXCEEDED`, for the call's (`by_call`). A request still held for an outage at
/// `stop` (the end of its retry schedule) fails then, as a closed gate. A request let through
/// has the key's probe id when it goes as the probe.
pub(crate) async fn wait_turn(
    gates: RateLimitGates,
    key: Key,
    deadline: Instant,
    by_call: bool,
    stop: Option<Instant>,
    turn: Turn,
) -> Result<(Option<ProbeId>, [Option<Key>; 2]), Error> {
    // A wait that fails or is dropped (cancelled by an outer timeout) gives its places in
    // any budget back.
    let repeatable = !turn.once;
    if repeatable {
        gates.repeatable.add(key);
    }
    let mut held = Held {
        gates,
        key,
        turn: Some(turn),
        probe: None,
        repeatable,
    };
    loop {
        let turn = held.turn.as_mut().expect("held until the wait ends");
        let now = Instant::now();
        let probe = match held.gates.check(key, now, deadline, stop, turn) {
            Check::Go(probe) => probe,
            Check::Lease(id, lease) => {
                // Dropped while asking: the local role goes on.
                held.probe = Some(id);
                let go = lease.await;
                held.probe = None;
                if !go {
                    continue;
                }
                let turn = held.turn.as_ref().expect("held until the wait ends");
                Some(held.gates.probe(key, id, turn))
            }
            Check::Fail(left, stopped) if !by_call || stopped => return Err(refused(left)),
            Check::Fail(left, _) => {
                // Nothing sent, nothing changes by failing early: the call ends at its
                // deadline, as gRPC's own clients end it, saying how long the gate still
                // needed then. (Its places in the lanes are given back at once.)
                let until = Instant::now() + left;
                drop(held);
                tokio::time::sleep_until(deadline).await;
                let mut err = refused(until.saturating_duration_since(Instant::now()));
                err.set_deadline_exceeded();
                return Err(err);
            }
            Check::Wait {
                changed,
                moved,
                wake,
            } => {
                match stop.filter(|stop| now < *stop) {
                    Some(stop) => {
                        let waited = Waiter::wait_either(changed, moved, wake);
                        let _ = tokio::time::timeout_at(stop, waited).await;
                    }
                    None => Waiter::wait_either(changed, moved, wake).await,
                }
                continue;
            }
        };
        let turn = held.turn.take().expect("held until the wait ends");
        return Ok((probe, turn.landing(key)));
    }
}

/// A request the gate turns away, unsent, `left` before it would open.
pub(super) fn refused(left: Duration) -> Error {
    crate::telemetry::gate_refused();
    Error::gate_closed(left)
}

/// A waiting request's places, given back unless it goes.
struct Held {
    gates: RateLimitGates,
    key: Key,
    turn: Option<Turn>,
    /// The local probe role, while the fleet is asked for its lease.
    probe: Option<ProbeId>,
    /// Counted in [`Repeatable`] while it waits.
    repeatable: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.repeatable {
            self.gates.repeatable.remove(self.key);
        }
        if let Some(id) = self.probe.take() {
            self.gates.hand_on(self.key, id);
        }
        if let Some(mut turn) = self.turn.take() {
            self.gates.lanes.give_back(self.key, &mut turn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{backoff::Jitter, rate_limit::policy::LINGER};
    use std::sync::Arc;

    const B: Backoff = Backoff::new().jitter(Jitter::None);

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    /// What a request for `k` with an hour to wait does now.
    fn look(g: &RateLimitGates, k: Key) -> Check {
        g.check(k, Instant::now(), far(), None, &mut Turn::default())
    }

    #[tokio::test(start_paused = true)]
    async fn closes_probes_and_opens() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        assert!(matches!(look(&g, k), Check::Go(None)));
        g.reject(k, None, None, &B);
        assert_eq!(g.len(), 1);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(1)));
        assert!(matches!(
            g.check(k, Instant::now(), Instant::now(), None, &mut Turn::default()),
            Check::Fail(d, false) if d == Duration::from_secs(1)
        ));
        assert!(matches!(look(&g, k), Check::Wait { .. }));
        // Other keys are not affected.
        assert!(matches!(look(&g, Key::of("j")), Check::Go(None)));
        tokio::time::advance(Duration::from_secs(1)).await;
        let Check::Go(Some(id)) = look(&g, k) else {
            panic!("expected the probe")
        };
        // Only one probe.
        assert!(matches!(look(&g, k), Check::Wait { .. }));
        // Probe rejected: 2 s.
        g.reject(k, None, Some(id), &B);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(2)));
        tokio::time::advance(Duration::from_secs(2)).await;
        let Check::Go(Some(id)) = look(&g, k) else {
            panic!()
        };
        // A stale probe id does nothing; the right one opens.
        g.open(k, id + 100);
        assert_eq!(g.len(), 1);
        g.open(k, id);
        assert_eq!(g.len(), 0);
        // The key stays paced after it opens, until its lane is idle.
        assert_eq!(g.paced(), 1);
        assert!(!g.is_empty());
        tokio::time::advance(LINGER + Duration::from_secs(1)).await;
        let _ = look(&g, Key::of("x"));
        assert!(g.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_leave_in_arrival_order_at_the_pace() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        let start = Instant::now();
        g.reject(k, Some(Duration::from_secs(1)), None, &B);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..20u32 {
            let (g, order) = (g.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let admission = wait_turn(g.clone(), k, far(), false, None, Turn::default())
                    .await
                    .unwrap()
                    .0;
                order.lock().unwrap().push((i, Instant::now() - start));
                if let Some(id) = admission {
                    g.open(k, id);
                }
            }));
            // Arrivals 10 ms apart.
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let order = order.lock().unwrap().clone();
        let ids: Vec<u32> = order.iter().map(|(i, _)| *i).collect();
        assert_eq!(ids, (0..20).collect::<Vec<_>>(), "first come, first served");
        // The probe at the gate's time, then the others at the pace (20/s, doubling every
        // 250 ms): none before the window ended.
        assert_eq!(order[0].1, Duration::from_secs(1));
        // The first follows the probe's answer at once; the others one at a time.
        assert!(order[1].1 >= order[0].1);
        for pair in order[1..].windows(2) {
            assert!(pair[1].1 > pair[0].1, "{pair:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hand_on_lets_another_probe() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        g.reject(k, Some(Duration::ZERO), None, &B);
        let Check::Go(Some(id)) = look(&g, k) else {
            panic!()
        };
        g.hand_on(k, id);
        assert!(matches!(look(&g, k), Check::Go(Some(n)) if n != id));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_takes_the_probe_handed_on() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        g.reject(k, Some(Duration::ZERO), None, &B);
        let Check::Go(Some(id)) = look(&g, k) else {
            panic!()
        };
        let waiter = tokio::spawn(wait_turn(g.clone(), k, far(), false, None, Turn::default()));
        tokio::task::yield_now().await;
        g.hand_on(k, id);
        // Woken by the hand-on, not by its deadline (it would fail there: the probe is out).
        let (admission, _) = waiter.await.unwrap().unwrap();
        assert!(matches!(admission, Some(n) if n != id));
    }

    #[tokio::test(start_paused = true)]
    async fn a_policy_caps_the_hint() {
        let g = RateLimitGates::new();
        let k = Key::of("k");
        let policy = Policy::new(B, Duration::from_secs(600));
        g.close(k, Some(Duration::from_secs(99_999)), None, &policy);
        assert_eq!(g.time_left(k), Some(Duration::from_secs(600)));
        // Without a layer's cap, a hint is still held to a year at most.
        let j = Key::of("j");
        g.reject(j, Some(Duration::MAX), None, &B);
        assert_eq!(g.time_left(j), Some(crate::retry_after::MAX_HINT));
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
        let _ = look(&g, Key::of("x"));
        assert!(g.is_empty());
        let none = RateLimitGates::with_max_keys(0);
        none.reject(Key::of("k"), None, None, &B);
        assert!(none.is_empty());
    }
}
