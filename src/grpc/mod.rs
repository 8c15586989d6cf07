//! gRPC's own headers and trailers, read in one place: `grpc-status`, `grpc-message`, the
//! `application/grpc` content type, and what a server sent besides its status ([`metadata`]).

pub(crate) mod metadata;

use crate::{
    code::ErrorCode,
    text::{
        Credentials,
        safe::{MAX_TEXT_CHARS, safe_text},
    },
};
use http::{HeaderMap, HeaderName, header::CONTENT_TYPE};
use std::borrow::Cow;

pub(crate) const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
pub(crate) const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// A non-OK `grpc-status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct GrpcStatus {
    /// The code: `UNKNOWN` for an unparsable or out-of-range number, as the gRPC spec asks.
    pub(crate) code: ErrorCode,
    /// The number as sent, when it parses.
    pub(crate) number: Option<i32>,
}

/// The `grpc-status` in `headers` (or trailers) when it is not OK: `None` when it is absent
/// or `0`.
pub(crate) fn status(headers: &HeaderMap) -> Option<GrpcStatus> {
    let raw = headers.get(GRPC_STATUS)?;
    let number = std::str::from_utf8(raw.as_bytes())
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if number == Some(0) {
        return None;
    }
    let code = number
        .and_then(ErrorCode::from_grpc)
        .unwrap_or(ErrorCode::Unknown);
    Some(GrpcStatus { code, number })
}

/// `true` when `headers` (or trailers) carry a `grpc-status` that is not OK.
pub(crate) fn is_error(headers: &HeaderMap) -> bool {
    status(headers).is_some()
}

/// The `grpc-message` in `headers`, percent-decoded (lossy UTF-8) and made safe; empty when
/// absent.
pub(crate) fn message(headers: &HeaderMap, credentials: &Credentials) -> String {
    let Some(raw) = headers.get(GRPC_MESSAGE) else {
        return String::new();
    };
    let decoded: Cow<'_, [u8]> = percent_encoding::percent_decode(raw.as_bytes()).into();
    safe_text(
        &String::from_utf8_lossy(&decoded),
        MAX_TEXT_CHARS,
        credentials,
    )
    .into_owned()
}

/// `true` for a gRPC request or response: `content-type: application/grpc…`.
pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn status_reads_codes_and_treats_junk_as_unknown() {
        assert_eq!(status(&HeaderMap::new()), None);
        assert_eq!(status(&with("grpc-status", "0")), None);
        assert_eq!(status(&with("grpc-status", " 0 ")), None);
        let s = status(&with("grpc-status", " 14")).unwrap();
        assert_eq!((s.code, s.number), (ErrorCode::Unavailable, Some(14)));
        for junk in ["abc", "99", "-1", ""] {
            let s = status(&with("grpc-status", junk)).unwrap();
            assert_eq!(s.code, ErrorCode::Unknown, "{junk:?}");
        }
        assert_eq!(status(&with("grpc-status", "99")).unwrap().number, Some(99));
        assert!(is_error(&with("grpc-status", "abc")));
        assert!(!is_error(&with("grpc-status", "0")));
    }

    #[test]
    fn message_is_percent_decoded_and_safe() {
        let h = with("grpc-message", "no%20such%20user%0Aat%1Bnow");
        assert_eq!(message(&h, &Credentials::new()), "no such user\nat now");
        assert_eq!(message(&HeaderMap::new(), &Credentials::new()), "");
    }

    #[test]
    fn grpc_content_types() {
        assert!(is_grpc(&with("content-type", "application/grpc")));
        assert!(is_grpc(&with("content-type", "application/grpc+proto")));
        assert!(!is_grpc(&with("content-type", "application/json")));
        assert!(!is_grpc(&HeaderMap::new()));
    }
}
