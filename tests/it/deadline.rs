//! The call's deadline covers every attempt: on tokio's paused clock, with scripted services
//! that log the `grpc-timeout` each attempt carried.

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{
    future::Future,
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    ApiContractLayer, Error, ErrorCode, ErrorDecodeLayer, RateLimitBackoffLayer, RateLimitGates,
    RetryLayer, RetryOverride, ServiceBuilderExt, backoff::Backoff, backoff::Jitter,
    retry::CallDeadline,
};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

type Reply = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, io::Error>> + Send>>;

/// One attempt as the server saw it: when it arrived and the `grpc-timeout` it carried.
type Attempt = (Instant, Option<String>);

/// What the server saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Attempt>>>);

impl Seen {
    fn timeouts(&self) -> Vec<Option<String>> {
        self.0.lock().unwrap().iter().map(|s| s.1.clone()).collect()
    }
    fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn grpc_status(code: u32, pushback_ms: Option<i64>) -> Reply {
    let mut res = Response::builder()
        .header("content-type", "application/grpc")
        .header("grpc-status", code.to_string());
    if let Some(ms) = pushback_ms {
        res = res.header("grpc-retry-pushback-ms", ms.to_string());
    }
    let res = res.body(Full::default()).unwrap();
    Box::pin(async move { Ok(res) })
}

fn never() -> Reply {
    Box::pin(std::future::pending())
}

/// The retry layer (no jitter, base 100 ms, up to 10 retries) over a scripted server:
/// `reply(n)` answers the n-th attempt (0-based).
fn stack<F>(
    layer: RetryLayer,
    reply: F,
) -> (
    impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Error>,
    Seen,
)
where
    F: Fn(usize) -> Reply + Clone + Send + 'static,
{
    let seen = Seen::default();
    let log = seen.clone();
    let server = service_fn(move |req: Request<Full<Bytes>>| {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .map(|v| v.to_str().unwrap().to_owned());
        let n = {
            let mut s = log.0.lock().unwrap();
            s.push((Instant::now(), timeout));
            s.len() - 1
        };
        reply(n)
    });
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ErrorDecodeLayer::new())
        .service(server);
    (svc, seen)
}

fn layer() -> RetryLayer {
    RetryLayer::new()
        .backoff(Backoff::new().jitter(Jitter::None).base_delay(MS(100)))
        .max_retries(10)
        .budget(None)
}

/// A unary gRPC call, with a `grpc-timeout` when `timeout` is given.
fn call(timeout: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::post("http://svc.test/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(t) = timeout {
        req = req.header("grpc-timeout", t);
    }
    req.body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .unwrap()
}

fn strings(v: &[&str]) -> Vec<Option<String>> {
    v.iter().map(|s| Some((*s).to_owned())).collect()
}

#[tokio::test(start_paused = true)]
async fn each_attempt_carries_the_time_left_and_the_call_ends_at_its_deadline() {
    // UNAVAILABLE with a 400 ms pushback, every time, to a call with 1.5 s to live.
    let (svc, seen) = stack(layer(), |_| grpc_status(14, Some(400)));
    let start = Instant::now();
    let err = svc.oneshot(call(Some("1500m"))).await.unwrap_err();
    // The first attempt is the caller's request as sent; each later one carries what is left.
    assert_eq!(
        seen.timeouts(),
        strings(&["1500m", "1100000u", "700000u", "300000u"])
    );
    // The next 400 ms wait would end past the deadline: nothing more is sent, and the call
    // ends with DEADLINE_EXCEEDED at its deadline, as gRPC's own clients end it.
    assert_eq!(start.elapsed(), MS(1500));
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded, "{err}");
    assert_eq!(err.attempts(), 4);
    assert!(
        err.note()
            .unwrap()
            .contains("deadline (1.5s) passed before attempt 5 could start"),
        "{err}"
    );
    // What the server last said is still there.
    assert_eq!(err.api().unwrap().code(), &ErrorCode::Unavailable);
}

#[tokio::test(start_paused = true)]
async fn the_layer_deadline_binds_when_it_is_earlier_and_is_sent_from_the_first_attempt() {
    let (svc, seen) = stack(layer().deadline(MS(1000)), |_| grpc_status(14, Some(400)));
    let start = Instant::now();
    let err = svc.oneshot(call(Some("10S"))).await.unwrap_err();
    assert_eq!(
        seen.timeouts(),
        strings(&["1000000u", "600000u", "200000u"])
    );
    assert_eq!(start.elapsed(), MS(1000), "at the deadline");
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded, "{err}");

    // A gRPC call without a grpc-timeout of its own gets one from the layer.
    let (svc, seen) = stack(layer().deadline(MS(1000)), |_| grpc_status(14, Some(400)));
    svc.oneshot(call(None)).await.unwrap_err();
    assert_eq!(
        seen.timeouts(),
        strings(&["1000000u", "600000u", "200000u"])
    );

    // The request's own grpc-timeout binds when it is earlier than the layer's deadline.
    let (svc, seen) = stack(layer().deadline(MS(60_000)), |_| grpc_status(14, Some(400)));
    let err = svc.oneshot(call(Some("500m"))).await.unwrap_err();
    assert_eq!(seen.timeouts(), strings(&["500m", "100000u"]));
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded);
}

