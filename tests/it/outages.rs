//! Outages, in virtual time: a path that answers `503` for a while is held at its gate, not
//! hammered, and reopens with a ramp; a request-specific failure never stalls its path.
//!
//! The clock is tokio's paused clock and the server a `service_fn` that takes 1 ms per
//! request, so the figures are the stack's own behaviour, not the machine's.

use crate::support::{
    limited::outcome,
    outage::{Figures, Outages, Plan, closed_loop, open_loop},
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{convert::Infallible, sync::Arc, time::Duration};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    ApiContractLayer, ErrorContract, OutageRule, OutageSignals, RateLimitBackoffLayer,
    ServiceBuilderExt,
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
            Ok::<_, Infallible>(outages.respond(req.uri().path()))
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
    let plan = Plan {
        requests: 750,
        over: S(4),
        base: "http://api.test".into(),
    };
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
    let plan = Plan {
        requests: 0,
        over: S(3),
        base: "http://api.test".into(),
    };
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
        let rate_limit = RateLimitBackoffLayer::new();
        let gates = rate_limit.get_gates().clone();
        let client = ServiceBuilder::new()
            .api_contract_with(
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
    let rate_limit = RateLimitBackoffLayer::new().fail_fast();
    let gates = rate_limit.get_gates().clone();
    // One attempt per request, to see each one.
    let client = ServiceBuilder::new()
        .api_contract_with(
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
    assert!(
        err.retry_after()
            .is_some_and(|left| left >= Duration::from_secs(1))
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
    let rate_limit = RateLimitBackoffLayer::new();
    let gates = rate_limit.get_gates().clone();
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let stack = ServiceBuilder::new()
        .api_contract_with(ApiContractLayer::new().rate_limit(rate_limit))
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
    let rate_limit = RateLimitBackoffLayer::new().fail_fast();
    let gates = rate_limit.get_gates().clone();
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let client = ServiceBuilder::new()
        .api_contract_with(
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
