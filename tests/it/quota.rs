//! The server's word on retrying (`x-should-retry`, `Stripe-Should-Retry`, `retry-after-ms`)
//! and the quota it announces, against the emulated API on loopback with a hyper-util client.
//! Waits are measured by the server, and only ever bounded from below.

use crate::support::{Emulator, Reply};
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::Full;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::time::{Duration, SystemTime};
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::{
    Attempts, Disposition, ErrorDecodeLayer, NotRetried, Quota, RateLimitBackoffLayer,
    RateLimitHeaders, RetryLayer, backoff::Backoff,
};

type Stack = tower_api_retry::ApiContract<Client<HttpConnector, Full<Bytes>>>;

/// The documented stack with a short first wait.
fn stack(retry: RetryLayer) -> Stack {
    ServiceBuilder::new()
        .layer(retry)
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(Client::builder(TokioExecutor::new()).build_http())
}

fn retry() -> RetryLayer {
    RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(10)))
}

fn request(api: &Emulator, method: Method, path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(api.url(path))
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .unwrap()
}

#[tokio::test]
async fn x_should_retry_false_on_a_503_is_one_attempt_with_the_typed_reason() {
    let api = Emulator::start().await;
    let path = "/api/spaces/s1";
    api.always(
        path,
        [Reply::detail(503, "down").header("x-should-retry", "false")],
    );
    let err = stack(retry())
        .oneshot(request(&api, Method::GET, path))
        .await
        .unwrap_err();
    assert_eq!(api.seen(path).len(), 1);
    assert_eq!(err.attempts(), 1);
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(err.disposition(), Disposition::DoNotRetry);
    assert_eq!(err.not_retried(), Some(&NotRetried::ShouldNotRetry));
    assert_eq!(err.not_retried().unwrap().as_str(), "should_not_retry");
}

#[tokio::test]
async fn stripe_should_retry_false_forbids_too() {
    let api = Emulator::start().await;
    let path = "/v1/charges";
    api.always(
        path,
        [Reply::detail(500, "lock").header("stripe-should-retry", "false")],
    );
    let err = stack(retry())
        .oneshot(request(&api, Method::GET, path))
        .await
        .unwrap_err();
    assert_eq!(api.seen(path).len(), 1);
    assert_eq!(err.not_retried(), Some(&NotRetried::ShouldNotRetry));
}

#[tokio::test]
async fn x_should_retry_true_on_a_post_500_without_idempotency_key_is_retried() {
    let api = Emulator::start().await;
    let path = "/v1/chat/completions";
    api.script(
        path,
        [Reply::detail(500, "overloaded").header("x-should-retry", "true")],
    );
    let res = stack(retry())
        .oneshot(request(&api, Method::POST, path))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(Attempts::of(&res), 2);
    let seen = api.seen(path);
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.method == Method::POST && s.body_len == 7)
    );

    // Without the header the same POST is sent once: the server may have processed it.
    let path = "/v1/other";
    api.script(path, [Reply::detail(500, "overloaded")]);
    let err = stack(retry())
        .oneshot(request(&api, Method::POST, path))
        .await
        .unwrap_err();
    assert_eq!(api.seen(path).len(), 1);
    assert!(matches!(
        err.not_retried(),
        Some(NotRetried::NotIdempotent { .. })
    ));
}

/// `true` makes a status the table calls final retryable, as the official clients do.
#[tokio::test]
async fn should_retry_true_on_a_409_is_retried_within_max_retries() {
    let api = Emulator::start().await;
    let path = "/v1/customers";
    api.always(
        path,
        [Reply::detail(409, "lock timeout").header("stripe-should-retry", "true")],
    );
    let err = stack(retry().max_retries(2))
        .oneshot(request(&api, Method::POST, path))
        .await
        .unwrap_err();
    assert_eq!(api.seen(path).len(), 3);
    assert_eq!(err.attempts(), 3);
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(err.not_retried(), Some(&NotRetried::MaxRetries { max: 2 }));
}

