use super::{Retry, RetryBudget, budget::Bucket};
use crate::{backoff::Backoff, contract::ErrorContract, error::Error, text::Credentials};
use std::{sync::Arc, time::Duration};
use tower::{BoxError, Layer};

/// Retries what the API's contract calls transient, on the documented schedule.
///
/// See the [module docs](super) for what is retried and an example.
#[derive(Clone, Debug)]
pub struct RetryLayer {
    pub(crate) backoff: Backoff,
    pub(crate) max_retries: u32,
    pub(crate) max_retry_after: Duration,
    pub(crate) deadline: Option<Duration>,
    pub(crate) retry_non_idempotent: bool,
    pub(crate) retry_grpc_unavailable: bool,
    pub(crate) max_replay_bytes: usize,
    pub(crate) max_budget_wait: Duration,
    pub(crate) budget: Option<Arc<Bucket>>,
    pub(crate) contract: ErrorContract,
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl RetryLayer {
    /// The documented schedule: waits of 1 s, 2 s, 4 s plus up to 20 % jitter (doubling, never
    /// above 30 s), 3 retries (4 attempts), `Retry-After` honoured up to 30 s, the default
    /// [`RetryBudget`], replay copies of at most 64 KiB, no overall deadline.
    pub fn new() -> Self {
        RetryLayer {
            backoff: Backoff::new(),
            max_retries: 3,
            max_retry_after: Duration::from_secs(30),
            deadline: None,
            retry_non_idempotent: false,
            retry_grpc_unavailable: true,
            max_replay_bytes: 64 * 1024,
            max_budget_wait: Duration::from_secs(30),
            budget: Some(Arc::new(Bucket::new(RetryBudget::default()))),
            contract: ErrorContract::new(),
        }
    }

    /// How many times a request may be sent again (default 3, so 4 attempts). `0` passes every
    /// request straight through.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The wait before each retry (default [`Backoff::new`]: 1 s, doubling, each plus up to
    /// 20 %, never above 30 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest server hint (`Retry-After`, `grpc-retry-pushback-ms`) that is waited for
    /// (default 30 s). A longer hint returns the error at once, with
    /// [`retry_after`](crate::Error::retry_after) set, so the caller can schedule the retry.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// An overall limit, from when the call enters the layer, that no wait overruns, the
    /// rate-limit gate's included: a wait that would end past it is not begun, and the last
    /// error is returned with a [`note`](crate::Error::note) saying why (default: none). A
    /// gRPC call's own `grpc-timeout` is a deadline too: each gRPC retry carries what is left,
    /// and an attempt in flight is cut off at it (see [deadlines](super#deadlines)). For other
    /// requests, put a timeout inside the retry layer to bound an attempt.
    pub fn deadline(mut self, deadline: impl Into<Option<Duration>>) -> Self {
        self.deadline = deadline.into();
        self
    }

    /// The retry budget shared by every service this layer makes and their clones (default
    /// [`RetryBudget::default()`]); `None` disables it. Each call creates a fresh budget.
    pub fn budget(mut self, budget: impl Into<Option<RetryBudget>>) -> Self {
        self.budget = budget.into().map(|b| Arc::new(Bucket::new(b)));
        self
    }

    /// How many processes share this layer's budget's floor: 1 unless gates shared on Redis
    /// share it (`RateLimitGates::share_retry_budget`, feature `redis`) and Redis has
    /// answered; `None` without a budget.
    pub fn budget_sharers(&self) -> Option<u32> {
        self.budget.as_ref().map(|b| b.sharers())
    }

    /// The longest a retry waits, alongside the backoff, for a spent [retry budget](RetryBudget)
    /// to refill, or is held while failures throttle retries (default 30 s; `Duration::ZERO`
    /// never waits). What is left of the request's retry schedule also bounds a hold. A retry
    /// that would wait longer, or past the call's [deadline](Self::deadline), returns its error
    /// with [`NotRetried::BudgetExhausted`](crate::NotRetried::BudgetExhausted) (or the
    /// deadline's reason).
    pub fn max_budget_wait(mut self, max: Duration) -> Self {
        self.max_budget_wait = max;
        self
    }

    /// Also retry POST, PATCH and other non-idempotent requests after errors the server may
    /// have processed (default `false`). Only opt in when the API deduplicates them, or a
    /// duplicate is harmless. See the [module docs](super#side-effects).
    pub fn retry_non_idempotent(mut self, yes: bool) -> Self {
        self.retry_non_idempotent = yes;
        self
    }

    /// Treat a gRPC server's `UNAVAILABLE` as "not processed", so gRPC calls (which are all
    /// POSTs) are retried after it (default `true`). See the [module docs](super#grpc).
    pub fn retry_grpc_unavailable(mut self, yes: bool) -> Self {
        self.retry_grpc_unavailable = yes;
        self
    }

    /// The error contract that judges the failures this layer meets undecoded (a transport
    /// failure of a service without [`ErrorDecodeLayer`](crate::ErrorDecodeLayer)). An answer
    /// decoded below carries the [`Verdict`](crate::Verdict) of the decoding layer's contract.
    pub fn contract(mut self, contract: ErrorContract) -> Self {
        self.contract = contract;
        self
    }

    /// The most bytes of a streaming request body kept for replay (default 64 KiB). A larger
    /// body is sent once, whole, and not retried. Cloneable bodies are not copied, so this does
    /// not apply to them.
    pub fn max_replay_bytes(mut self, max: usize) -> Self {
        self.max_replay_bytes = max;
        self
    }
}

impl RetryLayer {
    /// The nominal waits of every retry of the schedule: the most a first attempt may wait
    /// below for an outage.
    pub(crate) fn schedule(&self) -> Duration {
        super::future::schedule_left(&self.backoff, 0, self.max_retries)
    }

    /// A failure met undecoded, judged by this layer's contract.
    pub(crate) fn transport(&self, source: impl Into<BoxError>) -> Error {
        Error::transport_with(source, &Credentials::new(), &self.contract)
    }
}

impl<S> Layer<S> for RetryLayer {
    type Service = Retry<S>;
    fn layer(&self, inner: S) -> Retry<S> {
        Retry {
            inner,
            layer: Arc::new(self.clone()),
        }
    }
}
