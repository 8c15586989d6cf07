//! End to end with axum: (a) the proxy pattern, an axum handler that forwards its streaming
//! request body through the stack to an upstream API and maps the typed error to a response
//! for its own caller; (b) the layers wrapped around an axum `Router` used in-process as a
//! tower service.

use axum::{
    Json, Router,
    extract::State,
    response::{IntoResponse, Response},
    routing::get,
};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::json;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::{
    Attempts, Disposition, Error, ErrorCode, ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer,
    ServiceBuilderExt,
};

/// How a service maps the crate's typed error to a response for its own caller: the status
/// the upstream answered (or 429 for a closed gate, 502 for a transport failure), and the
/// second page's envelope, so the caller can branch on `code` too.
fn error_response(err: &Error) -> Response {
    let status = err.status().unwrap_or(if err.is_gate_closed() {
        StatusCode::TOO_MANY_REQUESTS
    } else {
        StatusCode::BAD_GATEWAY
    });
    let mut body = json!({"code": err.code().as_str(), "message": err.message()});
    if let Some(fix) = err.fix() {
        body["fix"] = json!(fix);
    }
    let mut res = (status, Json(body)).into_response();
    if let Some(after) = err.retry_after() {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        res.headers_mut()
            .insert(http::header::RETRY_AFTER, secs.to_string().parse().unwrap());
    }
    res
}

#[cfg(feature = "axum")]
mod proxy {
    use super::*;
    use crate::support::{Emulator, Reply, checksum};
    use axum::body::Body;
    use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
    use hyper_util::{
        client::legacy::{Client, connect::HttpConnector},
        rt::TokioExecutor,
    };
    use std::convert::Infallible;
    use tower_api_retry::backoff::Backoff;

    type Upstream = tower_api_retry::ApiContract<Client<HttpConnector, Body>>;

    #[derive(Clone)]
    struct Proxy {
        upstream: Upstream,
        base: String,
    }

    /// Forwards `/proxy/{rest}` to the upstream's `/{rest}`, body streamed (and replayed by
    /// the retry layer from the copy it captures while streaming).
    async fn forward(State(proxy): State<Proxy>, req: Request<Body>) -> Response {
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path().strip_prefix("/proxy").unwrap_or("/");
        let query = parts
            .uri
            .query()
            .map(|q| format!("?{q}"))
            .unwrap_or_default();
        parts.uri = format!("{}{path}{query}", proxy.base).parse().unwrap();
        parts.headers.remove(http::header::HOST);
        match proxy
            .upstream
            .oneshot(Request::from_parts(parts, body))
            .await
        {
            Ok(res) => res.map(Body::new),
            Err(err) => error_response(&err),
        }
    }

    async fn start_proxy(upstream: &Emulator) -> String {
        let client = Client::builder(TokioExecutor::new()).build_http::<Body>();
        let state = Proxy {
            upstream: ServiceBuilder::new()
                .layer(
                    RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(20))),
                )
                .layer(RateLimitBackoffLayer::new())
                .layer(ErrorDecodeLayer::new())
                .service(client),
            base: upstream.url(""),
        };
        let app = Router::new()
            .route("/proxy/{*rest}", axum::routing::any(forward))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/proxy")
    }

    fn chunks() -> Vec<Bytes> {
        (0..16u8)
            .map(|i| Bytes::from(vec![b'a' + i; 1024 + usize::from(i)]))
            .collect()
    }

    /// The caller sends a chunked (streaming) body to the proxy.
    fn streaming(
        method: &str,
        url: String,
        key: Option<&str>,
    ) -> Request<BoxBody<Bytes, Infallible>> {
        let frames = chunks()
            .into_iter()
            .map(|c| Ok::<_, Infallible>(http_body::Frame::data(c)));
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let mut req = Request::builder().method(method).uri(url);
        if let Some(key) = key {
            req = req.header("idempotency-key", key);
        }
        req.body(BodyExt::boxed(body)).unwrap()
    }

    fn caller() -> Client<HttpConnector, BoxBody<Bytes, Infallible>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    #[tokio::test]
    async fn proxied_503_is_retried_with_the_body_replayed() {
        let upstream = Emulator::start().await;
        let proxy = start_proxy(&upstream).await;
        upstream.script(
            "/api/items",
            [
                Reply::detail(503, "Server restarting"),
                Reply::detail(503, "Server restarting"),
            ],
        );
        let res = caller()
            .request(streaming(
                "POST",
                format!("{proxy}/api/items?x=1"),
                Some("op-1"),
            ))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let whole: Vec<u8> = chunks().concat();
        let seen = upstream.seen("/api/items");
        assert_eq!(seen.len(), 3);
        for s in &seen {
            assert_eq!((s.body_len, s.body_sum), (whole.len(), checksum(&whole)));
            assert_eq!(s.query.as_deref(), Some("x=1"));
            assert_eq!(s.headers["idempotency-key"], "op-1");
        }
    }

    #[tokio::test]
    async fn proxied_errors_reach_the_caller_typed() {
        let upstream = Emulator::start().await;
        let proxy = start_proxy(&upstream).await;
        upstream.always(
            "/api/connect",
            [Reply::envelope(
                409,
                "NO_ACTIVE_USER",
                "The team has no active user",
                Some("Add or reactivate a team member"),
            )],
        );
        // The caller wraps its own client in the crate's stack too, and decodes the proxy's
        // envelope.
        let err = ServiceBuilder::new()
            .api_contract()
            .service(caller())
            .oneshot(streaming("POST", format!("{proxy}/api/connect"), None))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::CONFLICT));
        assert_eq!(err.code(), &ErrorCode::NoActiveUser);
        assert_eq!(err.disposition(), Disposition::NeedsHuman);
        assert_eq!(err.fix(), Some("Add or reactivate a team member"));
        assert_eq!(upstream.seen("/api/connect").len(), 1);

        // An unkeyed POST whose connection is reset is not resent; the caller gets a 502.
        upstream.script("/api/reset", [Reply::Reset]);
        let res = caller()
            .request(streaming("POST", format!("{proxy}/api/reset"), None))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["code"], "UNAVAILABLE");
        assert_eq!(upstream.seen("/api/reset").len(), 1);
    }
}

