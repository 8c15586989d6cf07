//! End to end: a real `reqwest::Client` under the documented stack (through `ReqwestService`),
//! against the emulated API on loopback. The scenarios of the hyper-util end-to-end tests, and
//! what is particular to reqwest: its bodies (buffered and streaming) on every attempt, its
//! errors (refused, reset, timeout) classified like hyper's, and its error's URL.
//!
//! Every assertion about what happened is made on the server's own log (what it received,
//! when, with which body checksum), never on client-side durations.

use crate::support::{Emulator, Reply, checksum};
use bytes::Bytes;
use futures_util::future::Either;
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use std::{
    error::Error as _,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::Poll,
    time::Duration,
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{
    ApiContractLayer, Attempts, Disposition, Error, ErrorCode, RateLimitBackoffLayer,
    RateLimitGates, RetryLayer, ServiceBuilderExt, backoff::Backoff,
    integrations::reqwest::ReqwestService,
};

/// The first wait of the retry schedule (the documented 1 s, shrunk; doubling as documented).
const BASE: Duration = Duration::from_millis(40);

/// The credentials the client sends, and the parts of them that must never show.
const BEARER: &str = "convo_E2E_BEARERSECRET";
const API_KEY: &str = "xk_live_E2E_APIKEYSECRET";
const NEEDLES: [&str; 3] = ["BEARERSECRET", "APIKEYSECRET", "QUERYSECRET"];

type Stack = tower_api_retry::ApiContract<ReqwestService>;

fn reqwest_client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

/// The documented stack over a reqwest client, with a shorter first wait.
fn stack_of(client: reqwest::Client) -> Stack {
    ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
        )
        .service(ReqwestService::new(client))
}

fn stack() -> Stack {
    stack_of(reqwest_client())
}

/// The stack, and the gate map its rate-limit layer shares.
fn stack_and_gates() -> (Stack, RateLimitGates) {
    let gates = RateLimitGates::new();
    let rate_limit = RateLimitBackoffLayer::new().gates(gates.clone());
    let svc = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE)))
                .rate_limit(rate_limit),
        )
        .service(ReqwestService::new(reqwest_client()));
    (svc, gates)
}

fn request(
    api: &Emulator,
    method: Method,
    path: &str,
    body: impl Into<reqwest::Body>,
) -> Request<reqwest::Body> {
    Request::builder()
        .method(method)
        .uri(api.url(path))
        .header("authorization", format!("Bearer {BEARER}"))
        .header("x-api-key", API_KEY)
        .body(body.into())
        .unwrap()
}

/// A body reqwest streams: `chunks` chunks of `BIG`, no size known up front.
fn streaming(chunks: usize) -> reqwest::Body {
    let size = BIG.len() / chunks;
    let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = BIG
        .chunks(size)
        .map(|c| Ok(Frame::data(Bytes::from_static(c))))
        .collect();
    let body = reqwest::Body::wrap(StreamBody::new(futures_util::stream::iter(frames)));
    assert!(body.as_bytes().is_none(), "a streaming body");
    body
}

async fn send<S, B>(svc: &mut S, req: Request<reqwest::Body>) -> Result<Response<B>, Error>
where
    S: Service<Request<reqwest::Body>, Response = Response<B>, Error = Error>,
{
    svc.ready().await?.call(req).await
}

fn attempts<B>(res: &Response<B>) -> u32 {
    Attempts::of(res)
}

/// A body big enough that a checksum match means the same bytes (10 KiB, not all alike).
static BIG: [u8; 10 * 1024] = {
    let mut b = [0u8; 10 * 1024];
    let mut i = 0;
    while i < b.len() {
        b[i] = (i * 31 % 251) as u8;
        i += 1;
    }
    b
};

fn assert_clean(what: &str, text: &str) {
    for needle in NEEDLES {
        assert!(!text.contains(needle), "{what} shows a credential: {text}");
    }
}

