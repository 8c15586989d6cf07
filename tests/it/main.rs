//! The integration tests of tower-api-retry: one test binary, a module per layer or concern.
//!
//! One binary links the crate and its dev-dependencies once. Run one module with a filter: `cargo test --all-features --test it retry::`.
//!
//! Adding a test file: put it in this folder (`tests/it/contract.rs`) and name it below
//! (`mod contract;`), behind `#[cfg(feature = "...")]` if it needs a feature. It reaches the
//! shared fixtures as `crate::support::{Emulator, Reply, grpc, trace}`. Module names are
//! prefixed where they could shadow a crate (`e2e_tonic`, not `tonic`).
//!
//! The process is shared: a test that inspects tracing output either takes
//! `support::trace::capture()` (the binary's one global subscriber, recording while held) or
//! installs a scoped subscriber after `support::trace::install()`. Property tests that take
//! the crate from outside live in `props.rs`; they and the library's share one file of
//! regression seeds, `proptest-regressions.txt` at the crate's root.

mod support;

mod chaos;
mod contract;
mod deadline;
mod decode;
mod e2e_axum;
mod e2e_hyper;
#[cfg(feature = "reqwest")]
mod e2e_reqwest;
#[cfg(feature = "tonic")]
mod e2e_tonic;
#[cfg(feature = "tower-http")]
mod e2e_tower_http;
#[cfg(feature = "redis")]
mod fleet;
mod gate;
mod grpc_trailers;
mod hostile;
mod mcp;
mod metastable;
#[cfg(feature = "metrics")]
mod metrics;
mod nginx;
mod outages;
mod pacing;
mod pacing_settled;
mod props;
mod quota;
mod retry;
mod retry_override;
mod secrets;
mod server_limits;
mod sse;
mod support_smoke;
