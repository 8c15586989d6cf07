//! What the benches share: the cheapest inner services, a request, and a gate map with
//! 10,000 closed keys.
#![allow(dead_code, unreachable_pub)] // each bench uses its own part

use http::{Request, Response, StatusCode};
use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};
use tower::{Layer, Service};
use tower_api_retry::{
    ApiError, Error, ErrorCode,
    rate_limit::{RateLimitBackoffLayer, RateLimitGates},
};

/// The cheapest possible inner service: answers at once.
#[derive(Clone)]
pub struct Bare;

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
pub struct Limited;

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

/// Calls `svc` and polls the future once with a no-op waker: `true` for an `Ok` at once.
pub fn once<S: Service<Request<()>>>(svc: &mut S, req: Request<()>) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    let fut = pin!(svc.call(req));
    matches!(fut.poll(&mut cx), Poll::Ready(Ok(_)))
}

/// The benchmarked request: a path of three segments and a query.
pub fn request() -> Request<()> {
    Request::get("https://api.example.com/v1/tasks/list?token=abc")
        .body(())
        .unwrap()
}

/// Closes 10,000 keys in `gates`, none of them `request()`'s nor of its host.
pub fn close_10k(gates: &RateLimitGates) {
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
