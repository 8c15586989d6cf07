//! The rate-limit gate's cost on the success path, against the bare service in the same run.
//!
//! `cargo bench --bench gate -- --warm-up-time 1 --measurement-time 3`
//!
//! - `bare`: the inner service alone.
//! - `gated/no_key_closed`: the fast path (one atomic load, the key hash, an `Arc` clone).
//! - `gated/10k_closed`: an open key while 10,000 other keys are closed (lock + lookup).
//! - `*_2_threads`: the same while a second thread hammers a clone of the same service.

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

mod support;

use support::{Bare, close_10k, once, request};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use http::Request;
use std::{
    hint::black_box,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};
use tower::{Layer, Service};
use tower_api_retry::rate_limit::{Key, RateLimitBackoffLayer, RateLimitGates};

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