#[tokio::test]
async fn retry_after_ms_is_honoured_and_wins_over_retry_after() {
    let api = Emulator::start().await;
    let path = "/v1/messages";
    let hint = Duration::from_millis(300);
    api.script(
        path,
        [Reply::detail(503, "busy")
            .header("retry-after-ms", "300.5")
            .header("retry-after", "0")],
    );
    let res = stack(retry())
        .oneshot(request(&api, Method::GET, path))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = api.seen(path);
    assert_eq!(seen.len(), 2);
    assert!(
        seen[1].at - seen[0].at >= hint,
        "the server saw the retry after {:?}",
        seen[1].at - seen[0].at
    );
}

/// The quota a real response announces, read as the layers read it: the families the contract
/// names, relative to when the response arrived.
#[tokio::test]
async fn a_success_announces_its_quota() {
    let api = Emulator::start().await;
    let path = "/api/actors/agt_1/release";
    api.script(
        path,
        [Reply::ok()
            .header("ratelimit-policy", r#""default";q=100;w=60"#)
            .header("ratelimit", r#""default";r=0;t=30"#)
            .header("x-ratelimit-remaining-requests", "5")],
    );
    let res = stack(retry())
        .oneshot(request(&api, Method::GET, path))
        .await
        .unwrap();
    let quota = Quota::read(res.headers(), RateLimitHeaders::DEFAULT, SystemTime::now()).unwrap();
    assert_eq!(quota.remaining, Some(0));
    assert_eq!(quota.limit, Some(100));
    assert_eq!(quota.window, Some(Duration::from_secs(60)));
    assert_eq!(quota.reset, Some(Duration::from_secs(30)));
    // OpenAI's family is read only when the contract opts in; it has more left, so the
    // draft's exhausted policy still wins.
    let quota = Quota::read(res.headers(), RateLimitHeaders::OPENAI, SystemTime::now());
    assert_eq!(quota.unwrap().remaining, Some(5));
}

/// An error response announces its quota too: a `503` saying the server's whole quota is
/// spent (no `Retry-After`, which would close the path's gate on its own) holds every path of
/// the server until the announced reset, and the decoded error carries the quota.
#[tokio::test]
async fn an_error_response_announces_its_quota() {
    let api = Emulator::start().await;
    api.script(
        "/api/a",
        [Reply::envelope(503, "UNAVAILABLE", "over quota", None)
            .header("x-ratelimit-limit", "5")
            .header("x-ratelimit-remaining", "0")
            .header("x-ratelimit-reset", "1")],
    );
    let (err, held) = error_then_another_path(&api).await;
    let quota = err.quota().expect("the 503's quota");
    assert_eq!((quota.limit, quota.remaining), (Some(5), Some(0)));
    assert_eq!(quota.reset, Some(Duration::from_secs(1)));
    // Another path of the same server waits for the window to end: the quota is the
    // server's, and none of it is left.
    assert!(held >= Duration::from_millis(900), "{held:?}");
}

/// `GET /api/a` (scripted to fail), then `GET /api/b` of the same server: the error, and how
/// long after `/api/a` was answered the server saw `/api/b`.
async fn error_then_another_path(api: &Emulator) -> (tower_api_retry::Error, Duration) {
    let client = stack(RetryLayer::new().max_retries(0));
    let err = client
        .clone()
        .oneshot(request(api, Method::GET, "/api/a"))
        .await
        .unwrap_err();
    client
        .oneshot(request(api, Method::GET, "/api/b"))
        .await
        .unwrap();
    let answered = api.seen("/api/a")[0].at;
    let sent = api.seen("/api/b")[0].at;
    (err, sent.duration_since(answered))
}

/// The same on a `429` in the IETF draft's words: the announced reset holds the server longer
/// than the path's `Retry-After`.
#[tokio::test]
async fn a_rate_limit_announces_its_quota() {
    let api = Emulator::start().await;
    api.script(
        "/api/a",
        [Reply::too_many(0)
            .header("ratelimit-policy", r#""default";q=10;w=2"#)
            .header("ratelimit", r#""default";r=0;t=2"#)],
    );
    let (err, held) = error_then_another_path(&api).await;
    assert_eq!(err.quota().and_then(|q| q.remaining), Some(0));
    assert!(held >= Duration::from_millis(1_900), "{held:?}");
}
