//! The header parsers on arbitrary bytes: `Retry-After`, `grpc-retry-pushback-ms`,
//! `grpc-status` and `grpc-message`. Never a panic; hints never above `MAX_HINT`.
#![no_main]

use http::{HeaderMap, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;
use tower_api_retry::{
    ApiError,
    retry_after::{MAX_HINT, Pushback, parse_grpc_pushback, parse_retry_after},
};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = HeaderValue::from_bytes(data) else { return };
    if let Some(d) = parse_retry_after(&value, SystemTime::now()) {
        assert!(d <= MAX_HINT);
    }
    if let Pushback::After(d) = parse_grpc_pushback(&value) {
        assert!(d <= MAX_HINT);
    }
    let mut headers = HeaderMap::new();
    headers.insert("retry-after", value.clone());
    headers.insert("grpc-status", value.clone());
    headers.insert("grpc-message", value);
    let err = ApiError::decode(StatusCode::OK, &headers, b"");
    assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
});
