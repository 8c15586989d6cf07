//! The rate-limit gate's cost on the success path, against the bare service in the same run.
//!
//! `cargo bench --bench gate -- --warm-up-time 1 --measurement-time 3`
//!
//! - `bare`: the inner service alone.
//! - `gated/no_key_closed`: the fast path (one atomic load, the key hash, an `Arc` clone).
//! - `gated/10k_closed`: an open key while 10,000 other keys are closed (lock + lookup).
//! - `*_2_threads`: the same while a second thread hammers a clone of the same service.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::{Request, Response, StatusCode};
use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    hint::black_box,
    pin::pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll, Waker},
    time::Duration,
};
use tower::{Layer, Service};
use tower_api_retry::{
    ApiError, Error, ErrorCode,
    rate_limit::{Key, RateLimitBackoffLayer, RateLimitGates},
};

/// The cheapest possible inner service: answers at once.
#[derive(Clone)]
struct Bare;

impl Service<Request<()>> for Bare {
    type Response = Response<()>;
    type Error = Infallible;
    type Future = Ready<Result<Response<()>, Infallible>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(())))
    }
}

/// Answers every request with a 429 and a one-hour `Retry-After`.
#[derive(Clone)]
struct Limited;

impl Service<Request<()>> for Limited {
    type Response = Response<()>;
    type Error = Error;
    type Future = Ready<Result<Response<()>, Error>>;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<()>) -> Self::Future {
        let api = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::ResourceExhausted,
            "slow down",
        )
        .with_retry_after(Duration::from_secs(3600));
        ready(Err(Error::from(api)))
    }
}

fn once<S: Service<Request<()>>>(svc: &mut S, req: Request<()>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let fut = pin!(svc.call(req));
    matches!(fut.poll(&mut cx), Poll::Ready(Ok(_)))
}

fn request() -> Request<()> {
    Request::get("https://api.example.com/v1/tasks/list?token=abc")
        .body(())
        .unwrap()
}

fn close_10k(gates: &RateLimitGates) {
    let mut closer = RateLimitBackoffLayer::new()
        .gates(gates.clone())
        .layer(Limited);
    for i in 0..10_000 {
        // Each on a host of its own: paths that differ by an id share a key, and rejections
        // on several paths of one host within a second close the whole host.
        let host: String = i
            .to_string()
            .bytes()
            .map(|d| char::from(b'a' + (d - b'0')))
            .collect();
        let req = Request::get(format!("https://{host}.example.com/v1/closed"))
            .body(())
            .unwrap();
        assert!(!once(&mut closer, req));
    }
    assert_eq!(gates.len(), 10_000);
}

fn bench<S>(c: &mut Criterion, name: &str, svc: S)
where
    S: Service<Request<()>> + Clone + Send + 'static,
{
    let mut s = svc.clone();
    c.bench_function(name, |b| {
        b.iter_batched(
            request,
            |req| black_box(once(&mut s, req)),
            BatchSize::SmallInput,
        )
    });
    // The same while a second thread calls a clone as fast as it can.
    let stop = Arc::new(AtomicBool::new(false));
    let (mut other, flag) = (svc.clone(), stop.clone());
    let hammer = std::thread::spawn(move || {
        let req = request();
        while !flag.load(Ordering::Relaxed) {
            black_box(once(&mut other, req.clone()));
        }
    });
    let mut s = svc;
    c.bench_function(&format!("{name}_2_threads"), |b| {
        b.iter_batched(
            request,
            |req| black_box(once(&mut s, req)),
            BatchSize::SmallInput,
        )
    });
    stop.store(true, Ordering::Relaxed);
    hammer.join().unwrap();
}

fn gate(c: &mut Criterion) {
    let req = request();
    c.bench_function("key/from_uri", |b| {
        b.iter(|| black_box(Key::from_uri(black_box(req.uri()))))
    });
    bench(c, "bare", Bare);
    bench(
        c,
        "gated/no_key_closed",
        RateLimitBackoffLayer::new().layer(Bare),
    );
    let gates = RateLimitGates::new();
    close_10k(&gates);
    bench(
        c,
        "gated/10k_closed",
        RateLimitBackoffLayer::new().gates(gates).layer(Bare),
    );
}

criterion_group!(benches, gate);
criterion_main!(benches);
