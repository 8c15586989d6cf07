//! `RetryOverride`: one request's retry policy, through the documented stack
//! (`ApiContractLayer`) over a hyper-util client against the emulated API, and over reqwest.
//! What happened is read from the server's own log.

use crate::support::{Emulator, Reply, checksum};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::time::Duration;
use tower::ServiceBuilder;
use tower::ServiceExt;
use tower_api_retry::{
    ApiContractLayer, Attempts, NotRetried, RetryLayer, RetryOverride, backoff::Backoff,
};

/// The first wait of the retry schedule (the documented 1 s, shrunk).
const BASE: Duration = Duration::from_millis(5);

type Stack = tower_api_retry::ApiContract<Client<HttpConnector, Full<Bytes>>>;

fn stack(retry: RetryLayer) -> Stack {
    let client = Client::builder(TokioExecutor::new()).build_http();
    ServiceBuilder::new()
        .layer(ApiContractLayer::new().retry(retry.backoff(Backoff::new().base_delay(BASE))))
        .service(client)
}

fn request(
    api: &Emulator,
    method: Method,
    path: &str,
    over: Option<RetryOverride>,
) -> Request<Full<Bytes>> {
    let mut req = Request::builder()
        .method(method)
        .uri(api.url(path))
        .body(Full::new(Bytes::from_static(
            b"{\"query\": \"open tickets\"}",
        )))
        .unwrap();
    if let Some(over) = over {
        req.extensions_mut().insert(over);
    }
    req
}

fn five_503s() -> [Reply; 5] {
    std::array::from_fn(|_| Reply::detail(503, "try again"))
}

#[tokio::test]
async fn no_retries_sends_once() {
    let api = Emulator::start().await;
    api.always("/api/status", [Reply::detail(503, "try again")]);
    let svc = stack(RetryLayer::new());

    let over = RetryOverride::no_retries();
    let err = svc
        .clone()
        .oneshot(request(&api, Method::GET, "/api/status", Some(over)))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.not_retried(), None); // passed straight through
    assert_eq!(api.seen("/api/status").len(), 1);

    // The next request, without the extension, has the layer's 3 retries.
    let err = svc
        .oneshot(request(&api, Method::GET, "/api/status", None))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 4);
    assert_eq!(api.seen("/api/status").len(), 5);
}

#[tokio::test]
async fn max_retries_fewer_or_more_than_the_layer() {
    let api = Emulator::start().await;
    let svc = stack(RetryLayer::new().max_retries(2));

    // Fewer: one retry.
    api.script("/api/fewer", five_503s());
    let over = RetryOverride::new().max_retries(1);
    let err = svc
        .clone()
        .oneshot(request(&api, Method::GET, "/api/fewer", Some(over)))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 2);
    assert!(matches!(
        err.not_retried(),
        Some(NotRetried::MaxRetries { max: 1 })
    ));
    assert_eq!(api.seen("/api/fewer").len(), 2);

    // More: five retries where the layer allows two; the sixth attempt succeeds.
    api.script("/api/more", five_503s());
    let over = RetryOverride::new().max_retries(5);
    let res = svc
        .oneshot(request(&api, Method::GET, "/api/more", Some(over)))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(Attempts::of(&res), 6);
    assert_eq!(api.seen("/api/more").len(), 6);
}

#[tokio::test]
async fn a_deadline_of_its_own() {
    let api = Emulator::start().await;

    // A deadline shorter than the first wait (5 ms): whenever the 503 comes back, no retry.
    api.script("/api/short", five_503s());
    let svc = stack(RetryLayer::new());
    let over = RetryOverride::new().deadline(Duration::from_millis(1));
    let err = svc
        .oneshot(request(&api, Method::GET, "/api/short", Some(over)))
        .await
        .unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.not_retried().map(NotRetried::as_str), Some("deadline"));
    assert_eq!(api.seen("/api/short").len(), 1);

    // No deadline, where the layer's would have stopped the retries.
    api.script("/api/none", five_503s());
    let svc = stack(
        RetryLayer::new()
            .max_retries(5)
            .deadline(Duration::from_millis(1)),
    );
    let over = RetryOverride::new().deadline(None);
    let res = svc
        .oneshot(request(&api, Method::GET, "/api/none", Some(over)))
        .await
        .unwrap();
    assert_eq!(Attempts::of(&res), 6);
}

