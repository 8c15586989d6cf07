//! Typed decoding of every documented error shape, next to a plain
//! `serde_json::from_slice::<serde_json::Value>` of the same bytes (the baseline), in the same
//! run. Each shape is one criterion group with the two functions side by side; the target is
//! typed decode ≤ 0.5 × the `Value` parse.
//!
//! ```sh
//! cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The `quota` group measures `Quota::read`, which runs on every response: on a typical
//! response without rate-limit headers it must cost about what one `HeaderMap::get` costs (the
//! baseline, in the same run), and with one family a small multiple of it.

#![allow(missing_docs)] // criterion's macros generate undocumented functions

mod support;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use std::{hint::black_box, time::SystemTime};
use support::SHAPES;
use tower_api_retry::{ApiError, Quota, RateLimitHeaders};

fn decode(c: &mut Criterion) {
    let headers = HeaderMap::new();
    for &(name, status, body) in SHAPES {
        let status = StatusCode::from_u16(status).unwrap();
        let bytes = body.as_bytes();
        let mut group = c.benchmark_group(name);
        group.bench_function("ApiError::decode", |b| {
            b.iter(|| ApiError::decode(black_box(status), black_box(&headers), black_box(bytes)))
        });
        group.bench_function("serde_json::Value", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes)))
        });
        group.finish();
    }
}

/// A typical API response's headers, none of them about rate limits.
const ORDINARY: &[(&str, &str)] = &[
    ("date", "Mon, 30 Nov 2026 02:00:00 GMT"),
    ("content-type", "application/json"),
    ("content-length", "1234"),
    ("x-request-id", "req_01HZX3"),
    ("cache-control", "no-store"),
    ("server", "cloudflare"),
    ("strict-transport-security", "max-age=31536000"),
    ("vary", "accept-encoding"),
];

fn headers(extra: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (name, value) in ORDINARY.iter().chain(extra) {
        h.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    h
}

fn quota(c: &mut Criterion) {
    let all = RateLimitHeaders::DEFAULT | RateLimitHeaders::OPENAI | RateLimitHeaders::ANTHROPIC;
    let now = SystemTime::now();
    let cases: [(&str, HeaderMap, RateLimitHeaders); 5] = [
        ("none/default", headers(&[]), RateLimitHeaders::DEFAULT),
        ("none/all_families", headers(&[]), all),
        (
            "x_ratelimit",
            headers(&[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "4999"),
                ("x-ratelimit-reset", "1372700873"),
            ]),
            RateLimitHeaders::DEFAULT,
        ),
        (
            "ietf",
            headers(&[
                ("ratelimit-policy", r#""default";q=100;w=60"#),
                ("ratelimit", r#""default";r=50;t=30"#),
            ]),
            RateLimitHeaders::DEFAULT,
        ),
        (
            "openai",
            headers(&[
                ("x-ratelimit-limit-requests", "60"),
                ("x-ratelimit-limit-tokens", "150000"),
                ("x-ratelimit-remaining-requests", "59"),
                ("x-ratelimit-remaining-tokens", "149984"),
                ("x-ratelimit-reset-requests", "1s"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ]),
            all,
        ),
    ];
    let mut group = c.benchmark_group("quota");
    let baseline = headers(&[]);
    group.bench_function("HeaderMap::get (baseline)", |b| {
        b.iter(|| {
            black_box(&baseline)
                .get(http::header::RETRY_AFTER)
                .is_some()
        })
    });
    for (name, headers, conventions) in &cases {
        group.bench_function(*name, |b| {
            b.iter(|| Quota::read(black_box(headers), black_box(*conventions), now))
        });
    }
    group.finish();
}

criterion_group!(benches, decode, quota);
criterion_main!(benches);
