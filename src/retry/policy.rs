//! What may be sent again without duplicating a side effect.

use http::{HeaderMap, HeaderName, Method};

/// The `Idempotency-Key` request header: a request that carries one may be retried whatever
/// its method, since the server deduplicates it.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// What the request looked like, for the side-effect rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestFacts {
    /// The method is idempotent (RFC 9110 §9.2.2), or the request has an `Idempotency-Key`.
    pub(crate) idempotent: bool,
    /// The request is gRPC (`content-type: application/grpc…`).
    pub(crate) grpc: bool,
}

impl RequestFacts {
    pub(crate) fn of(method: &Method, headers: &HeaderMap) -> RequestFacts {
        let idempotent = matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        ) || headers.contains_key(IDEMPOTENCY_KEY);
        RequestFacts {
            idempotent,
            grpc: is_grpc(headers),
        }
    }
}

pub(crate) use crate::grpc::is_grpc;