#[tokio::test(start_paused = true)]
async fn an_attempt_in_flight_is_cut_off_at_the_deadline() {
    // The first attempt fails at once; the second never answers.
    let (svc, seen) = stack(layer(), |n| {
        if n == 0 {
            grpc_status(14, None)
        } else {
            never()
        }
    });
    let start = Instant::now();
    let err = svc.oneshot(call(Some("1S"))).await.unwrap_err();
    assert_eq!(seen.timeouts(), strings(&["1S", "900000u"]));
    assert_eq!(start.elapsed(), MS(1000), "ended at the deadline exactly");
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded, "{err}");
    assert_eq!(err.attempts(), 2);
    assert!(
        err.note().unwrap().contains("passed during attempt 2"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_server_that_ignores_the_deadline_is_cut_off_at_it() {
    // A server that ignores grpc-timeout and answers UNAVAILABLE after 2 s: the request's own
    // grpc-timeout (1 s) cuts its first attempt off, as a gRPC client does.
    let (svc, seen) = stack(layer(), |_| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            grpc_status(14, None).await
        })
    });
    let start = Instant::now();
    let err = svc.oneshot(call(Some("1S"))).await.unwrap_err();
    assert_eq!(start.elapsed(), MS(1000));
    assert_eq!(seen.count(), 1);
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded, "{err}");
    assert!(
        err.note().unwrap().contains("passed during attempt 1"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_non_retryable_answer_keeps_its_code() {
    let (svc, _) = stack(layer(), |_| grpc_status(3, None));
    let err = svc.oneshot(call(Some("1S"))).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::InvalidArgument);
    assert_eq!(err.note(), None);
}

#[tokio::test(start_paused = true)]
async fn an_http_deadline_keeps_the_server_error_and_says_why() {
    let (svc, seen) = stack(layer().deadline(MS(1000)), |_| {
        let res = Response::builder()
            .status(503)
            .header("retry-after", "0")
            .body(Full::default())
            .unwrap();
        Box::pin(async move { Ok(res) })
    });
    let start = Instant::now();
    let err = svc
        .oneshot(
            Request::get("http://api.test/x")
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap_err();
    // 100 + 200 + 400 ms; the next 800 ms would end at 1.5 s.
    assert_eq!(start.elapsed(), MS(700));
    assert_eq!(seen.count(), 4);
    assert_eq!(
        seen.timeouts(),
        [None, None, None, None],
        "HTTP gets no grpc-timeout"
    );
    assert_eq!(
        err.code(),
        &ErrorCode::Unavailable,
        "the server's error, as it was"
    );
    assert!(err.note().unwrap().contains("deadline"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_closed_gate_holds_a_grpc_call_no_longer_than_its_deadline() {
    // The first call closes the method's gate for 10 s.
    let (server_seen, server) = {
        let seen = Seen::default();
        let log = seen.clone();
        let server = service_fn(move |req: Request<Full<Bytes>>| {
            log.0.lock().unwrap().push((Instant::now(), None));
            let _ = req;
            grpc_status(8, Some(10_000))
        });
        (seen, server)
    };
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new().gates(gates.clone());
    let mut svc = ServiceBuilder::new()
        .layer(layer())
        .layer(rate_limit)
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let start = Instant::now();
    let first = svc
        .ready()
        .await
        .unwrap()
        .call(call(Some("2S")))
        .await
        .unwrap_err();
    // The 10 s pushback outlasts the call: nothing more is sent, and it ends at its deadline.
    assert_eq!(first.code(), &ErrorCode::DeadlineExceeded, "{first}");
    assert_eq!(start.elapsed(), S(2));
    assert_eq!(gates.len(), 1);
    // The second call would wait 8 s more at the gate, past its 2 s: it fails at its
    // deadline, unsent, saying how long the gate still needed.
    let second = svc
        .ready()
        .await
        .unwrap()
        .call(call(Some("2S")))
        .await
        .unwrap_err();
    assert_eq!(start.elapsed(), S(4));
    assert_eq!(second.code(), &ErrorCode::DeadlineExceeded, "{second}");
    assert!(
        !second.request_sent() && second.is_gate_closed(),
        "{second:?}"
    );
    assert_eq!(second.retry_after(), Some(S(6)));
    assert_eq!(server_seen.count(), 1);
}

/// When each request arrived at a test server.
type Arrivals = Arc<Mutex<Vec<Instant>>>;

/// An HTTP server that answers `429` with `Retry-After: retry_after` (seconds) to its first
/// request and `200` to the others, logging when each arrived.
fn limited_once(
    retry_after: u64,
) -> (
    Arrivals,
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = io::Error,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = arrivals.clone();
    let server = service_fn(move |_req: Request<Full<Bytes>>| {
        let log = log.clone();
        async move {
            let n = {
                let mut log = log.lock().unwrap();
                log.push(Instant::now());
                log.len()
            };
            let res = if n == 1 {
                Response::builder()
                    .status(429)
                    .header("retry-after", retry_after)
                    .body(Full::from(
                        r#"{"code":"RESOURCE_EXHAUSTED","message":"slow down"}"#,
                    ))
            } else {
                Response::builder().body(Full::from("{}"))
            };
            Ok::<_, io::Error>(res.unwrap())
        }
    });
    (arrivals, server)
}

fn get(over: Option<RetryOverride>) -> Request<Full<Bytes>> {
    let mut req = Request::get("http://api.test/items/1")
        .body(Full::default())
        .unwrap();
    if let Some(over) = over {
        req.extensions_mut().insert(over);
    }
    req
}

/// What a request held past its deadline at a closed gate gets: `DEADLINE_EXCEEDED` at the
/// deadline, unsent, with the time the gate still needed.
fn held_to_its_deadline(err: &Error, needed: Duration) {
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded, "{err}");
    assert!(!err.request_sent() && err.is_gate_closed(), "{err:?}");
    assert_eq!(err.retry_after(), Some(needed), "{err:?}");
}

#[tokio::test(start_paused = true)]
async fn an_http_deadline_bounds_the_wait_at_a_closed_gate() {
    for by_layer in [false, true] {
        let (arrivals, server) = limited_once(10);
        let retry = if by_layer {
            RetryLayer::new().deadline(S(2))
        } else {
            RetryLayer::new()
        };
        let svc = ServiceBuilder::new()
            .layer(ApiContractLayer::new().retry(retry))
            .service(server);
        // The first request is refused for 10 s, and not retried: the path's gate closes.
        let start = Instant::now();
        let first = svc
            .clone()
            .oneshot(get(Some(RetryOverride::no_retries())))
            .await
            .unwrap_err();
        assert_eq!(first.status().map(|s| s.as_u16()), Some(429));
        // A request with 2 s to live would wait 10 s: it fails at its deadline, unsent.
        let over = (!by_layer).then(|| RetryOverride::new().deadline(S(2)));
        let err = svc.clone().oneshot(get(over)).await.unwrap_err();
        assert_eq!(start.elapsed(), S(2), "by the layer: {by_layer}");
        held_to_its_deadline(&err, S(8));
        assert_eq!(arrivals.lock().unwrap().len(), 1, "nothing more was sent");
    }
}

#[tokio::test(start_paused = true)]
async fn a_deadline_bounds_the_wait_in_a_paced_lane() {
    // A 429 with `Retry-After: 1` paces the path when it reopens (20/s, doubling): of 40
    // requests queued with 1.2 s to live, those whose turn would come after it fail at their
    // deadline, unsent; the others go.
    let (arrivals, server) = limited_once(1);
    let svc = ServiceBuilder::new().api_contract().service(server);
    let start = Instant::now();
    svc.clone()
        .oneshot(get(Some(RetryOverride::no_retries())))
        .await
        .unwrap_err();
    let calls = (0..40).map(|_| {
        let svc = svc.clone();
        async move {
            let result = svc
                .oneshot(get(Some(RetryOverride::new().deadline(MS(1200)))))
                .await;
            (result.map(|_| ()), start.elapsed())
        }
    });
    let results = futures_util::future::join_all(calls).await;
    let (mut went, mut held) = (0, 0);
    for (result, at) in results {
        match result {
            Ok(()) => {
                went += 1;
                assert!(at <= MS(1200), "{at:?}");
            }
            Err(err) => {
                held += 1;
                assert_eq!(at, MS(1200), "{err:?}");
                assert_eq!(err.code(), &ErrorCode::DeadlineExceeded, "{err}");
                assert!(!err.request_sent(), "{err:?}");
                assert!(
                    err.retry_after().is_some_and(|d| d > Duration::ZERO),
                    "{err:?}"
                );
            }
        }
    }
    assert!(went > 0 && held > 0, "went {went}, held {held}");
    assert_eq!(arrivals.lock().unwrap().len(), 1 + went);
}

#[tokio::test(start_paused = true)]
async fn a_call_deadline_in_the_extensions_bounds_the_gate_without_the_retry_layer() {
    let (arrivals, server) = limited_once(10);
    let gate = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let start = Instant::now();
    gate.clone().oneshot(get(None)).await.unwrap_err();
    let mut req = get(None);
    req.extensions_mut()
        .insert(CallDeadline::new(Instant::now() + S(3)));
    let err = gate.clone().oneshot(req).await.unwrap_err();
    assert_eq!(start.elapsed(), S(3));
    held_to_its_deadline(&err, S(7));
    assert_eq!(arrivals.lock().unwrap().len(), 1);
}
