//! Outages, in virtual time: a path that answers `503` for a while is held at its gate, not
//! hammered, and reopens with a ramp; a request-specific failure never stalls its path.
//!
//! The clock is tokio's paused clock and the server a `service_fn` that takes 1 ms per
//! request, so the figures are the stack's own behaviour, not the machine's.

use crate::support::{
    limited::outcome,
    outage::{
        Figures, Mix, Outages, Plan, Recovery, Run, closed_loop, open_loop, paced_closed_loop,
    },
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{convert::Infallible, sync::Arc, time::Duration};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    ApiContractLayer, ErrorContract, OutageRule, OutageSignals, RateLimitBackoffLayer,
    RateLimitGates, ServiceBuilderExt,
};

const S: fn(u64) -> Duration = Duration::from_secs;

fn server(
    outages: Arc<Outages>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    server_taking(outages, Duration::from_millis(1))
}

/// The outage server, taking `took` per request.
fn server_taking(
    outages: Arc<Outages>,
    took: Duration,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: Request<Full<Bytes>>| {
        let outages = outages.clone();
        async move {
            tokio::time::sleep(took).await;
            Ok::<_, Infallible>(outages.respond(req.method(), req.uri()))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_held_not_hammered_and_nothing_is_lost() {
    // The measurement of the README at half its length: 750 GETs started on schedule over
    // 4 s, each its own task; the server answers 503 from 1 to 2 s and from 2.5 to 3 s.
    let outages = Outages::new(&[(S(1), S(2)), (Duration::from_millis(2500), S(3))]);
    let client = ServiceBuilder::new()
        .api_contract()
        .service(server(outages.clone()));
    let plan = Plan::gets(750, S(4), "http://api.test");
    outages.begin();
    let run = open_loop(outcome(client), &plan).await;
    let f = Figures::of(&outages, &run, plan.over);
    println!("open loop: {}", f.line());
    assert_eq!(f.failed, 0, "{}", f.line());
    assert!(
        f.outage_arrivals * 4 <= f.offered_in_outages,
        "at most a quarter of the offered load reaches the server during the outages: {}",
        f.line()
    );
    assert!(f.amplification <= 1.15, "{}", f.line());
    // The unrelated path never waits for the one that is down (the server's 1 ms).
    assert!(f.other_worst < Duration::from_millis(10), "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn thirty_two_workers_lose_nothing_to_an_outage() {
    let outages = Outages::new(&[(S(1), S(2))]);
    // The server takes 10 ms a request (fewer requests to simulate than at 1 ms).
    let client = ServiceBuilder::new()
        .api_contract()
        .service(server_taking(outages.clone(), Duration::from_millis(10)));
    let plan = Plan::gets(0, S(3), "http://api.test");
    outages.begin();
    let run = closed_loop(outcome(client), &plan, 32).await;
    let f = Figures::of(&outages, &run, plan.over);
    println!(
        "closed loop: amplification {:.2}, failed {} of {}",
        f.amplification, f.failed, f.requests
    );
    assert_eq!(f.failed, 0, "{}", f.line());
    assert!(f.amplification <= 1.15, "{}", f.line());
}

/// The load of the README's measurement: 1,500 requests on a schedule over 8 s (187.5 a
/// second) through the default stack; the template is down from 1 to 3 s and from 5 to 6 s.
/// `workers` workers take the requests in turn and each waits for its answer (a worker
/// pool), or, with none, each request is its own task (an open loop).
async fn under_outages(workers: Option<usize>, mix: Mix) -> (Figures, Recovery, usize) {
    let (f, r, twice, _) = under_outages_logged(workers, mix).await;
    (f, r, twice)
}

/// [`under_outages`], with the server's log.
async fn under_outages_logged(
    workers: Option<usize>,
    mix: Mix,
) -> (Figures, Recovery, usize, Arc<Outages>) {
    let outages = Outages::new(&[(S(1), S(3)), (S(5), S(6))]);
    let client = ServiceBuilder::new()
        .api_contract()
        .service(server(outages.clone()));
    let plan = Plan {
        mix,
        ..Plan::gets(1_500, S(8), "http://api.test")
    };
    outages.begin();
    let run = match workers {
        Some(workers) => paced_closed_loop(outcome(client), &plan, workers).await,
        None => open_loop(outcome(client), &plan).await,
    };
    let f = Figures::of(&outages, &run, plan.over);
    let r = Recovery::of(&outages, &plan);
    let twice = Figures::posts_sent_twice(&outages);
    println!(
        "{workers:?} workers, {mix:?}: {}; {}; POSTs sent twice: {twice}",
        f.line(),
        r.line()
    );
    Figures::trace(&outages);
    (f, r, twice, outages)
}

/// What every load must show: done within `finish`, at most 40 arrivals during the outages, the
/// first success after the first outage (2 s long) within `first_gap` and after the second
/// (1 s) within 700 ms, at least 90 % of the offered rate within a second of it, and no herd.
fn recovered(f: &Figures, r: &Recovery, first_gap: Duration, finish: Duration) {
    let why = format!("{}; {}", f.line(), r.line());
    assert!(f.finish <= finish, "{why}");
    assert!(f.outage_arrivals <= 40, "{why}");
    assert_eq!(r.gaps.len(), 2, "{why}");
    assert!(r.gaps[0] <= first_gap, "{why}");
    assert!(r.gaps[1] <= Duration::from_millis(700), "{why}");
    assert!(!r.served.is_empty(), "{why}");
    for served in &r.served {
        assert!(*served >= 0.9, "{why}");
    }
    assert!(r.herds.is_empty(), "{why}");
}

/// Held for the outage, a path is probed again within half the time it was held, plus the
/// first hold: 1 s after the first outage.
const HELD: Duration = Duration::from_secs(1);

#[tokio::test(start_paused = true)]
async fn an_open_loop_is_held_through_outages_and_drains_at_twice_its_rate() {
    let (f, r, _) = under_outages(None, Mix::Gets).await;
    recovered(&f, &r, HELD, S(11));
    assert_eq!(f.failed, 0, "{}", f.line());
    assert!(f.amplification <= 1.05, "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn a_pool_of_32_workers_is_back_at_full_speed_after_an_outage() {
    let (f, r, _) = under_outages(Some(32), Mix::Gets).await;
    recovered(&f, &r, HELD, S(10));
    assert_eq!(f.failed, 0, "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn a_pool_of_500_workers_is_back_at_full_speed_after_an_outage() {
    let (f, r, _) = under_outages(Some(500), Mix::Gets).await;
    recovered(&f, &r, HELD, S(10));
    assert_eq!(f.failed, 0, "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn a_pool_of_2_workers_retries_on_the_documented_schedule() {
    // Two workers send too few failures to take the path out: each request keeps its own
    // schedule (1 s, then 2 s, each up to 20 % longer), which the first outage outlasts.
    let (f, r, _) = under_outages(Some(2), Mix::Gets).await;
    recovered(&f, &r, Duration::from_millis(1_600), S(10));
    assert_eq!(f.failed, 0, "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn a_pool_sending_posts_never_sends_one_twice_and_is_back_after_an_outage() {
    let (f, r, twice) = under_outages(Some(32), Mix::Posts).await;
    recovered(&f, &r, HELD, S(10));
    assert_eq!(twice, 0, "{}", f.line());
    // The POSTs the server refused are not sent again: they fail, and only those.
    assert!(f.failed <= f.outage_arrivals, "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn one_bad_input_in_ten_never_stalls_its_path() {
    // One id in ten answers 500 INTERNAL, every time (its input is bad); the path is up.
    // Even with 500s taken for outage signals, one in ten is below the ratio: the path
    // never closes, and the other nine take exactly the server's 1 ms.
    for signals in [
        OutageSignals::DEFAULT,
        OutageSignals::DEFAULT | OutageSignals::INTERNAL,
    ] {
        let contract = ErrorContract::new().outages(OutageRule::DEFAULT.signals(signals));
        let arrivals = Arc::new(std::sync::Mutex::new(Vec::<u32>::new()));
        let log = arrivals.clone();
        let server = service_fn(move |req: Request<Full<Bytes>>| {
            let id: u32 = req
                .uri()
                .path()
                .rsplit('/')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            log.lock().unwrap().push(id);
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let (status, body) = if id % 10 == 3 {
                    (500, r#"{"code":"INTERNAL","message":"cannot parse item"}"#)
                } else {
                    (200, "{}")
                };
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(status)
                        .body(Full::new(Bytes::from_static(body.as_bytes())))
                        .unwrap(),
                )
            }
        });
        let gates = RateLimitGates::new();
        let rate_limit = RateLimitBackoffLayer::new().gates(gates.clone());
        let client = ServiceBuilder::new()
            .layer(
                ApiContractLayer::new()
                    .rate_limit(rate_limit)
                    .contract(contract),
            )
            .service(server);
        // 500 requests, 2 ms apart, each its own task.
        let start = Instant::now();
        let tasks: Vec<_> = (0..500u32)
            .map(|i| {
                let client = client.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(2) * i).await;
                    let t = Instant::now();
                    let req = Request::get(format!("http://api.test/v1/items/{i}"))
                        .body(Full::default())
                        .unwrap();
                    let res = client.oneshot(req).await;
                    (i, res.is_ok(), t.elapsed())
                })
            })
            .collect();
        // While they are sent, the path stays open. (Once they stop, the bad inputs' last
        // retries may come ten in a row, with no other answer between them: an outage by the
        // rule, when nobody else is sending.)
        tokio::time::sleep_until(start + Duration::from_millis(1001)).await;
        assert!(gates.is_empty(), "{signals:?}: the path was closed");
        let mut good = 0;
        for task in tasks {
            let (i, ok, took) = task.await.unwrap();
            assert_eq!(ok, i % 10 != 3, "{i}");
            if ok {
                good += 1;
                assert_eq!(took, Duration::from_millis(1), "{i} under {signals:?}");
            }
        }
        assert_eq!(good, 450);
        // Each good input reached the server once; each bad one four times (retried), when
        // 500s are not signals. (When they are, the bad inputs' own last retries, with nobody
        // else sending, are ten signals in a row: the path closes and their probes keep it
        // closed, so some of those retries are refused at the gate.)
        let seen = arrivals.lock().unwrap().clone();
        assert_eq!(seen.iter().filter(|i| *i % 10 != 3).count(), 450);
        let bad = seen.iter().filter(|i| *i % 10 == 3).count();
        if signals == OutageSignals::DEFAULT {
            assert_eq!(bad, 50 * 4);
        } else {
            assert!((50..=50 * 4).contains(&bad), "{bad}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn fail_fast_fails_at_once_at_a_path_held_for_an_outage() {
    let outages = Outages::new(&[(Duration::ZERO, S(3600))]);
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new()
        .fail_fast()
        .gates(gates.clone());
    // One attempt per request, to see each one.
    let client = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(tower_api_retry::RetryLayer::new().max_retries(0))
                .rate_limit(rate_limit),
        )
        .service(server(outages.clone()));
    outages.begin();
    let item = |i: u32| {
        Request::get(format!("http://api.test/v1/items/{i}"))
            .body(Full::default())
            .unwrap()
    };
    // Ten 503s in a row: the path is out.
    for i in 0..10 {
        assert!(gates.is_empty(), "closed after {i}");
        let err = client.clone().oneshot(item(i)).await.unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
    }
    assert_eq!(gates.len(), 1, "the path is out");
    // With fail_fast, the next request fails at once, unsent, with the time left.
    let t = Instant::now();
    let err = client.clone().oneshot(item(99)).await.unwrap_err();
    assert!(err.is_gate_closed() && !err.request_sent(), "{err:?}");
    // An outage's first hold: half the backoff's 1 s base.
    assert!(
        err.retry_after()
            .is_some_and(|left| left >= Duration::from_millis(500)),
        "{err:?}"
    );
    assert_eq!(t.elapsed(), Duration::ZERO, "failed at once");
    assert_eq!(outages.arrivals().len(), 10, "nothing more was sent");
    // Another path is not affected.
    let other = Request::get("http://api.test/other")
        .body(Full::default())
        .unwrap();
    assert!(client.clone().oneshot(other).await.is_ok());
}

#[cfg(feature = "tonic")]
#[tokio::test]
async fn a_grpc_message_over_the_servers_limit_fails_once_and_never_stalls_the_method() {
    use crate::support::grpc::{GrpcServer, SAY, SayRequest, call};
    use tonic::{Code, transport::Channel};

    let server = GrpcServer::start().await;
    server.max_decoding_message_size(1024);
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new().gates(gates.clone());
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let stack = ServiceBuilder::new()
        .layer(ApiContractLayer::new().rate_limit(rate_limit))
        .service(channel);
    let mut grpc = tonic::client::Grpc::new(stack);
    let small = || SayRequest {
        name: "ada".into(),
        payload: vec![7; 16],
    };
    let big = SayRequest {
        name: "ada".into(),
        payload: vec![7; 64 * 1024],
    };
    call(&mut grpc, SAY, small()).await.unwrap();
    // tonic's own answer to a message over the limit: OUT_OF_RANGE, no pushback. It is about
    // these bytes: not retried (the same bytes would fail the same way), and the method
    // stays open.
    let status = call(&mut grpc, SAY, big.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("too large"), "{status:?}");
    assert!(gates.is_empty());
    // Again and again: each fails once, and the small calls between them go straight
    // through (the handler saw only those).
    for _ in 0..5 {
        let status = call(&mut grpc, SAY, big.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::OutOfRange);
        call(&mut grpc, SAY, small()).await.unwrap();
    }
    assert!(gates.is_empty(), "the method was never closed");
    assert_eq!(
        server.seen(SAY).len(),
        6,
        "only the small calls reached the handler"
    );
}

#[tokio::test]
async fn a_refused_connection_takes_the_path_out_too() {
    use hyper_util::{client::legacy::Client, rt::TokioExecutor};
    // A port nobody listens on: bind one, note it, close it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new()
        .fail_fast()
        .gates(gates.clone());
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(tower_api_retry::RetryLayer::new().max_retries(0))
                .rate_limit(rate_limit),
        )
        .service(http);
    let get = || {
        Request::get(format!("http://127.0.0.1:{port}/v1/items/7"))
            .body(Full::default())
            .unwrap()
    };
    for i in 0..10 {
        assert!(gates.is_empty(), "closed after {i}");
        let err = client.clone().oneshot(get()).await.unwrap_err();
        assert!(err.is_transport() && !err.request_sent(), "{err:?}");
    }
    // Nothing listens: the path is out, and the next request is held (here, refused at once).
    assert_eq!(gates.len(), 1);
    let held = client.clone().oneshot(get()).await.unwrap_err();
    assert!(held.is_gate_closed(), "{held:?}");
}

/// A grpcio-like server (a real tonic server answering `RESOURCE_EXHAUSTED` "Received
/// message larger than max", no pushback, to any message over 1 KiB), a tonic `Channel` over
/// in-memory pipes, the crate's stack with `retry`; a small call has been answered.
#[cfg(feature = "tonic")]
async fn grpcio_like(
    retry: tower_api_retry::RetryLayer,
) -> (
    crate::support::grpc::GrpcServer,
    tower_api_retry::rate_limit::RateLimitGates,
    tonic::client::Grpc<tower_api_retry::ApiContract<tonic::transport::Channel>>,
) {
    use crate::support::grpc::{GrpcServer, SAY, call};
    let server = GrpcServer::start().await;
    server.max_receive_message_length(1024);
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new().gates(gates.clone());
    let stack = ServiceBuilder::new()
        .layer(ApiContractLayer::new().retry(retry).rate_limit(rate_limit))
        .service(server.in_memory_channel());
    let grpc = tonic::client::Grpc::new(stack);
    call(&mut grpc.clone(), SAY, small()).await.unwrap();
    (server, gates, grpc)
}

#[cfg(feature = "tonic")]
fn small() -> crate::support::grpc::SayRequest {
    crate::support::grpc::SayRequest {
        name: "ada".into(),
        payload: vec![7; 16],
    }
}

/// Over grpcio's limit, under the retry layer's replay limit.
#[cfg(feature = "tonic")]
fn oversized() -> crate::support::grpc::SayRequest {
    crate::support::grpc::SayRequest {
        name: "ada".into(),
        payload: vec![7; 4 * 1024],
    }
}

#[cfg(feature = "tonic")]
fn say_key() -> tower_api_retry::rate_limit::Key {
    // A `tonic::client::Grpc` without an origin sends the path alone; the `Channel` adds it.
    tower_api_retry::rate_limit::Key::from_uri(&http::Uri::from_static("/echo.Echo/Say"))
}

/// A gRPC library's own `RESOURCE_EXHAUSTED` for one oversized message (grpcio's "Received
/// message larger than max", no pushback): the first one closes the method, as any
/// `RESOURCE_EXHAUSTED` does, but the same request's second one is its own failure. It is not
/// retried again and does not close the method again; a small call on the method waits one
/// jittered first backoff at most. A real tonic server and `Channel`, over in-memory pipes,
/// on tokio's paused clock.
#[cfg(feature = "tonic")]
#[tokio::test(start_paused = true)]
async fn a_grpc_librarys_own_resource_exhausted_is_tried_twice_and_holds_the_method_one_backoff() {
    use crate::support::grpc::{SAY, call};
    use tonic::Code;

    let (server, gates, grpc) = grpcio_like(tower_api_retry::RetryLayer::new()).await;

    let start = Instant::now();
    let big = tokio::spawn({
        let mut grpc = grpc.clone();
        async move {
            let status = call(&mut grpc, SAY, oversized()).await.unwrap_err();
            (status, start.elapsed())
        }
    });
    // The oversized call's first answer closes the method at once (no time passes).
    while gates.is_empty() {
        tokio::task::yield_now().await;
    }
    assert_eq!(server.too_large().len(), 1);
    // A valid small call on the same method, sent now, waits for the gate's first backoff
    // only (1 s plus up to 20 %), as its probe, and succeeds.
    let sent = Instant::now();
    call(&mut grpc.clone(), SAY, small()).await.unwrap();
    let held = sent.elapsed();
    assert!(held <= Duration::from_millis(1200), "held {held:?}");

    let (status, took) = big.await.unwrap();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .contains("Received message larger than max"),
        "{status:?}"
    );
    // Tried twice (the first answer could have been a rate limit), not four times over
    // 8.6 s: its retry waited one backoff, behind the small call.
    assert_eq!(server.too_large().len(), 2);
    assert!(took < Duration::from_millis(2500), "took {took:?}");
    // Its second answer did not close the method again: the next call goes at the pace of
    // the reopened method, not after another backoff.
    assert_eq!(gates.time_left(say_key()), None, "the method is open");
    let sent = Instant::now();
    call(&mut grpc.clone(), SAY, small()).await.unwrap();
    assert!(
        sent.elapsed() < Duration::from_millis(250),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(
        server.seen(SAY).len(),
        3,
        "only the small calls reached the handler"
    );
}

/// The same server, with the oversized call's retry at the gate before a small call: the retry
/// is the method's probe, its second `RESOURCE_EXHAUSTED` hands the probe role on instead of
/// closing the method for a longer backoff, and the small call behind it goes at once.
#[cfg(feature = "tonic")]
#[tokio::test(start_paused = true)]
async fn a_call_behind_an_oversized_calls_retry_is_not_stalled_by_it() {
    use crate::support::grpc::{SAY, call};
    use tower_api_retry::backoff::{Backoff, Jitter};

    // The retry waits 500 ms, then queues at the method's gate (closed for 1 s to 1.2 s).
    let retry = tower_api_retry::RetryLayer::new().backoff(
        Backoff::new()
            .base_delay(Duration::from_millis(500))
            .jitter(Jitter::None),
    );
    let (server, gates, grpc) = grpcio_like(retry).await;
    let start = Instant::now();
    let big = tokio::spawn({
        let mut grpc = grpc.clone();
        async move { call(&mut grpc, SAY, oversized()).await.unwrap_err() }
    });
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        gates.time_left(say_key()).is_some(),
        "closed by the first answer"
    );
    let sent = Instant::now();
    call(&mut grpc.clone(), SAY, small()).await.unwrap();
    // Held until the gate's first backoff ended (plus one pace interval behind the probe),
    // never for a second, longer one.
    let held = sent.elapsed();
    assert!(held <= Duration::from_millis(1200), "held {held:?}");
    let status = big.await.unwrap();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    let tries = server.too_large();
    assert_eq!(tries.len(), 2, "tried twice");
    assert!(
        tries[1] - start >= Duration::from_secs(1),
        "the retry waited for the gate, as its probe"
    );
    assert!(
        tries[1] <= sent + held,
        "the retry probed before the small call went"
    );
    assert_eq!(gates.time_left(say_key()), None, "the method is open");
}

/// A real quota that names no wait (every call answered `RESOURCE_EXHAUSTED`, no pushback)
/// still closes the method and is backed off: each call's second answer is its own and neither
/// opens nor closes the gate, and the next call's first answer, as the probe, doubles the
/// backoff.
#[tokio::test(start_paused = true)]
async fn a_grpc_quota_without_pushback_still_closes_the_method_and_backs_off() {
    use std::sync::Mutex;
    use tower_api_retry::{
        NotRetried, RetryLayer,
        backoff::{Backoff, Jitter},
        rate_limit::Key,
    };

    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = arrivals.clone();
    let start = Instant::now();
    let server = service_fn(move |_req: Request<Full<Bytes>>| {
        log.lock().unwrap().push(start.elapsed());
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "8")
                    .header("grpc-message", "quota exceeded")
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
        }
    });
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new()
        .backoff(Backoff::new().jitter(Jitter::None))
        .gates(gates.clone());
    let client = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().jitter(Jitter::None)))
                .rate_limit(rate_limit),
        )
        .service(server);
    let call = || {
        Request::post("http://svc.test/pkg.Quota/Spend")
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
            .unwrap()
    };
    let key = Key::from_uri(&http::Uri::from_static("http://svc.test/pkg.Quota/Spend"));

    // The first answer closes the method for 1 s; the retry probes then, is refused again,
    // and is not tried a third time.
    let err = client.clone().oneshot(call()).await.unwrap_err();
    assert_eq!(err.attempts(), 2);
    assert_eq!(err.not_retried(), Some(&NotRetried::ExhaustedAgain));
    // Its second answer neither opened the method nor closed it again: the time is up and
    // the next call probes.
    assert_eq!(gates.time_left(key), Some(Duration::ZERO));
    // The next call's first answer is the method's: closed again for the next backoff, 2 s.
    let err = client.clone().oneshot(call()).await.unwrap_err();
    assert_eq!(err.attempts(), 2);
    let seen = arrivals.lock().unwrap().clone();
    assert_eq!(seen, [S(0), S(1), S(1), S(3)]);
    // The backoff goes on doubling: a third call waits for the gate and probes at 3 s + 4 s.
    let third = client.clone().oneshot(call()).await.unwrap_err();
    assert_eq!(third.attempts(), 2);
    assert_eq!(arrivals.lock().unwrap()[4..], [S(3), S(7)]);
}

