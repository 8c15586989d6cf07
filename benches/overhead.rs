//! In-process success-path overhead: bare service, each layer alone, the full stack, and
//! `tower::retry::Retry` with a minimal cloning policy, all in one run.
//!
//! ```sh
//! cargo bench --bench overhead
//! ```
//!
//! The inner service answers 200 at once, so what is measured is the layers' own cost per
//! request (request construction is the same in every case). Compare each to `bare`, and the
//! full stack's overhead to `tower_retry`'s.

#![allow(missing_docs)]

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::Full;
use std::{convert::Infallible, hint::black_box, time::Instant};
use tower::{Service, ServiceBuilder, ServiceExt, retry::Policy};
use tower_api_retry::{ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer};

type Req = Request<Full<Bytes>>;

fn request() -> Req {
    Request::get("http://api.example.com/api/spaces/s1?page=2")
        .header("authorization", "Bearer convo_bench")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

fn server()
-> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(|_req: Req| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(
            b"{\"ok\":true}",
        ))))
    })
}

/// The smallest useful `tower::retry` policy: clone every request, retry on error, at most 3.
#[derive(Clone)]
struct CloningPolicy(usize);

impl<E> Policy<Req, Response<Full<Bytes>>, E> for CloningPolicy {
    type Future = std::future::Ready<()>;
    fn retry(
        &mut self,
        _req: &mut Req,
        result: &mut Result<Response<Full<Bytes>>, E>,
    ) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(std::future::ready(()))
            }
            _ => None,
        }
    }
    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        let mut out = Request::new(req.body().clone());
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.version_mut() = req.version();
        *out.headers_mut() = req.headers().clone();
        Some(out)
    }
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
            async move {
                let start = Instant::now();
                for _ in 0..iters {
                    let svc = svc.ready().await.unwrap();
                    black_box(svc.call(request()).await.unwrap());
                }
                start.elapsed()
            }
        })
    });
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
criterion_main!(benches);
