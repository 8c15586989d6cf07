//! What the layers record at each event: the metrics of [`crate::metrics`] (with the `metrics`
//! feature; without it every function here is empty) and the per-attempt `tracing` span.
//!
//! Every label value is a `&'static str` from a fixed set (see [`crate::metrics`]): nothing a
//! server or a caller wrote ever becomes a label.

#![cfg_attr(not(feature = "metrics"), allow(unused_variables))]

use crate::{error::Error, reason::NotRetried};
use http::{Method, StatusCode};
use std::future::Future;

#[cfg(feature = "metrics")]
use crate::metrics as names;
#[cfg(feature = "metrics")]
use ::metrics::{counter, histogram};

/// When an HTTP request went on the wire, and its method: what its duration sample needs.
/// Empty without the `metrics` feature.
#[derive(Clone, Copy)]
pub(crate) struct Started {
    #[cfg(feature = "metrics")]
    at: tokio::time::Instant,
    #[cfg(feature = "metrics")]
    method: &'static str,
}

impl Started {
    /// Now, for a request with `method`.
    #[inline]
    pub(crate) fn now(method: &Method) -> Started {
        Started {
            #[cfg(feature = "metrics")]
            at: tokio::time::Instant::now(),
            #[cfg(feature = "metrics")]
            method: method_label(method),
        }
    }
}

/// An HTTP request was answered with a response that is not an error.
#[inline]
pub(crate) fn request_ok(started: &Started, status: StatusCode) {
    #[cfg(feature = "metrics")]
    histogram!(
        names::HTTP_CLIENT_REQUEST_DURATION,
        "http.request.method" => started.method,
        "http.response.status_code" => status_label(status),
    )
    .record(started.at.elapsed().as_secs_f64());
}

/// An HTTP request failed: an error response (decoded) or a transport error.
#[inline]
pub(crate) fn request_failed(started: &Started, err: &Error) {
    #[cfg(feature = "metrics")]
    {
        let seconds = started.at.elapsed().as_secs_f64();
        let error_type = error_type(err);
        match err.status() {
            Some(status) => histogram!(
                names::HTTP_CLIENT_REQUEST_DURATION,
                "http.request.method" => started.method,
                "http.response.status_code" => status_label(status),
                "error.type" => error_type,
            )
            .record(seconds),
            None => histogram!(
                names::HTTP_CLIENT_REQUEST_DURATION,
                "http.request.method" => started.method,
                "error.type" => error_type,
            )
            .record(seconds),
        }
    }
}

/// An error body had no known shape.
#[inline]
pub(crate) fn undecodable(status: StatusCode) {
    #[cfg(feature = "metrics")]
    counter!(names::DECODE_UNDECODABLE, "http.response.status_code" => status_label(status))
        .increment(1);
}

/// The span of one attempt; `resends` is 0 for the first.
#[inline]
pub(crate) fn attempt_span(method: &Method, resends: u32) -> tracing::Span {
    // When no subscriber wants DEBUG (one atomic load), the span is not even built: with
    // `tracing`'s `log` feature, building a disabled span still asks `log` about it.
    if !tracing::level_enabled!(tracing::Level::DEBUG) {
        return tracing::Span::none();
    }
    let span = tracing::debug_span!(
        "api_retry.attempt",
        "http.request.method" = method.as_str(),
        "http.request.resend_count" = tracing::field::Empty,
        "http.response.status_code" = tracing::field::Empty,
        disposition = tracing::field::Empty,
        code = tracing::field::Empty,
        "error.type" = tracing::field::Empty,
    );
    if resends > 0 {
        span.record("http.request.resend_count", resends);
    }
    span
}

/// Runs `f` inside `span`, or straight away when nobody listens to it (entering and leaving
/// a disabled span still costs a few calls, more with `tracing`'s `log` feature).
#[inline]
pub(crate) fn in_span<R>(span: &tracing::Span, f: impl FnOnce() -> R) -> R {
    if span.is_disabled() {
        f()
    } else {
        span.in_scope(f)
    }
}

/// An attempt got a response.
#[inline]
pub(crate) fn attempt_ok(span: &tracing::Span, status: StatusCode) {
    if !span.is_disabled() {
        span.record("http.response.status_code", status.as_u16());
    }
    #[cfg(feature = "metrics")]
    counter!(names::ATTEMPTS, "disposition" => "success", "code" => "OK").increment(1);
}

/// An attempt failed with `err`.
#[inline]
pub(crate) fn attempt_failed(span: &tracing::Span, err: &Error) {
    if !span.is_disabled() {
        if let Some(status) = err.status() {
            span.record("http.response.status_code", status.as_u16());
        }
        span.record("disposition", err.disposition().as_str());
        span.record("code", code_text(err));
        span.record("error.type", error_type(err));
    }
    #[cfg(feature = "metrics")]
    counter!(
        names::ATTEMPTS,
        "disposition" => err.disposition().as_str(),
        "code" => code_label(err),
    )
    .increment(1);
}