#[tokio::test]
async fn transient_503_twice_then_200_is_three_attempts() {
    let api = Emulator::start().await;
    let path = "/api/spaces/s1";
    api.script(
        path,
        [
            Reply::detail(503, "Server restarting"),
            Reply::detail(503, "Server restarting"),
        ],
    );
    let res = stack()
        .oneshot(request(&api, Method::GET, path, ""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(attempts(&res), 3);
    // The success is the client's own response, its body untouched.
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"ok":true}"#);
    let seen = api.seen(path);
    assert_eq!(
        seen.iter().map(|s| s.reply.as_str()).collect::<Vec<_>>(),
        ["503", "503", "200"]
    );
    // Backoff between attempts, measured by the server: never shorter than the schedule,
    // 40 ms then 80 ms (the jitter only adds).
    assert!(seen[1].at - seen[0].at >= BASE);
    assert!(seen[2].at - seen[1].at >= BASE * 2);
}

/// The one-line install with the documented defaults, as a user writes it.
#[tokio::test]
async fn the_one_line_install_sends_a_documented_4xx_once() {
    let api = Emulator::start().await;
    api.always("/api/gone", [Reply::detail(404, "Not found")]);
    let err = ServiceBuilder::new()
        .api_contract()
        .service(ReqwestService::new(reqwest::Client::new()))
        .oneshot(request(&api, Method::GET, "/api/gone", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::NotFound);
    assert_eq!(err.message(), "Not found");
    assert_eq!(api.seen("/api/gone").len(), 1);
}

#[tokio::test]
async fn every_documented_4xx_and_need_a_human_code_is_sent_once() {
    use Disposition::*;
    use ErrorCode as C;
    let rows: Vec<(Reply, u16, ErrorCode, Disposition)> = vec![
        (
            Reply::detail(400, "A required field is missing"),
            400,
            C::InvalidArgument,
            FixRequest,
        ),
        (
            Reply::detail(401, "Authentication required"),
            401,
            C::Unauthenticated,
            Reauthenticate,
        ),
        (
            Reply::detail(403, "Tenant is suspended"),
            403,
            C::PermissionDenied,
            Forbidden,
        ),
        (
            Reply::detail(404, "Not found"),
            404,
            C::NotFound,
            FixRequest,
        ),
        (
            Reply::detail(409, "Space is not active"),
            409,
            C::FailedPrecondition,
            FixRequest,
        ),
        (
            Reply::agent_connected("agt_42"),
            409,
            C::AgentConnected,
            FixRequest,
        ),
        (
            Reply::envelope(409, "ALREADY_EXISTS", "exists", None),
            409,
            C::AlreadyExists,
            FixRequest,
        ),
        (
            Reply::envelope(401, "KEY_REVOKED", "revoked", Some("Generate a fresh key")),
            401,
            C::KeyRevoked,
            Reauthenticate,
        ),
        (
            Reply::envelope(401, "AGENT_BLOCKED", "blocked", None),
            401,
            C::AgentBlocked,
            NeedsHuman,
        ),
        (
            Reply::envelope(409, "SUBSCRIPTION_CANCELED", "canceled", None),
            409,
            C::SubscriptionCanceled,
            NeedsHuman,
        ),
        (
            Reply::envelope(422, "KEY_ROTATION_FAILED", "failed", None),
            422,
            C::KeyRotationFailed,
            NeedsHuman,
        ),
        (
            Reply::envelope(403, "TRUST_REQUIRED", "trust", None),
            403,
            C::TrustRequired,
            NeedsHuman,
        ),
    ];
    let api = Emulator::start().await;
    let (mut svc, gates) = stack_and_gates();
    for (i, (reply, status, code, disposition)) in rows.into_iter().enumerate() {
        let path = format!("/api/case/{i}");
        // `always`: a second request would get the same answer, so the count is honest.
        api.always(&path, [reply]);
        for method in [Method::GET, Method::POST] {
            let before = api.seen(&path).len();
            let err = send(&mut svc, request(&api, method.clone(), &path, "{}"))
                .await
                .unwrap_err();
            let what = format!("{method} {status} {code}");
            assert_eq!(api.seen(&path).len(), before + 1, "{what}: sent once");
            assert_eq!(
                err.status(),
                Some(StatusCode::from_u16(status).unwrap()),
                "{what}"
            );
            assert_eq!(
                (err.code(), err.disposition()),
                (&code, disposition),
                "{what}"
            );
            assert!(!err.is_retryable() && err.attempts() == 1, "{what}");
            if code == C::AgentConnected {
                let conflict = err.api().unwrap().agent_connected().unwrap();
                assert_eq!(conflict.agent_id(), Some("agt_42"));
            }
            assert_clean(&what, &format!("{err} {err:?}"));
        }
    }
    // None of this closed a gate (only rate limits do).
    assert!(gates.is_empty());
}

#[tokio::test]
async fn retry_after_is_honoured_for_429_and_refresh_in_progress() {
    let api = Emulator::start().await;
    api.script("/api/events", [Reply::too_many(1)]);
    api.script("/api/agents/a1/refresh", [Reply::refresh_in_progress(1)]);
    let (limited, refresh) = tokio::join!(
        stack().oneshot(request(&api, Method::GET, "/api/events", "")),
        // A POST without an Idempotency-Key: the server did not process it, so it is retried.
        stack().oneshot(request(
            &api,
            Method::POST,
            "/api/agents/a1/refresh",
            &BIG[..]
        )),
    );
    for (path, res) in [
        ("/api/events", limited),
        ("/api/agents/a1/refresh", refresh),
    ] {
        let res = res.unwrap();
        assert_eq!(
            (res.status(), attempts(&res)),
            (StatusCode::OK, 2),
            "{path}"
        );
        let seen = api.seen(path);
        assert_eq!(seen.len(), 2, "{path}");
        // The server's own clock: the retry arrived no sooner than Retry-After (1 s) after
        // the rejected request arrived.
        assert!(seen[1].at - seen[0].at >= Duration::from_secs(1), "{path}");
    }
    let refresh = api.seen("/api/agents/a1/refresh");
    assert!(
        refresh
            .iter()
            .all(|s| (s.body_len, s.body_sum) == (BIG.len(), checksum(&BIG)))
    );
}

#[tokio::test]
async fn a_429_pauses_its_path_while_another_flows() {
    let api = Emulator::start().await;
    api.script("/api/limited", [Reply::too_many(1)]);
    let (svc, gates) = stack_and_gates();
    let first = tokio::spawn(
        svc.clone()
            .oneshot(request(&api, Method::GET, "/api/limited", "")),
    );
    // Wait until the client has seen the 429 (its path's gate is closed), then keep going.
    while gates.is_empty() {
        tokio::task::yield_now().await;
    }
    // A second request for the limited path waits at the closed gate ...
    let second = tokio::spawn(
        svc.clone()
            .oneshot(request(&api, Method::GET, "/api/limited", "")),
    );
    // ... while another path is served at once.
    let mut other = svc.clone();
    for _ in 0..5 {
        send(&mut other, request(&api, Method::GET, "/api/other", ""))
            .await
            .unwrap();
    }
    assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
    assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK);

    let (_, answered, after) = api.rate_limited()[0].clone();
    assert_eq!(after, Duration::from_secs(1));
    let limited = api.seen("/api/limited");
    let others = api.seen("/api/other");
    assert_eq!(
        limited.len(),
        3,
        "the 429, then the retry and the held request"
    );
    assert_eq!(others.len(), 5);
    // Nothing reached the limited path inside its window; the other path flowed during it.
    assert!(limited[1..].iter().all(|s| s.at >= answered + after));
    assert!(others.iter().all(|s| s.at < answered + after));
}

#[tokio::test]
async fn post_bodies_are_identical_on_every_attempt_buffered_and_streaming() {
    let api = Emulator::start().await;
    let keyed = |path: &str, body: reqwest::Body| {
        let mut req = request(&api, Method::POST, path, body);
        req.headers_mut()
            .insert("idempotency-key", "op-7".parse().unwrap());
        req
    };
    let failures = || {
        [
            Reply::detail(503, "restarting"),
            Reply::detail(502, "bad gateway"),
        ]
    };
    // With an Idempotency-Key, a POST is retried after a 5xx ...
    api.script("/api/keyed-buffered", failures());
    api.script("/api/keyed-streaming", failures());
    // ... and without one, after a 429 (rejected at the door, not processed).
    api.script("/api/unkeyed-buffered", [Reply::too_many(1)]);
    api.script("/api/unkeyed-streaming", [Reply::too_many(1)]);
    let (a, b, c, d) = tokio::join!(
        stack().oneshot(keyed("/api/keyed-buffered", reqwest::Body::from(&BIG[..]))),
        stack().oneshot(keyed("/api/keyed-streaming", streaming(10))),
        stack().oneshot(request(
            &api,
            Method::POST,
            "/api/unkeyed-buffered",
            &BIG[..]
        )),
        stack().oneshot(request(
            &api,
            Method::POST,
            "/api/unkeyed-streaming",
            streaming(7)
        )),
    );
    for (path, res, n) in [
        ("/api/keyed-buffered", a, 3),
        ("/api/keyed-streaming", b, 3),
        ("/api/unkeyed-buffered", c, 2),
        ("/api/unkeyed-streaming", d, 2),
    ] {
        assert_eq!(attempts(&res.unwrap()), n, "{path}");
        let seen = api.seen(path);
        assert_eq!(seen.len(), n as usize, "{path}");
        for s in &seen {
            assert_eq!(s.method, Method::POST, "{path}");
            assert_eq!(
                (s.body_len, s.body_sum),
                (BIG.len(), checksum(&BIG)),
                "{path}"
            );
        }
    }

    // Without a key, a 503 may have been processed: sent once, with a note saying why.
    api.always("/api/unsafe", [Reply::detail(503, "restarting")]);
    let err = stack()
        .oneshot(request(&api, Method::POST, "/api/unsafe", streaming(4)))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(api.seen("/api/unsafe").len(), 1);
    assert!(err.note().unwrap().contains("not idempotent"), "{err:?}");

    // A streaming body larger than max_replay_bytes (64 KiB) is sent once, whole.
    api.script("/api/huge", [Reply::detail(503, "restarting")]);
    let huge = reqwest::Body::wrap(StreamBody::new(futures_util::stream::iter(
        (0..10).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(&BIG)))),
    )));
    let err = stack().oneshot(keyed("/api/huge", huge)).await.unwrap_err();
    assert!(err.note().unwrap().contains("max_replay_bytes"), "{err:?}");
    let seen = api.seen("/api/huge");
    assert_eq!((seen.len(), seen[0].body_len), (1, 10 * BIG.len()));
}

