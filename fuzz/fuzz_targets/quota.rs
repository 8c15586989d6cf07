//! The quota and retry-hint parsers on arbitrary bytes: `Quota::read` over every header family
//! (each name given the same value, repeated), `retry-after-ms`, `x-should-retry`. Never a
//! panic; resets and hints never above `MAX_HINT`.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tower_api_retry::{ApiError, Quota, RateLimitHeaders};

/// The largest reset or hint the crate reports: one year.
const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

const NAMES: &[&str] = &[
    "ratelimit",
    "ratelimit-policy",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-reset-requests",
    "x-ratelimit-remaining-tokens",
    "x-ratelimit-reset-tokens",
    "anthropic-ratelimit-requests-remaining",
    "anthropic-ratelimit-requests-reset",
    "anthropic-ratelimit-input-tokens-remaining",
    "anthropic-ratelimit-input-tokens-reset",
    "retry-after-ms",
    "x-should-retry",
    "stripe-should-retry",
];

fuzz_target!(|data: &[u8]| {
    // The first byte picks the clock and how often each header repeats.
    let Some((&head, rest)) = data.split_first() else { return };
    let Ok(value) = HeaderValue::from_bytes(rest) else { return };
    let now = UNIX_EPOCH + Duration::from_secs(u64::from(head) * 100_000_000);
    let mut headers = HeaderMap::new();
    for name in NAMES {
        for _ in 0..=(head % 20) {
            headers.append(HeaderName::from_static(name), value.clone());
        }
    }
    let all = RateLimitHeaders::DEFAULT | RateLimitHeaders::OPENAI | RateLimitHeaders::ANTHROPIC;
    for conventions in [all, RateLimitHeaders::DEFAULT] {
        for at in [now, SystemTime::now()] {
            if let Some(q) = Quota::read(&headers, conventions, at) {
                assert!(q.reset.is_none_or(|d| d <= MAX_HINT));
            }
        }
    }
    let err = ApiError::decode(StatusCode::SERVICE_UNAVAILABLE, &headers, b"");
    assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
    if err.server_should_retry() == Some(false) {
        assert!(!err.disposition().is_retryable());
    }
});
