//! Every property test of the crate's internals, in one place: the decoder on arbitrary
//! input, the backoff schedule for any attempt, the event-stream parser on any bytes and any
//! chunking, the quota and retry-hint header parsers on any bytes. End-to-end properties (credentials the request carried, hostile servers) are in
//! the integration tests' `props` module.

mod decode {
    use crate::{
        ApiError, Error,
        backoff::{Backoff, Jitter},
        retry_after::{MAX_HINT, parse_grpc_pushback, parse_retry_after},
        text::{
            Credentials,
            redact::redact,
            safe::{EXCERPT_CHARS, MAX_TEXT_CHARS},
        },
    };
    use http::{HeaderMap, HeaderValue, StatusCode};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::time::{Duration, SystemTime};

    const SECRET: &str = "SECRETQ7x9";

    // ---- Properties ----------------------------------------------------------------------------

    /// A string the decoder treats specially, or a credential to be hidden.
    fn interesting_str() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "agent_connected",
                "INVALID_API_KEY",
                "RESOURCE_EXHAUSTED",
                "Space is not active",
                "2.0",
                "",
                "<html><title>x</title>",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z0-9 _<>&;:=\"'\u{0}-\u{1f}é✓]{0,40}",
            secret_text(),
        ]
    }

    /// Text that plants the unique secret after a credential marker.
    fn secret_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec![
                "Bearer ",
                "bearer\t",
                "Authorization: Bearer convo_",
                "?token=",
                "X-Api-Key: ",
                "x-api-key:",
                "convo_",
                "\"token\": \"",
                "Bearer\u{0}",
                "BEARER  ",
            ]),
            "[a-z ]{0,20}",
            "[A-Za-z0-9_.-]{0,10}",
        )
            .prop_map(|(marker, before, tail)| format!("{before}{marker}{SECRET}{tail} and more"))
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "detail",
                "error",
                "code",
                "message",
                "fix",
                "details",
                "data",
                "jsonrpc",
                "id",
                "agent_id",
                "token",
                "X-Api-Key",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z_]{1,8}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-40000i64..0).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            interesting_str().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn any_status() -> impl Strategy<Value = StatusCode> {
        (100u16..1000).prop_map(|n| StatusCode::from_u16(n).unwrap())
    }

    fn any_headers() -> impl Strategy<Value = HeaderMap> {
        let value = prop_oneof![
            "[ -~]{0,30}",
            "-?[0-9]{1,25}",
            Just("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()),
            secret_text(),
        ];
        let name = prop::sample::select(vec![
            "retry-after",
            "grpc-status",
            "grpc-message",
            "grpc-retry-pushback-ms",
            "content-type",
            "retry-after-ms",
            "x-should-retry",
            "stripe-should-retry",
        ]);
        prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    map.append(k, v);
                }
            }
            map
        })
    }

    /// The output invariants every decoded error keeps.
    fn check(err: &ApiError) -> Result<(), TestCaseError> {
        let texts = [
            Some(err.message().to_owned()),
            err.fix().map(str::to_owned),
            err.details().map(Value::to_string),
            Some(format!("{err:?}")),
            Some(Error::from(err.clone()).to_string()),
            Some(format!("{:?}", Error::from(err.clone()))),
        ];
        for text in texts.iter().flatten() {
            prop_assert!(!text.contains(SECRET), "secret leaked: {text}");
        }
        prop_assert!(!err.message().is_empty());
        prop_assert!(err.message().chars().count() <= MAX_TEXT_CHARS + 1);
        prop_assert!(
            err.fix()
                .is_none_or(|f| f.chars().count() <= MAX_TEXT_CHARS + 1)
        );
        // No marker followed by a secret is left: redacting again changes nothing.
        prop_assert!(
            matches!(redact(err.message()), std::borrow::Cow::Borrowed(_)),
            "{}",
            err.message()
        );
        prop_assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn decode_arbitrary_bytes(status in any_status(), headers in any_headers(), body in prop::collection::vec(any::<u8>(), 0..512)) {
            check(&ApiError::decode(status, &headers, &body))?;
        }

        #[test]
        fn decode_arbitrary_text_with_planted_secrets(status in any_status(), body in secret_text()) {
            let err = ApiError::decode(status, &HeaderMap::new(), body.as_bytes());
            check(&err)?;
            prop_assert!(err.message().chars().count() <= EXCERPT_CHARS + 1);
        }

        #[test]
        fn decode_arbitrary_json(status in any_status(), headers in any_headers(), value in json_value()) {
            let body = serde_json::to_vec(&value).unwrap();
            check(&ApiError::decode(status, &headers, &body))?;
        }

        #[test]
        fn decode_arbitrary_json_in_every_shape(
            status in any_status(),
            code in json_value(),
            message in json_value(),
            fix in json_value(),
            details in json_value(),
            which in 0..5usize,
        ) {
            let inner = json!({"code": code, "message": message, "fix": fix, "details": details});
            let body = match which {
                0 => json!({"detail": message}),
                1 => json!({"error": code, "message": message, "agent_id": details}),
                2 => inner,
                3 => json!({"error": inner}),
                _ => json!({"jsonrpc": "2.0", "id": 1, "error": inner}),
            };
            let err = ApiError::decode(status, &HeaderMap::new(), &serde_json::to_vec(&body).unwrap());
            check(&err)?;
            // A code string is kept verbatim unless it had to be made safe.
            if let (2..=4, Value::String(c)) = (which, &code) {
                let safe = matches!(crate::text::safe::safe_text(c, 128, &Credentials::new()), std::borrow::Cow::Borrowed(_));
                if safe && !c.trim().is_empty() {
                    prop_assert_eq!(err.code().as_str(), c.as_str());
                }
            }
        }

        #[test]
        fn retry_after_and_pushback_parsers_are_total(text in "\\PC{0,40}", digits in "-?[0-9]{0,30}") {
            for s in [&text, &digits] {
                if let Ok(v) = HeaderValue::from_str(s) {
                    prop_assert!(parse_retry_after(&v, SystemTime::now()).is_none_or(|d| d <= MAX_HINT));
                    if let crate::retry_after::Pushback::After(d) = parse_grpc_pushback(&v) {
                        prop_assert!(d <= MAX_HINT);
                    }
                }
            }
        }

        #[test]
        fn backoff_never_exceeds_its_cap(
            retry in any::<u32>(),
            base_ms in any::<u64>(),
            max_ms in any::<u64>(),
            unit in any::<f64>(),
            prev_ms in prop::option::of(any::<u64>()),
            jitter in 0..5usize,
            fraction in any::<f64>(),
        ) {
            let jitter = [Jitter::None, Jitter::Proportional(fraction), Jitter::Full, Jitter::Equal, Jitter::Decorrelated][jitter];
            let backoff = Backoff::new()
                .base_delay(Duration::from_millis(base_ms))
                .max_delay(Duration::from_millis(max_ms))
                .jitter(jitter);
            let d = backoff.delay_with(retry, prev_ms.map(Duration::from_millis), unit);
            prop_assert!(d <= Duration::from_millis(max_ms), "{d:?}");
            prop_assert!(backoff.nominal(retry) <= Duration::from_millis(max_ms));
        }
    }
}