/// Any body reqwest takes, not only `reqwest::Body`: here `Vec<u8>`, replayed by clone.
#[tokio::test]
async fn other_body_types_are_sent_again_too() {
    let api = Emulator::start().await;
    api.script("/api/vec", [Reply::detail(503, "restarting")]);
    let svc = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
        )
        .service(ReqwestService::<Vec<u8>>::from(reqwest_client()));
    let req = Request::put(api.url("/api/vec"))
        .body(BIG.to_vec())
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(attempts(&res), 2);
    let seen = api.seen("/api/vec");
    assert!(
        seen.iter()
            .all(|s| (s.method.as_str(), s.body_len, s.body_sum)
                == ("PUT", BIG.len(), checksum(&BIG)))
    );
}

#[tokio::test]
async fn a_connection_reset_is_retried_for_get_not_for_an_unkeyed_post() {
    let api = Emulator::start().await;
    api.script("/api/reset-get", [Reply::Reset]);
    api.script("/api/reset-post", [Reply::Reset]);
    let res = stack()
        .oneshot(request(&api, Method::GET, "/api/reset-get", ""))
        .await
        .unwrap();
    assert_eq!((res.status(), attempts(&res)), (StatusCode::OK, 2));
    let seen = api.seen("/api/reset-get");
    assert_eq!(
        seen.iter().map(|s| s.reply.as_str()).collect::<Vec<_>>(),
        ["reset", "200"]
    );

    let err = stack()
        .oneshot(request(&api, Method::POST, "/api/reset-post", &BIG[..]))
        .await
        .unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    assert!(
        err.request_sent(),
        "a reset comes after the request was sent"
    );
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert_eq!(err.attempts(), 1);
    assert!(err.note().unwrap().contains("not idempotent"), "{err:?}");
    assert!(err.source().unwrap().is::<reqwest::Error>());
    let seen = api.seen("/api/reset-post");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_sum, checksum(&BIG));
}

