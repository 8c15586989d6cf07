//! Middleware that stops sending on a rate-limited or failing path until it recovers.
//!
//! An API that rejects rather than queues asks its clients to stop sending on a path as soon
//! as it answers a rate limit, to wait at least the `Retry-After` it names, and to hold a path
//! whose server is down the same way. [`RateLimitBackoffLayer`] does that per [`Key`] (by
//! default scheme, authority and the path's template; for gRPC the method). It sits between
//! a [`RetryLayer`](crate::RetryLayer) outside and
//! [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) inside, so a retried attempt passes the gate
//! again and waits there instead of hammering the server.
//!
//! Each key's gate is one small mechanism, kept in [`RateLimitGates`]:
//!
//! - **Closed** by a rate limit (an error whose [`Verdict`](crate::Verdict)
//!   [`closes_gate`](crate::Verdict::closes_gate): a 429, a code the contract calls
//!   [`RateLimited`](crate::Disposition::RateLimited)) for the server's hint, capped at
//!   [`max_closed`](RateLimitBackoffLayer::max_closed), or else for a
//!   [`Backoff`](crate::backoff::Backoff) delay that grows with each consecutive rejection. A
//!   rejection of a request already in flight when the key closed only extends the closure.
//! - **Waited at**: a request waits up to [`max_wait`](RateLimitBackoffLayer::max_wait), or
//!   (with [`fail_fast`](RateLimitBackoffLayer::fail_fast), or when the gate opens too late)
//!   fails at once, unsent, with an [`Error`](crate::Error) that
//!   [`is_gate_closed`](crate::Error::is_gate_closed).
//! - **Probed**: when the time is up, exactly one request goes first; any answer but another
//!   rate limit opens the key, a rate limit closes it for the next backoff, and a probe with
//!   no answer hands its role on. Nothing deadlocks.
//! - **Bounded**: at most [`max_keys`](RateLimitGates::max_keys) keys are kept; forgetting
//!   one fails open, never shut. With no key closed, a request takes no lock.
//!
//! Three policies decide around the mechanism: pacing, announced quotas and outages.
//!
//! # Pacing
//!
//! A server that rejected a burst accepts a rate, not a burst. A rate limit gives its key a
//! lane: requests leave in the order they arrived, one pace interval apart. The pace is
//! learned: it starts slow and doubles until the server pushes back; a later rate limit sets
//! it below what the server accepted and lets it climb back along a cubic curve. An idle
//! lane is forgotten.
//!
//! # Announced quotas
//!
//! Servers that count requests often say so on every response ([`quota`](crate::quota)). The
//! layer keeps a budget for the quota's [scope](#scope), counted down with each request sent
//! and spread over the time to the reset. When nothing is left, requests wait for the reset
//! (at most `max_closed`): the client stops before the `429`, not after it.
//!
//! # Outages
//!
//! Transient rejections ([`OutageSignals`](crate::OutageSignals)) close their path too, once
//! the contract's [`OutageRule`](crate::OutageRule) says they are an outage rather than a bad
//! request. The path is held for growing holds and probed one request at a time (a request
//! that may be sent twice is preferred as the probe), then reopened on a ramp, not a herd.
//!
//! ## One request's own `RESOURCE_EXHAUSTED`
//!
//! A gRPC library answers `RESOURCE_EXHAUSTED` of its own to a message over its size limit.
//! When a retry that the [`RetryLayer`](crate::RetryLayer) marked gets that answer again
//! without a wait, it is the request's own failure: it is not retried again
//! ([`NotRetried::ExhaustedAgain`](crate::NotRetried::ExhaustedAgain)) and does not close the
//! method again.
//!
//! # Scope
//!
//! A rate limit closes its own key. An announced quota applies to the whole server unless the
//! contract says [`QuotaScope::Path`](crate::quota::QuotaScope::Path). Rate limits (or
//! outages) on two keys of one server within a second are taken to be the server's: its lane
//! then holds every path to it until it has been quiet for a while.
//!
//! With the `redis` feature, [`RedisStore`] shares the gates of a fleet of processes.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_api_retry::{ErrorCode, ErrorDecodeLayer, rate_limit::RateLimitBackoffLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let body = Full::new(Bytes::from(r#"{"code":"RESOURCE_EXHAUSTED","message":"Slow down."}"#));
//!     Ok::<_, std::io::Error>(Response::builder().status(429).header("retry-after", "20").body(body).unwrap())
//! });
//! let mut client = ServiceBuilder::new()
//!     .layer(RateLimitBackoffLayer::new().max_wait(Duration::from_secs(5)))
//!     .layer(ErrorDecodeLayer::new())
//!     .service(server);
//!
//! let req = || Request::get("http://api.example.com/v1/tasks").body(Full::default()).unwrap();
//! let first = client.ready().await.unwrap().call(req()).await.unwrap_err();
//! assert_eq!(first.status(), Some(StatusCode::TOO_MANY_REQUESTS));
//!
//! // The path is closed for 20 s, longer than this client waits: fails at once, unsent.
//! let second = client.ready().await.unwrap().call(req()).await.unwrap_err();
//! assert!(second.is_gate_closed() && !second.request_sent());
//! assert_eq!((second.code(), second.status()), (&ErrorCode::ResourceExhausted, None));
//! assert!(second.retry_after().unwrap() > Duration::from_secs(19));
//! # }
//! ```

mod body;
mod budget;
mod filter;
#[cfg(feature = "redis")]
mod fleet;
mod gate;
mod health;
mod key;
mod lanes;
mod layer;
mod notify;
mod pace;
mod policy;
mod service;
mod store;

pub use body::ResponseBody;
#[cfg(feature = "redis")]
pub use fleet::{RedisStore, RedisStoreError};
pub use gate::RateLimitGates;
pub use key::{Key, PathTemplate, RequestHead};
pub use layer::RateLimitBackoffLayer;
pub use service::{RateLimitBackoff, ResponseFuture};
