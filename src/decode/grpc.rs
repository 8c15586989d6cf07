//! gRPC errors in response headers: `grpc-status` and the percent-encoded `grpc-message`.

use super::Credentials;
use crate::{
    ErrorCode,
    error::{ApiError, BodyShape},
    retry_after::Hint,
    text::safe::{MAX_TEXT_CHARS, safe_text},
};
use http::{HeaderMap, HeaderName, StatusCode};

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// `true` when `grpc-status` is present and is not `0` (OK).
pub(super) fn is_error(headers: &HeaderMap) -> bool {
    headers
        .get(GRPC_STATUS)
        .is_some_and(|v| v.as_bytes().trim_ascii() != b"0")
}

/// The gRPC error in `headers`, if any. An unparsable or out-of-range `grpc-status` is
/// `UNKNOWN`, as the gRPC spec asks; a parsable number is kept as the numeric code.
pub(super) fn decode(
    status: StatusCode,
    headers: &HeaderMap,
    hint: Hint,
    credentials: &Credentials,
) -> Option<ApiError> {
    if !is_error(headers) {
        return None;
    }
    let raw = headers.get(GRPC_STATUS)?;
    let number = std::str::from_utf8(raw.as_bytes())
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let code = number
        .and_then(ErrorCode::from_grpc)
        .unwrap_or(ErrorCode::Unknown);
    let message = headers
        .get(GRPC_MESSAGE)
        .map(|v| decode_message(v.as_bytes(), credentials))
        .unwrap_or_default();
    let message = if message.is_empty() {
        code.as_str().to_owned()
    } else {
        message
    };
    let mut err = ApiError::new(status, code, message);
    err.shape = BodyShape::Grpc;
    err.numeric_code = number.map(i64::from);
    err.retry_after = hint.after;
    err.do_not_retry = hint.do_not_retry;
    err.grpc = crate::grpc::metadata::GrpcExtra::capture(headers);
    Some(err)
}

/// Percent-decodes a `grpc-message` (lossy UTF-8, credentials redacted, control characters
/// replaced, length bounded).
pub(crate) fn decode_message(raw: &[u8], credentials: &Credentials) -> String {
    let decoded: std::borrow::Cow<'_, [u8]> = percent_encoding::percent_decode(raw).into();
    safe_text(
        &String::from_utf8_lossy(&decoded),
        MAX_TEXT_CHARS,
        credentials,
    )
    .into_owned()
}
