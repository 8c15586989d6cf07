//! Tower middleware that makes hyper, reqwest, tonic and axum clients obey an API's published
//! error contract.
//!
//! An API's error reference page is a contract: *this* status means "fix the request", *that*
//! one "retry with backoff", a 429 "stop sending on this path and honour `Retry-After`",
//! `AGENT_BLOCKED` "a person must act". Every client re-implements that page by hand, usually
//! half of it: it retries a 400, hammers a rate-limited path, parses `message` instead of
//! `code`, or logs an echoed `Bearer` token. This crate implements two such pages once, as
//! Tower layers (an "Errors" page of `{"detail": "..."}` bodies, and an "Errors & Rate Limits"
//! page with a `{code, message, fix, details}` envelope), so a wrapped client behaves the way
//! the pages tell a careful caller to behave; other APIs declare their codes on an
//! [`ErrorContract`].
//!
//! # Example
//!
//! A hyper-util client with the whole stack, installed in one line:
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, StatusCode};
//! use http_body_util::Full;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_api_retry::{Disposition, ErrorCode, ServiceBuilderExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//! # // An API on loopback: `/api/spaces` answers 200, anything else the "Errors" page's 409.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let api = format!("http://{}", listener.local_addr()?);
//! # let app = axum::Router::new()
//! #     .route("/api/spaces", axum::routing::get(|| async { "[]" }))
//! #     .fallback(|| async { (axum::http::StatusCode::CONFLICT, r#"{"detail": "Space is not active"}"#) });
//! # tokio::spawn(async move { axum::serve(listener, app).await });
//! // Any hyper-util client: HTTP/1 or HTTP/2, with the connector (and TLS) of your choice.
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
//! // Retries, rate-limit gates and typed errors, in the documented order.
//! let mut client = ServiceBuilder::new().api_contract().service(client);
//!
//! // A success is the client's own response, its body untouched.
//! let request = Request::get(format!("{api}/api/spaces")).body(Full::default())?;
//! let response = client.ready().await?.call(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//!
//! // An error response is one typed `Error`: branch on its code and disposition,
//! // never on the message text.
//! let request = Request::post(format!("{api}/api/spaces/s1/events")).body(Full::default())?;
//! let err = client.ready().await?.call(request).await.unwrap_err();
//! assert_eq!(err.status(), Some(StatusCode::CONFLICT));
//! assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
//! assert_eq!(err.message(), "Space is not active");
//! assert_eq!(err.disposition(), Disposition::FixRequest); // fix the request first...
//! assert_eq!(err.attempts(), 1); // ...so it was not retried
//! # Ok(())
//! # }
//! ```
//!
//! `api_contract()` is this stack plus one link the separate layers lack: a first attempt held
//! at a gate closed for an outage waits no longer than the retry schedule (see
//! [`RateLimitBackoffLayer::max_outage_wait`](crate::RateLimitBackoffLayer::max_outage_wait)).
//! Each layer stays configurable through [`ApiContractLayer`]
//! (`.layer(ApiContractLayer::new().retry(...))`):
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(RetryLayer::new())              // outermost: retries what the contract allows
//!     .layer(RateLimitBackoffLayer::new())   // closes a path's gate on 429 / RESOURCE_EXHAUSTED
//!     .layer(ErrorDecodeLayer::new())        // innermost: error responses become `Error`
//!     .service(client)
//! ```
//!
//! The [`ErrorContract`] of the decoding layer judges each answer once, and all three layers
//! read that [`Verdict`] (see [`stack`] for why this order, [`rate_limit`] and [`retry`]).
//!
//! # Other clients and protocols
//!
//! - **tonic**: the same stack wraps a `tonic::transport::Channel`
//!   (`tonic::client::Grpc::new(stack)`).
//! - **axum**: the stack wraps a `Router` or a proxy handler's client.
//! - **reqwest**: `ReqwestService` (feature `reqwest`, see `integrations::reqwest`) puts a
//!   `reqwest::Client` under the same stack.
//! - **Server-sent events**: [`ResumableEvents`] ([`sse`]) reconnects after a drop with
//!   `?since=<last event id>`.
//! - **MCP**: a tool-call error inside an HTTP 200 is typed too, with
//!   `ServiceBuilder::new().layer(`[`ApiContractLayer::mcp()`]`)` (see [`mcp`]).
//! - **One request's policy**: a [`RetryOverride`] in its extensions (see [`retry`]).
//! - **Without the layers**: [`ApiError::decode`] decodes a status, headers and body.
//! - **The two pages' own specifics** (the `agent_connected` conflict and its force-rotate
//!   header, credits shown as dollars) are in [`builtin`].
//!
//! # Feature flags
//!
//! All are off by default. `tonic`: `From<Error> for tonic::Status` and replay of tonic request
//! bodies; `axum`: replay of `axum::body::Body`; `tower-http`: the crate's classification as a
//! `tower_http::classify` classifier; `reqwest`: `ReqwestService` (no TLS of its own: enable
//! it on your `reqwest` dependency); `metrics`: counters and histograms through the `metrics`
//! facade (see [`metrics`]); `redis`: `rate_limit::RedisStore`, gates shared by a fleet of
//! processes through Redis.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backoff;
pub mod builtin;
mod classify;
mod code;
pub mod contract;
pub mod decode;
mod error;
mod grpc;
pub mod integrations;
pub mod mcp;
pub mod metrics;
#[cfg(test)]
mod props;
pub mod quota;
pub mod rate_limit;
mod reason;
pub mod retry;
mod retry_after;
pub mod sse;
pub mod stack;
mod sync;
mod telemetry;
mod text;
mod verdict;

pub use classify::Disposition;
pub(crate) use classify::classify;
pub use code::ErrorCode;
pub use contract::{ErrorContract, OutageRule, OutageSignals};
pub use decode::{ErrorDecode, ErrorDecodeLayer};
pub use error::{ApiError, BodyShape, Error};
#[cfg(feature = "reqwest")]
pub use integrations::reqwest::ReqwestService;
pub use mcp::{McpDecode, McpDecodeLayer};
pub use quota::{Quota, QuotaScope, RateLimitHeaders};
pub use rate_limit::{RateLimitBackoff, RateLimitBackoffLayer, RateLimitGates};
pub use reason::{LocalFailure, NotRetried};
pub use retry::{Attempts, Retry, RetryLayer, RetryOverride};
pub use sse::{Event, ResumableEvents};
pub use stack::{ApiContract, ApiContractLayer, ServiceBuilderExt};
pub use verdict::Verdict;

/// The README's examples, compiled (and run, unless they reach for a remote API) as doctests
/// exactly as the README shows them, so they never drift from the code. Some need the
/// optional features: they are tested with every feature on.
#[cfg(all(doctest, feature = "reqwest", feature = "metrics", feature = "redis"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
