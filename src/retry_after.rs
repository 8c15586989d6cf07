//! Parsing of the server's word on retrying: the "wait this long" hints `Retry-After`,
//! `retry-after-ms` and `grpc-retry-pushback-ms`, and the verdicts `x-should-retry` and
//! `Stripe-Should-Retry`.
//!
//! Every parser is pure and total: any header value gives an answer, never a panic or an
//! overflow. An invalid `Retry-After` or `retry-after-ms` is `None` (the caller falls back to
//! its backoff); an invalid `grpc-retry-pushback-ms` is `Pushback::DoNotRetry`, as gRPC's
//! retry design asks. An HTTP-date in the past is zero, and a huge value saturates at
//! `MAX_HINT`.
//!
//! A valid `retry-after-ms` wins over `Retry-After`, which wins over `grpc-retry-pushback-ms`.
//! `x-should-retry` and `Stripe-Should-Retry` are `true` or `false` in any case, white space
//! around allowed; when they disagree, `false` wins (see
//! [`ApiError::server_should_retry`](crate::ApiError::server_should_retry)).

use http::{HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime};

/// The largest hint this crate reports: one year. Larger values saturate here, so adding a
/// hint to an `Instant` never overflows.
pub(crate) const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The gRPC retry pushback header (milliseconds; negative means "do not retry").
pub(crate) const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// What a gRPC server's `grpc-retry-pushback-ms` asks of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pushback {
    /// Wait at least this long before the next attempt.
    After(Duration),
    /// A negative or unparsable pushback (or a repeated header): the server asks the client
    /// not to retry at all.
    DoNotRetry,
}

/// Parses one `Retry-After` value: delay-seconds (`1*DIGIT`, RFC 9110 §10.2.3) or an HTTP-date
/// relative to `now`.
pub(crate) fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(saturating_secs(text));
    }
    let at = httpdate::parse_http_date(text).ok()?;
    Some(
        at.duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
    )
}

/// Parses one `retry-after-ms` value: a non-negative number of milliseconds, with an optional
/// decimal fraction (`1500`, `1234.5`). Anything else is `None`; a huge value saturates at
/// `MAX_HINT`.
pub(crate) fn parse_retry_after_ms(value: &HeaderValue) -> Option<Duration> {
    let text = value.as_bytes().trim_ascii();
    let (whole, frac) = match text.iter().position(|b| *b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    };
    if whole.is_empty() || !whole.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // The fraction of a millisecond, in nanoseconds.
    let sub_ms = match frac {
        None => 0,
        Some(frac) => fraction_nanos(frac)? / 1_000,
    };
    let ms = whole.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    let max_ms = MAX_HINT.as_millis() as u64;
    if ms >= max_ms {
        return Some(MAX_HINT);
    }
    Some(Duration::from_millis(ms) + Duration::from_nanos(u64::from(sub_ms)))
}

/// The nanoseconds of a decimal fraction's digits, as a fraction of one unit (at least one
/// digit; digits past the ninth are dropped): `"5"` is 500,000,000.
pub(crate) fn fraction_nanos(frac: &[u8]) -> Option<u32> {
    if frac.is_empty() || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut nanos = 0u32;
    for i in 0..9 {
        nanos = nanos * 10 + frac.get(i).map_or(0, |d| u32::from(d - b'0'));
    }
    Some(nanos)
}

/// Parses one `x-should-retry` or `Stripe-Should-Retry` value: `true` or `false`, in any
/// case; `None` for anything else.
pub(crate) fn parse_should_retry(value: &HeaderValue) -> Option<bool> {
    let text = value.as_bytes().trim_ascii();
    if text.eq_ignore_ascii_case(b"true") {
        Some(true)
    } else if text.eq_ignore_ascii_case(b"false") {
        Some(false)
    } else {
        None
    }
}