mod backoff {
    use crate::backoff::{Backoff, Jitter};
    use proptest::prelude::*;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Any duration from nothing to far beyond any real schedule (up to about 3,000 years).
    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..100_000_000_000).prop_map(Duration::from_nanos),
            (0u64..100_000_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            Just(Duration::ZERO),
            Just(Duration::MAX),
        ]
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Proportional(0.2)),
            (-1.0f64..2.0).prop_map(Jitter::Proportional),
            Just(Jitter::Proportional(f64::NAN)),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
        ]
    }

    /// `a × f` in floating point, saturating.
    fn scaled(a: Duration, f: f64) -> Duration {
        Duration::try_from_secs_f64(a.as_secs_f64() * f).unwrap_or(Duration::MAX)
    }

    /// What float rounding may cost around `a`: a microsecond, or a trillionth of `a`.
    fn rounding(a: Duration) -> Duration {
        Duration::from_micros(1).max(scaled(a, 1e-12))
    }

    proptest! {
        /// The default schedule, for every attempt number: below the cap never shorter than
        /// the nominal wait and at most 20 % longer; at the cap within 24–30 s.
        #[test]
        fn the_default_schedule_for_any_attempt(retry in any::<u32>(), unit in 0.0f64..=1.0) {
            let b = Backoff::new();
            let nominal = b.nominal(retry);
            let d = b.delay_with(retry, None, unit);
            prop_assert!(d <= S(30));
            if nominal < S(30) {
                prop_assert_eq!(nominal, S(1) * 2u32.pow(retry));
                prop_assert!(d >= nominal && d <= nominal.mul_f64(1.2), "{retry} {d:?}");
            } else {
                prop_assert!(retry >= 5);
                prop_assert!(d >= S(24), "{retry} {d:?}");
            }
            // The random draw does the same.
            let d = b.delay(retry, None);
            prop_assert!(d <= S(30) && d >= nominal.min(S(24)), "{retry} {d:?}");
        }

        /// Every strategy, any base, cap, attempt number, previous wait and random sample:
        /// the documented band, never above the cap.
        #[test]
        fn every_strategy_keeps_its_band(
            base in duration(),
            max in duration(),
            retry in any::<u32>(),
            previous in prop::option::of(duration()),
            unit in prop_oneof![0.0f64..=1.0, any::<f64>()],
            jitter in jitter(),
        ) {
            let b = Backoff::new().base_delay(base).max_delay(max).jitter(jitter);
            let nominal = b.nominal(retry);
            let d = b.delay_with(retry, previous, unit);
            prop_assert!(nominal <= max && d <= max, "{d:?} > {max:?}");
            match jitter {
                Jitter::None => prop_assert_eq!(d, nominal),
                Jitter::Proportional(f) => {
                    let f = if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
                    if nominal < max {
                        // Never shorter than the schedule; at most `f` longer.
                        prop_assert!(d >= nominal, "{d:?} < {nominal:?}");
                        let top = scaled(nominal, 1.0 + f).saturating_add(rounding(nominal));
                        prop_assert!(d <= top, "{d:?} > {top:?}");
                    } else {
                        // At the cap: within `f` below it.
                        prop_assert_eq!(nominal, max);
                        let bottom = max.saturating_sub(scaled(max, f)).saturating_sub(rounding(max));
                        prop_assert!(d >= bottom, "{d:?} < {bottom:?}");
                    }
                }
                Jitter::Full => prop_assert!(d <= nominal),
                Jitter::Equal => prop_assert!(d >= nominal / 2 && d <= nominal),
                Jitter::Decorrelated => {
                    let prev = previous.unwrap_or(base).max(base);
                    prop_assert!(d >= base.min(max));
                    prop_assert!(d <= prev.saturating_mul(3));
                }
            }
        }

        /// At the cap the default jitter still spreads: two clients that drew different
        /// samples wait different times, never more than the cap.
        #[test]
        fn at_the_cap_waits_still_spread(retry in 5u32.., a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let backoff = Backoff::new();
            let (x, y) = (backoff.delay_with(retry, None, a), backoff.delay_with(retry, None, b));
            prop_assert!(x <= S(30) && y <= S(30));
            if (a - b).abs() > 1e-6 {
                prop_assert_ne!(x, y);
            }
        }
    }
}

