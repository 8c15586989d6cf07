//! Integrations with other crates of the ecosystem, one file each, each behind its feature.
//!
//! - `tonic`: every [`Error`](crate::Error) converts into a `tonic::Status` with the right
//!   code (`From<Error> for tonic::Status`), and carries that `Status` in its chain of
//!   sources, where `tonic::client::Grpc` looks when a service below it fails: a call through
//!   the stack fails with the server's own gRPC code, message, details
//!   (`grpc-status-details-bin`) and metadata, not `Unknown`. `tonic::body::Body` request
//!   bodies replay on retry.
//! - `axum`: `axum::body::Body` request bodies replay on retry.
//! - `tower-http`: the `tower_http` module, the crate's classification as a
//!   `tower_http::classify` classifier for `TraceLayer`, and a span that leaves the query
//!   string (and the credentials it may carry) out of logs.

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "tonic")]
pub(crate) mod tonic;
#[cfg(feature = "tower-http")]
pub mod tower_http;
