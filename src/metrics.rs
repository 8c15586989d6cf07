//! The metrics the layers record, with the `metrics` feature: their names, types and labels.
//!
//! The layers record through the [`metrics`](https://docs.rs/metrics) facade, so any exporter
//! installed as the recorder receives them. Names follow OpenTelemetry's HTTP client
//! conventions where one exists; the rest are the crate's own, under `api_retry.`.
//!
//! | name | type | labels | recorded by | what |
//! | --- | --- | --- | --- | --- |
//! | `http.client.request.duration` | histogram, seconds | `http.request.method`, `http.response.status_code` (when there was a response), `error.type` (when it failed) | [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) | one HTTP request on the wire: from the call to the client until its response head (a success), or its decoded error body, or its transport error |
//! | `api_retry.attempts` | counter | `disposition`, `code` | [`RetryLayer`](crate::RetryLayer) | every attempt with its outcome: `disposition="success", code="OK"`, or the error's [`Disposition`](crate::Disposition) and [`ErrorCode`](crate::ErrorCode) |
//! | `api_retry.retries` | counter | `disposition`, `code` | [`RetryLayer`](crate::RetryLayer) | a request sent again, labelled with the error that caused it |
//! | `api_retry.not_retried` | counter | `reason` | [`RetryLayer`](crate::RetryLayer) | a retryable error returned without another attempt, by [`NotRetried::as_str`](crate::NotRetried::as_str) (`max_retries`, `not_idempotent`, `deadline`, `budget_exhausted`, …) |
//! | `api_retry.budget.exhausted` | counter | — | [`RetryLayer`](crate::RetryLayer) | a retry the [`RetryBudget`](crate::retry::RetryBudget) refused: it would have had to wait for it past [`max_budget_wait`](crate::RetryLayer::max_budget_wait), or failures held it back until the end of the request's schedule (also counted in `api_retry.not_retried` as `budget_exhausted`) |
//! | `api_retry.gate.closed` | counter | — | [`RateLimitBackoffLayer`](crate::RateLimitBackoffLayer) | a rate limit, or an outage (see [outages](crate::rate_limit#outages)), closed an open path's gate |
//! | `api_retry.gate.wait` | histogram, seconds | `outcome` (`sent`, `refused`) | [`RateLimitBackoffLayer`](crate::RateLimitBackoffLayer) | how long a request waited at a closed gate or for its turn on a paced path, and whether it was then sent or refused |
//! | `api_retry.gate.refused` | counter | — | [`RateLimitBackoffLayer`](crate::RateLimitBackoffLayer) | a request the gate refused to send (it would have had to wait past `max_wait` or its deadline, or `fail_fast`) |
//! | `api_retry.gate.probe` | counter | `outcome` (`opened`, `rejected`, `handed_on`) | [`RateLimitBackoffLayer`](crate::RateLimitBackoffLayer) | a probe's answer: the gate opened, the probe was rate limited again, or it got no answer and another request probes |
//! | `api_retry.decode.undecodable` | counter | `http.response.status_code` | [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) | an error body of no known shape (HTML from a proxy, empty, truncated or malformed JSON): its code came from the status alone ([`BodyShape::Unrecognized`](crate::BodyShape::Unrecognized)) |
//!
//! # Labels
//!
//! Every label value is one of a small fixed set, so no label can grow a time series per
//! request and none can carry a secret:
//!
//! - `http.request.method`: the standard methods (`GET`, `POST`, …), any other is `_OTHER`.
//! - `http.response.status_code`: the status number, three digits (`"200"`, `"503"`).
//! - `error.type`: the status number for an error status (`"503"`), as OpenTelemetry asks;
//!   otherwise (a gRPC error inside a `200`, a transport failure) the error's code
//!   (`UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`).
//! - `code`: a code this crate knows ([`ErrorCode::KNOWN`](crate::ErrorCode::KNOWN)), or one
//!   declared on the [`ErrorContract`](crate::ErrorContract) (a fixed set you chose), by
//!   name; any other code is `_OTHER`, never the server's text.
//! - `disposition`: [`Disposition::as_str`](crate::Disposition::as_str), or `success`.
//! - `reason`: [`NotRetried::as_str`](crate::NotRetried::as_str).
//!
//! Never a path, a host, a rate-limit key, a header value, a message or a credential.
//!
//! # Tracing
//!
//! Independently of this feature, [`RetryLayer`](crate::RetryLayer) opens one `tracing` span
//! per attempt, `api_retry.attempt` at `DEBUG`, with the fields `http.request.method`,
//! `http.request.resend_count` (absent on the first attempt), and once the attempt ends
//! `http.response.status_code` or `disposition`, `code` and `error.type`.
//!
//! # Example
//!
//! `examples/prometheus.rs` in the repository prints the Prometheus scrape output of a short
//! exchange.
//!
//! ```
//! # #[cfg(feature = "metrics")]
//! # fn main() {
//! // Once, at start-up: install the exporter of your choice as the global recorder, e.g.
//! // `metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()`. Then, to
//! // describe the crate's metrics (type, unit and help text) to it:
//! tower_api_retry::metrics::describe();
//! # }
//! # #[cfg(not(feature = "metrics"))]
//! # fn main() {}
//! ```

#![cfg_attr(not(feature = "metrics"), allow(dead_code))]

// The names of the table above.
pub(crate) const HTTP_CLIENT_REQUEST_DURATION: &str = "http.client.request.duration";
pub(crate) const ATTEMPTS: &str = "api_retry.attempts";
pub(crate) const RETRIES: &str = "api_retry.retries";
pub(crate) const NOT_RETRIED: &str = "api_retry.not_retried";
pub(crate) const BUDGET_EXHAUSTED: &str = "api_retry.budget.exhausted";
pub(crate) const GATE_CLOSED: &str = "api_retry.gate.closed";
pub(crate) const GATE_WAIT: &str = "api_retry.gate.wait";
pub(crate) const GATE_REFUSED: &str = "api_retry.gate.refused";
pub(crate) const GATE_PROBE: &str = "api_retry.gate.probe";
pub(crate) const DECODE_UNDECODABLE: &str = "api_retry.decode.undecodable";

/// Describes every metric of the table (its unit and help text) to the installed recorder.
/// Optional: exporters that show help texts and units use it; the metrics are recorded
/// without it. Call it after installing the recorder.
#[cfg(feature = "metrics")]
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_histogram};
    describe_histogram!(
        HTTP_CLIENT_REQUEST_DURATION,
        Unit::Seconds,
        "Duration of HTTP client requests."
    );
    describe_counter!(ATTEMPTS, "Attempts, by outcome (disposition and code).");
    describe_counter!(
        RETRIES,
        "Requests sent again, by the disposition and code of the error retried."
    );
    describe_counter!(
        NOT_RETRIED,
        "Retryable errors returned without another attempt, by reason."
    );
    describe_counter!(BUDGET_EXHAUSTED, "Retries refused by the retry budget.");
    describe_counter!(
        GATE_CLOSED,
        "Rate-limit gates closed by a rate limit or an outage."
    );
    describe_histogram!(
        GATE_WAIT,
        Unit::Seconds,
        "Time requests waited at a closed or paced rate-limit gate, by outcome."
    );
    describe_counter!(
        GATE_REFUSED,
        "Requests a closed rate-limit gate refused to send."
    );
    describe_counter!(GATE_PROBE, "Rate-limit gate probes, by outcome.");
    describe_counter!(
        DECODE_UNDECODABLE,
        "Error responses whose body had no known shape."
    );
}
