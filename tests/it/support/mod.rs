//! Shared support for the integration tests.
#![allow(dead_code, unreachable_pub, unused_imports)]

pub mod emulator;

pub use emulator::{Emulator, Reply, Seen, checksum};
pub mod external;
pub mod grpc;
pub mod limited;
pub mod outage;
pub mod trace;
