//! What may be sent again without duplicating a side effect.

use crate::{BodyShape, Disposition, Error, ErrorCode};
use http::{HeaderMap, HeaderName, Method};

/// The `Idempotency-Key` request header: a request that carries one may be retried whatever
/// its method, since the server deduplicates it.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

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

/// `true` when the error shows the server did not process the request, so even a POST can be
/// sent again. The classification itself is [`Error::disposition`]; this only asks whether a
/// side effect can have happened.
pub(crate) fn not_processed(err: &Error, facts: RequestFacts, grpc_unavailable: bool) -> bool {
    if !err.request_sent() {
        // Refused connection, closed rate-limit gate: it never left this process.
        return true;
    }
    if err.disposition() == Disposition::RateLimited {
        // 429, RESOURCE_EXHAUSTED: rejected at the door.
        return true;
    }
    match err.code() {
        ErrorCode::RefreshInProgress => true,
        // A gRPC server (not the transport) answering UNAVAILABLE: gRPC's status-code guide
        // defines it as the code to retry with backoff, and gRPC's retry design lists it as
        // the retryable code by default.
        ErrorCode::Unavailable => {
            grpc_unavailable
                && facts.grpc
                && err.api().is_some_and(|a| a.shape() == BodyShape::Grpc)
        }
        _ => false,
    }
}