/// What a small server on a given listener received: method, body length, body checksum.
type Received = Arc<Mutex<Vec<(Method, usize, u64)>>>;

/// Serves 200 on `listener`, logging every request.
fn serve_on(listener: std::net::TcpListener, received: Received) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let received = received.clone();
        async move {
            let method = req.method().clone();
            let body = axum::body::to_bytes(req.into_body(), usize::MAX)
                .await
                .unwrap();
            received
                .lock()
                .unwrap()
                .push((method, body.len(), checksum(&body)));
            "done"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// A refused connection is never sent: the retry layer sends even a POST again, and a
/// streaming body the refused attempt never read is sent whole on the next one.
#[tokio::test]
async fn a_refused_connection_is_never_sent_and_retried() {
    for (method, body) in [
        (Method::GET, reqwest::Body::default()),
        (Method::POST, streaming(5)),
    ] {
        // Bind, learn the port, close: connecting is refused.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let received = Received::default();
        let refusals = Arc::new(Mutex::new(Vec::new()));
        // Under the stack: each error of the reqwest service is logged, and the first one
        // starts the server on that port, before the retry layer even sees it.
        let (r, log) = (received.clone(), refusals.clone());
        let inspect = move |err: Error| {
            let mut log = log.lock().unwrap();
            if log.is_empty() {
                serve_on(std::net::TcpListener::bind(addr).unwrap(), r.clone());
            }
            log.push((
                err.code().clone(),
                err.request_sent(),
                err.source().unwrap().is::<reqwest::Error>(),
            ));
            err
        };
        let svc = ServiceBuilder::new()
            .layer(
                ApiContractLayer::new()
                    .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
            )
            .map_err(inspect)
            .service(ReqwestService::new(reqwest_client()));
        let req = Request::builder()
            .method(method.clone())
            .uri(format!("http://{addr}/api/orders"))
            .body(body)
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(
            (res.status(), attempts(&res)),
            (StatusCode::OK, 2),
            "{method}"
        );
        assert_eq!(
            *refusals.lock().unwrap(),
            [(ErrorCode::Unavailable, false, true)],
            "{method}: one refusal, never sent, reqwest's error as the source"
        );
        let received = received.lock().unwrap();
        let expected = if method == Method::GET {
            (0, checksum(b""))
        } else {
            (BIG.len(), checksum(&BIG))
        };
        assert_eq!(*received, [(method, expected.0, expected.1)]);
    }
}

#[tokio::test]
async fn a_timeout_is_deadline_exceeded_and_retried_for_get() {
    let api = Emulator::start().await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();

    // The service alone: reqwest's timeout, classified.
    api.script("/api/slow", [Reply::Stall]);
    let err = ReqwestService::new(client.clone())
        .oneshot(request(&api, Method::GET, "/api/slow", ""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::DeadlineExceeded);
    assert_eq!(err.disposition(), Disposition::Retry);
    assert!(err.request_sent(), "the request was on its way");
    let source = err
        .source()
        .unwrap()
        .downcast_ref::<reqwest::Error>()
        .unwrap();
    assert!(source.is_timeout());

    // Under the stack: a GET is sent again, and the second attempt is answered.
    api.script("/api/slow-once", [Reply::Stall]);
    let res = stack_of(client)
        .oneshot(request(&api, Method::GET, "/api/slow-once", ""))
        .await
        .unwrap();
    assert_eq!((res.status(), attempts(&res)), (StatusCode::OK, 2));
    let seen = api.seen("/api/slow-once");
    assert_eq!(
        seen.iter().map(|s| s.reply.as_str()).collect::<Vec<_>>(),
        ["stall", "200"]
    );
}

/// A connector that never finishes its first connection, then connects as usual.
#[derive(Clone)]
struct StallFirstConnect<S> {
    inner: S,
    stalled: Arc<AtomicBool>,
}

impl<S: Service<R>, R> Service<R> for StallFirstConnect<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<std::future::Pending<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, target: R) -> Self::Future {
        if self.stalled.swap(true, Ordering::SeqCst) {
            Either::Right(self.inner.call(target))
        } else {
            Either::Left(std::future::pending())
        }
    }
}

