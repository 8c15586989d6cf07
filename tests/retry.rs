//! RetryLayer: the schedule on tokio's paused clock with scripted services, and the real thing
//! against loopback axum servers with hyper-util clients.

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    Attempts, Error, ErrorDecodeLayer, RetryLayer, backoff::Jitter, retry::RetryBudget,
};

const S: fn(u64) -> Duration = Duration::from_secs;

type Reply = Result<Response<Full<Bytes>>, io::Error>;

#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Instant>>>);

impl Calls {
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
    /// The waits between consecutive attempts.
    fn waits(&self) -> Vec<Duration> {
        let t = self.0.lock().unwrap();
        t.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

fn status(code: u16) -> Reply {
    Ok(Response::builder()
        .status(code)
        .body(Full::default())
        .unwrap())
}

fn with_header(code: u16, name: &str, value: &str) -> Reply {
    Ok(Response::builder()
        .status(code)
        .header(name, value)
        .body(Full::default())
        .unwrap())
}

fn json(code: u16, body: &'static str) -> Reply {
    Ok(Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap())
}

fn grpc(code: u32) -> Reply {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string())
        .body(Full::default())
        .unwrap())
}

/// A stack over a scripted server: `reply(n)` answers the n-th call (0-based).
fn stack<B, F>(
    layer: RetryLayer,
    reply: F,
) -> (
    impl Service<Request<B>, Response = Response<Full<Bytes>>, Error = Error> + Clone,
    Calls,
)
where
    B: tower_api_retry::retry::ReplayBody + Send + 'static,
    F: Fn(usize) -> Reply + Clone + Send + 'static,
{
    let calls = Calls::default();
    let log = calls.clone();
    let server = service_fn(move |_req: Request<B>| {
        let n = {
            let mut t = log.0.lock().unwrap();
            t.push(Instant::now());
            t.len() - 1
        };
        let reply = reply.clone();
        async move { reply(n) }
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ErrorDecodeLayer::new())
        .service(server);
    (svc, calls)
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

fn req(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("/api/things")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

fn attempts<B>(res: &Response<B>) -> u32 {
    res.extensions().get::<Attempts>().unwrap().get()
}

// ---------------------------------------------------------------- schedule

#[tokio::test(start_paused = true)]
async fn nominal_waits_are_1_2_4_seconds_within_the_jitter_band() {
    let (svc, calls) = stack(RetryLayer::new().budget(None), |_| status(503));
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!(err.attempts(), 4);
    assert_eq!(calls.count(), 4);
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert!(err.note().unwrap().contains("max_retries"), "{err}");
    let waits = calls.waits();
    for (wait, nominal) in waits.iter().zip([1.0, 2.0, 4.0]) {
        let w = wait.as_secs_f64();
        assert!(
            w >= nominal * 0.8 - 1e-3 && w <= nominal * 1.2 + 1e-3,
            "{waits:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn without_jitter_the_schedule_is_exact() {
    let layer = RetryLayer::new()
        .budget(None)
        .jitter(Jitter::None)
        .max_retries(6);
    let (svc, calls) = stack(layer, |_| status(500));
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!(err.attempts(), 7);
    assert_eq!(calls.waits(), [S(1), S(2), S(4), S(8), S(16), S(30)]);
}

#[tokio::test(start_paused = true)]
async fn the_cap_holds_for_long_sequences_and_every_strategy() {
    for jitter in [
        Jitter::Proportional(0.2),
        Jitter::Full,
        Jitter::Equal,
        Jitter::Decorrelated,
    ] {
        let layer = RetryLayer::new()
            .budget(None)
            .jitter(jitter)
            .max_retries(40)
            .max_delay(S(30));
        let (svc, calls) = stack(layer, |_| status(503));
        let err = svc.oneshot(get("/x")).await.unwrap_err();
        assert_eq!(err.attempts(), 41);
        let waits = calls.waits();
        assert_eq!(waits.len(), 40);
        assert!(waits.iter().all(|w| *w <= S(30)), "{jitter:?} {waits:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_7s_is_honoured() {
    let (svc, calls) = stack(RetryLayer::new(), |n| {
        if n == 0 {
            with_header(503, "retry-after", "7")
        } else {
            status(200)
        }
    });
    let res = svc.oneshot(get("/x")).await.unwrap();
    assert_eq!(attempts(&res), 2);
    // max(1 s ± 20 %, 7 s) = 7 s.
    assert_eq!(calls.waits(), [S(7)]);
}

#[tokio::test(start_paused = true)]
async fn a_hint_shorter_than_the_backoff_does_not_shorten_it() {
    let layer = RetryLayer::new().jitter(Jitter::None).base_delay(S(3));
    let (svc, calls) = stack(layer, |n| {
        if n == 0 {
            with_header(429, "retry-after", "1")
        } else {
            status(200)
        }
    });
    svc.oneshot(get("/x")).await.unwrap();
    assert_eq!(calls.waits(), [S(3)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_3600s_surfaces_at_once() {
    let (svc, calls) = stack(RetryLayer::new(), |_| {
        with_header(429, "retry-after", "3600")
    });
    let start = Instant::now();
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(calls.count(), 1);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.retry_after(), Some(S(3600)));
    assert!(err.note().unwrap().contains("max_retry_after"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn grpc_pushback_is_a_floor_and_negative_pushback_forbids() {
    let (svc, calls) = stack(RetryLayer::new(), |n| {
        if n == 0 {
            Ok(Response::builder()
                .header("grpc-status", "8")
                .header("grpc-retry-pushback-ms", "5000")
                .body(Full::default())
                .unwrap())
        } else {
            status(200)
        }
    });
    svc.oneshot(get("/x")).await.unwrap();
    assert_eq!(calls.waits(), [S(5)]);

    let (svc, calls) = stack(RetryLayer::new(), |_| {
        Ok(Response::builder()
            .header("grpc-status", "14")
            .header("grpc-retry-pushback-ms", "-1")
            .body(Full::default())
            .unwrap())
    });
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!(calls.count(), 1);
    assert!(err.note().unwrap().contains("forbids"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_is_not_started() {
    let layer = RetryLayer::new().jitter(Jitter::None).deadline(S(5));
    let (svc, calls) = stack(layer, |_| status(503));
    let start = Instant::now();
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    // 1 s + 2 s = 3 s; the next 4 s would end at 7 s > 5 s.
    assert_eq!(calls.count(), 3);
    assert_eq!(err.attempts(), 3);
    assert_eq!(start.elapsed(), S(3));
    assert!(err.note().unwrap().contains("deadline"), "{err}");
}

// ---------------------------------------------------------------- what is retried

#[tokio::test(start_paused = true)]
async fn every_transient_disposition_is_retried() {
    let cases: Vec<(&str, fn() -> Reply)> = vec![
        ("500", || status(500)),
        ("502", || status(502)),
        ("503", || status(503)),
        ("504", || status(504)),
        ("429", || status(429)),
        ("UNAVAILABLE", || grpc(14)),
        ("DEADLINE_EXCEEDED", || grpc(4)),
        ("INTERNAL", || grpc(13)),
        ("UNKNOWN", || grpc(2)),
        ("RESOURCE_EXHAUSTED", || grpc(8)),
        ("REFRESH_IN_PROGRESS", || {
            json(
                503,
                r#"{"code":"REFRESH_IN_PROGRESS","message":"try again"}"#,
            )
        }),
        ("transport", || {
            Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"))
        }),
    ];
    for (name, reply) in cases {
        let (svc, calls) = stack(RetryLayer::new().budget(None), move |n| {
            if n < 2 { reply() } else { status(200) }
        });
        let res = svc.oneshot(get("/x")).await.unwrap();
        assert_eq!(attempts(&res), 3, "{name}");
        assert_eq!(calls.count(), 3, "{name}");
    }
}

#[tokio::test(start_paused = true)]
async fn what_the_contract_does_not_call_transient_is_sent_once() {
    let cases: Vec<(&str, fn() -> Reply)> = vec![
        ("400", || status(400)),
        ("401", || status(401)),
        ("403", || status(403)),
        ("404", || status(404)),
        ("409", || {
            json(
                409,
                r#"{"error":"agent_connected","message":"m","agent_id":"a"}"#,
            )
        }),
        ("422", || status(422)),
        ("KEY_REVOKED", || {
            json(401, r#"{"code":"KEY_REVOKED","message":"m"}"#)
        }),
        ("INVALID_ARGUMENT", || grpc(3)),
        ("PERMISSION_DENIED", || grpc(7)),
        ("UNAUTHENTICATED", || grpc(16)),
    ];
    for (name, reply) in cases {
        let (svc, calls) = stack(RetryLayer::new(), move |_| reply());
        let err = svc.oneshot(get("/x")).await.unwrap_err();
        assert!(!err.is_retryable(), "{name}");
        assert_eq!(calls.count(), 1, "{name}");
        assert_eq!(err.attempts(), 1, "{name}");
    }
}

async fn sends(
    layer: RetryLayer,
    request: Request<Full<Bytes>>,
    reply: fn() -> Reply,
) -> (usize, Option<Error>) {
    let (svc, calls) = stack(layer.budget(None), move |n| {
        if n < 1 { reply() } else { status(200) }
    });
    let err = svc.oneshot(request).await.err();
    (calls.count(), err)
}

#[tokio::test(start_paused = true)]
async fn idempotent_methods_retry_after_any_transient_error() {
    for method in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::PUT,
        Method::DELETE,
        Method::TRACE,
    ] {
        let (n, err) = sends(RetryLayer::new(), req(method.clone()), || status(503)).await;
        assert_eq!((n, err.is_none()), (2, true), "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn post_and_patch_are_not_retried_when_the_server_may_have_processed_them() {
    for method in [Method::POST, Method::PATCH] {
        for reply in [
            (|| status(500)) as fn() -> Reply,
            || status(503),
            || grpc(4),
            || Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset")),
        ] {
            let (n, err) = sends(RetryLayer::new(), req(method.clone()), reply).await;
            assert_eq!(n, 1, "{method}");
            let err = err.unwrap();
            assert!(err.note().unwrap().contains("not idempotent"), "{err}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_when_rejected_unprocessed_or_keyed_or_opted_in() {
    // Rejected without processing.
    for reply in [
        (|| status(429)) as fn() -> Reply,
        || grpc(8),
        || json(503, r#"{"code":"REFRESH_IN_PROGRESS","message":"m"}"#),
        || Err(io::Error::from(io::ErrorKind::ConnectionRefused)),
    ] {
        let (n, err) = sends(RetryLayer::new(), req(Method::POST), reply).await;
        assert_eq!((n, err.map(|e| e.to_string())), (2, None));
    }
    // Idempotency-Key.
    let mut keyed = req(Method::POST);
    keyed
        .headers_mut()
        .insert("idempotency-key", "k-1".parse().unwrap());
    assert_eq!(sends(RetryLayer::new(), keyed, || status(503)).await.0, 2);
    // Opt-in.
    let layer = RetryLayer::new().retry_non_idempotent(true);
    assert_eq!(sends(layer, req(Method::PATCH), || status(500)).await.0, 2);
}

fn grpc_call() -> Request<Full<Bytes>> {
    Request::post("/pkg.Svc/Do")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn grpc_unavailable_from_the_server_counts_as_not_processed() {
    assert_eq!(
        sends(RetryLayer::new(), grpc_call(), || grpc(14)).await.0,
        2
    );
    // Off by choice.
    let off = RetryLayer::new().retry_grpc_unavailable(false);
    assert_eq!(sends(off, grpc_call(), || grpc(14)).await.0, 1);
    // Other transient gRPC codes and a reset after sending: the server may have acted.
    assert_eq!(
        sends(RetryLayer::new(), grpc_call(), || grpc(13)).await.0,
        1
    );
    assert_eq!(sends(RetryLayer::new(), grpc_call(), || grpc(4)).await.0, 1);
    let reset = || Err(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
    assert_eq!(sends(RetryLayer::new(), grpc_call(), reset).await.0, 1);
    // RESOURCE_EXHAUSTED was rejected at the door.
    assert_eq!(sends(RetryLayer::new(), grpc_call(), || grpc(8)).await.0, 2);
    // An UNAVAILABLE to a plain (non-gRPC) POST is not the gRPC server's word.
    assert_eq!(
        sends(RetryLayer::new(), req(Method::POST), || grpc(14))
            .await
            .0,
        1
    );
}

// ---------------------------------------------------------------- attempts, budget, fast path

#[tokio::test(start_paused = true)]
async fn every_response_carries_attempts() {
    let (svc, _) = stack(RetryLayer::new(), |_| status(200));
    assert_eq!(attempts(&svc.oneshot(get("/x")).await.unwrap()), 1);

    let (svc, _) = stack(RetryLayer::new(), |n| {
        if n < 3 { status(502) } else { status(204) }
    });
    assert_eq!(attempts(&svc.oneshot(get("/x")).await.unwrap()), 4);

    // The pass-through path (no retry can apply) still says 1.
    let (svc, calls) = stack(RetryLayer::new().max_retries(0), |_| status(200));
    assert_eq!(attempts(&svc.clone().oneshot(get("/x")).await.unwrap()), 1);
    let (svc, _) = stack(RetryLayer::new().max_retries(0), |_| status(503));
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!((err.attempts(), calls.count()), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_budget() {
    // A reserve of exactly one retry, no refill worth speaking of, nothing earned.
    let layer = RetryLayer::new()
        .budget(RetryBudget::new(S(1), 1, 0.0))
        .max_retries(1);
    let (svc, calls) = stack(layer, |_| status(503));
    // Both fail at the same instant; only one of the two clones gets the retry.
    let (a, b) = tokio::join!(
        svc.clone().oneshot(get("/a")),
        svc.clone().oneshot(get("/b"))
    );
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    let (retried, refused) = if a.attempts() == 2 { (a, b) } else { (b, a) };
    assert_eq!(retried.attempts(), 2);
    assert_eq!(refused.attempts(), 1);
    assert!(refused.note().unwrap().contains("budget"), "{refused}");
    assert_eq!(calls.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_a_retry_storm() {
    let (svc, calls) = stack(RetryLayer::new(), |_| status(503));
    let futures = (0..1000).map(|_| svc.clone().oneshot(get("/x")));
    let results = futures_util::future::join_all(futures).await;
    assert!(results.iter().all(Result::is_err));
    let attempts = calls.count();
    // 1,000 requests, 20 % of them retried, a reserve of 10/s × 10 s, plus the floor's refill
    // over the (paused) seconds the storm took.
    assert!(attempts >= 1000 + 200, "{attempts}");
    assert!(attempts <= 1000 + 200 + 100 + 10 * 10, "{attempts}");
}
