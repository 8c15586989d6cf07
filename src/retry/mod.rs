//! Middleware that retries what the API's contract calls transient, on the documented
//! schedule, without ever duplicating a side effect.
//!
//! [`RetryLayer`] goes outside [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) (and outside the
//! rate-limit layer, when there is one). It keeps the request type: the inner service receives
//! the same `http::Request<B>` as the caller sends, so it stacks over a hyper-util `Client`
//! or a tonic `Channel` with no adapter. Its error is the crate's [`Error`](crate::Error).
//! [`Attempts::of`] tells how many attempts produced any response (one that took more than
//! one carries an [`Attempts`] extension); every error has
//! [`attempts()`](crate::Error::attempts) and, when a retry was refused,
//! [`note()`](crate::Error::note) saying why.
//!
//! # Schedule
//!
//! "Start with a 1-second delay and double on each attempt, up to a reasonable maximum (e.g.
//! 30 seconds)", with "a small random offset so retries don't synchronize": waits of 1 s,
//! 2 s, 4 s plus an offset of up to 20 % by default, never less (see
//! [`backoff`](crate::backoff) for the table, and [`Jitter`](crate::backoff::Jitter) for
//! full, equal and decorrelated jitter), never above [`max_delay`](RetryLayer::max_delay),
//! 3 retries (4 attempts). A server hint (`Retry-After`, `grpc-retry-pushback-ms`) is a
//! floor: the wait is the larger of the backoff and the hint. A hint above
//! [`max_retry_after`](RetryLayer::max_retry_after) (30 s) is not waited for: the error comes
//! back at once with [`retry_after()`](crate::Error::retry_after) set, for the caller to
//! schedule. With a [`deadline`](RetryLayer::deadline), a wait that would end past it is not
//! started. All waiting is on tokio's clock.
//!
//! # What is retried
//!
//! Only what [`Error::is_retryable`](crate::Error::is_retryable) says, the crate's one
//! classification: [`Disposition::Retry`](crate::Disposition::Retry) and
//! [`RateLimited`](crate::Disposition::RateLimited) (5xx, `UNAVAILABLE`, `DEADLINE_EXCEEDED`,
//! `INTERNAL`, `UNKNOWN`, `REFRESH_IN_PROGRESS`, 429, `RESOURCE_EXHAUSTED`, transport errors),
//! and never when a gRPC server forbade it with a negative or unparsable
//! `grpc-retry-pushback-ms` (its disposition is then
//! [`DoNotRetry`](crate::Disposition::DoNotRetry)). Every other 4xx and every code that
//! needs a human is returned after one attempt.
//!
//! A gRPC `RESOURCE_EXHAUSTED` that names no wait (no `grpc-retry-pushback-ms`) is retried
//! once: when the retry gets the same answer, the error comes back with
//! [`NotRetried::ExhaustedAgain`](crate::NotRetried::ExhaustedAgain). A gRPC library answers
//! so of its own to a message over the server's size limit (grpcio's "Received message
//! larger than max (N vs. M)"), and the same bytes fail the same way every time; a rate
//! limit that names no wait is left to the caller's next request. A pushback, or any other
//! answer between the two, retries as usual.
//!
//! The server may overrule the table for one response (see
//! [`retry_after`](crate::retry_after#the-servers-verdict)): `x-should-retry: false` or
//! `Stripe-Should-Retry: false` returns a retryable error at once, with
//! [`NotRetried::ShouldNotRetry`](crate::NotRetried::ShouldNotRetry); `true` retries any
//! error, even a `POST` without an `Idempotency-Key` (the server says it did not process
//! it), within the retry cap, the budget and the deadline. A `retry-after-ms` hint is read
//! like `Retry-After`, and wins over it when valid.
//!
//! ## Side effects
//!
//! A retry after a 5xx or a reset connection sends the request a second time to a server that
//! may already have acted on the first one. For GET, HEAD, OPTIONS, TRACE, PUT and DELETE that
//! is harmless: they are idempotent (RFC 9110 §9.2.2), doing them twice is doing them once.
//! A POST or PATCH is retried only when a duplicate cannot happen:
//!
//! - the server rejected it without processing it: 429, `RESOURCE_EXHAUSTED`,
//!   `REFRESH_IN_PROGRESS`, or said so (`x-should-retry: true`), or it never left this process
//!   (a refused connection, a closed rate-limit gate:
//!   [`request_sent()`](crate::Error::request_sent) is `false`);
//! - it carries an `Idempotency-Key` header ([`IDEMPOTENCY_KEY`]), so the server deduplicates;
//! - or the caller opted in with [`retry_non_idempotent(true)`](RetryLayer::retry_non_idempotent).
//!
//! ## gRPC
//!
//! Every gRPC call is a POST, so it follows the same rules: it is retried after
//! `RESOURCE_EXHAUSTED`, after a refused connection, or with the opt-in. One more case is
//! treated as "not processed": a gRPC *server's* `UNAVAILABLE` (a `grpc-status: 14` response
//! to an `application/grpc` request). gRPC defines `UNAVAILABLE` as the code a server uses for
//! "try again with backoff", and gRPC's own retry design lists it as the retryable code. A
//! transport failure after the request was sent (also coded `UNAVAILABLE`) is *not* covered:
//! the server may have acted. Turn the server case off with
//! [`retry_grpc_unavailable(false)`](RetryLayer::retry_grpc_unavailable) if your server can
//! answer `UNAVAILABLE` after a side effect. `DEADLINE_EXCEEDED`, `INTERNAL` and `UNKNOWN`
//! from a gRPC server are not retried without the opt-in.
//!
//! # Deadlines
//!
//! A call's deadline covers every attempt and every wait, as in gRPC's retry design (A6). It
//! is the earlier of the request's own `grpc-timeout` (what tonic's `Request::set_timeout`
//! sends, or grpc-go's context deadline) and [`deadline`](RetryLayer::deadline), both counted
//! from when the call enters this layer.
//!
//! - No wait is begun that would end at or past the deadline, and no attempt starts once it
//!   has passed. An HTTP request's last error then comes back at once, as the server sent
//!   it, with a [`note`](crate::Error::note) saying the next attempt could not have finished
//!   in time. A gRPC call ends at its deadline, as gRPC's own clients end it, coded
//!   `DEADLINE_EXCEEDED`; [`api()`](crate::Error::api) still holds the last answer.
//! - A gRPC call (`content-type: application/grpc…`) sends every retry with the time that
//!   is left in `grpc-timeout`, in gRPC's format (at most 8 digits and a unit, `H`, `M`, `S`,
//!   `m`, `u` or `n`), so no server works on an attempt longer than the caller waits for it. The first attempt is sent as the caller built it,
//!   unless [`deadline`](RetryLayer::deadline) is the earlier one: then it carries that.
//! - A gRPC attempt still in flight when the deadline passes is dropped, the first one too,
//!   and the call fails with `DEADLINE_EXCEEDED`, every time: that is the first `Status` in
//!   the error's chain of sources, where tonic looks, before any transport error.
//! - Every attempt carries the deadline in its extensions, as a [`CallDeadline`]: the
//!   rate-limit gate inside holds a request no longer than that, at a closed gate or in a
//!   paced lane. A request the gate cannot let go before its deadline fails there, unsent,
//!   with `DEADLINE_EXCEEDED` and the time the gate still needed as its
//!   [`retry_after`](crate::Error::retry_after).
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::{sync::{Arc, Mutex}, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{ErrorCode, ErrorDecodeLayer, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // A gRPC server that answers UNAVAILABLE, "retry in 400 ms", and logs each grpc-timeout.
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let log = seen.clone();
//! let server = service_fn(move |req: Request<Full<Bytes>>| {
//!     log.lock().unwrap().push(req.headers()["grpc-timeout"].clone());
//!     async {
//!         let res = Response::builder()
//!             .header("content-type", "application/grpc")
//!             .header("grpc-status", "14")
//!             .header("grpc-retry-pushback-ms", "400")
//!             .body(Full::<Bytes>::default());
//!         Ok::<_, std::io::Error>(res.unwrap())
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new().base_delay(Duration::from_millis(100)))
//!     .layer(ErrorDecodeLayer::new())
//!     .service(server);
//!
//! // A call with one second to live.
//! let call = Request::post("http://svc.test/echo.Echo/Say")
//!     .header("content-type", "application/grpc")
//!     .header("grpc-timeout", "1S")
//!     .body(Full::default())
//!     .unwrap();
//! let err = client.oneshot(call).await.unwrap_err();
//! // Attempts at 0, 0.4 and 0.8 s, each carrying the time left; a wait to 1.2 s is not begun.
//! assert_eq!(*seen.lock().unwrap(), ["1S", "600000u", "200000u"]);
//! assert_eq!(err.code(), &ErrorCode::DeadlineExceeded);
//! assert_eq!(err.api().unwrap().code(), &ErrorCode::Unavailable); // the last answer
//! # }
//! ```
//!
//! # Bodies
//!
//! Cloneable bodies are replayed by clone; streaming bodies (tonic's, axum's, boxed bodies)
//! are replayed from a copy captured while the first attempt streams, up to
//! [`max_replay_bytes`](RetryLayer::max_replay_bytes) (64 KiB). A bigger body is sent once,
//! whole, and not retried. Every attempt sends the same bytes and trailers. A streaming body
//! that an attempt never started sending (a refused connection, a closed gate, a timeout
//! before the body was read) is handed back when that attempt is dropped, and sent as is by
//! the next. See [`ReplayBody`].
//!
//! # Retry budget
//!
//! All services made by one layer, and their clones, share a [`RetryBudget`]: retries stay
//! within 20 % of requests over 10 s, plus 10 retries a second, so a failing server sees at
//! most about 1.2 × the traffic, not 4 ×. A retry that finds the budget spent waits for it
//! (the floor refills at 10 a second, and waiting retries take its tokens in turn) for at
//! most [`max_budget_wait`](RetryLayer::max_budget_wait), 30 s, and never past the call's
//! deadline: the budget shapes retries rather than dropping them, and a failure is final
//! only when those limits say so ([`NotRetried::BudgetExhausted`](crate::NotRetried),
//! or the deadline's reason).
//!
//! Failures hold retries back while they dominate, so an overload is not fed retries until it
//! is over (gRPC's retry throttling): once the requests whose first attempt failed outnumber
//! half of all requests by 50, a retry that is due waits until they no longer do (or, at the
//! floor's rate, time has passed), then leaves at the pace the budget refills; a retry still
//! held at the end of what is left of its schedule (7 s at the first retry, by default) is not
//! sent. Against a server that fails every request, a client sending more than 20 requests a
//! second sends no retries until requests succeed again. See [`RetryBudget`], and
//! `examples/metastable.rs` for a retry storm that outlives its trigger under `tower::retry`
//! and not under this layer.
//!
//! # Per-request control
//!
//! A [`RetryOverride`] in a request's extensions changes the policy for that request only:
//! no retries, another [`max_retries`](RetryOverride::max_retries), another
//! [`deadline`](RetryOverride::deadline), or the declaration that the request is safe to send
//! twice ([`idempotent`](RetryOverride::idempotent): a `POST` of an idempotent operation that
//! has no `Idempotency-Key` header). Requests without one cost a single extensions look-up.
//!
//! There is no override for the rate-limit gate: the API's page says to stop sending on a
//! rate-limited path, so no request may skip a closed gate.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::time::Duration;
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{RetryOverride, ServiceBuilderExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! # let server = service_fn(|_req: Request<Full<Bytes>>| async {
//! #     Ok::<_, std::io::Error>(Response::builder().status(503).body(Full::<Bytes>::default()).unwrap())
//! # });
//! let client = ServiceBuilder::new().api_contract().service(server);
//!
//! // A health probe: one attempt, whatever the layer's policy.
//! let mut probe = Request::get("http://api.test/api/health").body(Full::default()).unwrap();
//! probe.extensions_mut().insert(RetryOverride::no_retries());
//! assert_eq!(client.clone().oneshot(probe).await.unwrap_err().attempts(), 1);
//!
//! // A search sent as a POST, harmless to repeat, with two seconds in all.
//! let mut search = Request::post("http://api.test/api/search").body(Full::default()).unwrap();
//! search
//!     .extensions_mut()
//!     .insert(RetryOverride::new().idempotent(true).deadline(Duration::from_secs(2)));
//! let err = client.oneshot(search).await.unwrap_err();
//! assert_eq!(err.attempts(), 2); // at 0 s and about 1 s; a wait of 2 s more would overrun
//! # }
//! ```
//!
//! # Observability
//!
//! Each retry emits a `tracing` event at `INFO` with the attempt number, the wait, the status,
//! the code, the method and the path, without its query string. Never headers or bodies.
//! Each attempt runs in a `DEBUG` span, `api_retry.attempt`, with OpenTelemetry's
//! `http.request.resend_count` and the attempt's outcome (built only when a `tracing`
//! subscriber enables `DEBUG`: through `tracing`'s `log` fallback alone, attempts open no
//! span); with the `metrics` feature, the
//! layer counts attempts, retries and the reasons a retryable error was not retried (see
//! [`metrics`](crate::metrics)).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{Attempts, ErrorDecodeLayer, RetryLayer};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let server = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = calls.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let status = if n < 2 { 503 } else { 200 };
//!         Ok::<_, std::io::Error>(Response::builder().status(status).body(Full::new(Bytes::new())).unwrap())
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(RetryLayer::new())
//!     .layer(ErrorDecodeLayer::new())
//!     .service(server);
//!
//! let res = client.oneshot(Request::get("/api/status").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(Attempts::of(&res), 3);
//! # }
//! ```

pub(crate) mod body;
pub(crate) mod budget;
pub(crate) mod deadline;
mod future;
mod layer;
mod overrides;
pub(crate) mod policy;
mod service;

pub use body::{CaptureBody, Captured, NotReplayable, ReplayBody, ReplayedBody};
pub use budget::RetryBudget;
pub use deadline::CallDeadline;
pub use future::ResponseFuture;
pub use layer::{
    DEFAULT_MAX_BUDGET_WAIT, DEFAULT_MAX_REPLAY_BYTES, DEFAULT_MAX_RETRIES,
    DEFAULT_MAX_RETRY_AFTER, RetryLayer,
};
pub use overrides::RetryOverride;
pub use policy::IDEMPOTENCY_KEY;
pub use service::Retry;

/// In a retry's extensions when the server last answered the same request with a gRPC
/// `RESOURCE_EXHAUSTED` that names no wait.
///
/// Such an answer is what a rate limit that says nothing more sends, and also what a gRPC
/// library sends of its own for a message over its size limit. The same answer to the next
/// attempt shows it was the request's own: the [`RetryLayer`] puts this marker on that attempt
/// so that a rate-limit gate below neither closes nor extends the path for it (see
/// [outages](crate::rate_limit#outages)), and does not send a third one.
///
/// ```
/// use tower_api_retry::retry::ExhaustedBefore;
///
/// let mut retry = http::Request::new(());
/// retry.extensions_mut().insert(ExhaustedBefore);
/// assert!(retry.extensions().get::<ExhaustedBefore>().is_some());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExhaustedBefore;

/// How many attempts produced a response. Read it with [`Attempts::of`], which answers for
/// every response; [`Error::attempts`](crate::Error::attempts) carries the same on failure.
///
/// [`Retry`] adds this extension to a response that took more than one attempt. A first
/// attempt's success, by far the most common response, carries none: inserting it into a
/// response's empty extensions would cost three allocations per request. [`Attempts::of`]
/// answers 1 for it.
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
/// use tower_api_retry::{Attempts, ServiceBuilderExt};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let server = service_fn(|_req: Request<Full<Bytes>>| async {
///     Ok::<_, std::io::Error>(Response::new(Full::new(Bytes::from("ok"))))
/// });
/// let client = ServiceBuilder::new().api_contract().service(server);
/// let res = client.oneshot(Request::get("/api/status").body(Full::default()).unwrap()).await.unwrap();
/// assert_eq!(Attempts::of(&res), 1);
/// assert_eq!(res.extensions().get::<Attempts>(), None); // nothing was inserted
/// # }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attempts(pub(crate) u32);

impl Attempts {
    /// The number of attempts, at least 1.
    pub fn get(&self) -> u32 {
        self.0
    }

    /// How many attempts produced `res`: the count [`Retry`] recorded when it took more than
    /// one, else 1 (a first attempt's success, or a response that no retry layer saw).
    ///
    /// ```
    /// # use tower_api_retry::Attempts;
    /// let res = http::Response::new(());
    /// assert_eq!(Attempts::of(&res), 1);
    /// ```
    pub fn of<B>(res: &http::Response<B>) -> u32 {
        Attempts::from_extensions(res.extensions())
    }

    /// [`Attempts::of`] for a response's extensions alone (a `tonic::Response`'s, say, or
    /// extensions taken apart from their response).
    ///
    /// ```
    /// # use tower_api_retry::Attempts;
    /// let extensions = http::Extensions::new();
    /// assert_eq!(Attempts::from_extensions(&extensions), 1);
    /// ```
    pub fn from_extensions(extensions: &http::Extensions) -> u32 {
        extensions.get::<Attempts>().map_or(1, Attempts::get)
    }
}
