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
//! A server may echo the credentials a request carried (`Authorization`, `X-Api-Key`, a
//! cookie, `?token=`, ...) in its error, bare and with no marker around them. The layer
//! remembers them for each request ([`Credentials`], fingerprints computed in place, no
//! allocation) and every exact occurrence becomes `[REDACTED]` in the [`Error`](crate::Error),
//! so it never reaches `Display`, `Debug` or a log. Name other headers that carry one with
//! [`ErrorDecodeLayer::sensitive_header`].
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

mod credentials;
mod grpc;
pub(crate) mod grpc_metadata;
mod layer;
mod mcp;
mod shape;

pub use credentials::Credentials;
pub use layer::{ErrorDecode, ErrorDecodeLayer, ResponseFuture};
pub use mcp::{McpBody, McpDecode, McpDecodeLayer, McpResponseFuture};

pub(crate) use credentials::SensitiveHeaders;

use crate::{ErrorCode, error::ApiError, redact::redact, retry_after::hint_from_headers};
use http::{HeaderMap, StatusCode};
use std::borrow::Cow;

/// The longest message excerpt taken from a body that is not a documented shape, in chars.
const EXCERPT_CHARS: usize = 200;
/// How many bytes of a body that is not a documented shape the excerpt looks at.
const EXCERPT_HEAD: usize = 4 * 1024;

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
    ///
    /// Only marker-based redaction applies here (`Bearer <secret>`, `token=<secret>`, members
    /// named like a credential): a key echoed with nothing around it is only found by
    /// [`decode_with`](Self::decode_with), given the request's [`Credentials`].
    pub fn decode(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> ApiError {
        ApiError::decode_with(status, headers, body, &Credentials::new())
    }

    /// [`decode`](Self::decode), for the response to a request that carried `credentials`:
    /// every exact occurrence of one of them is replaced by `[REDACTED]` in everything the
    /// error holds (message, fix, code, details, fields, the excerpt of a junk body,
    /// `grpc-message`). This is what [`ErrorDecodeLayer`] does.
    ///
    /// ```
    /// use http::{HeaderMap, Request, StatusCode};
    /// use tower_api_retry::{ApiError, decode::Credentials};
    ///
    /// let request = Request::get("/api/me").header("x-api-key", "mk_live_S3cr3tApiKey0003").body(()).unwrap();
    /// let body = br#"{"code":"INVALID_API_KEY","message":"The API key mk_live_S3cr3tApiKey0003 is not recognized.",
    ///     "fix":"replace mk_live_S3cr3tApiKey0003","details":{"key":"mk_live_S3cr3tApiKey0003"}}"#;
    /// let err = ApiError::decode_with(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body, &Credentials::of(&request));
    /// assert_eq!(err.message(), "The API key [REDACTED] is not recognized.");
    /// assert_eq!(err.fix(), Some("replace [REDACTED]"));
    /// assert_eq!(err.details().unwrap()["key"], "[REDACTED]");
    /// ```
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
        if let Some(err) = grpc::decode(status, headers, hint, credentials) {
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
            declared: None,
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
/// page or its text without tags, character references decoded, control characters as
/// spaces, white space collapsed, at most 200 characters.
///
/// `credentials` are scrubbed from the raw text first (before tags, references and white
/// space change how it is spelled), and again from the excerpt; truncation comes last.
pub(crate) fn excerpt(bytes: &[u8], credentials: &Credentials) -> String {
    // Look a little past the head, so that a credential straddling the cut is scrubbed whole
    // rather than cut in two.
    let window = &bytes[..bytes.len().min(EXCERPT_HEAD + credentials.longest())];
    let text = String::from_utf8_lossy(window);
    let text = credentials.scrub_until(&text, EXCERPT_HEAD);
    let text = html_title(&text).unwrap_or(&text);
    let mut out = String::with_capacity(text.len().min(EXCERPT_CHARS * 2));
    let mut in_tag = false;
    let mut pending_space = false;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        rest = &rest[ch.len_utf8()..];
        let ch = match ch {
            '<' => {
                in_tag = true;
                continue;
            }
            '>' if in_tag => {
                in_tag = false;
                pending_space = true;
                continue;
            }
            _ if in_tag => continue,
            '&' => match char_reference(rest) {
                Some((c, len)) => {
                    rest = &rest[len..];
                    c
                }
                None => '&',
            },
            c => c,
        };
        if ch.is_whitespace() || ch.is_control() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(ch);
    }
    let out = credentials.scrub_string(out);
    let out = match redact(&out) {
        Cow::Owned(r) => r,
        Cow::Borrowed(_) => out,
    };
    match out.char_indices().nth(EXCERPT_CHARS) {
        None => out,
        Some((cut, _)) => {
            let mut cut_out = out;
            cut_out.truncate(cut);
            cut_out.push('…');
            cut_out
        }
    }
}

/// The character an HTML character reference after `&` stands for (`amp;`, `lt;`, `#39;`,
/// `#x27;`, ...), and its length; `None` when `after` does not start with one.
fn char_reference(after: &str) -> Option<(char, usize)> {
    let end = after.bytes().take(10).position(|b| b == b';')?;
    let name = &after[..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
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
