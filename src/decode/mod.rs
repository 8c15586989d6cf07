//! Middleware that turns error responses into one typed [`Error`](crate::Error).
//!
//! [`ErrorDecodeLayer`] sits innermost, right around the client. A success (1xx–3xx with no
//! non-zero `grpc-status`) passes through untouched: same body type, neither buffered nor
//! wrapped. Anything else becomes `Err(Error)`, after reading at most
//! [`max_body_bytes`](ErrorDecodeLayer::max_body_bytes) of the body for at most
//! [`read_timeout`](ErrorDecodeLayer::read_timeout), so an endless or trickling error body
//! costs a bounded amount of memory and time.
//!
//! Every body shape of both pages is understood (see [`BodyShape`](crate::BodyShape)), as is
//! gRPC's trailers-only `grpc-status` / `grpc-message`. Junk from a proxy is still an
//! [`ApiError`], classified by its status, with a short safe excerpt as the
//! message.
//!
//! Over MCP a tool-call error arrives in an HTTP 200; [`ErrorDecodeLayer::mcp`] is the opt-in
//! mode that decodes those too (see [`McpDecodeLayer`]), and
//! [`ApiContractLayer::mcp`](crate::ApiContractLayer::mcp) installs the whole stack with it.
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

mod grpc;
pub(crate) mod grpc_metadata;
mod layer;
mod mcp;
mod shape;

pub use layer::{ErrorDecode, ErrorDecodeLayer, ResponseFuture};
pub use mcp::{McpBody, McpDecode, McpDecodeLayer, McpResponseFuture};

use crate::{ErrorCode, error::ApiError, redact::redact, retry_after::hint_from_headers};
use http::{HeaderMap, StatusCode};

/// The longest message excerpt taken from a body that is not a documented shape, in chars.
const EXCERPT_CHARS: usize = 200;

impl ApiError {
    /// Decodes an error response from its status, headers and (possibly truncated) body.
    ///
    /// This is what [`ErrorDecodeLayer`] does with every error response; it is public for
    /// clients that read bodies themselves. It never fails and never panics: a body that is no
    /// documented shape gives an error derived from the status
    /// ([`ErrorCode::from_status`]) with a short, safe excerpt as its message.
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
    pub fn decode(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
        let hint = hint_from_headers(headers);
        if let Some(err) = grpc::decode(status, headers, hint) {
            return err;
        }
        let mut obj = shape::Obj::default();
        if shape::parse(body, &mut obj) {
            return obj.take_api_error(status, hint, body);
        }
        drop(obj);
        // Not a documented shape: the status decides, and an excerpt (already safe and
        // short) is the message.
        let code = ErrorCode::from_status(status);
        let mut message = excerpt(body);
        if message.is_empty() {
            message = default_message(status, &code);
        }
        ApiError {
            status,
            code,
            message: message.into_boxed_str(),
            fix: None,
            details: None,
            fields: Vec::new(),
            retry_after: hint.after,
            do_not_retry: hint.do_not_retry,
            numeric_code: None,
            grpc: None,
            shape: crate::BodyShape::Unrecognized,
        }
    }
}

/// `true` when a response is an error: a status of 400 or more, or a non-zero `grpc-status`.
pub(crate) fn is_error(status: StatusCode, headers: &HeaderMap) -> bool {
    status.as_u16() >= 400 || grpc::is_error(headers)
}

/// The message of an error whose body said nothing: the status's reason phrase, or the code.
pub(crate) fn default_message(status: StatusCode, code: &ErrorCode) -> String {
    match status.canonical_reason() {
        Some(reason) if status.as_u16() >= 400 => reason.to_owned(),
        _ => code.as_str().to_owned(),
    }
}

/// A short, printable, credential-free excerpt of arbitrary bytes: the `<title>` of an HTML
/// page or its text without tags, control characters as spaces, white space collapsed, at
/// most 200 characters.
pub(crate) fn excerpt(bytes: &[u8]) -> String {
    let head = &bytes[..bytes.len().min(4 * 1024)];
    let text = String::from_utf8_lossy(head);
    let text = html_title(&text).unwrap_or(&text);
    let mut out = String::with_capacity(text.len().min(EXCERPT_CHARS * 2));
    let mut in_tag = false;
    let mut pending_space = false;
    let mut chars = 0;
    for ch in text.chars() {
        match ch {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                pending_space = true;
            }
            _ if in_tag => {}
            c if c.is_whitespace() || c.is_control() => pending_space = true,
            c => {
                if pending_space && !out.is_empty() {
                    out.push(' ');
                }
                pending_space = false;
                if chars == EXCERPT_CHARS {
                    out.push('…');
                    break;
                }
                out.push(c);
                chars += 1;
            }
        }
    }
    let redacted = match redact(&out) {
        std::borrow::Cow::Owned(r) => Some(r),
        std::borrow::Cow::Borrowed(_) => None,
    };
    redacted.unwrap_or(out)
}

fn html_title(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let head = &bytes[..bytes.len().min(1024)];
    let start = find_ignore_case(head, b"<title>")? + b"<title>".len();
    let end = start + find_ignore_case(&bytes[start..], b"</title>")?;
    // Both ends sit next to ASCII `>` / `<`, so they are char boundaries.
    text.get(start..end)
}

/// The first index of an ASCII `needle` in `haystack`, ignoring ASCII case.
/// `needle` starts with `<`, so only the `<`s are tried.
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + haystack.get(from..)?.iter().position(|&b| b == needle[0])?;
        if haystack
            .get(at..at + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(at);
        }
        from = at + 1;
    }
}

#[cfg(test)]
mod tests;
