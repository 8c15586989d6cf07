//! Adapters that put other HTTP clients under the stack, one module per client, each behind
//! the feature of the same name.
//!
//! The layers of this crate wrap any `tower::Service<http::Request<B>>` that answers an
//! `http::Response`: a hyper-util client, a tonic `Channel` or an axum `Router` needs no adapter.
//! A client with request and response types of its own does:
//!
//! - `reqwest` (feature `reqwest`): `ReqwestService` puts a `reqwest::Client` under the stack,
//!   replays `reqwest::Body` request bodies and classifies reqwest's errors (refused, reset,
//!   timeout) like hyper's.

#[cfg(feature = "reqwest")]
pub mod reqwest;
