//! The `metrics` feature: exact counts recorded for scripted exchanges with the emulated API
//! (hyper-util client, documented stack), and label values that never carry a credential, a
//! path or a server's text.
//!
//! Each test installs a `DebuggingRecorder` as its thread's local recorder and runs on a
//! current-thread runtime, so every layer records on the test's thread, into the test's own
//! recorder: tests running in parallel never see each other's counts.

use crate::support::{Emulator, Reply};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    ApiContractLayer, Disposition, ErrorContract, ErrorDecodeLayer, NotRetried,
    RateLimitBackoffLayer, RetryLayer, backoff::Backoff, retry::RetryBudget,
};

/// The first wait of the retry schedule (the documented 1 s, shrunk).
const BASE: Duration = Duration::from_millis(5);

type Body = Full<Bytes>;

type Stack = tower_api_retry::ApiContract<Client<HttpConnector, Body>>;

fn stack_with(layer: ApiContractLayer) -> Stack {
    let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
    ServiceBuilder::new().layer(layer).service(client)
}

fn stack() -> Stack {
    stack_with(
        ApiContractLayer::new().retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
    )
}

fn get(api: &Emulator, path: &str) -> Request<Body> {
    request(api, Method::GET, path)
}

fn request(api: &Emulator, method: Method, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(api.url(path))
        .header("authorization", "Bearer convo_METRICS_SECRET")
        .body(Full::default())
        .unwrap()
}

/// What the recorder holds: every counter, as `name{label=value,...}` (labels sorted) → count,
/// and every histogram → its samples. (Taking a snapshot drains the histograms: one per test.)
struct Recorded {
    counters: BTreeMap<String, u64>,
    histograms: BTreeMap<String, Vec<f64>>,
}

fn recorded(snapshotter: &Snapshotter) -> Recorded {
    let mut out = Recorded {
        counters: BTreeMap::new(),
        histograms: BTreeMap::new(),
    };
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        match value {
            DebugValue::Counter(n) => {
                out.counters.insert(name_of(key.key()), n);
            }
            DebugValue::Histogram(samples) => {
                let samples = samples.iter().map(|s| s.0).collect();
                out.histograms.insert(name_of(key.key()), samples);
            }
            DebugValue::Gauge(_) => {}
        }
    }
    out
}

impl Recorded {
    /// How many samples each histogram holds.
    fn sample_counts(&self) -> BTreeMap<String, u64> {
        self.histograms
            .iter()
            .map(|(k, v)| (k.clone(), v.len() as u64))
            .collect()
    }
}

fn name_of(key: &::metrics::Key) -> String {
    let mut labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    labels.sort();
    if labels.is_empty() {
        key.name().to_owned()
    } else {
        format!("{}{{{}}}", key.name(), labels.join(","))
    }
}

fn expect(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

#[tokio::test(flavor = "current_thread")]
async fn transient_errors_then_success() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let api = Emulator::start().await;
    api.script(
        "/api/spaces/s1",
        [
            Reply::detail(503, "try again"),
            Reply::detail(503, "try again"),
        ],
    );

    let res = stack().oneshot(get(&api, "/api/spaces/s1")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[
            ("api_retry.attempts{code=OK,disposition=success}", 1),
            ("api_retry.attempts{code=UNAVAILABLE,disposition=retry}", 2),
            ("api_retry.retries{code=UNAVAILABLE,disposition=retry}", 2),
        ])
    );
    assert_eq!(
        recorded.sample_counts(),
        expect(&[
            (
                "http.client.request.duration{http.request.method=GET,http.response.status_code=200}",
                1
            ),
            (
                "http.client.request.duration{error.type=503,http.request.method=GET,http.response.status_code=503}",
                2
            ),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn declared_codes_are_labelled_by_name_and_others_stay_bounded() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let api = Emulator::start().await;
    api.script(
        "/api/declared",
        [Reply::envelope(
            503,
            "TEMPORARILY_UNAVAILABLE",
            "later",
            None,
        )],
    );
    api.script(
        "/api/undeclared",
        [Reply::envelope(400, "SOMETHING_NEW_7f3a", "no", None)],
    );
    let contract = ErrorContract::new().code("TEMPORARILY_UNAVAILABLE", Disposition::Retry);
    let svc = stack_with(
        ApiContractLayer::new()
            .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE)))
            .contract(contract),
    );
    svc.clone()
        .oneshot(get(&api, "/api/declared"))
        .await
        .unwrap();
    svc.oneshot(get(&api, "/api/undeclared")).await.unwrap_err();

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[
            ("api_retry.attempts{code=OK,disposition=success}", 1),
            (
                "api_retry.attempts{code=TEMPORARILY_UNAVAILABLE,disposition=retry}",
                1
            ),
            ("api_retry.attempts{code=_OTHER,disposition=fix_request}", 1),
            (
                "api_retry.retries{code=TEMPORARILY_UNAVAILABLE,disposition=retry}",
                1
            ),
        ])
    );
}

