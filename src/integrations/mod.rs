//! Integrations with other crates of the ecosystem, each behind its feature flag.
//!
//! - `tonic`: `From<Error> for tonic::Status`, the `Status` in [`Error`](crate::Error)'s chain
//!   of sources, and replay of `tonic::body::Body` request bodies.
//! - `axum`: replay of `axum::body::Body` request bodies.
//! - `tower-http`: [`tower_http`], the crate's classification as a `tower_http::classify`
//!   classifier.

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "tonic")]
pub(crate) mod tonic;
#[cfg(feature = "tower-http")]
pub mod tower_http;
