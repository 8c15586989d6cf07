//! Parsing of the server's "wait this long" hints: `Retry-After` and `grpc-retry-pushback-ms`.
//!
//! Both parsers are pure and total: any header value gives a value or `None`, never a panic or
//! an overflow. Invalid hints are `None` (the caller falls back to its backoff), an HTTP-date
//! in the past is zero, and a huge value saturates at [`MAX_HINT`].

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
    /// A negative pushback: the server asks the client not to retry at all.
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

/// Parses one `grpc-retry-pushback-ms` value (an optionally negative integer of milliseconds).
///
/// ```
/// use std::time::Duration;
/// use http::HeaderValue;
/// use tower_api_retry::retry_after::{parse_grpc_pushback, Pushback};
///
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("1500")), Some(Pushback::After(Duration::from_millis(1500))));
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("-1")), Some(Pushback::DoNotRetry));
/// assert_eq!(parse_grpc_pushback(&HeaderValue::from_static("soon")), None);
/// ```
pub fn parse_grpc_pushback(value: &HeaderValue) -> Option<Pushback> {
    let text = value.to_str().ok()?.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if negative {
        return Some(Pushback::DoNotRetry);
    }
    let ms = digits.parse::<u64>().unwrap_or(u64::MAX);
    Some(Pushback::After(Duration::from_millis(ms).min(MAX_HINT)))
}

/// The server's hint in a set of response headers, as the layers read it.
///
/// `Retry-After` wins over `grpc-retry-pushback-ms`. Only the first value of a repeated
/// header is read (as [`HeaderMap::get`] does): a repeated `Retry-After` is itself invalid
/// HTTP, and the first value is what every other client sees.
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
    match headers.get(PUSHBACK).and_then(parse_grpc_pushback) {
        Some(Pushback::After(d)) => Hint {
            after: Some(d),
            do_not_retry: false,
        },
        Some(Pushback::DoNotRetry) => Hint {
            after: None,
            do_not_retry: true,
        },
        None => Hint::default(),
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

    #[test]
    fn pushback() {
        let p = |s: &'static str| parse_grpc_pushback(&HeaderValue::from_static(s));
        assert_eq!(p("0"), Some(Pushback::After(Duration::ZERO)));
        assert_eq!(p("250"), Some(Pushback::After(Duration::from_millis(250))));
        assert_eq!(p("-5"), Some(Pushback::DoNotRetry));
        assert_eq!(
            p("99999999999999999999999"),
            Some(Pushback::After(MAX_HINT))
        );
        for bad in ["", "-", "1.5", "abc", "--1", "1 2"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
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
