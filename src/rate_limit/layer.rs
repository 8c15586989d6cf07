use super::{Key, RateLimitBackoff, RateLimitGates, RequestHead, key::KeyFn};
use crate::{backoff::Backoff, contract::ErrorContract};
use std::{sync::Arc, time::Duration};
use tower::Layer;

/// The default for [`RateLimitBackoffLayer::max_closed`]: one hour.
pub(super) const DEFAULT_MAX_CLOSED: Duration = Duration::from_secs(60 * 60);

/// Stops sending on a rate-limited path until it resets. See the [module docs](super) for an
/// example. Every service this layer makes shares the layer's [`RateLimitGates`].
#[derive(Clone, Debug)]
pub struct RateLimitBackoffLayer {
    pub(crate) gates: RateLimitGates,
    pub(crate) max_wait: Duration,
    pub(crate) max_outage_wait: Option<Duration>,
    pub(crate) backoff: Backoff,
    pub(crate) max_closed: Duration,
    pub(crate) key: KeyFn,
    pub(crate) contract: ErrorContract,
}

impl Default for RateLimitBackoffLayer {
    fn default() -> Self {
        RateLimitBackoffLayer::new()
    }
}

impl RateLimitBackoffLayer {
    /// Waits up to 30 s at a closed gate, keys by scheme + authority + path template ([`Key::from_uri`](super::Key::from_uri)), backs off 1 s
    /// doubling to 30 s (plus up to 20 %) without a `Retry-After`, tracks up to 10,000 keys
    /// in a new gate map.
    pub fn new() -> Self {
        RateLimitBackoffLayer {
            gates: RateLimitGates::new(),
            max_wait: Duration::from_secs(30),
            max_outage_wait: None,
            backoff: Backoff::new(),
            max_closed: DEFAULT_MAX_CLOSED,
            key: KeyFn::Uri,
            contract: ErrorContract::new(),
        }
    }

    /// How long a request may wait at a closed gate (default 30 s). A request that would have
    /// to wait longer fails at once with the time left (see the [module docs](super)).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// How long a request may wait at a gate held for an outage (default: as long as
    /// [`max_wait`](Self::max_wait)); then it fails, unsent, as at any closed gate. Waiting for
    /// an outage spends a retry schedule: under a [`RetryLayer`](crate::RetryLayer) each retry
    /// carries what is left of its schedule ([`ScheduleEnd`](crate::retry::ScheduleEnd)), and
    /// [`ApiContractLayer`](crate::ApiContractLayer) sets this bound, for first attempts, to
    /// the retry layer's schedule (7 s by default).
    pub fn max_outage_wait(mut self, max: Duration) -> Self {
        self.max_outage_wait = Some(max);
        self
    }

    /// Never wait: a request for a closed key fails at once. The same as
    /// `max_wait(Duration::ZERO)`.
    pub fn fail_fast(self) -> Self {
        self.max_wait(Duration::ZERO)
    }

    /// The backoff of a key rejected without a `Retry-After` hint: delay number *n* after the
    /// *n*-th consecutive rejection (default: [`Backoff::new`], 1 s doubling to 30 s, plus up
    /// to 20 %).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest one rate limit keeps a key closed (default 1 hour), whatever the server's
    /// hint says: a hostile `Retry-After` cannot shut a path for good, and a long limit costs
    /// one probe per `max_closed`. The rejected request's error still carries the full hint in
    /// [`retry_after`](crate::Error::retry_after).
    pub fn max_closed(mut self, max: Duration) -> Self {
        self.max_closed = max;
        self
    }

    /// Chooses the key of a request: requests with the same key share a gate. `None` means the
    /// request is never gated. The function runs on every request, so keep it cheap:
    /// [`Key::of`] hashes borrowed data without allocating.
    ///
    /// ```
    /// use tower_api_retry::rate_limit::{Key, RateLimitBackoffLayer};
    ///
    /// // One gate per host, and health checks never gated.
    /// let layer = RateLimitBackoffLayer::new().key_fn(|req| {
    ///     if req.uri().path() == "/health" {
    ///         return None;
    ///     }
    ///     Some(Key::of(&req.uri().authority().map(|a| a.as_str())))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn key_fn<F>(mut self, f: F) -> Self
    where
        F: Fn(&RequestHead<'_>) -> Option<Key> + Send + Sync + 'static,
    {
        self.key = KeyFn::Custom(Arc::new(f));
        self
    }

    /// Uses `gates` (shared; see [`RateLimitGates`] for an example) instead of this layer's
    /// own map, and the map's bound on keys.
    pub fn gates(mut self, gates: RateLimitGates) -> Self {
        self.gates = gates;
        self
    }

    /// The error contract of the gate: where an announced quota applies, which header
    /// families announce it, and how many outage signals close a path. Which answers close
    /// a path is the [`Verdict`](crate::Verdict) the decoding layer gave them;
    /// [`ApiContractLayer::contract`](crate::ApiContractLayer::contract) gives one contract
    /// to both.
    pub fn contract(mut self, contract: ErrorContract) -> Self {
        self.contract = contract;
        self
    }
}

impl<S> Layer<S> for RateLimitBackoffLayer {
    type Service = RateLimitBackoff<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitBackoff {
            inner,
            config: Arc::new(self.clone()),
        }
    }
}
