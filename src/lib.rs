//! Tower middleware that makes hyper, tonic and axum clients obey an API's published error
//! contract.
//!
//! # The problem
//!
//! An API's error reference page is a contract: *this* body shape, *these* codes, *this* status
//! means "fix the request", *that* one "retry with backoff, 1 s doubling up to 30 s", a 429
//! means "stop sending on this path and honour `Retry-After`", `AGENT_BLOCKED` means "a
//! person must act; never auto-retry". Every client re-implements that page by hand, usually
//! half of it: it retries a 400, hammers a rate-limited path, parses `message` instead of
//! `code`, or prints an echoed `Bearer` token in a log line. This crate implements the page
//! once, as Tower layers, so a client wrapped in them behaves the way the page tells a careful
//! caller to behave.
//!
//! # The three layers
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
//! - The rate-limit layer (issue 4, [`rate_limit`]) and the retry layer (issue 3, [`retry`])
//!   sit outside it and decide from [`Error::disposition`], computed by the one classification
//!   table [`classify`], and wait on the shared [`backoff`] schedule or the server's
//!   [`retry_after`](Error::retry_after) hint.
//!
//! Every error is classified into a [`Disposition`]: [`Retry`](Disposition::Retry),
//! [`RateLimited`](Disposition::RateLimited), [`FixRequest`](Disposition::FixRequest),
//! [`Reauthenticate`](Disposition::Reauthenticate), [`Forbidden`](Disposition::Forbidden) or
//! [`NeedsHuman`](Disposition::NeedsHuman). Branch on [`ErrorCode`] and [`Disposition`],
//! never on the message text.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_api_retry::{Disposition, ErrorCode, ErrorDecodeLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Stands in for a hyper/tonic/axum client: it answers like the first page's 409.
//! let server = service_fn(|req: Request<Full<Bytes>>| async move {
//!     let res = match req.uri().path() {
//!         "/api/spaces/s1/events" => Response::builder()
//!             .status(409)
//!             .body(Full::new(Bytes::from(r#"{"detail": "Space is not active"}"#))),
//!         _ => Response::builder().body(Full::new(Bytes::from("{}"))),
//!     };
//!     Ok::<_, std::convert::Infallible>(res.unwrap())
//! });
//! let mut client = ServiceBuilder::new().layer(ErrorDecodeLayer::new()).service(server);
//!
//! // A success is the inner service's own response, untouched.
//! let ok = client.ready().await.unwrap().call(Request::get("/api/spaces").body(Full::default()).unwrap()).await;
//! assert_eq!(ok.unwrap().status(), StatusCode::OK);
//!
//! // An error response is a typed `Error`.
//! let req = Request::post("/api/spaces/s1/events").body(Full::default()).unwrap();
//! let err = client.ready().await.unwrap().call(req).await.unwrap_err();
//! assert_eq!(err.status(), Some(StatusCode::CONFLICT));
//! assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
//! assert_eq!(err.message(), "Space is not active");
//! assert_eq!(err.disposition(), Disposition::FixRequest);
//! assert!(!err.is_retryable()); // 4xx: never retried without fixing the request
//! # }
//! ```
//!
//! Clients that read bodies themselves can call [`ApiError::decode`] directly. The
//! [`budget`] module reads the second page's `currentObjective` block and shows credits as
//! dollars.
//!
//! # Feature flags
//!
//! All are off by default; the core needs only `tower`, `http` and `http-body`.
//!
//! - `tonic`: `From<Error> for tonic::Status` and replay support for `tonic::body::Body`.
//! - `axum`: replay support for `axum::body::Body`.
//! - `tower-http`: use the crate's classification as a `tower_http::classify` classifier.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backoff;
pub mod budget;
#[cfg(feature = "tower-http")]
pub mod classifier;
mod classify;
mod code;
pub mod decode;
mod error;
#[cfg(feature = "tonic")]
pub mod grpc_status;
pub mod rate_limit;
mod redact;
pub mod retry;
pub mod retry_after;
pub mod sse;
pub mod stack;

pub use classify::{Disposition, classify, classify_status};
pub use code::ErrorCode;
pub use decode::ErrorDecodeLayer;
pub use error::{AgentConnected, ApiError, BodyShape, BoxError, Error, X_FORCE_ROTATE};
// re-exports: retry (issue 3)
pub use retry::{Attempts, Retry, RetryLayer};
// re-exports: rate_limit (issue 4)
pub use rate_limit::{RateLimitBackoff, RateLimitBackoffLayer, RateLimitGates};
// re-exports: sse (issue 7)
pub use sse::{Event, ResumableEvents};
// re-exports: the whole stack (issue 5)
pub use stack::{ApiContract, ApiContractLayer, McpApiContract, ServiceBuilderExt};