#[tokio::test]
async fn a_post_declared_idempotent_is_retried_with_the_same_body() {
    let api = Emulator::start().await;
    let svc = stack(RetryLayer::new());

    // Without the declaration a 503 to a POST is not sent again: the server may have acted.
    api.script("/api/search", [Reply::detail(503, "try again")]);
    let err = svc
        .clone()
        .oneshot(request(&api, Method::POST, "/api/search", None))
        .await
        .unwrap_err();
    assert!(matches!(
        err.not_retried(),
        Some(NotRetried::NotIdempotent { .. })
    ));
    assert_eq!(api.seen("/api/search").len(), 1);

    // Declared safe to repeat: retried like a GET, the same bytes each time.
    api.script(
        "/api/search",
        [Reply::detail(503, "try again"), Reply::detail(502, "again")],
    );
    let over = RetryOverride::new().idempotent(true);
    let res = svc
        .oneshot(request(&api, Method::POST, "/api/search", Some(over)))
        .await
        .unwrap();
    assert_eq!(Attempts::of(&res), 3);
    let seen = api.seen("/api/search");
    assert_eq!(seen.len(), 4);
    let sum = checksum(b"{\"query\": \"open tickets\"}");
    assert!(
        seen.iter()
            .all(|s| s.body_sum == sum && s.method == Method::POST)
    );
}

/// The override does not open a closed rate-limit gate: a request that opts out of retries
/// is still held back, never sent, while its path is rate limited.
#[tokio::test]
async fn the_gate_still_applies() {
    let api = Emulator::start().await;
    api.script("/api/limited", [Reply::too_many(30)]);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let layer = ApiContractLayer::new()
        .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE)))
        .rate_limit(tower_api_retry::RateLimitBackoffLayer::new().fail_fast());
    let svc = ServiceBuilder::new().layer(layer).service(client);

    let err = svc
        .clone()
        .oneshot(request(
            &api,
            Method::GET,
            "/api/limited",
            Some(RetryOverride::no_retries()),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    let over = RetryOverride::new().max_retries(0).idempotent(true);
    let err = svc
        .oneshot(request(&api, Method::POST, "/api/limited", Some(over)))
        .await
        .unwrap_err();
    assert!(err.is_gate_closed() && !err.request_sent());
    assert_eq!(api.seen("/api/limited").len(), 1);
}

/// With reqwest under the stack: the extension goes on the `http::Request` given to the stack
/// (the retry layer reads it before `ReqwestService` converts the request).
#[cfg(feature = "reqwest")]
#[tokio::test]
async fn through_reqwest() {
    use tower_api_retry::ReqwestService;

    let api = Emulator::start().await;
    api.script("/api/events", [Reply::detail(503, "try again")]);
    let svc = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
        )
        .service(ReqwestService::new(reqwest::Client::new()));

    let mut req = Request::post(api.url("/api/events"))
        .body(reqwest::Body::from("{\"kind\": \"note\"}"))
        .unwrap();
    req.extensions_mut()
        .insert(RetryOverride::new().idempotent(true).max_retries(1));
    let res = svc.clone().oneshot(req).await.unwrap();
    assert_eq!(Attempts::of(&res), 2);

    api.script("/api/events", [Reply::detail(503, "try again")]);
    let mut req = Request::get(api.url("/api/events"))
        .body(reqwest::Body::from(""))
        .unwrap();
    req.extensions_mut().insert(RetryOverride::no_retries());
    let err = svc.oneshot(req).await.unwrap_err();
    assert_eq!(err.attempts(), 1);
    assert_eq!(api.seen("/api/events").len(), 3);
}
