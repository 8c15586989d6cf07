//! The configuration every property test of the crate shares: one file of regression seeds,
//! [`SEEDS`], read before new cases are generated and written when a case fails. The
//! integration tests' properties (`tests/it/props.rs`) name the same file.
//!
//! Each property lives beside the code it tests; the quota header parsers' are below.

use proptest::test_runner::{Config, FileFailurePersistence};

/// The regression seeds of every property test, relative to the crate's root (where `cargo
/// test` runs tests). Keep it in version control.
pub(crate) const SEEDS: &str = "proptest-regressions.txt";

/// A property test's configuration: `cases` cases, seeds in [`SEEDS`].
pub(crate) fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(SEEDS))),
        ..Config::default()
    }
}

mod quota {
    use crate::{
        quota::{MAX_FIELD_LINES, Quota, RateLimitHeaders},
        retry_after::{MAX_HINT, parse_retry_after_ms, parse_should_retry},
    };
    use http::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    const ALL: RateLimitHeaders = RateLimitHeaders::ALL;

    /// Every name a family reads, and a few near misses.
    const NAMES: &[&str] = &[
        "ratelimit",
        "ratelimit-policy",
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        "x-ratelimit",
        "ratelimit-",
        "anthropic-ratelimit-",
        "x-should-retry",
        "retry-after-ms",
    ];

    /// Values shaped like the real ones, mutated, and arbitrary bytes.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..48),
            "-?[0-9]{0,30}(\\.[0-9]{0,12})?".prop_map(String::into_bytes),
            "([0-9.]{0,6}(h|m|s|ms|us|ns|µs|d)){0,5}".prop_map(String::into_bytes),
            "\"[a-z]{0,4}\";(q|r|t|w|qu|pk)=-?[0-9]{0,18}(;[a-z]{1,2}=[0-9a-z\":=]{0,8}){0,3}(, ?\"[a-z]{0,3}\";r=[0-9]{0,3})?"
                .prop_map(String::into_bytes),
            "(limit|remaining|reset)=-?[0-9]{0,16}(, ?(limit|remaining|reset)=[0-9a-z]{0,4}){0,3}"
                .prop_map(String::into_bytes),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?(Z|[+-][0-9]{2}:[0-9]{2})?"
                .prop_map(String::into_bytes),
        ]
    }

    fn headers() -> impl Strategy<Value = HeaderMap> {
        prop::collection::vec((prop::sample::select(NAMES), value()), 0..12).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                if let Ok(value) = HeaderValue::from_bytes(&value) {
                    map.append(HeaderName::from_static(name), value);
                }
            }
            map
        })
    }

    fn now() -> impl Strategy<Value = SystemTime> {
        prop_oneof![
            Just(SystemTime::now()),
            (0u64..20_000_000_000).prop_map(|s| UNIX_EPOCH + Duration::from_secs(s)),
        ]
    }

    proptest! {
        #![proptest_config(super::config(512))]

        /// Any headers: an answer, never a panic; a reset never above a year; a quota only
        /// when a field was read; nothing read when no family is asked for.
        #[test]
        fn quota_read_is_total_and_bounded(headers in headers(), now in now()) {
            for conventions in [ALL, RateLimitHeaders::DEFAULT, RateLimitHeaders::OPENAI, RateLimitHeaders::ANTHROPIC] {
                if let Some(q) = Quota::read(&headers, conventions, now) {
                    prop_assert!(q.reset.is_none_or(|d| d <= MAX_HINT), "{q:?}");
                    prop_assert!(q != Quota::default());
                }
            }
            prop_assert_eq!(Quota::read(&headers, RateLimitHeaders::NONE, now), None);
        }

        /// Reading more families never announces more remaining requests than fewer do.
        #[test]
        fn more_families_are_never_less_conservative(headers in headers(), now in now()) {
            let all = Quota::read(&headers, ALL, now).and_then(|q| q.remaining);
            for one in [RateLimitHeaders::DEFAULT, RateLimitHeaders::OPENAI, RateLimitHeaders::ANTHROPIC] {
                if let Some(fewer) = Quota::read(&headers, one, now).and_then(|q| q.remaining) {
                    prop_assert!(all.is_some_and(|all| all <= fewer), "{all:?} > {fewer}");
                }
            }
        }

        /// Arbitrary bytes in every name a family reads, repeated past the line limit.
        #[test]
        fn quota_read_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64), copies in 1..(MAX_FIELD_LINES * 2)) {
            let Ok(v) = HeaderValue::from_bytes(&bytes) else { return Ok(()) };
            let mut map = HeaderMap::new();
            for name in NAMES {
                for _ in 0..copies {
                    map.append(HeaderName::from_static(name), v.clone());
                }
            }
            let q = Quota::read(&map, ALL, SystemTime::now());
            prop_assert!(q.is_none_or(|q| q.reset.is_none_or(|d| d <= MAX_HINT)));
            prop_assert!(parse_retry_after_ms(&v).is_none_or(|d| d <= MAX_HINT));
            let verdict = parse_should_retry(&v);
            let text = String::from_utf8_lossy(&bytes).trim().to_ascii_lowercase();
            prop_assert_eq!(verdict.is_some(), text == "true" || text == "false");
        }
    }
}
