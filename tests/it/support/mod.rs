//! Shared support for the integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod bucket;
pub mod emulator;

pub use emulator::{Emulator, Reply, Seen, checksum};
pub mod external;
#[cfg(feature = "redis")]
pub mod fleet;
pub mod grpc;
pub mod limited;
pub mod outage;
#[cfg(feature = "redis")]
pub mod redis;
pub mod trace;
