//! Integrations with other crates of the ecosystem, one file each, each behind its feature.
//!
//! The layers of this crate wrap any `tower::Service<http::Request<B>>` that answers an
//! `http::Response`: a hyper-util client, a tonic `Channel` or an axum `Router` needs no
//! adapter. What each feature adds:
//!
//! - `tonic`: `From<Error> for tonic::Status`, the `Status` in an [`Error`]'s chain of
//!   sources (where `tonic::client::Grpc` looks), and replay of `tonic::body::Body`.
//! - `axum`: replay of `axum::body::Body`.
//! - `tower-http`: the `tower_http` module, the crate's classification for `TraceLayer`.
//! - `reqwest`: the `reqwest` module, a `reqwest::Client` under the stack.

#[cfg(feature = "axum")]
mod axum;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "tonic")]
pub(crate) mod tonic;
#[cfg(feature = "tower-http")]
pub mod tower_http;

use crate::error::Error;
use std::error::Error as StdError;

/// The chain of sources depends on the integrations compiled in: a transport failure's source
/// is the client's own error; with `tonic`, any other error's source is the equivalent
/// `tonic::Status`, where `tonic::client::Grpc` looks for it; without it, what the server said
/// ([`ApiError`](crate::ApiError)), if anything.
impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        // A call whose deadline ran out is `DEADLINE_EXCEEDED`, whatever cut it off: tonic
        // takes the first `Status` or transport error of the chain, so the status comes first.
        #[cfg(feature = "tonic")]
        if self.is_deadline_exceeded() {
            return Some(self.view(|err| Box::new(tonic::status_of(err))));
        }
        if let Some(source) = self.transport_source() {
            return Some(source);
        }
        #[cfg(feature = "tonic")]
        {
            Some(self.view(|err| Box::new(tonic::status_of(err))))
        }
        #[cfg(not(feature = "tonic"))]
        {
            self.api().map(|api| api as &(dyn StdError + 'static))
        }
    }
}
