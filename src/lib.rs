//! Tower middleware that makes hyper, reqwest, tonic and axum clients obey an API's published
//! error contract.
//!
//! An API's error reference page is a contract: *this* body shape, *these* codes, *this* status
//! means "fix the request", *that* one "retry with backoff, 1 s doubling up to 30 s", a 429
//! means "stop sending on this path and honour `Retry-After`", `AGENT_BLOCKED` means "a
//! person must act; never auto-retry". Every client re-implements that page by hand, usually
//! half of it: it retries a 400, hammers a rate-limited path, parses `message` instead of
//! `code`, or prints an echoed `Bearer` token in a log line. This crate implements two such
//! pages once, as Tower layers: an "Errors" page whose bodies are `{"detail": "..."}` and whose
//! status decides what to do, and an "Errors & Rate Limits" page with a
//! `{code, message, fix, details}` envelope, its code tables, MCP tool errors, rate limits and
//! budgets. A client wrapped in the layers behaves the way the pages tell a careful caller to
//! behave.
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
//! `api_contract()` is exactly this, with each layer configurable through
//! [`ApiContractLayer`] (`.layer(ApiContractLayer::new().retry(...))`):
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(RetryLayer::new())              // outermost: retries what the contract allows
//!     .layer(RateLimitBackoffLayer::new())   // closes a path's gate on 429 / RESOURCE_EXHAUSTED
//!     .layer(ErrorDecodeLayer::new())        // innermost: error responses become `Error`
//!     .service(client)
//! ```
//!
//! - [`ErrorDecodeLayer`] sits right around the client. Success responses pass through
//!   untouched (same body type, not buffered); error responses (status ≥ 400, or a non-zero
//!   gRPC `grpc-status`) are read up to a bounded size and become one typed [`Error`], which
//!   wraps what the server said ([`ApiError`]) or a transport failure.
//! - [`RateLimitBackoffLayer`] ([`rate_limit`]) closes the gate of a path (or gRPC method)
//!   that was rate limited, until `Retry-After` has passed; then one probe goes first.
//! - [`RetryLayer`] ([`retry`]) retries what the contract calls transient, on the shared
//!   [`backoff`] schedule (1 s, 2 s, 4 s, each plus up to 20 %, never above 30 s) or after the
//!   server's [`retry_after`](Error::retry_after) hint, without duplicating a side effect.
//!
//! All three decide from [`Error::disposition`], computed by one decision table, an
//! [`ErrorContract`] (by default the built-in table of both pages; declare another API's
//! codes on it): [`Retry`](Disposition::Retry), [`RateLimited`](Disposition::RateLimited),
//! [`FixRequest`](Disposition::FixRequest), [`Reauthenticate`](Disposition::Reauthenticate),
//! [`Forbidden`](Disposition::Forbidden), [`NeedsHuman`](Disposition::NeedsHuman), or
//! [`DoNotRetry`](Disposition::DoNotRetry) when the server forbade a retry. See the
//! [`stack`] module for why this order.
//!
//! # Other clients and protocols
//!
//! - **tonic**: the same stack wraps a `tonic::transport::Channel`
//!   (`tonic::client::Grpc::new(stack)`); the request type is unchanged. With the `tonic`
//!   feature, tonic's request body replays on retry and a failed call reports the server's own
//!   gRPC code and message (see [`integrations`]).
//! - **axum**: the stack wraps a `Router` or a proxy handler's client; with the `axum` feature
//!   `axum::body::Body` request bodies replay on retry.
//! - **reqwest**: with the `reqwest` feature, `ReqwestService` puts a `reqwest::Client` under
//!   the same stack (`ServiceBuilder::new().api_contract().service(ReqwestService::new(client))`,
//!   see `integrations::reqwest`): `reqwest::Body` request bodies replay on retry, and reqwest's
//!   errors are classified like hyper's (a refused connection was never sent, a timeout is
//!   `DEADLINE_EXCEEDED`).
//! - **Server-sent events**: [`ResumableEvents`] ([`sse`]) reads an event stream and
//!   reconnects after a drop with `?since=<last event id>`, on the same backoff.
//! - **MCP**: a tool-call error arrives inside an HTTP 200. Install the stack with
//!   `ServiceBuilder::new().layer(`[`ApiContractLayer::mcp()`]`)`. This mode
//!   changes the response body type to [`McpBody<B>`](mcp::McpBody) (see the [`mcp`]
//!   module).
//! - **One request's policy**: a [`RetryOverride`] in its extensions (no retries, another
//!   `max_retries` or deadline, a `POST` declared safe to repeat); see [`retry`].
//! - **Without the layers**: [`ApiError::decode`] decodes a status, headers and body
//!   without any layer. The [`builtin`] module holds what is specific to the two pages: the
//!   `agent_connected` conflict and its force-rotate header, and the `currentObjective` block
//!   with credits shown as dollars; with the `tower-http` feature, `integrations::tower_http` reports
//!   failures to `tower_http`'s `TraceLayer` by disposition.
//!
//! # Feature flags
//!
//! All are off by default.
//!
//! - `tonic`: `From<Error> for tonic::Status`, the `Status` in [`Error`]'s chain of sources
//!   (so `tonic::client::Grpc` reports the server's code), and replay of `tonic::body::Body`.
//! - `axum`: replay of `axum::body::Body` request bodies.
//! - `tower-http`: the crate's classification as a `tower_http::classify` classifier.
//! - `reqwest`: `ReqwestService` (in [`integrations`]): a `reqwest::Client` under the stack,
//!   replay of `reqwest::Body` request bodies, reqwest's errors classified. It enables no
//!   feature of reqwest (no TLS): enable those on your own `reqwest` dependency.
//! - `metrics`: counters and histograms through the `metrics` facade, for any exporter; the
//!   names and labels are listed in [`metrics`].
//! - `redis`: `rate_limit::RedisStore`, gates shared by a fleet of processes through Redis
//!   (or a Redis Cluster): a rate limit or an outage seen by one process holds the path for
//!   all. It adds `redis` (with tokio) and tokio's `rt` feature.
//!
//! Without any feature the crate depends on `tower` (`util`, `timeout`), `http`, `http-body`
//! and `http-body-util` (the request and response types, reading error bodies, replaying
//! request bodies), `bytes`, `tokio` with `time` and `sync` (the waits, the gates and the
//! read timeout run on tokio's timer, so the stack runs inside a tokio runtime), `serde` and
//! `serde_json` (error bodies), `rand` (jitter), `httpdate` (`Retry-After` dates),
//! `percent-encoding` (`grpc-message`, `?since=` cursors), `pin-project-lite` (the futures),
//! `futures-core` (the event stream), `tracing` (an event per retry and per gate change, a
//! span per attempt), `sfv` (structured rate-limit headers), `base64` (gRPC's `-bin`
//! metadata), `bitflags` (sets of outage signals and header conventions), `foldhash` (hashing
//! rate-limit keys) and `memchr` (finding credentials to redact in error text).
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
mod telemetry;
mod text;

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

/// The README's examples, compiled (and run, unless they reach for a remote API) as doctests
/// exactly as the README shows them, so they never drift from the code. Some need the
/// optional features: they are tested with every feature on.
#[cfg(all(doctest, feature = "reqwest", feature = "metrics", feature = "redis"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
