//! Parsing of the server's "wait this long" hints: `Retry-After` and `grpc-retry-pushback-ms`.
//!
//! Both parsers are pure and total: any header value gives an answer, never a panic or an
//! overflow. An invalid `Retry-After` is `None` (the caller falls back to its backoff); an
//! invalid `grpc-retry-pushback-ms` is [`Pushback::DoNotRetry`], as gRPC's retry design asks.
//! An HTTP-date in the past is zero, and a huge value saturates at [`MAX_HINT`].

use http::{HeaderMap, HeaderValue};
use std::time::{Duration, SystemTime};

/// The largest hint this crate reports: one year. Larger values saturate here, so adding a
/// hint to an `Instant` never overflows.
pub const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The gRPC retry pushback header (milliseconds; negative means "do not retry").
pub const GRPC_RETRY_PUSHBACK_MS: &str = "grpc-retry-pushback-ms";

/// What a gRPC server's `grpc-retry-pushback-ms` asks of the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushback {
    /// Wait at least this long before the next attempt.
    After(Duration),
    /// A negative or unparsable pushback (or a repeated header): the server asks the client
    /// not to retry at all.
    DoNotRetry,
}

/// Parses one `Retry-After` value: delay-seconds (`1*DIGIT`, RFC 9110 §10.2.3) or an HTTP-date
/// relative to `now`.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderValue;
/// use tower_api_retry::retry_after::{parse_retry_after, MAX_HINT};
///
/// let now = SystemTime::now();
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("7"), now), Some(Duration::from_secs(7)));
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("-1"), now), None);
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("1.5"), now), None);
/// assert_eq!(parse_retry_after(&HeaderValue::from_static("99999999999999999999"), now), Some(MAX_HINT));
/// assert_eq!(
///     parse_retry_after(&HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"), now),
///     Some(Duration::ZERO), // in the past
/// );
/// ```
pub fn parse_retry_after(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
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

/// Parses one `grpc-retry-pushback-ms` value: an integer number of milliseconds.
///
/// gRPC's retry design (A6) gives every value a meaning: a non-negative integer is the least
/// time to wait before the next attempt, and a negative *or unparsable* value means "do not
/// retry". So this function is total and never returns "no hint": garbage from a server is a
/// refusal, not a license to retry on the client's own schedule. Surrounding white space and
/// a leading `+` are accepted (as grpc-go's integer parser does); a huge value saturates at
/// [`MAX_HINT`].
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use tower_api_retry::retry_after::{parse_grpc_pushback, Pushback};
///
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("1500")), Pushback::After(Duration::from_millis(1500)));
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("-1")), Pushback::DoNotRetry);
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("soon")), Pushback::DoNotRetry);
/// ```
pub fn parse_grpc_pushback(value: &HeaderValue) -> Pushback {
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

/// The server's hint in a set of response headers, as the layers read it.
///
/// `Retry-After` wins over `grpc-retry-pushback-ms`. Only the first value of a repeated
/// `Retry-After` is read (as [`HeaderMap::get`] does): a repeated `Retry-After` is itself
/// invalid HTTP, and the first value is what every other client sees. A repeated
/// `grpc-retry-pushback-ms` is "do not retry", as grpc-go reads it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hint {
    pub(crate) after: Option<Duration>,
    pub(crate) do_not_retry: bool,
}

pub(crate) fn hint_from_headers(headers: &HeaderMap) -> Hint {
    if headers.is_empty() {
        return Hint::default();
    }
    if let Some(after) = headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
    {
        return Hint {
            after: Some(after),
            do_not_retry: false,
        };
    }
    const PUSHBACK: http::HeaderName = http::HeaderName::from_static(GRPC_RETRY_PUSHBACK_MS);
    let mut values = headers.get_all(PUSHBACK).iter();
    let pushback = match (values.next(), values.next()) {
        (None, _) => return Hint::default(),
        (Some(one), None) => parse_grpc_pushback(one),
        (Some(_), Some(_)) => Pushback::DoNotRetry,
    };
    match pushback {
        Pushback::After(d) => Hint {
            after: Some(d),
            do_not_retry: false,
        },
        Pushback::DoNotRetry => Hint {
            after: None,
            do_not_retry: true,
        },
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
                do_not_retry: true
            }
        );
    }
}
