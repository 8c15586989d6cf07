//! Hostile servers on loopback, through the full stack: `RetryLayer`, `RateLimitBackoffLayer`
//! and `ErrorDecodeLayer` over a hyper-util client. Each case ends in bounded time with a
//! typed `Error` (or the right retry), checked against the server's own log of what arrived.

use crate::support::{Emulator, Reply};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::time::{Duration, SystemTime};
use tower::{ServiceBuilder, ServiceExt, util::BoxCloneService};
use tower_api_retry::rate_limit::ResponseBody;
use tower_api_retry::{
    Disposition, Error, ErrorCode, ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer,
    backoff::{Backoff, Jitter},
    rate_limit::RateLimitGates,
};

/// The largest hint the crate reports: one year.
const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

type Stack = BoxCloneService<Request<Full<Bytes>>, Response<ResponseBody<Incoming>>, Error>;

/// A generous bound on every case: none may hang.
const BOUND: Duration = Duration::from_secs(20);
/// `ErrorDecodeLayer::read_timeout` in these tests.
const READ_TIMEOUT: Duration = Duration::from_millis(300);
const MAX_BODY: usize = 64 * 1024;

fn stack(gates: &RateLimitGates) -> Stack {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let fast = Backoff::new()
        .base_delay(Duration::from_millis(10))
        .max_delay(Duration::from_millis(50));
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(fast).budget(None))
        .layer(
            RateLimitBackoffLayer::new()
                .gates(gates.clone())
                .backoff(fast)
                .max_wait(Duration::from_secs(2)),
        )
        .layer(
            ErrorDecodeLayer::new()
                .max_body_bytes(MAX_BODY)
                .read_timeout(Some(READ_TIMEOUT)),
        )
        .service(client);
    BoxCloneService::new(svc)
}

/// Sends one GET for `path` through a fresh stack; fails the test if it takes longer than
/// [`BOUND`].
async fn get(api: &Emulator, path: &str) -> Result<Response<ResponseBody<Incoming>>, Error> {
    get_with(api, path, &RateLimitGates::new()).await
}

async fn get_with(
    api: &Emulator,
    path: &str,
    gates: &RateLimitGates,
) -> Result<Response<ResponseBody<Incoming>>, Error> {
    let req = Request::get(api.url(path)).body(Full::default()).unwrap();
    tokio::time::timeout(BOUND, stack(gates).oneshot(req))
        .await
        .unwrap_or_else(|_| panic!("{path}: no answer within {BOUND:?}"))
}

/// The error, with its attempt count checked against what the server saw.
fn failed(
    api: &Emulator,
    path: &str,
    res: Result<Response<ResponseBody<Incoming>>, Error>,
) -> Error {
    let err = match res {
        Ok(res) => panic!("{path}: expected an error, got {}", res.status()),
        Err(e) => e,
    };
    assert_eq!(
        api.seen(path).len(),
        err.attempts() as usize,
        "{path}: the server saw every attempt the error counts, and no other"
    );
    let _ = (err.to_string(), format!("{err:?}"));
    err
}

#[tokio::test]
async fn an_error_body_that_never_ends() {
    let api = Emulator::start().await;
    api.always("/endless", [Reply::Endless { status: 500 }]);
    let err = failed(&api, "/endless", get(&api, "/endless").await);
    // 500 is transient: retried to the cap, each attempt reading at most MAX_BODY.
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.status(), Some(StatusCode::INTERNAL_SERVER_ERROR));
    assert_eq!(err.code(), &ErrorCode::Internal);
    assert!(err.message().chars().count() <= 201, "{}", err.message());
}

#[tokio::test]
async fn an_error_body_that_trickles_a_byte_a_second() {
    let api = Emulator::start().await;
    api.always(
        "/trickle",
        [Reply::Trickle {
            status: 503,
            every: Duration::from_secs(1),
            len: 3600,
        }],
    );
    let started = tokio::time::Instant::now();
    let err = failed(&api, "/trickle", get(&api, "/trickle").await);
    // Each attempt gives up reading after READ_TIMEOUT and decodes what it has.
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert!(started.elapsed() < BOUND);
}

