//! Middleware that stops sending on a rate-limited or failing path until it recovers.
//!
//! An API that rejects rather than queues asks its clients to stop sending on a path once it
//! answers a rate limit, for at least the `Retry-After` it names, and to hold a path whose
//! server is down the same way. [`RateLimitBackoffLayer`] does that per [`Key`] (by default
//! scheme, authority and path template; for gRPC the method). It sits between a
//! [`RetryLayer`](crate::RetryLayer) outside and [`ErrorDecodeLayer`](crate::ErrorDecodeLayer)
//! inside, so a retried attempt waits at the gate instead of hammering the server.
//!
//! Each key's gate, kept in [`RateLimitGates`], is **closed** by an error whose
//! [`Verdict`](crate::Verdict) [`closes_gate`](crate::Verdict::closes_gate), for the server's
//! hint (capped at [`max_closed`](RateLimitBackoffLayer::max_closed)) or a growing
//! [`Backoff`](crate::backoff::Backoff). A request **waits** up to
//! [`max_wait`](RateLimitBackoffLayer::max_wait), or fails at once, unsent, with an error that
//! [`is_gate_closed`](crate::Error::is_gate_closed); one held for an outage no longer than
//! [`max_outage_wait`](RateLimitBackoffLayer::max_outage_wait) or what is left of its retry
//! schedule ([`ScheduleEnd`](crate::retry::ScheduleEnd)). When the time is up, one request
//! **probes**: any answer but another rate limit opens the key. At most
//! [`max_keys`](RateLimitGates::max_keys) keys are kept; forgetting one fails open, and with
//! no key closed a request takes no lock.
//!
//! Around that mechanism, policies: a rate-limited key is **paced** (requests leave in
//! arrival order, one interval apart: a slow start, then just under the rate the server took,
//! probing above it at intervals that double while the probes are rejected), and an
//! announced [quota](crate::quota) is spent as a **budget** spread over the time to its reset,
//! so the client stops before the `429`. Rate limits (or outages) on two keys of one server
//! within a second hold every path to it. With the `redis` feature, [`RedisStore`] shares the
//! gates of a fleet of processes.
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
//! A gRPC `RESOURCE_EXHAUSTED` naming no wait that a retry gets again is the request's own
//! failure (a message over a size limit): it is not retried
//! ([`NotRetried::ExhaustedAgain`](crate::NotRetried::ExhaustedAgain)) and does not close the
//! method.
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
