//! Tower middleware that makes hyper, tonic and axum clients obey an API's published error
//! contract.
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
pub use stack::{ApiContract, ApiContractLayer, ServiceBuilderExt};