#[tokio::test]
async fn an_error_body_larger_than_the_limit() {
    let api = Emulator::start().await;
    // A documented envelope whose message makes it 4 MiB: cut at MAX_BODY, it is no longer
    // JSON, so it decodes by its status, with a short excerpt.
    let body = format!(
        r#"{{"code":"NOT_FOUND","message":"{}"}}"#,
        "m".repeat(4 << 20)
    );
    api.always("/big", [Reply::raw(404, body)]);
    let err = failed(&api, "/big", get(&api, "/big").await);
    assert_eq!(err.attempts(), 1, "a 404 is not retried");
    assert_eq!(err.code(), &ErrorCode::NotFound);
    assert!(
        err.message().len() <= 4 * 201,
        "{} bytes",
        err.message().len()
    );

    // The same with binary junk on a 502: retried, each read bounded.
    let junk: Vec<u8> = (0..(2 << 20)).map(|i: u32| (i * 7 + 3) as u8).collect();
    api.always("/junk", [Reply::raw(502, junk)]);
    let err = failed(&api, "/junk", get(&api, "/junk").await);
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.code(), &ErrorCode::Unavailable);
}

#[tokio::test]
async fn ten_thousand_response_headers() {
    let api = Emulator::start().await;
    // hyper's client refuses a head with more than 100 headers: a transport error, never a
    // response. It is a failure after the request was sent, so a GET is retried.
    for (path, status) in [("/headers-500", 500), ("/headers-200", 200)] {
        api.always(path, [Reply::many_headers(status, 10_000)]);
        let err = failed(&api, path, get(&api, path).await);
        assert!(err.is_transport(), "{path}: {err:?}");
        assert!(err.request_sent());
        assert_eq!(err.attempts(), 4, "{path}");
        assert_eq!(err.status(), None);
    }
}

fn with_retry_after(status: u16, value: &str) -> Reply {
    let code = if status == 429 {
        "RESOURCE_EXHAUSTED"
    } else {
        "UNAVAILABLE"
    };
    Reply::envelope(status, code, "try later", None).header("retry-after", value)
}

#[tokio::test]
async fn a_huge_retry_after_surfaces_at_once_and_does_not_shut_the_path_for_a_year() {
    let api = Emulator::start().await;
    let huge = "99999999999999999999";
    let gates = RateLimitGates::new();

    // 503: not waited for (above max_retry_after), returned at once with the hint.
    api.always("/huge-503", [with_retry_after(503, huge)]);
    let err = failed(&api, "/huge-503", get_with(&api, "/huge-503", &gates).await);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.retry_after(), Some(MAX_HINT));
    assert!(err.note().unwrap().contains("max_retry_after"), "{err}");
    assert!(gates.is_empty(), "a 503 is not a rate limit");

    // The layer's default max_closed.
    const MAX_CLOSED: Duration = Duration::from_secs(60 * 60);
    // 429: the same, and the gate closes, but for at most max_closed (1 hour), not a year.
    api.always("/huge-429", [with_retry_after(429, huge)]);
    let err = failed(&api, "/huge-429", get_with(&api, "/huge-429", &gates).await);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.retry_after(), Some(MAX_HINT));
    assert_eq!(gates.len(), 1);
    let again = get_with(&api, "/huge-429", &gates).await.unwrap_err();
    assert!(again.is_gate_closed() && !again.request_sent());
    let left = again.retry_after().unwrap();
    assert!(
        left <= MAX_CLOSED && left > MAX_CLOSED - Duration::from_secs(60),
        "{left:?}"
    );
    assert_eq!(
        api.seen("/huge-429").len(),
        1,
        "the closed gate sent nothing"
    );
}

#[tokio::test]
async fn invalid_retry_after_values_fall_back_to_the_backoff() {
    let api = Emulator::start().await;
    for (i, value) in [
        "-1",
        "1.5",
        "soon",
        "0x10",
        "+5",
        "1e3",
        "é",
        "Mon, 99 Foo 2000",
    ]
    .into_iter()
    .enumerate()
    {
        for status in [503, 429] {
            let path = format!("/bad-{status}-{i}");
            api.always(&path, [with_retry_after(status, value)]);
            let gates = RateLimitGates::new();
            let err = failed(&api, &path, get_with(&api, &path, &gates).await);
            assert_eq!(
                err.attempts(),
                4,
                "{path} ({value:?}): retried on the backoff"
            );
            assert_eq!(
                err.retry_after(),
                None,
                "{path}: an invalid hint is no hint"
            );
            assert!(err.is_retryable());
        }
    }
}

