//! The retry budget: retries as a fraction of requests, shared by every clone of a layer.

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
/// A per-request retry limit alone multiplies load by `max_retries + 1` exactly when the
/// server is least able to take it. A budget instead caps retries at a fraction of the
/// traffic: by default 20 % of the requests of the last 10 seconds, plus a floor of 10 retries
/// a second so that a quiet client can still retry at all (the numbers of tower's `TpsBudget`
/// and Finagle).
///
/// When the budget is spent, a retry *waits* for it instead of failing: the floor refills at
/// `min_per_sec`, and each waiting retry is given the next token to come, in the order they
/// asked, so retries leave at the floor's rate, not as a burst. The wait is bounded by
/// [`RetryLayer::max_budget_wait`](crate::RetryLayer::max_budget_wait) (30 s by default) and
/// by the call's deadline; a retry that would wait longer (or forever: `min_per_sec` 0)
/// returns its error at once, with [`not_retried`](crate::Error::not_retried) saying why
/// ([`BudgetExhausted`](crate::NotRetried::BudgetExhausted), or a deadline reason). So a
/// budget shapes an outage's retries; it drops them only when the caller's limits say so.
///
/// It is a token bucket on tokio's clock: each request earns `retry_ratio` of a retry, earned
/// tokens fade with a time constant of `ttl` (so only recent traffic counts), each retry
/// spends one, and a reserve of `min_per_sec × ttl` tokens refills at `min_per_sec` per second.
/// Recording a request is one relaxed atomic add; the lock is only taken when a retry asks.
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
}

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

    /// Takes one retry from the budget, or returns `false` when it is spent (and would not
    /// refill at once).
    #[cfg(test)]
    pub(crate) fn withdraw(&self) -> bool {
        self.take(Duration::ZERO).is_ok()
    }

    /// Takes one retry from the budget: `Ok(Duration::ZERO)` when one is there; when the
    /// budget is spent, `Ok(wait)` when the reserve refills one within `max_wait` (it is then
    /// spoken for: a later ask waits behind it). `Err(Some(wait))` when the next one comes
    /// only after `wait`, later than `max_wait`, and `Err(None)` when none will (no floor):
    /// nothing is taken then.
    pub(crate) fn take(&self, max_wait: Duration) -> Result<Duration, Option<Duration>> {
        let now = Instant::now();
        let requests = self.requests.load(Ordering::Relaxed);
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
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
