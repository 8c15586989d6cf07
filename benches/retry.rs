//! Success-path overhead of `RetryLayer`, against a bare in-process service and against
//! `tower::retry::Retry` with a minimal policy that clones the request, in one run.
//!
//! `cargo bench --bench retry -- --warm-up-time 1 --measurement-time 3`
#![allow(missing_docs)] // criterion_group! generates an undocumented fn.

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use std::{convert::Infallible, hint::black_box, time::Instant};
use tower::{Service, ServiceExt, service_fn};
use tower_api_retry::RetryLayer;

fn request() -> Request<Full<Bytes>> {
    Request::get("http://api.example.com/api/actors/agt_1?limit=10")
        .header("accept", "application/json")
        .header("user-agent", "bench/1")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

fn bare()
-> impl Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>, Error = Infallible> + Clone
{
    service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
    })
}

/// The least a `tower::retry` user writes: retry on error, clone the request.
#[derive(Clone)]
struct CloneRequests;

impl<Res, E> tower::retry::Policy<Request<Full<Bytes>>, Res, E> for CloneRequests {
    type Future = std::future::Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        result: &mut Result<Res, E>,
    ) -> Option<Self::Future> {
        result.is_err().then(|| std::future::ready(()))
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        *clone.extensions_mut() = req.extensions().clone();
        Some(clone)
    }
}

fn run<S>(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, make: impl Fn() -> S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<Full<Bytes>>> + 'static,
    S::Error: std::fmt::Debug,
{
    c.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let mut svc = make();
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let res = svc.ready().await.unwrap().call(request()).await.unwrap();
                    black_box(res);
                }
                start.elapsed()
            }
        })
    });
}

fn overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    run(c, &rt, "success/bare", bare);
    run(c, &rt, "success/RetryLayer", || {
        tower::Layer::layer(&RetryLayer::new(), bare())
    });
    run(c, &rt, "success/RetryLayer max_retries(0)", || {
        tower::Layer::layer(&RetryLayer::new().max_retries(0), bare())
    });
    run(c, &rt, "success/tower::retry", || {
        tower::retry::Retry::new(CloneRequests, bare())
    });
}

criterion_group!(benches, overhead);
criterion_main!(benches);
