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
    Attempts, Error, ErrorDecodeLayer, NotRetried, RetryLayer, backoff::Backoff, backoff::Jitter,
    retry::RetryBudget,
};

const S: fn(u64) -> Duration = Duration::from_secs;
const MS: fn(u64) -> Duration = Duration::from_millis;

type Reply = Result<Response<Full<Bytes>>, io::Error>;
type Scripted = fn() -> Reply;

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
    Attempts::of(res)
}

// ---------------------------------------------------------------- attempt count

#[tokio::test(start_paused = true)]
async fn a_first_attempt_success_counts_one_without_an_extension() {
    let (svc, calls) = stack(RetryLayer::new(), |_| status(200));
    let res = svc.oneshot(get("/x")).await.unwrap();
    assert_eq!(calls.count(), 1);
    assert_eq!(attempts(&res), 1);
    assert_eq!(Attempts::from_extensions(res.extensions()), 1);
    assert_eq!(res.extensions().get::<Attempts>(), None);
}

#[tokio::test(start_paused = true)]
async fn a_retried_success_carries_its_count() {
    let (svc, _) = stack(RetryLayer::new(), |n| status(if n < 1 { 503 } else { 200 }));
    let res = svc.oneshot(get("/x")).await.unwrap();
    assert_eq!(attempts(&res), 2);
    assert_eq!(Attempts::from_extensions(res.extensions()), 2);
}

#[tokio::test(start_paused = true)]
async fn an_outer_first_attempt_does_not_report_an_inner_count() {
    use tower::Layer;
    // An inner retry layer took two attempts; the outer one took one, and says so.
    let (inner, _) = stack(RetryLayer::new(), |n| status(if n < 1 { 503 } else { 200 }));
    let outer = RetryLayer::new().layer(inner);
    let res = outer.oneshot(get("/x")).await.unwrap();
    assert_eq!(attempts(&res), 1);
}

// ---------------------------------------------------------------- schedule

