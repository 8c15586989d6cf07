//! What the benches share: the cheapest inner services, the requests, a `tower::retry`
//! policy, the error bodies, and a gate map with 10,000 closed keys.
#![allow(dead_code, unreachable_pub)] // each bench uses its own part

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::{
    convert::Infallible,
    future::{Future, Ready, ready},
    pin::pin,
    task::{Context, Poll, Waker},
    time::Duration,
};
use tower::{Layer, Service, retry::Policy};
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

/// Every documented error body shape (name, status, body), and a proxy's HTML page.
pub const SHAPES: &[(&str, u16, &str)] = &[
    ("detail", 409, r#"{"detail": "Space is not active"}"#),
    (
        "structured_409",
        409,
        r#"{"error": "agent_connected", "message": "Agent agt_01HZX3 is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.", "agent_id": "agt_01HZX3"}"#,
    ),
    (
        "envelope",
        401,
        r#"{"code": "INVALID_API_KEY", "message": "The API key you sent is not recognized.", "fix": "Generate a new key in Settings → API Keys and update your config.", "details": {"keyPrefix": "mk_live"}}"#,
    ),
    (
        "mcp",
        403,
        r#"{"error": {"code": "PERMISSION_DENIED", "message": "Your key lacks the scope for this action.", "fix": "Use a key with the right scope; keep writes inside your task's subtree.", "details": {"nodeId": "node_42", "fieldName": "parentId"}}}"#,
    ),
    (
        "jsonrpc",
        400,
        r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Input validation error: 'title' is required", "data": {"fieldName": "title"}}}"#,
    ),
    (
        "junk_html",
        502,
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n",
    ),
];

/// A request with a body, as the HTTP clients send.
pub type Req = Request<Full<Bytes>>;

/// The success-path request: an `Authorization` header and a query string.
pub fn full_request() -> Req {
    Request::get("http://api.example.com/api/spaces/s1?page=2")
        .header("authorization", "Bearer convo_bench")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap()
}

/// An inner service that answers 200 with a small JSON body at once.
pub fn server()
-> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone + Send
{
    tower::service_fn(|_req: Req| {
        ready(Ok::<_, Infallible>(Response::new(Full::new(
            Bytes::from_static(b"{\"ok\":true}"),
        ))))
    })
}

/// The least a `tower::retry` user writes: clone every request, retry errors, at most 3 times.
#[derive(Clone)]
pub struct CloningPolicy(pub usize);

impl<E> Policy<Req, Response<Full<Bytes>>, E> for CloningPolicy {
    type Future = Ready<()>;
    fn retry(
        &mut self,
        _req: &mut Req,
        result: &mut Result<Response<Full<Bytes>>, E>,
    ) -> Option<Self::Future> {
        match result {
            Err(_) if self.0 > 0 => {
                self.0 -= 1;
                Some(ready(()))
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
        *out.extensions_mut() = req.extensions().clone();
        Some(out)
    }
}
