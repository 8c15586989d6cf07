//! End to end: tower-http's `TraceLayer` with the crate's classifier around the documented
//! stack (installed in one line), over a hyper-util client and the emulated API. Failures are
//! reported by disposition, both to an `on_failure` callback and in the tracing output.

use crate::support::{Emulator, Reply};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::{
    ApiContractLayer, Disposition, ErrorCode, RetryLayer,
    backoff::Backoff,
    integrations::tower_http::{ContractClassifier, FailureClass},
};
use tower_http::{classify::SharedClassifier, trace::TraceLayer};

fn request(api: &Emulator, method: Method, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(api.url(&format!("{path}?token=convo_TRACE_SECRET")))
        .header("authorization", "Bearer convo_TRACE_SECRET")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

fn contract() -> ApiContractLayer {
    ApiContractLayer::new().retry(
        RetryLayer::new()
            .backoff(Backoff::new().base_delay(Duration::from_millis(20)))
            .max_retries(1),
    )
}

fn script(api: &Emulator) {
    api.script("/api/flaky", [Reply::detail(503, "restarting")]);
    api.always(
        "/api/keys",
        [Reply::envelope(
            401,
            "KEY_REVOKED",
            "The key was rotated or revoked",
            Some("Generate a fresh key in Settings → API Keys"),
        )],
    );
    api.always(
        "/api/connect",
        [Reply::envelope(
            409,
            "NO_ACTIVE_USER",
            "No active user",
            None,
        )],
    );
    api.always("/api/tenant", [Reply::detail(403, "Tenant is suspended")]);
    api.always("/api/spaces", [Reply::detail(409, "Space is not active")]);
    api.always("/api/down", [Reply::detail(503, "Server restarting")]);
    // A hint above max_retry_after (30 s): returned at once, not waited for.
    api.always("/api/limited", [Reply::too_many(120)]);
    api.always("/api/reset", [Reply::Reset]);
}

/// (path, method, expected failure class or `None` for a success).
/// What the trace must report: disposition, code, HTTP status.
type Expected = Option<(Disposition, ErrorCode, Option<u16>)>;

fn cases() -> Vec<(&'static str, Method, Expected)> {
    use Disposition::*;
    vec![
        ("/api/flaky", Method::GET, None), // retried to success: no failure
        (
            "/api/keys",
            Method::GET,
            Some((Reauthenticate, ErrorCode::KeyRevoked, Some(401))),
        ),
        (
            "/api/connect",
            Method::POST,
            Some((NeedsHuman, ErrorCode::NoActiveUser, Some(409))),
        ),
        (
            "/api/tenant",
            Method::GET,
            Some((Forbidden, ErrorCode::PermissionDenied, Some(403))),
        ),
        (
            "/api/spaces",
            Method::POST,
            Some((FixRequest, ErrorCode::FailedPrecondition, Some(409))),
        ),
        (
            "/api/down",
            Method::GET,
            Some((Retry, ErrorCode::Unavailable, Some(503))),
        ),
        (
            "/api/limited",
            Method::GET,
            Some((RateLimited, ErrorCode::ResourceExhausted, Some(429))),
        ),
        (
            "/api/reset",
            Method::POST,
            Some((Retry, ErrorCode::Unavailable, None)),
        ),
    ]
}

/// Both checks share one emulated API.
#[tokio::test]
async fn trace_layer_with_the_contract_classifier() {
    trace_output_names_the_disposition_and_no_credential().await;
    trace_layer_reports_failures_by_disposition().await;
}

async fn trace_layer_reports_failures_by_disposition() {
    let api = Emulator::start().await;
    script(&api);
    let classes: Arc<Mutex<Vec<FailureClass>>> = Arc::default();
    let sink = classes.clone();
    let svc = ServiceBuilder::new()
        .layer(
            TraceLayer::new(SharedClassifier::new(ContractClassifier::default())).on_failure(
                move |class: FailureClass, _latency: Duration, _span: &tracing::Span| {
                    sink.lock().unwrap().push(class);
                },
            ),
        )
        .layer(contract())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());

    for (path, method, expected) in cases() {
        let before = classes.lock().unwrap().len();
        let result = svc.clone().oneshot(request(&api, method, path)).await;
        let got = classes.lock().unwrap()[before..].to_vec();
        match expected {
            None => {
                assert_eq!(result.unwrap().status(), StatusCode::OK, "{path}");
                assert!(got.is_empty(), "{path}: {got:?}");
            }
            Some((disposition, code, status)) => {
                let Err(err) = result else {
                    panic!("{path}: expected an error")
                };
                assert_eq!(err.disposition(), disposition, "{path}");
                assert_eq!(got.len(), 1, "{path}: {got:?}");
                assert_eq!(got[0].disposition(), disposition, "{path}");
                assert_eq!(got[0].code(), &code, "{path}");
                assert_eq!(got[0].status().map(|s| s.as_u16()), status, "{path}");
            }
        }
    }
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// The default `on_failure` logs the class (`disposition (CODE, HTTP status)`); with a span
/// that records the path only, no credential reaches the log.
async fn trace_output_names_the_disposition_and_no_credential() {
    let api = Emulator::start().await;
    script(&api);
    let buffer = Buffer::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(buffer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    // The binary's global subscriber has a dynamic filter, so no callsite is cached as
    // uninteresting before this scoped one exists.
    crate::support::trace::install();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let svc = ServiceBuilder::new()
        .layer(
            TraceLayer::new(SharedClassifier::new(ContractClassifier::default())).make_span_with(
                |req: &Request<Full<Bytes>>| {
                    // Not tower-http's default span: that one records the whole URI, query
                    // string (and so `?token=`) included.
                    tracing::info_span!("request", method = %req.method(), path = req.uri().path())
                },
            ),
        )
        .layer(contract())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    for (path, method, _) in cases() {
        let _ = svc.clone().oneshot(request(&api, method, path)).await;
    }
    let log = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    for line in [
        "classification=reauthenticate (KEY_REVOKED, HTTP 401)",
        "classification=needs_human (NO_ACTIVE_USER, HTTP 409)",
        "classification=forbidden (PERMISSION_DENIED, HTTP 403)",
        "classification=fix_request (FAILED_PRECONDITION, HTTP 409)",
        "classification=retry (UNAVAILABLE, HTTP 503)",
        "classification=rate_limited (RESOURCE_EXHAUSTED, HTTP 429)",
        "classification=retry (UNAVAILABLE)",
    ] {
        assert!(log.contains(line), "missing {line:?} in:\n{log}");
    }
    // The retry layer's own event for the flaky path (path without query).
    assert!(log.contains("retrying request"), "{log}");
    assert!(!log.contains("TRACE_SECRET"), "{log}");
}
