//! Middleware that retries what the API's contract calls transient, on the documented
//! schedule, without ever duplicating a side effect.
//!
//! A transient failure (a `503`, a reset connection, a rate limit) often succeeds a moment
//! later, but a careless retry makes things worse: clients in step hammer a recovering
//! server, and a `POST` sent twice may charge twice. [`RetryLayer`] goes outside
//! [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) (and the rate-limit layer), retries only what
//! [`Error::is_retryable`](crate::Error::is_retryable) says, waits as the API asks, and stops
//! at a cap, a [budget](RetryBudget) and a deadline. [`Attempts::of`] tells how many attempts
//! produced a response; an error has [`attempts()`](crate::Error::attempts) and
//! [`note()`](crate::Error::note).
//!
//! # Schedule
//!
//! Waits of 1 s, 2 s, 4 s, each plus up to 20 % (see [`backoff`](crate::backoff)); 3 retries.
//! A server hint (`Retry-After`, `retry-after-ms`, `grpc-retry-pushback-ms`) is a floor; one
//! above [`max_retry_after`](RetryLayer::max_retry_after) returns the error at once, with
//! [`retry_after()`](crate::Error::retry_after) set. `x-should-retry` overrules the contract
//! for one response. A gRPC `RESOURCE_EXHAUSTED` without a pushback is retried once: gRPC
//! answers so to a message over the server's size limit, which fails the same way every time.
//!
//! # Side effects
//!
//! GET, HEAD, OPTIONS, TRACE, PUT and DELETE are idempotent (RFC 9110 §9.2.2). A POST or
//! PATCH (and every gRPC call, which is a POST) is retried only when a duplicate cannot
//! happen: the server turned it away unprocessed (429, `RESOURCE_EXHAUSTED`,
//! `REFRESH_IN_PROGRESS`, `x-should-retry: true`); it never left this process
//! ([`request_sent()`](crate::Error::request_sent) is `false`); it carries an
//! `Idempotency-Key` header; or the caller opted in, for the layer
//! ([`retry_non_idempotent`](RetryLayer::retry_non_idempotent)) or for one request
//! ([`RetryOverride`]).
//!
//! ## gRPC
//!
//! A gRPC server's `UNAVAILABLE` also counts as unprocessed: gRPC defines it as "try again
//! with backoff" (a transport failure coded `UNAVAILABLE` does not). Turn it off with
//! [`retry_grpc_unavailable(false)`](RetryLayer::retry_grpc_unavailable) if your server can
//! answer `UNAVAILABLE` after a side effect.
//!
//! # Deadlines
//!
//! A call's deadline covers every attempt and every wait, as in gRPC's retry design (A6):
//! the earlier of the request's own `grpc-timeout` and [`deadline`](RetryLayer::deadline),
//! counted from when the call enters the layer. No wait is begun that would end past it. A
//! gRPC retry carries the time left in `grpc-timeout`, and a gRPC call ends at its deadline
//! with `DEADLINE_EXCEEDED`. Every attempt carries a [`CallDeadline`], which the rate-limit
//! gate honours.
//!
//! # Gates, budget, bodies, observability
//!
//! A wait at a rate-limit gate held for an outage spends the retry schedule instead of
//! adding to it (see [`ScheduleEnd`]); a gate closed by a rate limit is the server's to ask.
//! All services made by one layer share a [`RetryBudget`], which holds retries back while
//! failures dominate. Streaming bodies are replayed from a copy (see [`ReplayBody`]). Each
//! retry emits a `tracing` event at `INFO` (never headers or bodies), each attempt runs in a
//! `DEBUG` span, `api_retry.attempt`, and the `metrics` feature counts attempts, retries and
//! refusals (see [`metrics`](crate::metrics)).
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
//! // A server that answers 503 twice, then 200.
//! let calls = Arc::new(AtomicU32::new(0));
//! let server = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let status = if calls.fetch_add(1, Ordering::SeqCst) < 2 { 503 } else { 200 };
//!     async move { Ok::<_, std::io::Error>(Response::builder().status(status).body(Full::<Bytes>::default()).unwrap()) }
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
pub use deadline::{CallDeadline, ScheduleEnd};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use overrides::RetryOverride;
pub use service::Retry;

/// In a retry's extensions when the server last answered the same request with a gRPC
/// `RESOURCE_EXHAUSTED` that names no wait.
///
/// The same answer to that attempt shows it was the request's own (a message over a gRPC
/// size limit), so a rate-limit gate below neither closes nor extends the path for it (see
/// [one request's own `RESOURCE_EXHAUSTED`](crate::rate_limit#one-requests-own-resource_exhausted)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExhaustedBefore;

/// How many attempts produced a response; read it with [`Attempts::of`].
/// [`Error::attempts`](crate::Error::attempts) carries the same on failure. [`Retry`] inserts
/// it only after more than one attempt, so a first attempt's success allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Attempts(pub(crate) u32);

impl Attempts {
    /// How many attempts produced `res`: the count [`Retry`] recorded when it took more than
    /// one, else 1 (a first attempt's success, or a response that no retry layer saw).
    pub fn of<B>(res: &http::Response<B>) -> u32 {
        Attempts::from_extensions(res.extensions())
    }

    /// [`Attempts::of`] for a response's extensions alone (a `tonic::Response`'s, say).
    pub fn from_extensions(extensions: &http::Extensions) -> u32 {
        extensions.get::<Attempts>().map_or(1, |a| a.0)
    }
}