/// Parses one `grpc-retry-pushback-ms` value: an integer number of milliseconds.
///
/// A negative *or unparsable* value means "do not retry", as gRPC's retry design (A6) asks.
/// Surrounding white space and a leading `+` are accepted, as grpc-go does.
pub(crate) fn parse_grpc_pushback(value: &HeaderValue) -> Pushback {
    let Ok(text) = value.to_str() else {
        return Pushback::DoNotRetry;
    };
    let text = text.trim_matches(|c: char| c == ' ' || c == '\t');
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Pushback::DoNotRetry;
    }
    if negative && digits.bytes().any(|b| b != b'0') {
        return Pushback::DoNotRetry;
    }
    let ms = digits.parse::<u64>().unwrap_or(u64::MAX);
    Pushback::After(Duration::from_millis(ms).min(MAX_HINT))
}

/// The server's word in a set of response headers. Only the first value of a repeated header
/// is read, except that a repeated `grpc-retry-pushback-ms` is "do not retry", as grpc-go
/// reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hint {
    pub(crate) after: Option<Duration>,
    pub(crate) do_not_retry: bool,
    /// `x-should-retry` / `Stripe-Should-Retry`; `false` wins when they disagree.
    pub(crate) should_retry: Option<bool>,
}

/// The server's word in `headers` (see the module docs).
pub(crate) fn hint_from_headers(headers: &HeaderMap) -> Hint {
    if headers.is_empty() {
        return Hint::default();
    }
    let verdict = |name: &str| headers.get(name).and_then(parse_should_retry);
    let should_retry = match (verdict("x-should-retry"), verdict("stripe-should-retry")) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), _) | (_, Some(true)) => Some(true),
        (None, None) => None,
    };
    let after = headers
        .get("retry-after-ms")
        .and_then(parse_retry_after_ms)
        .or_else(|| {
            headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| parse_retry_after(v, SystemTime::now()))
        });
    let mut pushbacks = headers.get_all(GRPC_RETRY_PUSHBACK_MS).iter();
    let pushback = match (after, pushbacks.next(), pushbacks.next()) {
        (Some(_), _, _) | (None, None, _) => None,
        (None, Some(one), None) => Some(parse_grpc_pushback(one)),
        (None, Some(_), Some(_)) => Some(Pushback::DoNotRetry),
    };
    let (after, do_not_retry) = match pushback {
        None => (after, false),
        Some(Pushback::After(d)) => (Some(d), false),
        Some(Pushback::DoNotRetry) => (None, true),
    };
    Hint {
        after,
        do_not_retry,
        should_retry,
    }
}

