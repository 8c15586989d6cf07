//! gRPC's own headers and trailers.

pub(crate) mod metadata;