/// The request is sent again after `err`.
#[inline]
pub(crate) fn retried(err: &Error) {
    #[cfg(feature = "metrics")]
    counter!(
        names::RETRIES,
        "disposition" => err.disposition().as_str(),
        "code" => code_label(err),
    )
    .increment(1);
}

/// A retryable error is returned without another attempt.
#[inline]
pub(crate) fn not_retried(why: &NotRetried) {
    #[cfg(feature = "metrics")]
    counter!(names::NOT_RETRIED, "reason" => why.as_str()).increment(1);
}

/// The retry budget refused a retry.
#[inline]
pub(crate) fn budget_exhausted() {
    #[cfg(feature = "metrics")]
    counter!(names::BUDGET_EXHAUSTED).increment(1);
}

/// A rate limit closed an open gate.
#[inline]
pub(crate) fn gate_closed() {
    #[cfg(feature = "metrics")]
    counter!(names::GATE_CLOSED).increment(1);
}

/// A closed gate refused to send a request.
#[inline]
pub(crate) fn gate_refused() {
    #[cfg(feature = "metrics")]
    counter!(names::GATE_REFUSED).increment(1);
}

/// A probe's outcome: `"opened"` (its answer opened its gate), `"rejected"` (rate limited
/// again) or `"handed_on"` (no answer: another request takes the role).
#[inline]
pub(crate) fn probe(outcome: &'static str) {
    #[cfg(feature = "metrics")]
    counter!(names::GATE_PROBE, "outcome" => outcome).increment(1);
}

/// A wait at a closed gate, timed: `wait` as it is without the `metrics` feature.
#[inline]
pub(crate) fn gate_wait<T, F>(wait: F) -> impl Future<Output = Result<T, Error>> + Send
where
    F: Future<Output = Result<T, Error>> + Send,
{
    #[cfg(feature = "metrics")]
    {
        async move {
            let start = tokio::time::Instant::now();
            let result = wait.await;
            let outcome = if result.is_ok() { "sent" } else { "refused" };
            histogram!(names::GATE_WAIT, "outcome" => outcome)
                .record(start.elapsed().as_secs_f64());
            result
        }
    }
    #[cfg(not(feature = "metrics"))]
    wait
}

/// The `code` of `err` as a bounded label: a code this crate knows, or one its contract
/// declared (a fixed set the user chose), by name; any other is `_OTHER`.
fn code_text(err: &Error) -> &str {
    if err.verdict().declared {
        err.code().as_str()
    } else {
        err.code().label()
    }
}

/// [`code_text`] as a metrics label: a declared code is the one that allocates.
#[cfg(feature = "metrics")]
fn code_label(err: &Error) -> metrics::SharedString {
    match err.code().label() {
        "_OTHER" if err.verdict().declared => {
            metrics::SharedString::from(err.code().as_str().to_owned())
        }
        label => metrics::SharedString::const_str(label),
    }
}

/// OpenTelemetry's `error.type`: the status number of an error status, or else the code.
fn error_type(err: &Error) -> &'static str {
    match err.status() {
        Some(status) if status.as_u16() >= 400 => status_label(status),
        _ => err.code().label(),
    }
}

/// The method, or `_OTHER` for an extension method (whose text is the caller's).
#[cfg(feature = "metrics")]
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// The three digits of every status `http` allows (100 to 999), so a status label is a
/// `&'static str` without an allocation.
static STATUS_DIGITS: [[u8; 3]; 1000] = {
    let mut table = [[0u8; 3]; 1000];
    let mut n = 0;
    while n < 1000 {
        table[n] = [
            b'0' + (n / 100) as u8,
            b'0' + (n / 10 % 10) as u8,
            b'0' + (n % 10) as u8,
        ];
        n += 1;
    }
    table
};

fn status_label(status: StatusCode) -> &'static str {
    let digits = &STATUS_DIGITS[usize::from(status.as_u16()) % 1000];
    std::str::from_utf8(digits).unwrap_or("_OTHER")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_labels_are_the_numbers() {
        assert_eq!(status_label(StatusCode::OK), "200");
        assert_eq!(status_label(StatusCode::SERVICE_UNAVAILABLE), "503");
        assert_eq!(status_label(StatusCode::from_u16(999).unwrap()), "999");
        assert_eq!(status_label(StatusCode::from_u16(100).unwrap()), "100");
    }

    #[test]
    fn error_types_are_bounded() {
        let api = crate::error::ApiError::decode(
            StatusCode::SERVICE_UNAVAILABLE,
            &http::HeaderMap::new(),
            b"",
        );
        assert_eq!(error_type(&Error::from_api(api)), "503");
        let refused = Error::gate_closed(std::time::Duration::from_secs(1));
        assert_eq!(error_type(&refused), "RESOURCE_EXHAUSTED");
        let unknown = crate::error::ApiError::decode(
            StatusCode::OK,
            &http::HeaderMap::new(),
            br#"{"error": {"code": "WHATEVER_bearer_abc", "message": "m"}}"#,
        );
        assert_eq!(unknown.code().label(), "_OTHER");
    }
}