#[tokio::test(flavor = "current_thread")]
async fn errors_that_are_not_retried() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let api = Emulator::start().await;
    api.script(
        "/api/spaces/s1/events",
        [Reply::detail(400, "kind is required")],
    );
    api.script("/api/spaces/s1/messages", [Reply::detail(503, "try again")]);
    api.always(
        "/api/proxy",
        [Reply::raw(
            502,
            "<html><title>502 Bad Gateway</title></html>",
        )],
    );
    let svc = stack_with(
        ApiContractLayer::new().retry(
            RetryLayer::new()
                .backoff(Backoff::new().base_delay(BASE))
                .max_retries(1),
        ),
    );

    // A 400 is the caller's to fix: sent once. It is not "not retried" (it never could be):
    // its disposition says why.
    let err = svc
        .clone()
        .oneshot(request(&api, Method::POST, "/api/spaces/s1/events"))
        .await
        .unwrap_err();
    assert_eq!(err.disposition(), Disposition::FixRequest);
    // A 503 to a POST: retryable, but the server may have acted on it.
    let err = svc
        .clone()
        .oneshot(request(&api, Method::POST, "/api/spaces/s1/messages"))
        .await
        .unwrap_err();
    assert!(matches!(
        err.not_retried(),
        Some(NotRetried::NotIdempotent { .. })
    ));
    // A proxy's HTML 502, twice: undecodable, and max_retries (1) reached.
    let err = svc.oneshot(get(&api, "/api/proxy")).await.unwrap_err();
    assert_eq!(err.attempts(), 2);

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[
            (
                "api_retry.attempts{code=INVALID_ARGUMENT,disposition=fix_request}",
                1
            ),
            ("api_retry.attempts{code=UNAVAILABLE,disposition=retry}", 3),
            (
                "api_retry.decode.undecodable{http.response.status_code=502}",
                2
            ),
            ("api_retry.not_retried{reason=max_retries}", 1),
            ("api_retry.not_retried{reason=not_idempotent}", 1),
            ("api_retry.retries{code=UNAVAILABLE,disposition=retry}", 1),
        ])
    );
    assert_eq!(
        recorded.sample_counts(),
        expect(&[
            (
                "http.client.request.duration{error.type=400,http.request.method=POST,http.response.status_code=400}",
                1
            ),
            (
                "http.client.request.duration{error.type=502,http.request.method=GET,http.response.status_code=502}",
                2
            ),
            (
                "http.client.request.duration{error.type=503,http.request.method=POST,http.response.status_code=503}",
                1
            ),
        ])
    );
}

/// A 429 closes the path's gate; the next request for it is refused at the closed gate
/// (`fail_fast`), and neither is retried since the server asked for longer than this client
/// waits.
#[tokio::test(flavor = "current_thread")]
async fn a_rate_limit_closes_the_gate() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let api = Emulator::start().await;
    api.script("/api/spaces/s1/search", [Reply::too_many(30)]);
    let mut svc = stack_with(
        ApiContractLayer::new()
            .retry(
                RetryLayer::new()
                    .backoff(Backoff::new().base_delay(BASE))
                    .max_retry_after(Duration::from_secs(1)),
            )
            .rate_limit(RateLimitBackoffLayer::new().fail_fast()),
    );

    for _ in 0..2 {
        let req = get(&api, "/api/spaces/s1/search");
        let err = svc.ready().await.unwrap().call(req).await.unwrap_err();
        assert!(matches!(
            err.not_retried(),
            Some(NotRetried::RetryAfterTooLong { .. })
        ));
    }
    assert_eq!(api.seen("/api/spaces/s1/search").len(), 1);

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[
            (
                "api_retry.attempts{code=RESOURCE_EXHAUSTED,disposition=rate_limited}",
                2
            ),
            ("api_retry.gate.closed", 1),
            ("api_retry.gate.refused", 1),
            ("api_retry.not_retried{reason=retry_after_too_long}", 2),
        ])
    );
    // Only the request that went on the wire is an HTTP request.
    assert_eq!(
        recorded.sample_counts(),
        expect(&[(
            "http.client.request.duration{error.type=429,http.request.method=GET,http.response.status_code=429}",
            1
        )])
    );
}

/// A request waits at a closed gate until it opens, goes first as the probe, and opens the
/// gate; a retry's wait is the server's `Retry-After`. In-process, on a paused clock, so the
/// wait is exact.
#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn waits_at_the_gate_and_probes() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let calls = Arc::new(AtomicU32::new(0));
    let count = calls.clone();
    let server = service_fn(move |_req: Request<Body>| {
        let n = count.fetch_add(1, Ordering::SeqCst);
        async move {
            let res = if n == 0 {
                Response::builder()
                    .status(429)
                    .header("retry-after", "2")
                    .body(Full::new(Bytes::from_static(
                        br#"{"code": "RESOURCE_EXHAUSTED", "message": "slow down"}"#,
                    )))
            } else {
                Response::builder().status(200).body(Full::default())
            };
            Ok::<_, Infallible>(res.unwrap())
        }
    });
    let gates = RateLimitBackoffLayer::new();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().max_retries(0))
        .layer(gates)
        .layer(ErrorDecodeLayer::new())
        .service(server);

    let first = Request::get("http://api.test/api/search")
        .body(Full::default())
        .unwrap();
    let err = svc.clone().oneshot(first).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    // Held at the closed gate for the two seconds, then sent as the probe: a 200 opens it.
    let second = Request::get("http://api.test/api/search")
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(second).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[
            ("api_retry.attempts{code=OK,disposition=success}", 1),
            (
                "api_retry.attempts{code=RESOURCE_EXHAUSTED,disposition=rate_limited}",
                1
            ),
            ("api_retry.gate.closed", 1),
            ("api_retry.gate.probe{outcome=opened}", 1),
        ])
    );
    let histograms = &recorded.histograms;
    assert_eq!(histograms["api_retry.gate.wait{outcome=sent}"], [2.0]);
    assert_eq!(
        histograms["http.client.request.duration{error.type=429,http.request.method=GET,http.response.status_code=429}"],
        [0.0]
    );
}