/// Arrivals at a whole-server outage spread over many paths: two busy paths and ten quiet
/// ones, every path down from 1 s to 3 s. Returns (quiet paths' arrivals during the outage,
/// requests sent to the quiet paths then, failed requests).
async fn a_server_down_on_every_path(contract: ErrorContract) -> (usize, usize, usize) {
    use std::sync::Mutex;
    const QUIET: [&str; 10] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
    let start = Instant::now();
    let down = |at: Duration| at >= S(1) && at < S(3);
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    let server = service_fn(move |req: Request<Full<Bytes>>| {
        let at = start.elapsed();
        seen.lock()
            .unwrap()
            .push((at, req.uri().path().starts_with("/v1/quiet/")));
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let status = if down(at) { 503 } else { 200 };
            Ok::<_, Infallible>(
                Response::builder()
                    .status(status)
                    .body(Full::<Bytes>::default())
                    .unwrap(),
            )
        }
    });
    let client = ServiceBuilder::new()
        .layer(ApiContractLayer::new().contract(contract))
        .service(server);
    let mut calls = Vec::new();
    let mut quiet_sent = 0;
    // Busy paths: 100 requests a second each; quiet paths: 4 a second each; for 4 s.
    for tick in 0..400u64 {
        let at = Duration::from_millis(10 * tick);
        let mut paths = vec!["/v1/busy/one".to_owned(), "/v1/busy/two".to_owned()];
        if tick % 25 == 0 {
            for q in QUIET {
                paths.push(format!("http://svc.test/v1/quiet/{q}"));
                quiet_sent += usize::from(down(at));
            }
        }
        for path in paths {
            let uri = if path.starts_with("http") {
                path
            } else {
                format!("http://svc.test{path}")
            };
            let client = client.clone();
            calls.push(tokio::spawn(async move {
                tokio::time::sleep_until(start + at).await;
                client
                    .oneshot(Request::get(uri).body(Full::default()).unwrap())
                    .await
                    .is_ok()
            }));
        }
    }
    let mut failed = 0;
    for call in calls {
        failed += usize::from(!call.await.unwrap());
    }
    let quiet_arrivals = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, quiet)| *quiet && down(*at))
        .count();
    (quiet_arrivals, quiet_sent, failed)
}