mod sse_parser {
    use crate::sse::parser::Parser;
    use std::collections::VecDeque;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..Default::default() })]
        /// Hostile bytes never panic, and however they are chunked the result is the same.
        #[test]
        fn any_bytes_any_chunking(
            bytes in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"\r\n:data id event retry 0123\0\xEF\xBB\xBF".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..400,
            ),
            cuts in proptest::collection::vec(0usize..400, 0..8),
        ) {
            let whole = {
                let mut p = Parser::new(64);
                let mut out = VecDeque::new();
                let r = p.push(&bytes, &mut out);
                (r.is_ok(), out, p.last_event_id().to_owned(), p.retry())
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut p = Parser::new(64);
            let mut out = VecDeque::new();
            let mut ok = true;
            let mut at = 0;
            for cut in cuts.into_iter().chain([bytes.len()]) {
                if ok {
                    ok = p.push(&bytes[at..cut], &mut out).is_ok();
                }
                at = cut;
            }
            if whole.0 {
                proptest::prop_assert!(ok);
                proptest::prop_assert_eq!(out, whole.1);
                proptest::prop_assert_eq!(p.last_event_id(), whole.2.as_str());
                proptest::prop_assert_eq!(p.retry(), whole.3);
            }
        }
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

    const ALL: RateLimitHeaders = RateLimitHeaders::DEFAULT
        .union(RateLimitHeaders::OPENAI)
        .union(RateLimitHeaders::ANTHROPIC);

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
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

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

/// The server's hints on any input, parsed directly.
mod retry_after {
    use crate::retry_after::{MAX_HINT, Pushback, parse_grpc_pushback, parse_retry_after};
    use http::HeaderValue;
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    /// `Retry-After` on any string: never a panic, never above `MAX_HINT`; digits only are
    /// always a value (saturating), and nothing else but an HTTP-date is.
    #[test]
    fn retry_after_on_any_string(s in "\\PC{0,40}", now_s in 0u64..=4_102_444_800) {
        let now = UNIX_EPOCH + Duration::from_secs(now_s);
        if let Ok(v) = HeaderValue::from_str(&s) {
            let got = parse_retry_after(&v, now);
            prop_assert!(got.is_none_or(|d| d <= MAX_HINT));
            let t = s.trim_matches(|c: char| c == ' ' || c == '\t');
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                prop_assert!(got.is_some());
            }
        }
    }

    #[test]
    fn retry_after_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(v) = HeaderValue::from_bytes(&bytes) {
            prop_assert!(parse_retry_after(&v, SystemTime::now()).is_none_or(|d| d <= MAX_HINT));
            if let Pushback::After(d) = parse_grpc_pushback(&v) {
                prop_assert!(d <= MAX_HINT);
            }
        }
    }

    /// Delay-seconds of any length saturate at `MAX_HINT`, and are exact below it.
    #[test]
    fn retry_after_digits_saturate(digits in "[0-9]{1,60}") {
        let v = HeaderValue::from_str(&digits).unwrap();
        let got = parse_retry_after(&v, SystemTime::now()).unwrap();
        match digits.parse::<u64>() {
            Ok(n) if n <= MAX_HINT.as_secs() => prop_assert_eq!(got, Duration::from_secs(n)),
            _ => prop_assert_eq!(got, MAX_HINT),
        }
    }

    /// An HTTP-date anywhere from 1970 to 9999, seen from any time: the distance, clamped to
    /// zero in the past and `MAX_HINT` in the future.
    #[test]
    fn retry_after_any_http_date(at_s in 0u64..253_402_300_799, now_s in 0u64..4_102_444_800) {
        let at = UNIX_EPOCH + Duration::from_secs(at_s);
        let now = UNIX_EPOCH + Duration::from_secs(now_s);
        let v = HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap();
        let got = parse_retry_after(&v, now).unwrap();
        let want = Duration::from_secs(at_s.saturating_sub(now_s)).min(MAX_HINT);
        prop_assert_eq!(got, want);
    }

    /// `grpc-retry-pushback-ms` on any string: a non-negative integer is a capped wait,
    /// anything else (negative, unparsable) forbids a retry.
    #[test]
    fn pushback_on_any_string(s in "-?[0-9]{0,30}|\\PC{0,20}") {
        if let Ok(v) = HeaderValue::from_str(&s) {
            let got = parse_grpc_pushback(&v);
            let t = s.trim_matches(|c: char| c == ' ' || c == '\t');
            let negative = t.starts_with('-');
            let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
            let numeric = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
            let zero = digits.bytes().all(|b| b == b'0');
            match got {
                Pushback::DoNotRetry => prop_assert!(!numeric || (negative && !zero)),
                Pushback::After(d) => prop_assert!(numeric && (!negative || zero) && d <= MAX_HINT),
            }
        }
    }
    }
}
