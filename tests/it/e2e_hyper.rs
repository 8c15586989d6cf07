//! End to end: a hyper-util legacy `Client` wrapped in the documented stack, against the
//! emulated API on loopback. Every assertion about what happened is made on the server's own
//! log (what it received, when, with which body checksum), never on client-side durations.

use crate::support::{Emulator, Reply, checksum};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::rate_limit::ResponseBody;
use tower_api_retry::{
    ApiContractLayer, Attempts, Disposition, Error, ErrorCode, ErrorDecodeLayer,
    RateLimitBackoffLayer, RateLimitGates, RetryLayer, ServiceBuilderExt, backoff::Backoff,
};

/// The first wait of the retry schedule (the documented 1 s, shrunk; doubling as documented).
const BASE: Duration = Duration::from_millis(40);

type Stack = tower_api_retry::ApiContract<Client<HttpConnector, Full<Bytes>>>;

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Exactly the documented stack, with a shorter first wait.
fn stack() -> Stack {
    stack_and_gates().0
}

/// The stack, and the gate map its rate-limit layer shares.
fn stack_and_gates() -> (Stack, RateLimitGates) {
    let gates = RateLimitGates::new();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(Backoff::new().base_delay(BASE)))
        .layer(RateLimitBackoffLayer::new().gates(gates.clone()))
        .layer(ErrorDecodeLayer::new())
        .service(client());
    (svc, gates)
}

fn request(
    api: &Emulator,
    method: Method,
    path: &str,
    body: &'static [u8],
) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(api.url(path))
        .header("authorization", "Bearer convo_E2E_SECRET")
        .body(Full::new(Bytes::from_static(body)))
        .unwrap()
}

async fn send<S>(
    svc: &mut S,
    req: Request<Full<Bytes>>,
) -> Result<Response<ResponseBody<Incoming>>, Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<ResponseBody<Incoming>>, Error = Error>,
{
    svc.ready().await?.call(req).await
}

fn attempts(res: &Response<ResponseBody<Incoming>>) -> u32 {
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
        .oneshot(request(&api, Method::GET, path, b""))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(attempts(&res), 3);
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

/// The one-line install behaves exactly like the three layers spelled out.
#[tokio::test]
async fn api_contract_one_liner_retries_the_same_way() {
    let api = Emulator::start().await;
    let path = "/api/spaces/s2";
    api.script(
        path,
        [
            Reply::detail(503, "restarting"),
            Reply::detail(503, "restarting"),
        ],
    );
    let svc = ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(Backoff::new().base_delay(BASE))),
        )
        .service(client());
    let res = svc
        .oneshot(request(&api, Method::GET, path, b""))
        .await
        .unwrap();
    assert_eq!((res.status(), attempts(&res)), (StatusCode::OK, 3));
    assert_eq!(api.seen(path).len(), 3);

    // And a documented 4xx is sent once through it too.
    api.always("/api/gone", [Reply::detail(404, "Not found")]);
    let err = ServiceBuilder::new()
        .api_contract()
        .service(client())
        .oneshot(request(&api, Method::GET, "/api/gone", b""))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::NotFound);
    assert_eq!(api.seen("/api/gone").len(), 1);
}

/// One row of the pages: what the server answers, what the caller must see.
struct Row {
    reply: Reply,
    status: u16,
    code: ErrorCode,
    disposition: Disposition,
    fix: Option<&'static str>,
}

fn row(reply: Reply, status: u16, code: ErrorCode, disposition: Disposition) -> Row {
    Row {
        reply,
        status,
        code,
        disposition,
        fix: None,
    }
}

/// A page-004 auth / subscription code at its documented HTTP status, with its "What to do".
fn auth(status: u16, code: ErrorCode, disposition: Disposition, fix: &'static str) -> Row {
    Row {
        reply: Reply::envelope(status, code.as_str(), "see fix", Some(fix)),
        status,
        code,
        disposition,
        fix: Some(fix),
    }
}

