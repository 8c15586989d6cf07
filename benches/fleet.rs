//! Gates shared on Redis: what they cost on the success path, and what a rejection costs.
//!
//! `cargo bench --bench fleet --features redis -- --warm-up-time 1 --measurement-time 3`
//!
//! Needs `redis-server` (`apt-get install -y redis-server`): the bench starts one on a free
//! loopback port, or uses `REDIS_URL`.
//!
//! - `bare`: the inner service alone.
//! - `success/memory` and `success/redis`: a request through the rate-limit layer with no
//!   key closed, on local gates and on gates shared through Redis (the success path never
//!   touches Redis: the two should be equal).
//! - `redis/ping`: one `PING` round trip on loopback, for scale.
//! - `rejection/propagation`: one process sees a `429` on a new path; the time until a
//!   second process (other gates, other connections) has that path closed: the close
//!   script, its publication and the other process applying it.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

#[path = "../tests/it/support/external.rs"]
mod external;
#[path = "../tests/it/support/redis.rs"]
mod redis_server;
mod support;

use support::{Bare, Limited, once, request};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use std::{
    hint::black_box,
    time::{Duration, Instant},
};
use tower::{Layer, Service, ServiceExt};
use tower_api_retry::rate_limit::{Key, RateLimitBackoffLayer, RateLimitGates, RedisStore};

/// A URL on its own host for every `n`: rejections on two paths of one host within a
/// second would make the limit the host's, and hold every later path of it.
fn path(n: u64) -> String {
    format!("https://h{n}.example.com/v1/tasks")
}

fn bench_success<S>(c: &mut Criterion, name: &str, mut svc: S)
where
    S: Service<Request<()>>,
{
    c.bench_function(name, |b| {
        b.iter_batched(
            request,
            |req| black_box(once(&mut svc, req)),
            BatchSize::SmallInput,
        )
    });
}

fn fleet(c: &mut Criterion) {
    let own;
    let url = match std::env::var("REDIS_URL") {
        Ok(url) => url,
        Err(_) => match redis_server::RedisServer::start() {
            Some(server) => {
                own = server;
                own.url()
            }
            None => return,
        },
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let _enter = runtime.enter();
    let share = || {
        let store = RedisStore::new(&url, "bench")
            .unwrap()
            .resync_interval(Duration::from_secs(3600));
        let gates = RateLimitGates::with_max_keys(1_000_000)
            .shared(store)
            .unwrap();
        let start = Instant::now();
        while !gates.is_shared() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "Redis never answered"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        gates
    };
    let (a, b) = (share(), share());

    bench_success(c, "bare", Bare);
    bench_success(
        c,
        "success/memory",
        RateLimitBackoffLayer::new().layer(Bare),
    );
    bench_success(
        c,
        "success/redis",
        RateLimitBackoffLayer::new().gates(a.clone()).layer(Bare),
    );

    let client = redis_server_client(&url);
    let mut conn = runtime
        .block_on(client.get_multiplexed_async_connection())
        .unwrap();
    c.bench_function("redis/ping", |bench| {
        bench.iter(|| {
            runtime.block_on(async {
                let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
                black_box(pong)
            })
        })
    });

    let closer = RateLimitBackoffLayer::new().gates(a.clone()).layer(Limited);
    let mut n = 0u64;
    c.bench_function("rejection/propagation", |bench| {
        bench.iter_custom(|iters| {
            runtime.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let uri = path(n);
                    let key = Key::from_uri(&uri.parse().unwrap());
                    let req = Request::get(uri.as_str()).body(()).unwrap();
                    let start = Instant::now();
                    let _ = closer.clone().oneshot(req).await;
                    while b.time_left(key).is_none() {
                        tokio::task::yield_now().await;
                    }
                    total += start.elapsed();
                }
                total
            })
        })
    });
}

fn redis_server_client(url: &str) -> redis::Client {
    redis::Client::open(url).unwrap()
}

criterion_group!(benches, fleet);
criterion_main!(benches);
