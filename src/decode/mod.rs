//! Middleware that turns error responses into one typed [`Error`](crate::Error).
//!
//! [`ErrorDecodeLayer`] sits innermost, right around the client. A success (1xx–3xx with no
//! non-zero `grpc-status`) passes through untouched: same body type, neither buffered nor
//! wrapped. Anything else becomes `Err(Error)`, after reading at most
//! [`max_body_bytes`](ErrorDecodeLayer::max_body_bytes) of the body for at most
//! [`read_timeout`](ErrorDecodeLayer::read_timeout). Every body shape of both pages is
//! understood (see [`BodyShape`]), as is gRPC's trailers-only status; junk
//! from a proxy is classified by its status, with a short safe excerpt as the message. The
//! credentials a request carried never show in its error (see [`Credentials`]).
//! [`McpDecodeLayer`](crate::McpDecodeLayer) also decodes MCP tool-call errors in an HTTP 200.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use tower::{service_fn, Service, ServiceExt};
//! use tower_api_retry::{Disposition, ErrorCode, ErrorDecodeLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let body = r#"{"code":"KEY_REVOKED","message":"The key was rotated or revoked.","fix":"Generate a fresh key in Settings → API Keys"}"#;
//!     Ok::<_, std::io::Error>(Response::builder().status(401).body(Full::new(Bytes::from(body))).unwrap())
//! });
//! let mut client = tower::ServiceBuilder::new().layer(ErrorDecodeLayer::new()).service(server);
//!
//! let err = client.ready().await.unwrap().call(Request::new(Full::default())).await.unwrap_err();
//! assert_eq!(err.code(), &ErrorCode::KeyRevoked);
//! assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
//! assert_eq!(err.disposition(), Disposition::Reauthenticate);
//! assert_eq!(err.fix(), Some("Generate a fresh key in Settings → API Keys"));
//! # }
//! ```

pub(crate) mod layer;
mod shape;

pub use crate::text::Credentials;
pub use layer::{ErrorDecode, ErrorDecodeLayer, ResponseFuture};

pub(crate) use crate::text::SensitiveHeaders;

use crate::{
    code::ErrorCode,
    error::{ApiError, Assembly, BodyShape},
    retry_after::{Hint, hint_from_headers},
    text::safe::excerpt,
};
use http::{HeaderMap, StatusCode};

impl ApiError {
    /// Decodes an error response from its status, headers and (possibly truncated) body.
    ///
    /// For clients that read bodies themselves. It never fails: a body that is no documented
    /// shape gives an error derived from the status ([`ErrorCode::from_status`]) with a short,
    /// safe excerpt as its message.
    ///
    /// ```
    /// use http::{HeaderMap, StatusCode};
    /// use tower_api_retry::{ApiError, BodyShape, ErrorCode};
    ///
    /// let err = ApiError::decode(StatusCode::CONFLICT, &HeaderMap::new(), br#"{"detail": "Space is not active"}"#);
    /// assert_eq!((err.code(), err.message(), err.shape()), (&ErrorCode::FailedPrecondition, "Space is not active", BodyShape::Detail));
    ///
    /// let junk = ApiError::decode(StatusCode::BAD_GATEWAY, &HeaderMap::new(), b"<html><title>502 Bad Gateway</title></html>");
    /// assert_eq!((junk.code(), junk.message()), (&ErrorCode::Unavailable, "502 Bad Gateway"));
    /// ```
    ///
    /// Only marker-based redaction applies here (`Bearer <secret>`, `token=<secret>`, members
    /// named like a credential): a key echoed with nothing around it is only found by
    /// [`decode_with`](Self::decode_with), given the request's [`Credentials`].
    pub fn decode(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
        ApiError::decode_with(status, headers, body, &Credentials::new())
    }

    /// [`decode`](Self::decode), for the response to a request that carried `credentials`:
    /// every exact occurrence of one of them is replaced by `[REDACTED]` in everything the
    /// error holds, as [`ErrorDecodeLayer`] does (see [`Credentials`] for an example).
    pub fn decode_with(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        credentials: &Credentials,
    ) -> ApiError {
        ApiError::decode_body(status, headers, body, credentials, true)
    }

    /// [`decode_with`](Self::decode_with) of a body that may have been cut short
    /// (`complete == false`: the read limit or timeout stopped it).
    pub(crate) fn decode_body(
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        credentials: &Credentials,
        complete: bool,
    ) -> ApiError {
        let hint = hint_from_headers(headers);
        if let Some(err) = grpc_error(status, headers, hint, credentials) {
            return err;
        }
        let mut obj = shape::Obj::default();
        if shape::parse(body, &mut obj) {
            return obj.take_api_error(status, hint, body, credentials);
        }
        drop(obj);
        // Not a documented shape: the status decides, and an excerpt (already safe and
        // short) is the message. A body cut short may end with the first bytes of a
        // credential: they are left out.
        let body = match complete {
            true => body,
            false => {
                &body[..body
                    .len()
                    .saturating_sub(credentials.longest().saturating_sub(1))]
            }
        };
        let code = ErrorCode::from_status(status);
        let mut message = excerpt(body, credentials);
        if message.is_empty() {
            message = default_message(status, &code);
        }
        ApiError::assemble(Assembly {
            message,
            hint,
            ..Assembly::new(status, code, crate::error::BodyShape::Unrecognized)
        })
    }
}

/// `true` when a response is an error: a status of 400 or more, or a non-zero `grpc-status`.
pub(crate) fn is_error(status: StatusCode, headers: &HeaderMap) -> bool {
    status.as_u16() >= 400 || crate::grpc::is_error(headers)
}

/// The message of an error whose body said nothing: the status's reason phrase, or the code.
pub(crate) fn default_message(status: StatusCode, code: &ErrorCode) -> String {
    match status.canonical_reason() {
        Some(reason) if status.as_u16() >= 400 => reason.to_owned(),
        _ => code.as_str().to_owned(),
    }
}

/// The error a non-OK `grpc-status` in `headers` reports, if there is one; a parsable number
/// is kept as the numeric code.
fn grpc_error(
    status: StatusCode,
    headers: &HeaderMap,
    hint: Hint,
    credentials: &Credentials,
) -> Option<ApiError> {
    let crate::grpc::GrpcStatus { code, number } = crate::grpc::status(headers)?;
    let mut message = crate::grpc::message(headers, credentials);
    if message.is_empty() {
        message = code.as_str().to_owned();
    }
    Some(ApiError::assemble(Assembly {
        message,
        hint,
        numeric_code: number.map(i64::from),
        grpc: crate::grpc::metadata::GrpcExtra::capture(headers, credentials),
        ..Assembly::new(status, code, BodyShape::Grpc)
    }))
}

#[cfg(test)]
mod tests;