/// A whole-server outage trips the busy paths' gates and few others: two paths of one server
/// out within a second hold the whole server, the quiet paths too, as two rate limits do.
#[tokio::test(start_paused = true)]
async fn an_outage_on_two_paths_of_a_server_holds_the_whole_server() {
    let (widened, offered, failed) = a_server_down_on_every_path(ErrorContract::new()).await;
    // Each path on its own (the quota scope says every limit is its path's).
    let (alone, _, failed_alone) = a_server_down_on_every_path(
        ErrorContract::new().quota_scope(tower_api_retry::quota::QuotaScope::Path),
    )
    .await;
    // Per path, the quiet paths never trip: every request and its retries reach the server.
    assert!(alone >= offered, "{alone} of {offered}");
    // Widened, they are held with the busy ones, and lose nothing.
    assert!(widened * 4 <= offered, "{widened} of {offered}");
    assert_eq!((failed, failed_alone), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_pool_sending_gets_and_posts_probes_with_the_gets() {
    let (f, r, twice, outages) = under_outages_logged(Some(32), Mix::Halves).await;
    recovered(&f, &r, HELD, S(10));
    assert_eq!(twice, 0, "{}", f.line());
    // Ten refusals in a row take the path out; what reaches the server during the outages
    // after that are its probes, one at a time, each after a hold of half a second or more:
    // GETs, while GETs wait.
    let items: Vec<_> = outages.arrivals().into_iter().filter(|a| a.items).collect();
    let probes: Vec<_> = items
        .windows(2)
        .filter(|w| outages.down(w[1].at) && w[1].at - w[0].at >= Duration::from_millis(250))
        .map(|w| w[1])
        .collect();
    assert!(!probes.is_empty(), "{}", f.line());
    assert!(probes.iter().all(|a| !a.post), "{probes:?}");
    // So the only POSTs that failed are those sent before the path was taken out.
    assert!(f.failed <= f.outage_arrivals - probes.len(), "{}", f.line());
}

/// How long a request may take when its server stays down: the schedule's nominal waits
/// with their jitter (1 s, 2 s and 4 s, each up to 20 % longer), one more nominal wait (an
/// attempt waits at a closed gate no longer than the nominal waits left of its schedule, its
/// own included), and its four attempts' own time (1 ms each).
const DOWN_ANSWERED_WITHIN: Duration = Duration::from_millis(8_400 + 4_000 + 4);

/// 10 s of load on a template that is down throughout, through the default stack: an open
/// loop of `requests` callers, or `workers` workers that send one request after another.
async fn always_down(workers: Option<usize>, requests: usize) -> (Figures, Run) {
    let outages = Outages::new(&[(S(0), S(3_600))]);
    let client = ServiceBuilder::new()
        .api_contract()
        .service(server(outages.clone()));
    let plan = Plan::gets(requests, S(10), "http://api.test");
    outages.begin();
    let run = match workers {
        Some(workers) => closed_loop(outcome(client), &plan, workers).await,
        None => open_loop(outcome(client), &plan).await,
    };
    let f = Figures::of(&outages, &run, plan.over);
    let slowest = run.latencies.last().copied().unwrap_or_default();
    println!(
        "always down, {workers:?} workers, {} requests: {}; slowest answer {slowest:?}",
        run.requests,
        f.line()
    );
    (f, run)
}

#[tokio::test(start_paused = true)]
async fn every_caller_has_its_answer_within_its_schedule_while_the_server_is_down() {
    for (workers, requests) in [(None, 2), (None, 200), (Some(2), 200), (Some(200), 200)] {
        let (f, run) = always_down(workers, requests).await;
        let why = f.line();
        assert_eq!(run.failed, run.requests, "{why}");
        // Waiting at a closed gate spends a request's schedule; it does not add to it.
        let slowest = run.latencies.last().copied().unwrap_or_default();
        assert!(slowest <= DOWN_ANSWERED_WITHIN, "{slowest:?}: {why}");
        // The last caller, started by 10 s, has its answer by 25 s.
        assert!(f.finish <= S(25), "{why}");
        // No request is sent more often than its schedule allows.
        assert!(f.amplification <= 4.0, "{why}");
    }
}
