//! End to end: a tonic client over a real `Channel`, wrapped in the documented stack and used
//! through `tonic::client::Grpc`, against the scripted tonic server on loopback. What happened
//! is asserted on the server's log (arrival times, decoded request messages).

use crate::support::grpc::{GrpcReply, GrpcServer, OTHER, RichStatus, SAY, SayRequest, call};
use std::time::Duration;
use tonic::{Code, transport::Channel};
use tower::ServiceBuilder;
use tower_api_retry::{
    ApiContractLayer, ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer, backoff::Backoff,
    rate_limit::RateLimitGates,
};

const BASE: Duration = Duration::from_millis(40);

type Client = tonic::client::Grpc<tower_api_retry::ApiContract<Channel>>;

/// The documented stack over a lazily connected channel, and its gate map.
fn client(server: &GrpcServer, rate_limit: RateLimitBackoffLayer) -> (Client, RateLimitGates) {
    let gates = RateLimitGates::new();
    let rate_limit = rate_limit.gates(gates.clone());
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::new().base_delay(BASE))
                .max_retry_after(Duration::from_secs(5)),
        )
        .layer(rate_limit)
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    (tonic::client::Grpc::new(stack), gates)
}

fn req() -> SayRequest {
    SayRequest {
        name: "ada".into(),
        payload: (0..4096u32).map(|i| (i * 7 % 251) as u8).collect(),
    }
}

#[tokio::test]
async fn unavailable_is_retried_to_success_with_the_same_message() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [
            GrpcReply::Status(Code::Unavailable, "restarting"),
            GrpcReply::Status(Code::Unavailable, "restarting"),
        ],
    );
    let (mut grpc, _) = client(&server, RateLimitBackoffLayer::new());
    let reply = call(&mut grpc, SAY, req()).await.unwrap();
    assert_eq!(reply.message, "hello ada");
    let seen = server.seen(SAY);
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.request == req()),
        "identical messages"
    );
    assert!(seen[1].at - seen[0].at >= BASE.mul_f64(0.8));
    assert!(seen[2].at - seen[1].at >= (BASE * 2).mul_f64(0.8));
}

#[tokio::test]
async fn invalid_argument_is_sent_once() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [
            GrpcReply::Status(Code::InvalidArgument, "name: must not be empty"),
            GrpcReply::Status(Code::InvalidArgument, "name: must not be empty"),
        ],
    );
    let (mut grpc, gates) = client(&server, RateLimitBackoffLayer::new());
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(status.message(), "name: must not be empty");
    assert_eq!(server.seen(SAY).len(), 1);
    assert!(gates.is_empty());
}

#[tokio::test]
async fn grpc_retry_pushback_ms_is_honoured() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [GrpcReply::Pushback(Code::Unavailable, "restarting", 600)],
    );
    let (mut grpc, _) = client(&server, RateLimitBackoffLayer::new());
    call(&mut grpc, SAY, req()).await.unwrap();
    let seen = server.seen(SAY);
    assert_eq!(seen.len(), 2);
    // The server's clock: the retry came no sooner than the pushback (far above the 40 ms
    // backoff).
    assert!(seen[1].at - seen[0].at >= Duration::from_millis(600));
    assert!(seen.iter().all(|s| s.request == req()));
}

#[tokio::test]
async fn negative_pushback_is_not_retried() {
    let server = GrpcServer::start().await;
    server.script(SAY, [GrpcReply::Pushback(Code::Unavailable, "go away", -1)]);
    let (mut grpc, _) = client(&server, RateLimitBackoffLayer::new());
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.seen(SAY).len(), 1);
}

#[tokio::test]
async fn resource_exhausted_closes_the_method_while_another_flows() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [GrpcReply::Pushback(
            Code::ResourceExhausted,
            "quota exceeded",
            1000,
        )],
    );
    let (grpc, gates) = client(&server, RateLimitBackoffLayer::new());
    let mut first = grpc.clone();
    let first = tokio::spawn(async move { call(&mut first, SAY, req()).await });
    while gates.is_empty() {
        tokio::task::yield_now().await;
    }
    // A second call to the same method waits at the method's gate ...
    let mut second = grpc.clone();
    let second = tokio::spawn(async move { call(&mut second, SAY, req()).await });
    // ... while another method flows.
    let mut other = grpc.clone();
    for _ in 0..3 {
        call(&mut other, OTHER, req()).await.unwrap();
    }
    first.await.unwrap().unwrap();
    second.await.unwrap().unwrap();

    let say = server.seen(SAY);
    let others = server.seen(OTHER);
    assert_eq!(
        say.len(),
        3,
        "the rejection, then the retry and the held call"
    );
    assert_eq!(others.len(), 3);
    let window_end = say[0].at + Duration::from_millis(1000);
    assert!(say[1..].iter().all(|s| s.at >= window_end));
    assert!(others.iter().all(|s| s.at < window_end));
    assert!(say.iter().all(|s| s.request == req()));
}

