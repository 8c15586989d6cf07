//! The retry budget: retries as a fraction of requests, shared by every clone of a layer.

use crate::sync::lock;
use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;

/// Bounds retries to a fraction of requests, so an outage does not turn into a retry storm.
///
/// A per-request limit alone multiplies load by `max_retries + 1` exactly when the server is
/// least able to take it. A budget caps retries at a fraction of the traffic: by default 20 %
/// of the requests of the last 10 seconds (earned tokens fade with a time constant of `ttl`),
/// plus a floor of 10 retries a second (the numbers of tower's `TpsBudget` and Finagle).
///
/// A retry that finds the budget spent waits for the floor's next token, in the order retries
/// asked, within [`RetryLayer::max_budget_wait`](crate::RetryLayer::max_budget_wait) and the
/// call's deadline; else its error is returned with
/// [`BudgetExhausted`](crate::NotRetried::BudgetExhausted) (or the deadline's reason).
///
/// While failures dominate, retries are held back, as gRPC's retry throttling does. A
/// throttle of `max(10, min_per_sec × ttl)` tokens starts full; each request whose first
/// attempt fails with an error a retry could follow (a rate limit aside: the gate paces those)
/// drains one; each request refills half of one, and time refills it at the floor's rate. At
/// half or below, a due retry is held, looking again every 100 ms, no longer than what is left
/// of its schedule, `max_budget_wait` and the deadline; the retries whose turn passed
/// meanwhile are spent. Failed requests then also use up tokens, so what was earned before is
/// not released as a burst when the overload ends.
///
/// ```
/// use std::time::Duration;
/// use tower_api_retry::retry::{RetryBudget, RetryLayer};
///
/// // 10 % of requests over 30 s, at least 1 retry a second.
/// let layer = RetryLayer::new().budget(RetryBudget::new(Duration::from_secs(30), 1, 0.1));
/// // No budget: every failure may use all of max_retries.
/// let unlimited = RetryLayer::new().budget(None);
/// # let _ = (layer, unlimited);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RetryBudget {
    ttl: Duration,
    min_per_sec: u32,
    retry_ratio: f64,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

impl RetryBudget {
    /// A budget of `retry_ratio` retries per request over about `ttl`, plus `min_per_sec`
    /// retries a second. `ttl` is clamped to 1 s..=60 s, `retry_ratio` to 0.0..=1000.0.
    pub fn new(ttl: Duration, min_per_sec: u32, retry_ratio: f64) -> RetryBudget {
        let retry_ratio = if retry_ratio.is_nan() {
            0.0
        } else {
            retry_ratio.clamp(0.0, 1000.0)
        };
        RetryBudget {
            ttl: ttl.clamp(Duration::from_secs(1), Duration::from_secs(60)),
            min_per_sec,
            retry_ratio,
        }
    }

    fn reserve(&self) -> f64 {
        self.min_per_sec as f64 * self.ttl.as_secs_f64()
    }

    /// The throttle's size: the reserve, and at least 10 (gRPC's default size).
    fn health_max(&self) -> f64 {
        self.reserve().max(10.0)
    }
}

/// What a request refills of the throttle, where a failed attempt drains 1: retries stop
/// once failed attempts have outnumbered half the requests for long enough.
const HEALTH_PER_REQUEST: f64 = 0.5;

/// The shared state of one budget.
pub(crate) struct Bucket {
    config: RetryBudget,
    requests: AtomicU64,
    /// How many processes share the floor (1 unless shared through a fleet store).
    sharers: AtomicU32,
    state: Mutex<BucketState>,
}

struct BucketState {
    /// Requests already credited.
    seen: u64,
    /// Reserve tokens (the floor), `0..=reserve`.
    reserve: f64,
    /// Tokens earned by requests, fading.
    earned: f64,
    last: Option<Instant>,
    /// The throttle's tokens, `0..=health_max`: requests whose first attempt failed drain
    /// them, requests and time refill them; retries are held while they are at half or below.
    health: f64,
}

