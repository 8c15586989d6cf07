//! Real-socket success path: a hyper-util client to an axum server on loopback, bare versus
//! the full stack (retry, rate-limit gate, decode), in one run: same runtime, same server,
//! same keep-alive connection pool.
//!
//! ```sh
//! cargo bench --bench loopback -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Each request is a GET with a `Full<Bytes>` body, and the whole 200 response body is read.
//! The two cases are interleaved request by request (each times only its own requests), so
//! load from other processes affects both alike. Compare `full_stack` to `bare`: the target is
//! within 2 %.

#![allow(missing_docs)]

use axum::{Json, Router, routing::get};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    hint::black_box,
    net::SocketAddr,
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer};

type Req = Request<Full<Bytes>>;

/// Connections the server accepted: with keep-alive working, one (or very few).
static CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

async fn start_server() -> SocketAddr {
    let app = Router::new().route(
        "/api/spaces/{id}",
        get(|| async { Json(serde_json::json!({"id": "s1", "status": "active"})) }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |_| {
        CONNECTIONS.fetch_add(1, Ordering::Relaxed);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn send<S, B>(svc: &mut S, url: &str)
where
    S: Service<Req, Response = http::Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let req = Request::get(url)
        .header("authorization", "Bearer convo_bench")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.ready().await.unwrap().call(req).await.unwrap();
    black_box(res.into_body().collect().await.unwrap());
    // hyper-util hands the connection back to its pool from a spawned task: let it run, so the
    // next request reuses the kept-alive connection instead of racing a new connect.
    tokio::task::yield_now().await;
}

/// Times the requests of `measured` only, but sends one request through `other` between
/// any two of them (alternating which goes first), so both cases see the same machine load
/// at a fine grain: on a shared machine the two measurements drift together.
fn run<M, N, BM, BN>(
    rt: &tokio::runtime::Runtime,
    c: &mut Criterion,
    name: &str,
    url: &str,
    measured: impl Fn() -> M,
    other: impl Fn() -> N,
) where
    M: Service<Req, Response = http::Response<BM>> + Send + 'static,
    M::Error: std::fmt::Debug,
    M::Future: Send,
    BM: http_body::Body + Send,
    BM::Error: std::fmt::Debug,
    N: Service<Req, Response = http::Response<BN>> + Send + 'static,
    N::Error: std::fmt::Debug,
    N::Future: Send,
    BN: http_body::Body + Send,
    BN::Error: std::fmt::Debug,
{
    c.bench_with_input(BenchmarkId::new("loopback", name), &(), |b, _| {
        b.to_async(rt).iter_custom(|iters| {
            let (mut m, mut n) = (measured(), other());
            let url = url.to_owned();
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    if i % 2 == 1 {
                        send(&mut n, &url).await;
                    }
                    let start = Instant::now();
                    send(&mut m, &url).await;
                    total += start.elapsed();
                    if i % 2 == 0 {
                        send(&mut n, &url).await;
                    }
                }
                total
            }
        })
    });
}

fn loopback(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(start_server());
    let url = format!("http://{addr}/api/spaces/s1?page=2");
    // One client (one connection pool) shared by both cases.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    // Open the keep-alive connection before measuring.
    rt.block_on(async {
        let req = Request::get(&url).body(Full::new(Bytes::new())).unwrap();
        let res = client.clone().oneshot(req).await.unwrap();
        res.into_body().collect().await.unwrap();
    });

    let bare = || client.clone();
    let full_stack = || {
        ServiceBuilder::new()
            .layer(RetryLayer::new())
            .layer(RateLimitBackoffLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(client.clone())
    };
    run(&rt, c, "bare", &url, bare, full_stack);
    run(&rt, c, "full_stack", &url, full_stack, bare);
    // The noise floor: bare measured again the same way. Its distance from `bare` is what
    // this machine's load alone does to the comparison.
    run(&rt, c, "bare_again", &url, bare, full_stack);
    println!(
        "loopback: the server accepted {} connection(s)",
        CONNECTIONS.load(Ordering::Relaxed)
    );
}

criterion_group!(benches, loopback);
criterion_main!(benches);