#[tokio::test]
async fn a_closed_method_fails_fast_with_fail_fast() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [GrpcReply::Pushback(
            Code::ResourceExhausted,
            "quota exceeded",
            20_000,
        )],
    );
    let (mut grpc, gates) = client(&server, RateLimitBackoffLayer::new().fail_fast());
    // The hint (20 s) is above max_retry_after (5 s): returned at once, for the caller to
    // schedule.
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(gates.len(), 1);
    // The method is closed: the next call never reaches the server.
    let held = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(held.code(), Code::ResourceExhausted, "{held:?}");
    assert_eq!(server.seen(SAY).len(), 1);
    // Another method is not affected.
    call(&mut grpc, OTHER, req()).await.unwrap();
    assert_eq!(server.seen(OTHER).len(), 1);
}

// ---------------------------------------------------------------- gRPC semantics

/// A plain tonic client, no stack: what tonic itself hands its caller.
fn plain(server: &GrpcServer) -> tonic::client::Grpc<Channel> {
    tonic::client::Grpc::new(Channel::from_shared(server.url()).unwrap().connect_lazy())
}

const DETAILS: &[u8] = b"\x08\x03\x12\x0bname: empty\x1a\x07\x0a\x05field";

fn rich(code: Code, in_trailers: bool) -> RichStatus {
    RichStatus {
        details: DETAILS,
        metadata: &[
            ("x-debug-id", "dbg-7f3a"),
            ("x-trace-bin", "\u{0}\u{1}\u{2}"),
        ],
        in_trailers,
        ..RichStatus::new(code, "name: must not be empty")
    }
}

#[tokio::test]
async fn rich_details_and_trailing_metadata_reach_the_caller_as_with_plain_tonic() {
    for in_trailers in [false, true] {
        let server = GrpcServer::start().await;
        let reply = || GrpcReply::Rich(rich(Code::InvalidArgument, in_trailers));
        server.script(SAY, [reply(), reply()]);
        let (mut grpc, _) = client(&server, RateLimitBackoffLayer::new());
        let through_stack = call(&mut grpc, SAY, req()).await.unwrap_err();
        let bare = call(&mut plain(&server), SAY, req()).await.unwrap_err();
        for status in [&through_stack, &bare] {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            assert_eq!(status.message(), "name: must not be empty");
            assert_eq!(status.details(), DETAILS, "{in_trailers}");
            assert_eq!(status.metadata().get("x-debug-id").unwrap(), "dbg-7f3a");
            let bin = status.metadata().get_bin("x-trace-bin").unwrap();
            assert_eq!(&bin.to_bytes().unwrap()[..], b"\0\x01\x02");
        }
        assert_eq!(server.seen(SAY).len(), 2, "once each");
    }
}

#[tokio::test]
async fn an_unparsable_pushback_is_a_refusal() {
    let server = GrpcServer::start().await;
    let refused = RichStatus {
        pushback: Some("soon"),
        ..RichStatus::new(Code::Unavailable, "restarting")
    };
    server.script(SAY, [GrpcReply::Rich(refused)]);
    let (mut grpc, _) = client(&server, RateLimitBackoffLayer::new());
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "soon",
        "the caller sees the server's refusal"
    );
    assert_eq!(server.seen(SAY).len(), 1, "not retried");
}

#[tokio::test]
async fn the_deadline_covers_every_attempt_and_the_call_ends_with_deadline_exceeded() {
    let server = GrpcServer::start().await;
    let pushback = Duration::from_millis(500);
    server.script(
        SAY,
        (0..10).map(|_| GrpcReply::Pushback(Code::Unavailable, "restarting", 500)),
    );
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::new().base_delay(BASE))
                .max_retries(10),
        )
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    let mut grpc = tonic::client::Grpc::new(stack);
    let deadline = Duration::from_millis(1200);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(req());
    request.set_timeout(deadline);
    let status = grpc
        .unary(
            request,
            http::uri::PathAndQuery::from_static(SAY),
            tonic_prost::ProstCodec::<SayRequest, crate::support::grpc::SayReply>::default(),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");

    // What the server saw: every attempt carried the time that was left, each one at least a
    // pushback less than the one before, all within the one deadline.
    let seen = server.seen(SAY);
    let left: Vec<Duration> = seen.iter().map(|s| s.timeout().unwrap()).collect();
    assert!(left.len() >= 2, "{left:?}");
    assert!(left[0] <= deadline, "{left:?}");
    for pair in left.windows(2) {
        assert!(pair[0] >= pair[1] + pushback, "{left:?}");
    }
    // No attempt started once the deadline had passed, and none was begun whose wait would
    // end past it: 1.2 s holds at most three attempts 500 ms apart.
    assert!(
        left.iter().all(|l| !l.is_zero()) && left.len() <= 3,
        "{left:?}"
    );
    assert!(seen.iter().all(|s| s.request == req()));
}