impl fmt::Debug for Bucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bucket")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Bucket {
    pub(crate) fn new(config: RetryBudget) -> Bucket {
        Bucket {
            config,
            requests: AtomicU64::new(0),
            sharers: AtomicU32::new(1),
            state: Mutex::new(BucketState {
                seen: 0,
                reserve: config.reserve(),
                earned: 0.0,
                last: None,
                health: config.health_max(),
            }),
        }
    }

    /// `processes` processes (this one among them) share the floor from now on: each gets
    /// its part of `min_per_sec` and of the reserve.
    #[cfg(feature = "redis")]
    pub(crate) fn share(&self, processes: u32) {
        self.sharers.store(processes.max(1), Ordering::Relaxed);
    }

    /// How many processes share the floor.
    pub(crate) fn sharers(&self) -> u32 {
        self.sharers.load(Ordering::Relaxed).max(1)
    }

    /// Records one request (not a retry).
    #[inline]
    pub(crate) fn deposit(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Records a request whose first attempt failed with an error a retry could follow. It
    /// drains the throttle and, once the throttle holds retries, a token of what was earned or
    /// of the reserve: what the failures used up is not released as a burst once they stop.
    pub(crate) fn failed(&self) {
        let mut s = lock(&self.state);
        self.refresh(&mut s);
        s.health = (s.health - 1.0).max(0.0);
        if s.health > self.config.health_max() / 2.0 {
            return;
        }
        // Throttled: the failure uses up a token too.
        if s.earned >= 1.0 {
            s.earned -= 1.0;
        } else {
            let from_reserve = (1.0 - s.earned).min(s.reserve.max(0.0));
            s.earned = 0.0;
            s.reserve -= from_reserve;
        }
    }

    /// `true` while failures hold retries back: the throttle is at half or below.
    pub(crate) fn throttled(&self) -> bool {
        let mut s = lock(&self.state);
        self.refresh(&mut s);
        s.health <= self.config.health_max() / 2.0
    }

    /// Brings the state up to now: credits the requests recorded since, refills the reserve
    /// and the throttle, fades what was earned. Returns this process's floor (retries a
    /// second).
    fn refresh(&self, s: &mut BucketState) -> f64 {
        let now = Instant::now();
        let requests = self.requests.load(Ordering::Relaxed);
        let elapsed = s
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        s.last = Some(now);
        let secs = elapsed.as_secs_f64();
        // A fleet shares the floor: this process's part of it.
        let sharers = f64::from(self.sharers());
        let floor = f64::from(self.config.min_per_sec) / sharers;
        let reserve_max = self.config.reserve() / sharers;
        // The reserve may be below zero: tokens spoken for by retries still waiting.
        s.reserve = (s.reserve + floor * secs).min(reserve_max);
        // Requests are credited when a retry asks, not when they happen: counting them all
        // as old as the last withdrawal under-counts, which is the safe side for a budget.
        let new = requests.saturating_sub(s.seen);
        s.seen = requests;
        s.earned += new as f64 * self.config.retry_ratio;
        s.earned *= (-secs / self.config.ttl.as_secs_f64()).exp();
        s.health = (s.health + new as f64 * HEALTH_PER_REQUEST + floor * secs)
            .min(self.config.health_max());
        floor
    }

    /// Asks for a retry that may wait `bound` for it. While failures throttle retries it is
    /// held (`Ok(Duration::ZERO)` without a token: until it is due, and then until the
    /// throttle opens or its schedule runs out), or refused when it may not wait; else it is
    /// [taken](Self::take), and `token` says so.
    pub(crate) fn ask(
        &self,
        bound: Duration,
        token: &mut bool,
    ) -> Result<Duration, Option<Duration>> {
        if self.throttled() {
            if bound.is_zero() {
                return Err(None);
            }
            tracing::debug!("retry budget throttled by failures: holding the retry");
            return Ok(Duration::ZERO);
        }
        let ready = self.take(bound)?;
        *token = true;
        if !ready.is_zero() {
            let wait_ms = u64::try_from(ready.as_millis()).unwrap_or(u64::MAX);
            tracing::debug!(wait_ms, "retry budget spent: waiting for it");
        }
        Ok(ready)
    }

    /// Takes one retry from the budget: `Ok(Duration::ZERO)` when one is there; when the
    /// budget is spent, `Ok(wait)` when the reserve refills one within `max_wait` (it is then
    /// spoken for: a later ask waits behind it). `Err(Some(wait))` when the next one comes
    /// only after `wait`, later than `max_wait`, and `Err(None)` when none will (no floor):
    /// nothing is taken then.
    pub(crate) fn take(&self, max_wait: Duration) -> Result<Duration, Option<Duration>> {
        let mut s = lock(&self.state);
        let floor = self.refresh(&mut s);
        if s.earned >= 1.0 {
            s.earned -= 1.0;
            return Ok(Duration::ZERO);
        }
        let owed = 1.0 - s.earned - s.reserve;
        let wait = if owed <= 0.0 {
            Duration::ZERO
        } else if self.config.min_per_sec == 0 {
            return Err(None);
        } else {
            let secs = owed / floor;
            Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
        };
        if wait > max_wait {
            return Err(Some(wait));
        }
        // Spend what was earned first, the rest from the reserve (below zero while waiting).
        s.reserve -= 1.0 - s.earned;
        s.earned = 0.0;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Bucket {
        /// Takes one retry from the budget, or returns `false` when it is spent.
        fn withdraw(&self) -> bool {
            self.take(Duration::ZERO).is_ok()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_plus_reserve_bounds_retries() {
        let bucket = Bucket::new(RetryBudget::default());
        for _ in 0..1000 {
            bucket.deposit();
        }
        let granted = (0..10_000).filter(|_| bucket.withdraw()).count();
        // 20 % of 1,000 plus the reserve of 10/s × 10 s.
        assert_eq!(granted, 300);
        // The floor refills at 10 a second.
        tokio::time::advance(Duration::from_secs(1)).await;
        let granted = (0..100).filter(|_| bucket.withdraw()).count();
        assert_eq!(granted, 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_budget_shapes_retries_at_its_floor() {
        let bucket = Bucket::new(RetryBudget::new(Duration::from_secs(10), 10, 0.0));
        // The reserve: 10/s × 10 s.
        for _ in 0..100 {
            assert_eq!(bucket.take(Duration::ZERO), Ok(Duration::ZERO));
        }
        // Then each retry waits for the next token, a tenth of a second after the one before.
        let max = Duration::from_secs(1);
        let waits: Vec<_> = (0..12).map(|_| bucket.take(max)).collect();
        for (i, w) in waits.iter().take(10).enumerate() {
            let want = Duration::from_millis(100 * (i as u64 + 1));
            let got = w.unwrap();
            assert!(
                got.abs_diff(want) < Duration::from_micros(1),
                "{i}: {got:?}"
            );
        }
        // Past max_wait: refused, and nothing taken.
        assert!(matches!(waits[10], Err(Some(w)) if w > max));
        assert!(matches!(waits[11], Err(Some(w)) if w > max));
        // Time pays the debt off.
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(bucket.take(Duration::ZERO).is_ok());
        // No floor: a spent budget never refills by itself.
        let none = Bucket::new(RetryBudget::new(Duration::from_secs(10), 0, 0.0));
        assert_eq!(none.take(Duration::MAX), Err(None));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_requests_hold_retries_until_requests_or_time_refill_the_throttle() {
        let bucket = Bucket::new(RetryBudget::default());
        // A throttle of 100: 49 failed requests leave it above half.
        for _ in 0..49 {
            bucket.failed();
        }
        assert!(!bucket.throttled());
        bucket.failed();
        assert!(bucket.throttled());
        // Each request refills half a token.
        bucket.failed();
        bucket.deposit();
        bucket.deposit();
        assert!(bucket.throttled());
        bucket.deposit();
        assert!(!bucket.throttled());
        // Time refills it at the floor's rate, 10 a second.
        for _ in 0..11 {
            bucket.failed();
        }
        assert!(bucket.throttled());
        tokio::time::advance(Duration::from_millis(1100)).await;
        assert!(!bucket.throttled());
    }

    #[tokio::test(start_paused = true)]
    async fn failures_while_throttled_use_up_what_was_earned() {
        let calm = Bucket::new(RetryBudget::default());
        let overloaded = Bucket::new(RetryBudget::default());
        for bucket in [&calm, &overloaded] {
            for _ in 0..1000 {
                bucket.deposit();
            }
        }
        // 50 failures close the throttle (the requests refilled it to its top, 100); the next
        // 300 each use up a token: the 200 earned and the reserve of 100.
        for _ in 0..350 {
            overloaded.failed();
        }
        assert!(overloaded.throttled());
        assert!(!overloaded.withdraw());
        // The same requests without the failures: 20 % of them plus the reserve.
        let granted = (0..10_000).filter(|_| calm.withdraw()).count();
        assert_eq!(granted, 300);
        // A few failures, the throttle open: nothing is used up.
        let few = Bucket::new(RetryBudget::default());
        for _ in 0..40 {
            few.failed();
        }
        let granted = (0..10_000).filter(|_| few.withdraw()).count();
        assert_eq!(granted, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn earned_tokens_fade() {
        let bucket = Bucket::new(RetryBudget::new(Duration::from_secs(10), 0, 0.2));
        assert!(!bucket.withdraw());
        for _ in 0..100 {
            bucket.deposit();
        }
        tokio::time::advance(Duration::from_secs(60)).await;
        // Six time constants later, 20 tokens have faded to well under one.
        assert!(!bucket.withdraw());
    }
}