#[tokio::test]
async fn every_documented_4xx_and_need_a_human_code_is_sent_once() {
    use Disposition::*;
    use ErrorCode as C;
    let rows = vec![
        // First page: {"detail": ...} at every documented 4xx status.
        row(
            Reply::detail(400, "A required field is missing"),
            400,
            C::InvalidArgument,
            FixRequest,
        ),
        row(
            Reply::detail(401, "Authentication required"),
            401,
            C::Unauthenticated,
            Reauthenticate,
        ),
        row(
            Reply::detail(403, "Tenant is suspended"),
            403,
            C::PermissionDenied,
            Forbidden,
        ),
        row(
            Reply::detail(404, "Not found"),
            404,
            C::NotFound,
            FixRequest,
        ),
        row(
            Reply::detail(409, "Space is not active"),
            409,
            C::FailedPrecondition,
            FixRequest,
        ),
        row(
            Reply::agent_connected("agt_42"),
            409,
            C::AgentConnected,
            FixRequest,
        ),
        // Second page: the envelope's RPC codes that are not transient.
        auth(
            400,
            C::InvalidArgument,
            FixRequest,
            "Read fix / details, correct the input",
        ),
        auth(404, C::NotFound, FixRequest, "Check the id"),
        auth(
            409,
            C::AlreadyExists,
            FixRequest,
            "Update or link the existing entity",
        ),
        auth(
            403,
            C::PermissionDenied,
            Forbidden,
            "Use a key with the right scope",
        ),
        auth(
            401,
            C::Unauthenticated,
            Reauthenticate,
            "Send a valid X-Api-Key header",
        ),
        auth(
            400,
            C::FailedPrecondition,
            FixRequest,
            "Resolve the precondition",
        ),
        // Second page: every auth & subscription code at its HTTP status (except the
        // retryable REFRESH_IN_PROGRESS, tested below), and the connect-time 403s.
        auth(
            401,
            C::InvalidApiKey,
            Reauthenticate,
            "Generate a new key and update your config",
        ),
        auth(
            401,
            C::KeyRevoked,
            Reauthenticate,
            "Generate a fresh key in Settings → API Keys",
        ),
        auth(
            401,
            C::KeyAutoDisabled,
            Reauthenticate,
            "Generate a new key; review why",
        ),
        auth(
            401,
            C::KeyExpired,
            Reauthenticate,
            "Generate a new key with a longer expiry",
        ),
        auth(
            401,
            C::AgentDisconnectedCodingTool,
            Reauthenticate,
            "Update your local config and restart your coding tool",
        ),
        auth(
            401,
            C::AgentDisconnectedAutomated,
            Reauthenticate,
            "The agent's listener repairs itself automatically",
        ),
        auth(
            401,
            C::AgentBlocked,
            NeedsHuman,
            "Contact a team admin; do not auto-retry",
        ),
        auth(
            409,
            C::SubscriptionCanceled,
            NeedsHuman,
            "Re-subscribe to the agent",
        ),
        auth(
            409,
            C::NoActiveUser,
            NeedsHuman,
            "Add or reactivate a team member",
        ),
        auth(422, C::KeyRotationFailed, NeedsHuman, "Contact support"),
        auth(
            403,
            C::AgentKeyConflict,
            Forbidden,
            "Resolve the key conflict",
        ),
        auth(403, C::TrustRequired, NeedsHuman, "Trust the installation"),
    ];
    let api = Emulator::start().await;
    let (mut svc, gates) = stack_and_gates();
    for (i, row) in rows.into_iter().enumerate() {
        let path = format!("/api/case/{i}");
        // `always`: a second request would get the same answer, so the count is honest.
        api.always(&path, [row.reply.clone()]);
        for method in [Method::GET, Method::POST] {
            let before = api.seen(&path).len();
            let err = send(&mut svc, request(&api, method.clone(), &path, b"{}"))
                .await
                .unwrap_err();
            let what = format!("{method} {} {}", row.status, row.code);
            assert_eq!(api.seen(&path).len(), before + 1, "{what}: sent once");
            assert_eq!(
                err.status(),
                Some(StatusCode::from_u16(row.status).unwrap()),
                "{what}"
            );
            assert_eq!(err.code(), &row.code, "{what}");
            assert_eq!(err.disposition(), row.disposition, "{what}");
            assert!(!err.is_retryable(), "{what}");
            assert_eq!(err.attempts(), 1, "{what}");
            if let Some(fix) = row.fix {
                assert_eq!(err.fix(), Some(fix), "{what}");
            }
            if row.code == C::AgentConnected {
                let conflict = err.api().unwrap().agent_connected().unwrap();
                assert_eq!(conflict.agent_id(), Some("agt_42"));
                assert_eq!(
                    conflict.release_path().as_deref(),
                    Some("/api/actors/agt_42/release")
                );
            }
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("E2E_SECRET"), "{what}: {shown}");
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
        stack().oneshot(request(&api, Method::GET, "/api/events", b"")),
        // A POST without an Idempotency-Key: the server did not process it, so it is retried.
        stack().oneshot(request(&api, Method::POST, "/api/agents/a1/refresh", &BIG)),
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
    assert!(refresh.iter().all(|s| s.body_sum == checksum(&BIG)));
    assert!(refresh.iter().all(|s| s.body_len == BIG.len()));
}

#[tokio::test]
async fn a_429_pauses_its_path_while_another_flows() {
    let api = Emulator::start().await;
    api.script("/api/limited", [Reply::too_many(1)]);
    let (svc, gates) = stack_and_gates();
    let first = tokio::spawn(
        svc.clone()
            .oneshot(request(&api, Method::GET, "/api/limited", b"")),
    );
    // Wait until the client has seen the 429 (its path's gate is closed), then keep going.
    while gates.is_empty() {
        tokio::task::yield_now().await;
    }
    // A second request for the limited path waits at the closed gate ...
    let second = tokio::spawn(
        svc.clone()
            .oneshot(request(&api, Method::GET, "/api/limited", b"")),
    );
    // ... while another path is served at once.
    let mut other = svc.clone();
    for _ in 0..5 {
        send(&mut other, request(&api, Method::GET, "/api/other", b""))
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
async fn post_bodies_are_identical_on_every_attempt() {
    let api = Emulator::start().await;
    // With an Idempotency-Key, a POST is retried after a 5xx.
    api.script(
        "/api/keyed",
        [
            Reply::detail(503, "restarting"),
            Reply::detail(502, "bad gateway"),
        ],
    );
    let mut req = request(&api, Method::POST, "/api/keyed", &BIG);
    req.headers_mut()
        .insert("idempotency-key", "op-7".parse().unwrap());
    let res = stack().oneshot(req).await.unwrap();
    assert_eq!(attempts(&res), 3);
    // Without one, after a 429 (rejected at the door, not processed).
    api.script("/api/unkeyed", [Reply::too_many(1)]);
    let res = stack()
        .oneshot(request(&api, Method::POST, "/api/unkeyed", &BIG))
        .await
        .unwrap();
    assert_eq!(attempts(&res), 2);

    for (path, n) in [("/api/keyed", 3), ("/api/unkeyed", 2)] {
        let seen = api.seen(path);
        assert_eq!(seen.len(), n, "{path}");
        for s in &seen {
            assert_eq!(
                (s.body_len, s.body_sum),
                (BIG.len(), checksum(&BIG)),
                "{path}"
            );
            assert_eq!(s.method, Method::POST);
        }
    }
    assert!(
        api.seen("/api/keyed")
            .iter()
            .all(|s| s.headers["idempotency-key"] == "op-7")
    );

    // Without a key, a 503 may have been processed: sent once, with a note saying why.
    api.always("/api/unsafe", [Reply::detail(503, "restarting")]);
    let err = stack()
        .oneshot(request(&api, Method::POST, "/api/unsafe", &BIG))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    assert_eq!(api.seen("/api/unsafe").len(), 1);
    assert!(err.note().unwrap().contains("not idempotent"), "{err:?}");
}

#[tokio::test]
async fn a_connection_reset_is_retried_for_get_not_for_an_unkeyed_post() {
    let api = Emulator::start().await;
    api.script("/api/reset-get", [Reply::Reset]);
    api.script("/api/reset-post", [Reply::Reset]);
    let res = stack()
        .oneshot(request(&api, Method::GET, "/api/reset-get", b""))
        .await
        .unwrap();
    assert_eq!((res.status(), attempts(&res)), (StatusCode::OK, 2));
    let seen = api.seen("/api/reset-get");
    assert_eq!(
        seen.iter().map(|s| s.reply.as_str()).collect::<Vec<_>>(),
        ["reset", "200"]
    );

    let err = stack()
        .oneshot(request(&api, Method::POST, "/api/reset-post", &BIG))
        .await
        .unwrap_err();
    assert!(err.is_transport(), "{err:?}");
    assert!(err.request_sent());
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert_eq!(err.attempts(), 1);
    assert!(err.note().unwrap().contains("not idempotent"), "{err:?}");
    let seen = api.seen("/api/reset-post");
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body_sum, checksum(&BIG));
}