#[tokio::test]
async fn resource_exhausted_in_trailers_closes_the_method_for_its_pushback() {
    let server = GrpcServer::start().await;
    let limited = RichStatus {
        pushback: Some("800"),
        in_trailers: true,
        ..RichStatus::new(Code::ResourceExhausted, "quota exceeded")
    };
    server.script(SAY, [GrpcReply::Rich(limited)]);
    let (mut grpc, gates) = client(&server, RateLimitBackoffLayer::new());

    // Headers came first: the call was committed, so it is not retried ...
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(server.seen(SAY).len(), 1);
    // ... but the gate learnt from the trailers, as from a trailers-only rejection.
    assert_eq!(gates.len(), 1);

    // The next call, made at once, waits at the method's gate for the pushback.
    call(&mut grpc, SAY, req()).await.unwrap();
    let seen = server.seen(SAY);
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].at - seen[0].at >= Duration::from_millis(800),
        "arrived {:?} after the rejection",
        seen[1].at - seen[0].at
    );
    // Its answer (a message) opened the gate again.
    assert_eq!(gates.len(), 0);
    // Another method was never held.
    call(&mut grpc, OTHER, req()).await.unwrap();
}

// The scripted gRPC server and a bare tonic channel, with ErrorDecodeLayer in between.

#[tokio::test]
async fn decode_layer_keeps_grpc_codes() {
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        [
            GrpcReply::Pushback(Code::Unavailable, "restarting", 1500),
            GrpcReply::Status(Code::InvalidArgument, "bad name"),
        ],
    );
    let channel = Channel::from_shared(server.url()).unwrap().connect_lazy();
    let stack = tower::ServiceBuilder::new()
        .layer(tower_api_retry::ErrorDecodeLayer::new())
        .service(channel);
    let mut grpc = tonic::client::Grpc::new(stack);
    let req = || SayRequest {
        name: "ada".into(),
        payload: vec![1, 2, 3],
    };

    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "restarting");
    let status = call(&mut grpc, SAY, req()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let ok = call(&mut grpc, SAY, req()).await.unwrap();
    assert_eq!(ok.message, "hello ada");
    assert_eq!(server.seen(SAY).len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_deadline_that_runs_out_during_an_attempt_is_deadline_exceeded_every_time() {
    // A server that answers after 1 s, whatever the call's deadline; 16 calls at once with
    // 300 ms to live, set on the layer and then by tonic's `set_timeout`.
    let server = GrpcServer::start().await;
    server.script(
        SAY,
        (0..32).map(|_| GrpcReply::Slow(Duration::from_secs(1))),
    );
    let deadline = Duration::from_millis(300);
    for by_layer in [true, false] {
        let retry = if by_layer {
            RetryLayer::new().deadline(deadline)
        } else {
            RetryLayer::new()
        };
        let stack = ServiceBuilder::new()
            .layer(ApiContractLayer::new().retry(retry))
            .service(server.in_memory_channel());
        let calls = (0..16).map(|_| {
            let mut grpc = tonic::client::Grpc::new(stack.clone());
            async move {
                grpc.ready().await.unwrap();
                let mut request = tonic::Request::new(req());
                if !by_layer {
                    request.set_timeout(deadline);
                }
                let start = tokio::time::Instant::now();
                let status = grpc
                    .unary(
                        request,
                        http::uri::PathAndQuery::from_static(SAY),
                        tonic_prost::ProstCodec::<SayRequest, crate::support::grpc::SayReply>::default(),
                    )
                    .await
                    .unwrap_err();
                (status, start.elapsed())
            }
        });
        for (status, took) in futures_util::future::join_all(calls).await {
            assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
            assert_eq!(took, deadline, "at the deadline");
        }
    }
    assert_eq!(server.seen(SAY).len(), 32, "one attempt a call");
}