// (b) The stack around an axum Router, in process: no sockets, so paused time is exact.

#[derive(Clone, Default)]
struct App {
    calls: Arc<AtomicU32>,
    arrivals: Arc<Mutex<Vec<(&'static str, Instant)>>>,
}

impl App {
    fn arrive(&self, route: &'static str) -> u32 {
        self.arrivals.lock().unwrap().push((route, Instant::now()));
        self.calls.fetch_add(1, Ordering::SeqCst)
    }
    fn arrivals(&self, route: &str) -> Vec<Instant> {
        let log = self.arrivals.lock().unwrap();
        log.iter()
            .filter(|(r, _)| *r == route)
            .map(|(_, t)| *t)
            .collect()
    }
}

fn router(app: App) -> Router {
    Router::new()
        .route(
            "/flaky",
            get(|State(app): State<App>| async move {
                if app.arrive("/flaky") < 2 {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Json(json!({"detail": "restarting"})),
                    )
                        .into_response()
                } else {
                    Json(json!({"ok": true})).into_response()
                }
            }),
        )
        .route(
            "/missing",
            get(|State(app): State<App>| async move {
                app.arrive("/missing");
                (
                    StatusCode::NOT_FOUND,
                    Json(json!({"detail": "Space not found"})),
                )
            }),
        )
        .route(
            "/limited",
            get(|State(app): State<App>| async move {
                if app.arrive("/limited") == 0 {
                    let body =
                        json!({"code": "RESOURCE_EXHAUSTED", "message": "Too many requests"});
                    (
                        [(http::header::RETRY_AFTER, "2")],
                        (StatusCode::TOO_MANY_REQUESTS, Json(body)),
                    )
                        .into_response()
                } else {
                    Json(json!({"ok": true})).into_response()
                }
            }),
        )
        .with_state(app)
}

fn get_req(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn layers_around_a_router_retry_a_503_and_decode_a_404() {
    let app = App::default();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(router(app.clone()));

    let res = svc.clone().oneshot(get_req("/flaky")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(Attempts::of(&res), 3);
    let at = app.arrivals("/flaky");
    assert_eq!(at.len(), 3);
    // The documented schedule, on tokio's paused clock: 1 s, then 2 s, each plus up to 20 %.
    assert!(at[1] - at[0] >= Duration::from_secs(1));
    assert!(at[1] - at[0] <= Duration::from_millis(1201));
    assert!(at[2] - at[1] >= Duration::from_secs(2));
    assert!(at[2] - at[1] <= Duration::from_millis(2401));

    let err = svc.clone().oneshot(get_req("/missing")).await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(err.code(), &ErrorCode::NotFound);
    assert_eq!(err.message(), "Space not found");
    assert_eq!(err.disposition(), Disposition::FixRequest);
    assert_eq!(app.arrivals("/missing").len(), 1);

    // A route the router does not have: axum's own empty 404, decoded by status.
    let err = svc.clone().oneshot(get_req("/nowhere")).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::NotFound);
}

#[tokio::test(start_paused = true)]
async fn one_line_stack_around_a_router_honours_retry_after() {
    let app = App::default();
    let svc = ServiceBuilder::new()
        .api_contract()
        .service(router(app.clone()));
    let res = svc.clone().oneshot(get_req("/limited")).await.unwrap();
    assert_eq!(Attempts::of(&res), 2);
    let at = app.arrivals("/limited");
    assert_eq!(at.len(), 2);
    assert!(at[1] - at[0] >= Duration::from_secs(2));
    // The mapping a service would use for its own callers.
    let err = svc.oneshot(get_req("/missing")).await.unwrap_err();
    let res = error_response(&err);
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}
