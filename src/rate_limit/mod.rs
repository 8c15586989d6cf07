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
//!   [`is_gate_closed`](crate::Error::is_gate_closed). A request held for an outage waits no
//!   longer than [`max_outage_wait`](RateLimitBackoffLayer::max_outage_wait) or what is left
//!   of its retry schedule ([`ScheduleEnd`](crate::retry::ScheduleEnd)), and then fails the
//!   same way.
//! - **Probed**: when the time is up, exactly one request goes first; any answer but another
//!   rate limit opens the key, a rate limit closes it for the next backoff, and a probe with
//!   no answer hands its role on. Nothing deadlocks.
//! - **Bounded**: at most [`max_keys`](RateLimitGates::max_keys) keys are kept; forgetting
//!   one fails open, never shut. With no key closed, a request takes no lock.
//!
//! Three policies decide around the mechanism.
//!
//! # Pacing
//!
//! A rate limit gives its key a lane, where requests leave in arrival order, one pace
//! interval apart. The pace starts slow and doubles until the server pushes back, then
//! climbs back from below what the server accepted along a cubic curve.
//!
//! # Announced quotas
//!
//! A budget for the [quota](crate::quota)'s scope, spread over the time to the reset; when
//! nothing is left, requests wait for the reset (at most `max_closed`), so the client stops
//! before the `429`.
//!
//! # Outages
//!
//! Transient rejections ([`OutageSignals`](crate::OutageSignals)) close their path once the
//! contract's [`OutageRule`](crate::OutageRule) says so; the path is held for growing holds,
//! probed one request at a time (preferring one that may be sent twice), then reopened on a
//! ramp.
//!
//! ## One request's own `RESOURCE_EXHAUSTED`
//!
//! A gRPC `RESOURCE_EXHAUSTED` that a retry marked by the [`RetryLayer`](crate::RetryLayer)
//! gets again without a wait is the request's own failure (a message over a size limit): it
//! is not retried ([`NotRetried::ExhaustedAgain`](crate::NotRetried::ExhaustedAgain)) and
//! does not close the method.
//!
//! # Scope
//!
//! A rate limit closes its own key. An announced quota applies to the whole server unless the
//! contract says [`QuotaScope::Path`](crate::quota::QuotaScope::Path). Rate limits (or
//! outages) on two keys of one server within a second hold every path to it until quiet.
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
