//! The error decoder on arbitrary bytes, with every status: never a panic, a bounded message,
//! a code that round-trips.
#![no_main]

use http::{HeaderMap, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower_api_retry::{ApiError, ErrorCode};

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data.split_first() {
        Some((s, rest)) => (400 + u16::from(*s) % 200, rest),
        None => (500, data),
    };
    let status = StatusCode::from_u16(status).unwrap();
    let err = ApiError::decode(status, &HeaderMap::new(), body);
    assert_eq!(ErrorCode::parse(err.code().as_str()), *err.code());
    let _ = err.disposition();
    let _ = err.to_string();
});
