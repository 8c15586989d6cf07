//! The header parsers on arbitrary bytes: `Retry-After`, `grpc-retry-pushback-ms`,
//! `grpc-status` and `grpc-message`. Never a panic; hints never above `MAX_HINT`.
#![no_main]

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;
use tower_api_retry::ApiError;

/// The largest hint the crate reports: one year.
const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    // Each hint alone, then all of them with the gRPC status and message.
    for name in ["retry-after", "grpc-retry-pushback-ms"] {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.clone());
        let err = ApiError::decode(StatusCode::SERVICE_UNAVAILABLE, &headers, b"");
        assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
    }
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", value.clone());
    headers.insert("grpc-status", value.clone());
    headers.insert("grpc-message", value);
    let err = ApiError::decode(StatusCode::OK, &headers, b"");
    assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
});