/// A budget that allows no retry: the transient error is returned after one attempt.
#[tokio::test(flavor = "current_thread")]
async fn an_exhausted_budget() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let api = Emulator::start().await;
    api.script("/api/spaces/s1", [Reply::detail(503, "try again")]);
    let none = RetryBudget::new(Duration::from_secs(1), 0, 0.0);
    let svc = stack_with(
        ApiContractLayer::new().retry(
            RetryLayer::new()
                .backoff(Backoff::new().base_delay(BASE))
                .budget(none),
        ),
    );

    let err = svc.oneshot(get(&api, "/api/spaces/s1")).await.unwrap_err();
    assert_eq!(err.not_retried(), Some(&NotRetried::BudgetExhausted));

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[
            ("api_retry.attempts{code=UNAVAILABLE,disposition=retry}", 1),
            ("api_retry.budget.exhausted", 1),
            ("api_retry.not_retried{reason=budget_exhausted}", 1),
        ])
    );
}

/// Label values come from small fixed sets: never the credential, the path or its ids, the
/// query, or a code or message the server made up.
#[tokio::test(flavor = "current_thread")]
async fn labels_never_carry_secrets_paths_or_server_text() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    let api = Emulator::start().await;
    let path = "/api/spaces/sp_8841/events/ev_2291";
    api.script(
        path,
        [
            Reply::envelope(503, "ZZ_SECRET_CODE_sk_live_1", "boom sk_live_2", None),
            Reply::raw(502, "<html>Bearer convo_METRICS_SECRET</html>"),
            Reply::envelope(401, "KEY_REVOKED", "revoked", Some("mint a new key")),
        ],
    );
    let mut req = Request::builder()
        .method(Method::from_bytes(b"FETCHIT").unwrap())
        .uri(api.url(&format!("{path}?token=tok_QUERYSECRET")))
        .header("authorization", "Bearer convo_METRICS_SECRET")
        .header("x-api-key", "xk_live_HEADERSECRET")
        .header("idempotency-key", "idem_4471")
        .body(Full::default())
        .unwrap();
    req.extensions_mut()
        .insert(tower_api_retry::RetryOverride::new().max_retries(5));
    let err = stack().oneshot(req).await.unwrap_err();
    assert_eq!(err.attempts(), 3);

    let snapshot = snapshotter.snapshot().into_vec();
    assert!(!snapshot.is_empty());
    let mut values = Vec::new();
    for (key, ..) in &snapshot {
        let key = key.key();
        values.push(key.name().to_owned());
        for label in key.labels() {
            values.push(format!("{}={}", label.key(), label.value()));
        }
    }
    let all = values.join(" ");
    for needle in [
        "SECRET", "sk_live", "convo", "xk_live", "sp_8841", "ev_2291", "idem", "token", "/api",
        "boom", "FETCHIT", "Bearer",
    ] {
        assert!(!all.contains(needle), "{needle} in {all}");
    }
    // The unknown code and method are `_OTHER`; the known ones are themselves.
    assert!(all.contains("code=_OTHER"), "{all}");
    assert!(all.contains("http.request.method=_OTHER"), "{all}");
    assert!(all.contains("code=KEY_REVOKED"), "{all}");
}

/// A transport failure has no status: its `error.type` is its code.
#[tokio::test(flavor = "current_thread")]
async fn a_refused_connection() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _local = ::metrics::set_default_local_recorder(&recorder);
    // A port nobody listens on any more.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let mut req = Request::get(format!("http://{addr}/api/spaces"))
        .body(Full::default())
        .unwrap();
    req.extensions_mut()
        .insert(tower_api_retry::RetryOverride::no_retries());
    let err = stack().oneshot(req).await.unwrap_err();
    assert!(!err.request_sent());

    let recorded = recorded(&snapshotter);
    assert_eq!(
        recorded.counters,
        expect(&[("api_retry.attempts{code=UNAVAILABLE,disposition=retry}", 1)])
    );
    assert_eq!(
        recorded.sample_counts(),
        expect(&[(
            "http.client.request.duration{error.type=UNAVAILABLE,http.request.method=GET}",
            1
        )])
    );
}