/// reqwest's connect timeout: the request was never sent, so even a POST is sent again, and
/// its streaming body, never read by the first attempt, arrives whole once.
#[tokio::test]
async fn a_connect_timeout_is_never_sent_so_even_a_post_is_retried() {
    let api = Emulator::start().await;
    let stalled = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(100))
        .connector_layer(tower::layer::layer_fn(move |inner| StallFirstConnect {
            inner,
            stalled: stalled.clone(),
        }))
        .build()
        .unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let log = errors.clone();
    let svc = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
        )
        .map_err(move |err: Error| {
            log.lock()
                .unwrap()
                .push((err.code().clone(), err.request_sent()));
            err
        })
        .service(ReqwestService::new(client));
    let res = svc
        .oneshot(request(&api, Method::POST, "/api/orders", streaming(3)))
        .await
        .unwrap();
    assert_eq!((res.status(), attempts(&res)), (StatusCode::OK, 2));
    assert_eq!(
        *errors.lock().unwrap(),
        [(ErrorCode::DeadlineExceeded, false)]
    );
    let seen = api.seen("/api/orders");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].body_len, seen[0].body_sum),
        (BIG.len(), checksum(&BIG))
    );
}

#[tokio::test]
async fn credentials_never_show() {
    let api = Emulator::start().await;
    let echo = format!("Invalid key. Got X-Api-Key: {API_KEY}, Authorization: Bearer {BEARER}");
    api.always(
        "/api/key",
        [Reply::envelope(
            401,
            "INVALID_API_KEY",
            &echo,
            Some(&format!("Replace the key in X-Api-Key: {API_KEY}")),
        )],
    );
    api.always("/api/down", [Reply::detail(503, &echo)]);
    let mut errors = Vec::new();
    for path in ["/api/key", "/api/down"] {
        let err = stack()
            .oneshot(request(&api, Method::GET, path, ""))
            .await
            .unwrap_err();
        errors.push(err);
    }
    assert_eq!(errors[0].code(), &ErrorCode::InvalidApiKey);
    assert_eq!(errors[1].attempts(), 4, "retried, then surfaced");

    // A transport failure for a URL with a token in its query: reqwest names the URL in its
    // error, so the query is gone before the error is built.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let req = Request::get(format!("http://{refused}/api/x?token=convo_QUERYSECRET"))
        .header("x-api-key", API_KEY)
        .body(reqwest::Body::default())
        .unwrap();
    let layer = ApiContractLayer::new().retry(RetryLayer::new().max_retries(0));
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(ReqwestService::new(reqwest_client()))
        .oneshot(req)
        .await
        .unwrap_err();
    assert!(err.is_transport() && !err.request_sent());
    errors.push(err);

    for err in &errors {
        assert_clean("Display", &err.to_string());
        assert_clean("Debug", &format!("{err:?} {err:#?}"));
        // The whole chain of sources, as an error reporter prints it.
        let mut link = err.source();
        while let Some(e) = link {
            assert_clean("source", &format!("{e} {e:?}"));
            link = e.source();
        }
    }
    // The echo reached the errors: the test did exercise redaction.
    assert!(
        errors[0].to_string().contains("[REDACTED]"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].to_string().contains("[REDACTED]"),
        "{}",
        errors[1]
    );
}