#[tokio::test]
async fn http_dates_in_the_past_and_the_future() {
    let api = Emulator::start().await;
    // Past: zero, so the backoff alone decides; retried.
    api.always(
        "/past",
        [with_retry_after(503, "Sun, 06 Nov 1994 08:49:37 GMT")],
    );
    let err = failed(&api, "/past", get(&api, "/past").await);
    assert_eq!(err.attempts(), 4);
    assert_eq!(err.retry_after(), Some(Duration::ZERO));

    // Far future: above max_retry_after, surfaces at once with the distance.
    let in_an_hour = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    api.always("/future", [with_retry_after(503, &in_an_hour)]);
    let err = failed(&api, "/future", get(&api, "/future").await);
    assert_eq!(err.attempts(), 1);
    let hint = err.retry_after().unwrap();
    assert!(
        hint <= Duration::from_secs(3600) && hint > Duration::from_secs(3500),
        "{hint:?}"
    );

    // Near future: waited for, then retried once, successfully.
    let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    api.script("/soon", [with_retry_after(503, &soon), Reply::ok()]);
    let res = get(&api, "/soon").await.expect("retried after the date");
    assert_eq!(res.status(), StatusCode::OK);
    let seen = api.seen("/soon");
    assert_eq!(seen.len(), 2);
    // A lower bound only: the client waited for at least the whole seconds left.
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(900));
}

#[tokio::test]
async fn grpc_status_99_and_abc() {
    let api = Emulator::start().await;
    for (path, value, numeric) in [
        ("/grpc-99", "99", Some(99)),
        ("/grpc-abc", "abc", None),
        ("/grpc-huge", "99999999999999999999", None),
        ("/grpc-neg", "-3", Some(-3)),
    ] {
        api.always(
            path,
            [Reply::raw(200, "")
                .header("content-type", "application/grpc")
                .header("grpc-status", value)
                .header("grpc-message", "b%FF%00%zz%")],
        );
        let err = failed(&api, path, get(&api, path).await);
        // Out of range or unparsable is UNKNOWN, as gRPC asks: transient, so a GET retries.
        assert_eq!(err.code(), &ErrorCode::Unknown, "{path}");
        assert_eq!(err.api().unwrap().numeric_code(), numeric, "{path}");
        assert_eq!(err.disposition(), Disposition::Retry);
        assert_eq!(err.attempts(), 4, "{path}");
    }
}

/// `max_closed` on paused time: the gate opens for one probe after the cap, and a probe
/// rejected again closes it again, still capped.
#[tokio::test(start_paused = true)]
async fn a_huge_hint_closes_the_gate_for_max_closed_only() {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = tower::service_fn(move |_req: Request<Full<Bytes>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        async move {
            let res = if n < 2 {
                Response::builder()
                    .status(429)
                    .header("retry-after", "99999999999999999999")
                    .body(Full::new(Bytes::new()))
            } else {
                Response::builder()
                    .status(200)
                    .body(Full::new(Bytes::new()))
            };
            Ok::<_, std::io::Error>(res.unwrap())
        }
    });
    let max_closed = Duration::from_secs(600);
    let svc = ServiceBuilder::new()
        .layer(
            RateLimitBackoffLayer::new()
                .fail_fast()
                .max_closed(max_closed)
                .backoff(Backoff::new().jitter(Jitter::None)),
        )
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let req = || {
        Request::get("http://api.test/x")
            .body(Full::default())
            .unwrap()
    };

    let err = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(
        err.retry_after(),
        Some(MAX_HINT),
        "the caller sees the server's hint"
    );
    let closed = svc.clone().oneshot(req()).await.unwrap_err();
    assert!(closed.is_gate_closed());
    assert_eq!(closed.retry_after(), Some(max_closed));

    tokio::time::advance(max_closed).await;
    // The probe: rejected again, closed again for max_closed.
    let err = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    let closed = svc.clone().oneshot(req()).await.unwrap_err();
    assert_eq!(closed.retry_after(), Some(max_closed));
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    tokio::time::advance(max_closed).await;
    let res = svc.clone().oneshot(req()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}