#[tokio::test(start_paused = true)]
async fn waits_are_1_2_4_seconds_plus_at_most_20_percent() {
    for _ in 0..20 {
        let (svc, calls) = stack(RetryLayer::new().budget(None), |_| status(503));
        let err = svc.oneshot(get("/x")).await.unwrap_err();
        assert_eq!(err.attempts(), 4);
        assert_eq!(calls.count(), 4);
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert!(err.note().unwrap().contains("max_retries"), "{err}");
        let waits = calls.waits();
        assert_eq!(waits.len(), 3);
        for (wait, nominal) in waits.iter().zip([S(1), S(2), S(4)]) {
            // Never shorter than the page's schedule; the offset is at most 20 % (plus the
            // timer's millisecond resolution).
            assert!(*wait >= nominal, "{waits:?}");
            assert!(*wait <= nominal.mul_f64(1.2) + MS(1), "{waits:?}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn without_jitter_the_schedule_is_exact() {
    let layer = RetryLayer::new()
        .budget(None)
        .backoff(Backoff::new().jitter(Jitter::None))
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
            .backoff(Backoff::new().jitter(jitter).max_delay(S(30)))
            .max_retries(40);
        let (svc, calls) = stack(layer, |_| status(503));
        let err = svc.oneshot(get("/x")).await.unwrap_err();
        assert_eq!(err.attempts(), 41);
        let waits = calls.waits();
        assert_eq!(waits.len(), 40);
        // The timer rounds a deadline up to the next millisecond.
        assert!(
            waits.iter().all(|w| *w <= S(30) + MS(1)),
            "{jitter:?} {waits:?}"
        );
        if jitter == Jitter::Proportional(0.2) {
            // Below the cap never shorter than the schedule; at the cap within 24–30 s.
            for (n, w) in waits.iter().enumerate() {
                let nominal = S(1u64 << n.min(5)).min(S(30));
                let floor = if nominal < S(30) { nominal } else { S(24) };
                assert!(*w >= floor, "{n}: {waits:?}");
            }
        }
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
    // max(1 s + up to 20 %, 7 s) = 7 s.
    assert_eq!(calls.waits(), [S(7)]);
}

#[tokio::test(start_paused = true)]
async fn a_hint_shorter_than_the_backoff_does_not_shorten_it() {
    let layer = RetryLayer::new().backoff(Backoff::new().jitter(Jitter::None).base_delay(S(3)));
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
async fn the_same_bare_grpc_resource_exhausted_twice_is_the_requests_own() {
    // RESOURCE_EXHAUSTED with no pushback, to every attempt (a message over a gRPC library's
    // size limit): retried once, in case it was a rate limit, then not again.
    let (svc, calls) = stack(RetryLayer::new(), |_| grpc(8));
    let err = svc.oneshot(grpc_call()).await.unwrap_err();
    assert_eq!((calls.count(), err.attempts()), (2, 2));
    assert_eq!(err.not_retried(), Some(&NotRetried::ExhaustedAgain));
    assert!(
        err.note().unwrap().contains("without pushback again"),
        "{err}"
    );
    // With a pushback, the server says when: retried to the cap.
    let pushback = || {
        Ok(Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "8")
            .header("grpc-retry-pushback-ms", "100")
            .body(Full::default())
            .unwrap())
    };
    let (svc, calls) = stack(RetryLayer::new(), move |_| pushback());
    let err = svc.oneshot(grpc_call()).await.unwrap_err();
    assert_eq!(calls.count(), 4);
    assert_eq!(err.not_retried(), Some(&NotRetried::MaxRetries { max: 3 }));
    // Another answer between two: not the same answer twice in a row.
    let (svc, calls) = stack(RetryLayer::new(), |n| grpc(if n % 2 == 0 { 8 } else { 14 }));
    svc.oneshot(grpc_call()).await.unwrap_err();
    assert_eq!(calls.count(), 4);
    // Recovered on the second try: as any retry.
    let (svc, calls) = stack(
        RetryLayer::new(),
        |n| if n == 0 { grpc(8) } else { grpc(0) },
    );
    svc.oneshot(grpc_call()).await.unwrap();
    assert_eq!(calls.count(), 2);
    // HTTP's 429 without Retry-After is a rate limit: retried to the cap, as before.
    let (svc, calls) = stack(RetryLayer::new(), |_| status(429));
    svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!(calls.count(), 4);
}

#[tokio::test(start_paused = true)]
async fn a_wait_past_the_deadline_is_not_started() {
    let layer = RetryLayer::new()
        .backoff(Backoff::new().jitter(Jitter::None))
        .deadline(S(5));
    let (svc, calls) = stack(layer, |_| status(503));
    let start = Instant::now();
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    // 1 s + 2 s = 3 s; the next 4 s would end at 7 s > 5 s.
    assert_eq!(calls.count(), 3);
    assert_eq!(err.attempts(), 3);
    assert_eq!(start.elapsed(), S(3));
    assert!(err.note().unwrap().contains("deadline"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_requests_own_grpc_timeout_counts_from_when_the_call_entered() {
    // The first attempt takes 600 ms of the call's second and fails; the retry, 100 ms later,
    // carries the 300 ms that are left, not a second counted from the failure.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = service_fn(move |req: Request<Full<Bytes>>| {
        let n = {
            let mut seen = log.lock().unwrap();
            seen.push(req.headers()["grpc-timeout"].clone());
            seen.len()
        };
        async move {
            if n == 1 {
                tokio::time::sleep(MS(600)).await;
                return grpc(14);
            }
            grpc(0)
        }
    });
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(Backoff::new().base_delay(MS(100)).jitter(Jitter::None)))
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let call = Request::post("http://svc.test/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("grpc-timeout", "1S")
        .body(Full::default())
        .unwrap();
    let res = svc.oneshot(call).await.unwrap();
    assert_eq!(attempts(&res), 2);
    assert_eq!(*seen.lock().unwrap(), ["1S", "300000u"]);
}

// ---------------------------------------------------------------- what is retried

#[tokio::test(start_paused = true)]
async fn every_transient_disposition_is_retried() {
    let cases: Vec<(&str, Scripted)> = vec![
        ("500", || status(500)),
        ("502", || status(502)),
        ("503", || status(503)),
        ("504", || status(504)),
        ("429", || status(429)),
        ("UNAVAILABLE", || grpc(14)),
        ("DEADLINE_EXCEEDED", || grpc(4)),
        ("INTERNAL", || grpc(13)),
        ("UNKNOWN", || grpc(2)),
        // With a pushback: without one, the same answer twice is the request's own (see
        // `the_same_bare_grpc_resource_exhausted_twice_is_the_requests_own`).
        ("RESOURCE_EXHAUSTED", || {
            with_header(200, "grpc-retry-pushback-ms", "100").map(|mut res| {
                let headers = res.headers_mut();
                headers.insert("content-type", "application/grpc".parse().unwrap());
                headers.insert("grpc-status", "8".parse().unwrap());
                res
            })
        }),
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
    let cases: Vec<(&str, Scripted)> = vec![
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
    // A reserve of exactly one retry, refilled at one a second, nothing earned; a retry
    // never waits for it.
    let layer = RetryLayer::new()
        .budget(RetryBudget::new(S(1), 1, 0.0))
        .max_budget_wait(Duration::ZERO)
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
    assert_eq!(refused.not_retried(), Some(&NotRetried::BudgetExhausted));
    assert_eq!(calls.count(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_is_waited_for_not_dropped() {
    // The same budget, waited for (30 s at most, by default): the second clone's retry goes
    // when the reserve has refilled, a second later, instead of failing.
    let layer = RetryLayer::new()
        .budget(RetryBudget::new(S(1), 1, 0.0))
        .backoff(
            Backoff::new()
                .base_delay(Duration::from_millis(100))
                .jitter(Jitter::None),
        )
        .max_retries(1);
    let (svc, calls) = stack(layer, |n| if n < 2 { status(503) } else { status(200) });
    let start = Instant::now();
    let (a, b) = tokio::join!(
        svc.clone().oneshot(get("/a")),
        svc.clone().oneshot(get("/b"))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!((attempts(&a), attempts(&b)), (2, 2));
    let at: Vec<_> = calls.0.lock().unwrap().iter().map(|t| *t - start).collect();
    // Both failed at once; one retry after the backoff (100 ms), the other when the budget
    // had a token again: the floor refills one a second.
    assert_eq!(at.len(), 4);
    assert_eq!(at[2], Duration::from_millis(100));
    assert_eq!(at[3], S(1));

    // A deadline bounds the wait: a retry that would wait past it is refused, with the
    // deadline's reason.
    let layer = RetryLayer::new()
        .budget(RetryBudget::new(S(1), 1, 0.0))
        .backoff(Backoff::new().base_delay(Duration::from_millis(10)))
        .deadline(Duration::from_millis(500))
        .max_retries(1);
    let (svc, _) = stack(layer, |_| status(503));
    let (a, b) = tokio::join!(
        svc.clone().oneshot(get("/a")),
        svc.clone().oneshot(get("/b"))
    );
    let (a, b) = (a.unwrap_err(), b.unwrap_err());
    let refused = if a.attempts() == 2 { b } else { a };
    assert_eq!(refused.attempts(), 1);
    assert!(
        matches!(refused.not_retried(), Some(NotRetried::DeadlineOverrun { wait, .. }) if *wait >= Duration::from_millis(900)),
        "{refused:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_budget_bounds_a_retry_storm() {
    let (svc, calls) = stack(RetryLayer::new(), |_| status(503));
    let start = Instant::now();
    let futures = (0..1000).map(|_| svc.clone().oneshot(get("/x")));
    let results = futures_util::future::join_all(futures).await;
    let elapsed = start.elapsed().as_secs();
    assert!(results.iter().all(Result::is_err));
    let attempts = calls.count() as u64;
    // 1,000 requests that all fail: after 50 of them the throttle holds every retry, and the
    // failures use up what the requests earned and the reserve. Time refills the throttle at
    // the floor's rate, and the reserve with it, so a few retries go before the schedules
    // (7 s) run out, at the floor's rate, not as a burst: far fewer than 20 % of the requests.
    assert!(attempts > 1000, "{attempts}");
    assert!(
        attempts <= 1000 + 10 * (elapsed + 1),
        "{attempts} in {elapsed} s"
    );
    // Every caller has its answer within the schedule (7 s) and a little.
    assert!(elapsed <= 8, "{elapsed} s");
    let refused = results
        .iter()
        .filter(|r| r.as_ref().unwrap_err().not_retried() == Some(&NotRetried::BudgetExhausted))
        .count();
    assert!(refused > 0);
}

#[tokio::test(start_paused = true)]
async fn failures_hold_retries_within_the_schedule() {
    // The server fails every request for 3 s. 200 requests fail at once: each takes a token
    // from the budget's throttle (100 tokens) and gives back half, so after 100 of them it
    // holds every retry, and after 200 it is empty; with no requests coming, only time refills
    // it, at the floor's rate (10 a second), so it opens a little after 5 s.
    let layer = RetryLayer::new().backoff(Backoff::new().jitter(Jitter::None));
    let start = Instant::now();
    let (svc, calls) = stack(layer, move |_| {
        if start.elapsed() < S(3) {
            status(503)
        } else {
            status(200)
        }
    });
    let futures = (0..200).map(|_| svc.clone().oneshot(get("/x")));
    let results = futures_util::future::join_all(futures).await;
    let at: Vec<_> = calls.0.lock().unwrap().iter().map(|t| *t - start).collect();
    // No retry while the throttle held them, though the first ones were due at 1 s.
    assert!(at.iter().all(|t| t.is_zero() || *t > S(5)), "{at:?}");
    let retried: Vec<_> = at.iter().filter(|t| !t.is_zero()).collect();
    assert!(!retried.is_empty());
    // Held at most to the end of the schedule (1 s + 2 s + 4 s from the failure): every
    // caller has its answer by then.
    assert!(retried.iter().all(|t| **t <= S(7)), "{at:?}");
    assert!(start.elapsed() <= S(7), "{:?}", start.elapsed());
    // The held retries left at the budget's pace once it opened: those that went succeeded
    // (held past the turn of the second retry, they count it as spent), the rest were never
    // sent again.
    for r in &results {
        match r {
            Ok(res) => assert_eq!(attempts(res), 2),
            Err(e) => {
                assert_eq!(e.attempts(), 1);
                assert_eq!(e.not_retried(), Some(&NotRetried::BudgetExhausted), "{e}");
            }
        }
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, retried.len());
}

// ---------------------------------------------------------------- streaming bodies never sent

mod never_sent {
    use super::*;
    use http_body_util::{BodyExt, Empty, StreamBody, combinators::UnsyncBoxBody};
    use hyper::body::Frame;
    use std::{
        convert::Infallible,
        sync::atomic::{AtomicU32, Ordering},
    };
    use tower::Layer;
    use tower_api_retry::rate_limit::RateLimitBackoffLayer;

    type Streaming = UnsyncBoxBody<Bytes, io::Error>;

    /// 8 chunks of 100 bytes and an `x-sum` trailer; no size hint, not at its end.
    fn streaming() -> Streaming {
        let mut frames: Vec<Result<Frame<Bytes>, io::Error>> = (0..8u8)
            .map(|i| Ok(Frame::data(Bytes::from(vec![i; 100]))))
            .collect();
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", "sum-1".parse().unwrap());
        frames.push(Ok(Frame::trailers(trailers)));
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    /// What an attempt's body was: its bytes and `x-sum` trailer.
    type Received = (Bytes, Option<String>);

    async fn receive(body: Streaming) -> Received {
        let c = body.collect().await.unwrap();
        let t = c
            .trailers()
            .and_then(|t| t.get("x-sum"))
            .map(|v| v.to_str().unwrap().to_owned());
        (c.to_bytes(), t)
    }

    fn refused() -> io::Error {
        io::Error::from(io::ErrorKind::ConnectionRefused)
    }

    /// Refuses the first `refuse` attempts without touching the body (a refused connection),
    /// then reads the body whole and answers 200. Records every body it read.
    fn refusing(
        refuse: u32,
        calls: Arc<AtomicU32>,
        read: Arc<Mutex<Vec<Received>>>,
    ) -> impl Service<
        Request<Streaming>,
        Response = Response<Empty<Bytes>>,
        Error = io::Error,
        Future = impl Future<Output = Result<Response<Empty<Bytes>>, io::Error>> + Send,
    > + Clone
    + Send {
        service_fn(move |req: Request<Streaming>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let read = read.clone();
            async move {
                if n < refuse {
                    return Err(refused());
                }
                let got = receive(req.into_body()).await;
                read.lock().unwrap().push(got);
                Ok(Response::new(Empty::new()))
            }
        })
    }

    fn post(body: Streaming) -> Request<Streaming> {
        // Not idempotent and no Idempotency-Key: only "never sent" makes a retry safe.
        Request::post("http://h/api/upload").body(body).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn refused_connection_with_streaming_body_is_retried() {
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let svc = service_fn(move |_r: Request<UnsyncBoxBody<Bytes, Infallible>>| {
            c.fetch_add(1, Ordering::SeqCst);
            async { Err::<Response<Empty<Bytes>>, _>(refused()) }
        });
        let stack = RetryLayer::new()
            .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
            .layer(ErrorDecodeLayer::new().layer(svc));
        let err = stack
            .oneshot(
                Request::get("http://h/api/x")
                    .body(Empty::<Bytes>::new().boxed_unsync())
                    .unwrap(),
            )
            .await
            .unwrap_err();
        assert!(!err.request_sent());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_body_refused_twice_arrives_whole_with_its_trailers() {
        let calls = Arc::new(AtomicU32::new(0));
        let read = Arc::new(Mutex::new(Vec::new()));
        let stack = RetryLayer::new()
            .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
            .layer(ErrorDecodeLayer::new().layer(refusing(2, calls.clone(), read.clone())));
        let res = stack.oneshot(post(streaming())).await.unwrap();
        assert_eq!(attempts(&res), 3);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let read = read.lock().unwrap().clone();
        assert_eq!(read, vec![receive(streaming()).await]);
        assert_eq!(read[0].0.len(), 800);
        assert_eq!(read[0].1.as_deref(), Some("sum-1"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_body_refused_every_time_is_tried_max_retries_plus_one_times() {
        let calls = Arc::new(AtomicU32::new(0));
        let read = Arc::new(Mutex::new(Vec::new()));
        let stack = RetryLayer::new()
            .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
            .layer(ErrorDecodeLayer::new().layer(refusing(u32::MAX, calls.clone(), read)));
        let err = stack.oneshot(post(streaming())).await.unwrap_err();
        assert!(err.is_transport() && !err.request_sent());
        assert_eq!(err.attempts(), 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(err.note().unwrap().contains("max_retries"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_streaming_body_held_at_a_closed_gate_is_sent_when_it_opens() {
        // One client closes the gate of /api/upload for 2 s (429, Retry-After: 2)...
        let mut closer = ServiceBuilder::new()
            .layer(RateLimitBackoffLayer::new().fail_fast())
            .layer(ErrorDecodeLayer::new())
            .service(service_fn(|_: Request<Full<Bytes>>| async {
                with_header(429, "retry-after", "2")
            }));
        let req = Request::post("http://h/api/upload")
            .body(Full::default())
            .unwrap();
        closer.ready().await.unwrap().call(req).await.unwrap_err();
        // ...another, sharing the gates, is refused at the gate (never sent), then retried.
        let calls = Arc::new(AtomicU32::new(0));
        let read = Arc::new(Mutex::new(Vec::new()));
        let stack = ServiceBuilder::new()
            .layer(
                RetryLayer::new().backoff(
                    Backoff::new()
                        .base_delay(Duration::from_millis(1))
                        .jitter(Jitter::None),
                ),
            )
            .layer(
                RateLimitBackoffLayer::new()
                    .fail_fast()
                    .gates(closer.gates().clone()),
            )
            .layer(ErrorDecodeLayer::new())
            .service(refusing(0, calls.clone(), read.clone()));
        let start = Instant::now();
        let res = stack.oneshot(post(streaming())).await.unwrap();
        assert_eq!(attempts(&res), 2);
        assert!(start.elapsed() >= S(2), "{:?}", start.elapsed());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let want = vec![receive(streaming()).await];
        assert_eq!(*read.lock().unwrap(), want);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_held_by_a_timed_out_attempt_is_sent_again() {
        // The attempt's future still owns the (unpolled) body when the timeout fires.
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let hang = service_fn(move |req: Request<Streaming>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let _held = req;
                std::future::pending::<Result<Response<Empty<Bytes>>, io::Error>>().await
            }
        });
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(1))))
            .layer(ErrorDecodeLayer::new())
            .timeout(S(1))
            .service(hang);
        let req = Request::put("http://h/api/things/1")
            .body(streaming())
            .unwrap();
        let err = stack.oneshot(req).await.unwrap_err();
        assert_eq!(err.code(), &tower_api_retry::ErrorCode::DeadlineExceeded);
        assert_eq!(err.attempts(), 4);
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_partly_streamed_before_the_failure_is_not_replayed() {
        // The attempt took a frame, then failed as "refused": sending again could send
        // different bytes, so it is not.
        let calls = Arc::new(AtomicU32::new(0));
        let c = calls.clone();
        let svc = service_fn(move |req: Request<Streaming>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                let mut body = req.into_body();
                let _ = body.frame().await;
                Err::<Response<Empty<Bytes>>, _>(refused())
            }
        });
        let stack = RetryLayer::new()
            .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
            .layer(ErrorDecodeLayer::new().layer(svc));
        let err = stack.oneshot(post(streaming())).await.unwrap_err();
        assert_eq!(err.attempts(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(err.note().unwrap().contains("finished streaming"), "{err}");
    }
}

// ---------------------------------------------------------------- real loopback peers

mod real {
    use super::*;
    use axum::{Router, extract::State};
    use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
    use hyper::body::{Frame, Incoming};
    use hyper_util::{
        client::legacy::{Client, connect::HttpConnector},
        rt::{TokioExecutor, TokioIo},
        server::conn::auto,
        service::TowerToHyperService,
    };
    use std::net::SocketAddr;

    /// What the server saw of each request: body length, checksum, `x-sum` trailer.
    #[derive(Clone, Debug, PartialEq)]
    struct Seen {
        len: usize,
        sum: u64,
        trailer: Option<String>,
    }

    #[derive(Clone)]
    struct Server {
        seen: Arc<Mutex<Vec<Seen>>>,
        fail_first: usize,
    }

    fn fnv(bytes: &[u8]) -> u64 {
        bytes.iter().fold(0xcbf29ce484222325, |h, b| {
            (h ^ *b as u64).wrapping_mul(0x100000001b3)
        })
    }

    async fn record(
        State(server): State<Server>,
        req: axum::extract::Request,
    ) -> Response<axum::body::Body> {
        let collected = req.into_body().collect().await.unwrap();
        let trailer = collected
            .trailers()
            .and_then(|t| t.get("x-sum"))
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = collected.to_bytes();
        let n = {
            let mut seen = server.seen.lock().unwrap();
            seen.push(Seen {
                len: bytes.len(),
                sum: fnv(&bytes),
                trailer,
            });
            seen.len()
        };
        let status = if n <= server.fail_first { 503 } else { 200 };
        Response::builder()
            .status(status)
            .body(axum::body::Body::empty())
            .unwrap()
    }

    /// The recording app of [`record`], on loopback.
    async fn serve(fail_first: usize) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(record).with_state(Server {
            seen: seen.clone(),
            fail_first,
        });
        (serve_app(app).await, seen)
    }

    /// An axum app on 127.0.0.1:0, served by hyper's auto (HTTP/1 + h2c) connection builder.
    pub(super) async fn serve_app(app: Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let svc = TowerToHyperService::new(app.clone());
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        addr
    }

    /// The documented stack over a hyper-util legacy client: type-checks as written.
    fn hyper_stack(
        layer: RetryLayer,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = Response<Incoming>,
        Error = Error,
        Future = impl Future<Output = Result<Response<Incoming>, Error>> + Send,
    > + Clone
    + Send {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        ServiceBuilder::new()
            .layer(layer)
            .layer(ErrorDecodeLayer::new())
            .service(client)
    }

    #[tokio::test]
    async fn full_bodies_are_replayed_byte_for_byte() {
        let (addr, seen) = serve(2).await;
        let body: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let req = Request::put(format!("http://{addr}/api/things/1?token=secret"))
            .body(Full::new(Bytes::from(body.clone())))
            .unwrap();
        let stack = hyper_stack(
            RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(1))),
        );
        // Spawned: the response future is Send.
        let res = tokio::spawn(stack.oneshot(req)).await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(Attempts::of(&res), 3);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        let want = Seen {
            len: body.len(),
            sum: fnv(&body),
            trailer: None,
        };
        assert!(seen.iter().all(|s| *s == want), "{seen:?}");
    }

    type Streaming = BoxBody<Bytes, io::Error>;

    fn streaming(chunks: usize, chunk: usize, trailer: Option<&str>) -> Streaming {
        let mut frames: Vec<Result<Frame<Bytes>, io::Error>> = (0..chunks)
            .map(|i| Ok(Frame::data(Bytes::from(vec![i as u8; chunk]))))
            .collect();
        if let Some(t) = trailer {
            let mut map = http::HeaderMap::new();
            map.insert("x-sum", t.parse().unwrap());
            frames.push(Ok(Frame::trailers(map)));
        }
        BoxBody::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    fn h2_client() -> Client<HttpConnector, Streaming> {
        Client::builder(TokioExecutor::new())
            .http2_only(true)
            .build_http()
    }

    #[tokio::test]
    async fn http1_replay_keeps_declared_trailers() {
        let (addr, seen) = serve(1).await;
        let client: Client<HttpConnector, Streaming> =
            Client::builder(TokioExecutor::new()).build_http(); // HTTP/1.1: chunked framing
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(1))))
            .layer(ErrorDecodeLayer::new())
            .service(client);
        let req = Request::post(format!("http://{addr}/api/upload"))
            .header("idempotency-key", "upload-1")
            .header("trailer", "x-sum")
            .body(streaming(8, 1000, Some("sum-1")))
            .unwrap();
        let res = stack.oneshot(req).await.unwrap();
        assert_eq!(Attempts::of(&res), 2);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen[0].trailer.as_deref(), Some("sum-1"), "{seen:?}");
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    }

    #[tokio::test]
    async fn streaming_bodies_and_trailers_are_replayed_identically() {
        let (addr, seen) = serve(2).await;
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(1))))
            .layer(ErrorDecodeLayer::new())
            .service(h2_client());
        let req = Request::post(format!("http://{addr}/api/upload"))
            .header("idempotency-key", "upload-1")
            .body(streaming(8, 1000, Some("sum-1")))
            .unwrap();
        let res = stack.oneshot(req).await.unwrap();
        assert_eq!(Attempts::of(&res), 3);
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].len, 8000);
        assert_eq!(seen[0].trailer.as_deref(), Some("sum-1"));
        assert!(seen.iter().all(|s| *s == seen[0]), "{seen:?}");
    }

    #[tokio::test]
    async fn a_body_over_max_replay_bytes_is_sent_once_whole() {
        let (addr, seen) = serve(usize::MAX).await;
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(1))))
            .layer(ErrorDecodeLayer::new())
            .service(h2_client());
        // 100 KiB in 1 KiB chunks, no size hint: the limit is found while streaming.
        let req = Request::put(format!("http://{addr}/api/blob"))
            .body(streaming(100, 1024, Some("big")))
            .unwrap();
        let err = stack.oneshot(req).await.unwrap_err();
        assert_eq!(err.attempts(), 1);
        assert!(err.note().unwrap().contains("max_replay_bytes"), "{err}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].len, 100 * 1024);
        assert_eq!(seen[0].trailer.as_deref(), Some("big"));
    }

    #[tokio::test]
    async fn a_non_idempotent_post_reaches_the_server_once() {
        let (addr, seen) = serve(usize::MAX).await;
        let req = Request::post(format!("http://{addr}/api/orders"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let err = hyper_stack(RetryLayer::new())
            .oneshot(req)
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_even_for_post() {
        // Bind, learn the port, close: connecting is refused.
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let req = Request::post(format!("http://{addr}/api/orders"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let layer = RetryLayer::new()
            .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
            .max_retries(2);
        let err = hyper_stack(layer).oneshot(req).await.unwrap_err();
        assert!(err.is_transport() && !err.request_sent());
        assert_eq!(err.attempts(), 3);
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried_with_a_streaming_body() {
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let stack = ServiceBuilder::new()
            .layer(
                RetryLayer::new()
                    .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
                    .max_retries(2),
            )
            .layer(ErrorDecodeLayer::new())
            .service(h2_client());
        let req = Request::post(format!("http://{addr}/api/upload"))
            .body(streaming(8, 1000, Some("sum-1")))
            .unwrap();
        let err = stack.oneshot(req).await.unwrap_err();
        assert!(err.is_transport() && !err.request_sent());
        assert_eq!(err.attempts(), 3);
        assert!(err.note().unwrap().contains("max_retries"), "{err}");
    }

    #[tokio::test]
    async fn a_retry_storm_stays_within_the_budget() {
        let (addr, seen) = serve(usize::MAX).await;
        let layer = RetryLayer::new()
            .backoff(
                Backoff::new()
                    .base_delay(Duration::from_millis(1))
                    .max_delay(Duration::from_millis(2)),
            )
            // In real time: a retry never waits for the budget here.
            .max_budget_wait(Duration::ZERO);
        let stack = hyper_stack(layer);
        let uri: http::Uri = format!("http://{addr}/api/status").parse().unwrap();
        let start = std::time::Instant::now();
        use futures_util::StreamExt;
        let results: Vec<_> = futures_util::stream::iter(0..1000)
            .map(|_| {
                stack
                    .clone()
                    .oneshot(Request::get(uri.clone()).body(Full::default()).unwrap())
            })
            .buffer_unordered(32)
            .collect()
            .await;
        let elapsed = start.elapsed().as_secs_f64();
        assert!(results.iter().all(Result::is_err));
        let attempts = seen.lock().unwrap().len();
        // 1,000 requests + 20 % of them + the reserve (10/s × 10 s) + what the 10/s floor
        // refilled while the storm lasted. Without a budget it would be 4,000.
        let bound = 1000 + 200 + 100 + (10.0 * elapsed).ceil() as usize + 1;
        assert!(attempts <= bound, "{attempts} > {bound}");
        assert!(attempts > 1000, "{attempts}");
        let refused = results
            .iter()
            .filter(|r| {
                r.as_ref()
                    .unwrap_err()
                    .note()
                    .is_some_and(|n| n.contains("budget"))
            })
            .count();
        assert!(refused > 0);
    }
}

#[cfg(feature = "tonic")]
mod grpc {
    use super::*;
    use axum::Router;
    use http_body_util::StreamBody;
    use hyper::body::Frame;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A gRPC server that answers `UNAVAILABLE` (trailers-only) twice, then an empty message.
    async fn flaky_grpc(seen: Arc<AtomicUsize>, code: &'static str) -> std::net::SocketAddr {
        let app = Router::new().fallback(move |req: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let _ = http_body_util::BodyExt::collect(req.into_body()).await;
                let n = seen.fetch_add(1, Ordering::SeqCst);
                let res = Response::builder().header("content-type", "application/grpc");
                if n < 2 {
                    return res
                        .header("grpc-status", code)
                        .body(axum::body::Body::empty())
                        .unwrap();
                }
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", "0".parse().unwrap());
                let frames: Vec<Result<Frame<Bytes>, io::Error>> = vec![
                    Ok(Frame::data(Bytes::from_static(&[0, 0, 0, 0, 0]))),
                    Ok(Frame::trailers(trailers)),
                ];
                res.body(axum::body::Body::new(StreamBody::new(
                    futures_util::stream::iter(frames),
                )))
                .unwrap()
            }
        });
        super::real::serve_app(app).await
    }

    async fn unary(addr: std::net::SocketAddr) -> Result<tonic::Response<()>, tonic::Status> {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy();
        let stack = ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(1))))
            .layer(ErrorDecodeLayer::new())
            .service(channel);
        let mut grpc = tonic::client::Grpc::new(stack);
        grpc.ready()
            .await
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let codec = tonic_prost::ProstCodec::<(), ()>::default();
        let path = http::uri::PathAndQuery::from_static("/pkg.Svc/Do");
        grpc.unary(tonic::Request::new(()), path, codec).await
    }

    #[tokio::test]
    async fn a_tonic_call_is_retried_after_the_servers_unavailable() {
        let seen = Arc::new(AtomicUsize::new(0));
        let addr = flaky_grpc(seen.clone(), "14").await;
        unary(addr).await.unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_tonic_call_is_retried_on_a_refused_connection() {
        // Bind, learn the port, close: the server is down (restarting).
        let addr = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let status = unary(addr).await.unwrap_err();
        let err = std::error::Error::source(&status)
            .and_then(|e| e.downcast_ref::<Error>())
            .unwrap();
        assert!(!err.request_sent(), "{err}");
        assert_eq!(err.attempts(), 4, "{err}");
    }

    #[tokio::test]
    async fn a_tonic_call_is_not_retried_after_internal() {
        let seen = Arc::new(AtomicUsize::new(0));
        let addr = flaky_grpc(seen.clone(), "13").await;
        let status = unary(addr).await.unwrap_err();
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // tonic wraps a service error it does not know as `Unknown`, with ours as the source.
        let err = std::error::Error::source(&status)
            .and_then(|e| e.downcast_ref::<Error>())
            .unwrap();
        assert_eq!(err.code(), &tower_api_retry::ErrorCode::Internal);
        assert_eq!(err.attempts(), 1);
        assert!(err.note().unwrap().contains("not idempotent"), "{err}");
    }
}

/// The documented stack over a tonic `Channel`, through `tonic::client::Grpc::new`: this
/// only has to type-check (a unary call through the stack).
#[cfg(feature = "tonic")]
#[allow(dead_code)]
async fn tonic_stack_type_checks() -> Result<tonic::Response<()>, tonic::Status> {
    let channel = tonic::transport::Channel::from_static("http://127.0.0.1:1").connect_lazy();
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    let mut grpc = tonic::client::Grpc::new(stack);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = http::uri::PathAndQuery::from_static("/pkg.Svc/Do");
    grpc.unary(tonic::Request::new(()), path, codec).await
}

// ---------------------------------------------------------------- observability, properties

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn each_retry_is_traced_without_query_headers_or_body() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    crate::support::trace::install();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let (svc, _) = stack(RetryLayer::new(), |n| {
        if n < 2 { status(503) } else { status(200) }
    });
    let req = Request::put("/api/keys/1?token=convo_SECRET")
        .header("authorization", "Bearer convo_SECRET")
        .body(Full::new(Bytes::from_static(b"body convo_SECRET")))
        .unwrap();
    svc.oneshot(req).await.unwrap();

    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let events: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("retrying request"))
        .collect();
    assert_eq!(events.len(), 2, "{out}");
    for (event, attempt) in events.iter().zip([2, 3]) {
        for want in [
            format!("attempt={attempt}"),
            "wait_ms=".into(),
            "status=503".into(),
            "code=\"UNAVAILABLE\"".into(),
            "method=\"PUT\"".into(),
            "path=\"/api/keys/1\"".into(),
        ] {
            assert!(event.contains(&want), "{want} not in {event}");
        }
    }
    assert!(!out.contains("SECRET") && !out.contains("token"), "{out}");
}

/// One span per attempt, `api_retry.attempt`, with OpenTelemetry's `http.request.resend_count`
/// (absent on the first attempt) and the attempt's outcome.
#[tokio::test(start_paused = true)]
async fn each_attempt_has_a_span_with_its_resend_count_and_disposition() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    crate::support::trace::install();
    let _guard = tracing::subscriber::set_default(subscriber);
    tracing::callsite::rebuild_interest_cache();

    let (svc, _) = stack(RetryLayer::new(), |n| {
        if n < 2 { status(503) } else { status(200) }
    });
    svc.oneshot(get("/api/keys/1?token=convo_SECRET"))
        .await
        .unwrap();

    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let spans: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("api_retry.attempt{") && l.contains("close"))
        .collect();
    assert_eq!(spans.len(), 3, "{out}");
    let failed = "http.response.status_code=503 disposition=\"retry\" code=\"UNAVAILABLE\" error.type=\"503\"";
    assert!(
        spans[0].contains(&format!("{{http.request.method=\"GET\" {failed}}}")),
        "{}",
        spans[0]
    );
    assert!(
        spans[1].contains(&format!("http.request.resend_count=1 {failed}")),
        "{}",
        spans[1]
    );
    assert!(
        spans[2].contains("http.request.resend_count=2 http.response.status_code=200}"),
        "{}",
        spans[2]
    );
    assert!(!out.contains("SECRET") && !out.contains("token"), "{out}");
}

#[tokio::test(start_paused = true)]
async fn extreme_settings_neither_panic_nor_hang() {
    let layer = RetryLayer::new()
        .budget(None)
        .backoff(
            Backoff::new()
                .base_delay(Duration::MAX)
                .max_delay(Duration::MAX),
        )
        .max_retries(u32::MAX)
        .deadline(S(60));
    let (svc, calls) = stack(layer, |_| status(503));
    let err = svc.oneshot(get("/x")).await.unwrap_err();
    assert_eq!(calls.count(), 1);
    assert!(err.note().unwrap().contains("deadline"));
}
