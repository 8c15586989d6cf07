//! In-process success-path overhead: bare service, each layer alone, the full stack, and
//! `tower::retry::Retry` with a minimal cloning policy, all in one run.
//!
//! ```sh
//! cargo bench --bench overhead
//! ```
//!
//! The inner service answers 200 at once, so what is measured is the layers' own cost per
//! request (request construction is the same in every case). Criterion measures each
//! case on its own; then an interleaved summary runs all cases in turn, 32 requests at a time,
//! and prints each one's overhead over `bare` and the full stack's overhead as a ratio of
//! `tower::retry`'s: that ratio is the figure to quote, as load changes hit every case alike.

#![allow(missing_docs)]

mod support;

use criterion::{BenchmarkId, Criterion, criterion_group};
use std::{
    hint::black_box,
    time::{Duration, Instant},
};
use support::{CloningPolicy, Req, full_request as request, server};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer};

/// Requests per chunk of the interleaved summary.
const CHUNK: u64 = 32;

async fn drive<S>(svc: &mut S, n: u64) -> Duration
where
    S: Service<Req>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..n {
        let svc = svc.ready().await.unwrap();
        black_box(svc.call(request()).await.unwrap());
    }
    start.elapsed()
}

fn run<S>(rt: &tokio::runtime::Runtime, c: &mut Criterion, name: &str, make: impl Fn() -> S)
where
    S: Service<Req> + Send + 'static,
    S::Error: std::fmt::Debug,
    S::Future: Send,
{
    c.bench_with_input(BenchmarkId::new("success_path", name), &(), |b, _| {
        b.to_async(rt).iter_custom(|iters| {
            let mut svc = make();
            async move { drive(&mut svc, iters).await }
        })
    });
}

/// One case of the interleaved summary: runs `n` requests, returns the time they took.
type Case<'a> = (&'static str, Box<dyn FnMut(u64) -> Duration + 'a>);

fn case<'a, S>(rt: &'a tokio::runtime::Runtime, name: &'static str, mut svc: S) -> Case<'a>
where
    S: Service<Req> + 'a,
    S::Error: std::fmt::Debug,
{
    (name, Box::new(move |n| rt.block_on(drive(&mut svc, n))))
}

/// The same cases again, interleaved chunk by chunk (32 requests of each case in turn, many
/// rounds), so that a change of machine load hits every case alike; then the overhead of each
/// over `bare` and the full stack's overhead as a ratio of `tower::retry`'s.
fn interleaved_summary() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut cases: Vec<Case<'_>> = vec![
        case(&rt, "bare", server()),
        case(
            &rt,
            "decode",
            ServiceBuilder::new()
                .layer(ErrorDecodeLayer::new())
                .service(server()),
        ),
        case(
            &rt,
            "rate_limit",
            ServiceBuilder::new()
                .layer(RateLimitBackoffLayer::new())
                .layer(ErrorDecodeLayer::new())
                .service(server()),
        ),
        case(
            &rt,
            "retry",
            ServiceBuilder::new()
                .layer(RetryLayer::new())
                .layer(ErrorDecodeLayer::new())
                .service(server()),
        ),
        case(
            &rt,
            "full_stack",
            ServiceBuilder::new()
                .layer(RetryLayer::new())
                .layer(RateLimitBackoffLayer::new())
                .layer(ErrorDecodeLayer::new())
                .service(server()),
        ),
        case(
            &rt,
            "tower_retry",
            tower::retry::Retry::new(CloningPolicy(3), server()),
        ),
    ];
    let rounds: u64 = 4_000;
    let mut totals = vec![Duration::ZERO; cases.len()];
    for (_, run) in cases.iter_mut() {
        run(CHUNK * 100); // warm up
    }
    for _ in 0..rounds {
        for (total, (_, run)) in totals.iter_mut().zip(cases.iter_mut()) {
            *total += run(CHUNK);
        }
    }
    let per = |d: Duration| d.as_secs_f64() * 1e9 / (rounds * CHUNK) as f64;
    let bare = per(totals[0]);
    let overhead = |name: &str| {
        let i = cases.iter().position(|(n, _)| *n == name).unwrap();
        per(totals[i]) - bare
    };
    println!(
        "\ninterleaved summary ({} requests per case, chunks of {CHUNK}):",
        rounds * CHUNK
    );
    for (i, (name, _)) in cases.iter().enumerate() {
        println!(
            "  {name:<12} {:>8.1} ns/request   overhead {:>+7.1} ns",
            per(totals[i]),
            per(totals[i]) - bare
        );
    }
    println!(
        "  full stack overhead / tower::retry overhead = {:.2}",
        overhead("full_stack") / overhead("tower_retry")
    );
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    run(&rt, c, "bare", server);
    run(&rt, c, "decode", || {
        ServiceBuilder::new()
            .layer(ErrorDecodeLayer::new())
            .service(server())
    });
    run(&rt, c, "rate_limit", || {
        ServiceBuilder::new()
            .layer(RateLimitBackoffLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(server())
    });
    run(&rt, c, "retry", || {
        ServiceBuilder::new()
            .layer(RetryLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(server())
    });
    run(&rt, c, "full_stack", || {
        ServiceBuilder::new()
            .layer(RetryLayer::new())
            .layer(RateLimitBackoffLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(server())
    });
    run(&rt, c, "tower_retry", || {
        tower::retry::Retry::new(CloningPolicy(3), server())
    });
}

criterion_group!(benches, overhead);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved_summary();
}