fn saturating_secs(digits: &str) -> Duration {
    match digits.parse::<u64>() {
        Ok(secs) if secs <= MAX_HINT.as_secs() => Duration::from_secs(secs),
        _ => MAX_HINT, // all digits, so the only failure is overflow
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The examples of each parser.
    #[test]
    fn examples() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("7"), now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("-1"), now),
            None
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("1.5"), now),
            None
        );
        assert_eq!(
            parse_retry_after(&HeaderValue::from_static("99999999999999999999"), now),
            Some(MAX_HINT)
        );
        assert_eq!(
            parse_retry_after(
                &HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
                now
            ),
            Some(Duration::ZERO), // in the past
        );
        assert_eq!(
            parse_retry_after_ms(&HeaderValue::from_static("1500")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after_ms(&HeaderValue::from_static("2.5")),
            Some(Duration::from_micros(2500))
        );
        assert_eq!(parse_retry_after_ms(&HeaderValue::from_static("-1")), None);
        assert_eq!(
            parse_should_retry(&HeaderValue::from_static("false")),
            Some(false)
        );
        assert_eq!(
            parse_should_retry(&HeaderValue::from_static(" True ")),
            Some(true)
        );
        assert_eq!(parse_should_retry(&HeaderValue::from_static("1")), None);
        assert_eq!(
            parse_grpc_pushback(&HeaderValue::from_static("1500")),
            Pushback::After(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_grpc_pushback(&HeaderValue::from_static("-1")),
            Pushback::DoNotRetry
        );
        assert_eq!(
            parse_grpc_pushback(&HeaderValue::from_static("soon")),
            Pushback::DoNotRetry
        );
    }

    fn ra(s: &str) -> Option<Duration> {
        parse_retry_after(&HeaderValue::from_str(s).unwrap(), SystemTime::now())
    }

    #[test]
    fn delay_seconds() {
        assert_eq!(ra("0"), Some(Duration::ZERO));
        assert_eq!(ra("7"), Some(Duration::from_secs(7)));
        assert_eq!(ra(" 3600 "), Some(Duration::from_secs(3600)));
        assert_eq!(ra("99999999999999999999"), Some(MAX_HINT));
        assert_eq!(ra("18446744073709551615"), Some(MAX_HINT));
    }

    #[test]
    fn invalid_is_none() {
        for bad in [
            "",
            " ",
            "-1",
            "1.5",
            "+5",
            "1e3",
            "soon",
            "5s",
            "0x10",
            "Mon, 99 Foo 2000",
        ] {
            assert_eq!(ra(bad), None, "{bad:?}");
        }
        let bin = HeaderValue::from_bytes(b"\xff\xfe").unwrap();
        assert_eq!(parse_retry_after(&bin, SystemTime::now()), None);
    }

    #[test]
    fn http_dates() {
        let now = SystemTime::now();
        let future = now + Duration::from_secs(120);
        let v = HeaderValue::from_str(&httpdate::fmt_http_date(future)).unwrap();
        let got = parse_retry_after(&v, now).unwrap();
        assert!(
            got <= Duration::from_secs(120) && got >= Duration::from_secs(119),
            "{got:?}"
        );
        let past = HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        let far = HeaderValue::from_static("Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(parse_retry_after(&far, now), Some(MAX_HINT));
    }

    /// Every shape of `grpc-retry-pushback-ms`: A6 says negative *or unparsable* means "do
    /// not retry", so only a non-negative integer is a wait.
    #[test]
    fn pushback_table() {
        use Pushback::{After, DoNotRetry};
        let ms = Duration::from_millis;
        let table: &[(&[u8], Pushback)] = &[
            (b"0", After(Duration::ZERO)),
            (b"250", After(ms(250))),
            (b"+250", After(ms(250))),
            (b" 250\t", After(ms(250))),
            (b"000800", After(ms(800))),
            (b"-0", After(Duration::ZERO)),
            (b"99999999999999999999999", After(MAX_HINT)),
            (b"18446744073709551615", After(MAX_HINT)),
            (b"-1", DoNotRetry),
            (b"-5", DoNotRetry),
            (b"-99999999999999999999999", DoNotRetry),
            (b"", DoNotRetry),
            (b" ", DoNotRetry),
            (b"-", DoNotRetry),
            (b"+", DoNotRetry),
            (b"--1", DoNotRetry),
            (b"+-1", DoNotRetry),
            (b"1.5", DoNotRetry),
            (b"1e3", DoNotRetry),
            (b"0x10", DoNotRetry),
            (b"1 2", DoNotRetry),
            (b"abc", DoNotRetry),
            (b"soon", DoNotRetry),
            (b"100ms", DoNotRetry),
            (b"\xff\xfe", DoNotRetry),
        ];
        for (raw, want) in table {
            let v = HeaderValue::from_bytes(raw).unwrap();
            assert_eq!(parse_grpc_pushback(&v), *want, "{v:?}");
        }
    }

    #[test]
    fn an_unparsable_or_repeated_pushback_forbids_a_retry() {
        let mut h = HeaderMap::new();
        h.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from_static("soon"));
        let refused = Hint {
            after: None,
            do_not_retry: true,
            should_retry: None,
        };
        assert_eq!(hint_from_headers(&h), refused);
        h.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from_static("10"));
        h.append(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from_static("20"));
        assert_eq!(hint_from_headers(&h), refused);
        // No header at all is no hint, not a refusal.
        assert_eq!(hint_from_headers(&HeaderMap::new()), Hint::default());
    }

    #[test]
    fn headers_prefer_retry_after_and_read_the_first_value() {
        let mut h = HeaderMap::new();
        h.append("retry-after", HeaderValue::from_static("3"));
        h.append("retry-after", HeaderValue::from_static("9"));
        h.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from_static("100"));
        assert_eq!(hint_from_headers(&h).after, Some(Duration::from_secs(3)));
        h.remove("retry-after");
        assert_eq!(
            hint_from_headers(&h).after,
            Some(Duration::from_millis(100))
        );
        h.insert(GRPC_RETRY_PUSHBACK_MS, HeaderValue::from_static("-1"));
        assert_eq!(
            hint_from_headers(&h),
            Hint {
                after: None,
                do_not_retry: true,
                should_retry: None,
            }
        );
    }

    #[test]
    fn retry_after_ms_table() {
        let ms = |s: &str| parse_retry_after_ms(&HeaderValue::from_str(s).unwrap());
        let table: &[(&str, Option<Duration>)] = &[
            ("0", Some(Duration::ZERO)),
            ("1500", Some(Duration::from_millis(1500))),
            (" 20 ", Some(Duration::from_millis(20))),
            ("1234.5", Some(Duration::from_micros(1_234_500))),
            ("0.001", Some(Duration::from_micros(1))),
            ("0.0000001", Some(Duration::ZERO)),
            ("99999999999999999999999", Some(MAX_HINT)),
            ("31536000000", Some(MAX_HINT)),
            ("", None),
            ("-1", None),
            ("+5", None),
            (".5", None),
            ("5.", None),
            ("1e3", None),
            ("1,5", None),
            ("soon", None),
            ("5ms", None),
        ];
        for (text, want) in table {
            assert_eq!(ms(text), *want, "{text:?}");
        }
    }

    #[test]
    fn retry_after_ms_wins_when_valid() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("3"));
        h.insert("retry-after-ms", HeaderValue::from_static("2500.5"));
        assert_eq!(
            hint_from_headers(&h).after,
            Some(Duration::from_micros(2_500_500))
        );
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(hint_from_headers(&h).after, Some(Duration::from_secs(3)));
        h.remove("retry-after");
        assert_eq!(hint_from_headers(&h).after, None);
    }

    #[test]
    fn should_retry_verdicts() {
        let verdict = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (name, value) in pairs {
                h.append(*name, HeaderValue::from_static(value));
            }
            hint_from_headers(&h).should_retry
        };
        assert_eq!(verdict(&[]), None);
        assert_eq!(verdict(&[("x-should-retry", "true")]), Some(true));
        assert_eq!(verdict(&[("x-should-retry", "FALSE")]), Some(false));
        assert_eq!(verdict(&[("stripe-should-retry", "true")]), Some(true));
        assert_eq!(verdict(&[("stripe-should-retry", "false")]), Some(false));
        assert_eq!(verdict(&[("x-should-retry", "maybe")]), None);
        // Disagreeing headers: false wins.
        assert_eq!(
            verdict(&[("x-should-retry", "true"), ("stripe-should-retry", "false")]),
            Some(false)
        );
        // Only the first value of a repeated header.
        assert_eq!(
            verdict(&[("x-should-retry", "true"), ("x-should-retry", "false")]),
            Some(true)
        );
        // Read beside every hint.
        assert_eq!(
            verdict(&[("x-should-retry", "false"), ("retry-after", "1")]),
            Some(false)
        );
        assert_eq!(
            verdict(&[("x-should-retry", "true"), (GRPC_RETRY_PUSHBACK_MS, "-1")]),
            Some(true)
        );
        for bad in [&b"yes"[..], b"1", b"", b"\xff", b"truee", b"t rue"] {
            let v = HeaderValue::from_bytes(bad).unwrap();
            assert_eq!(parse_should_retry(&v), None, "{v:?}");
        }
    }
}

#[cfg(test)]
mod props {
    use super::{MAX_HINT, Pushback, parse_grpc_pushback, parse_retry_after};
    use http::HeaderValue;
    use proptest::prelude::*;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    proptest! {
        #![proptest_config(crate::props::config(256))]

        #[test]
        fn retry_after_and_pushback_parsers_are_total(text in "\\PC{0,40}", digits in "-?[0-9]{0,30}") {
            for s in [&text, &digits] {
                if let Ok(v) = HeaderValue::from_str(s) {
                    prop_assert!(parse_retry_after(&v, SystemTime::now()).is_none_or(|d| d <= MAX_HINT));
                    if let Pushback::After(d) = parse_grpc_pushback(&v) {
                        prop_assert!(d <= MAX_HINT);
                    }
                }
            }
        }

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
