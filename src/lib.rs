//! Tower middleware that makes hyper, tonic and axum clients obey an API's published error
//! contract.
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

pub mod backoff;
pub mod budget;
mod classify;
mod code;
pub mod decode;
mod error;
pub mod rate_limit;
mod redact;
pub mod retry;
pub mod retry_after;

pub use classify::{Disposition, classify, classify_status};
pub use code::ErrorCode;
pub use decode::ErrorDecodeLayer;
pub use error::{AgentConnected, ApiError, BodyShape, BoxError, Error, X_FORCE_ROTATE};
// re-exports: retry (issue 3)
// re-exports: rate_limit (issue 4)
pub use rate_limit::{RateLimitBackoff, RateLimitBackoffLayer, RateLimitGates};
