//! `ErrorDecodeLayer` between a real hyper-util client and a real axum server on loopback.
//!
//! Every documented body shape, success pass-through with a streamed body, bounded reading of
//! huge, endless and trickling error bodies, transport failures, `BoxError` downcasting and
//! credential redaction.

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Request, Response, StatusCode};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::{
    convert::Infallible,
    error::Error as _,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::sync::mpsc;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{ApiError, BodyShape, Disposition, Error, ErrorCode, ErrorDecodeLayer};

type HttpClient = Client<HttpConnector, Full<Bytes>>;
type AxumBody = axum::body::Body;

const SECRET: &str = "SECRETKEY42";

/// Shared server state: the streaming route's chunks and a count of bytes the big routes sent.
#[derive(Clone, Default)]
struct State {
    stream: Arc<Mutex<Option<mpsc::Receiver<Bytes>>>>,
    sent: Arc<AtomicUsize>,
}

fn fixed(
    status: u16,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
) -> Response<AxumBody> {
    let mut res = Response::builder().status(status);
    for (k, v) in headers {
        res = res.header(*k, *v);
    }
    res.body(AxumBody::from(body)).unwrap()
}

const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

/// Every documented shape: (path, status, headers, body).
type Headers = &'static [(&'static str, &'static str)];

const ROUTES: &[(&str, u16, Headers, &str)] = &[
    ("/space", 409, JSON, r#"{"detail": "Space is not active"}"#),
    ("/tenant", 403, JSON, r#"{"detail":"Tenant is suspended"}"#),
    (
        "/agent",
        409,
        JSON,
        r#"{"error": "agent_connected", "message": "Agent agt_... is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.", "agent_id": "agt_..."}"#,
    ),
    (
        "/envelope",
        401,
        JSON,
        r#"{"code": "INVALID_API_KEY", "message": "The API key you sent is not recognized.", "fix": "Generate a new key in Settings → API Keys and update your config."}"#,
    ),
    (
        "/mcp",
        403,
        JSON,
        r#"{"error": {"code": "PERMISSION_DENIED", "message": "Human-readable description", "fix": "Optional — actionable next step for the caller", "details": {"nodeId": "n_1"}}}"#,
    ),
    (
        "/jsonrpc",
        400,
        JSON,
        r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Input validation error", "data": {"fieldName": "title"}}}"#,
    ),
    (
        "/proxy",
        502,
        &[("content-type", "text/html")],
        "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>",
    ),
    ("/empty", 500, &[], ""),
    ("/truncated", 409, JSON, r#"{"detail": "Space is not"#),
    (
        "/grpc",
        200,
        &[
            ("content-type", "application/grpc"),
            ("grpc-status", "14"),
            ("grpc-message", "backend%20restarting%3A%20retry"),
        ],
        "",
    ),
    (
        "/ratelimit",
        429,
        &[("retry-after", "7")],
        r#"{"detail": "Too many requests"}"#,
    ),
    (
        "/refresh",
        503,
        &[("retry-after", "2"), ("content-type", "application/json")],
        r#"{"code": "REFRESH_IN_PROGRESS", "message": "Another credential refresh for this team and agent is already running"}"#,
    ),
    (
        "/pushback",
        200,
        &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "-1")],
        "",
    ),
];

async fn server() -> (String, State) {
    let state = State::default();
    let mut app = axum::Router::new();
    for &(path, status, headers, body) in ROUTES {
        app = app.route(
            path,
            axum::routing::get(move || async move { fixed(status, headers, body) }),
        );
    }
    let st = state.clone();
    app = app
        .route(
            "/ok",
            axum::routing::get(|| async { fixed(200, JSON, r#"{"ok": true}"#) }),
        )
        .route(
            "/stream",
            axum::routing::get(move || {
                let st = st.clone();
                async move {
                    let rx = st
                        .stream
                        .lock()
                        .unwrap()
                        .take()
                        .expect("one streaming request");
                    let body = stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
                    });
                    Response::builder()
                        .status(200)
                        .body(AxumBody::from_stream(body))
                        .unwrap()
                }
            }),
        );
    let st = state.clone();
    app = app.route(
        "/huge",
        axum::routing::get(move || {
            let sent = st.sent.clone();
            async move {
                // 100 MiB, produced lazily, counted as it is handed to the connection.
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let body = stream::iter(0..1600).map(move |_| {
                    sent.fetch_add(chunk.len(), Ordering::SeqCst);
                    Ok::<_, Infallible>(chunk.clone())
                });
                Response::builder()
                    .status(500)
                    .header("content-length", 100 * 1024 * 1024)
                    .body(AxumBody::from_stream(body))
                    .unwrap()
            }
        }),
    );
    app = app
        .route(
            "/endless",
            axum::routing::get(|| async {
                let body = stream::repeat_with(|| {
                    Ok::<_, Infallible>(Bytes::from_static(b"<p>error</p>"))
                });
                Response::builder()
                    .status(503)
                    .body(AxumBody::from_stream(body))
                    .unwrap()
            }),
        )
        .route(
            "/trickle",
            axum::routing::get(|| async {
                let body = stream::once(async {
                    Ok::<_, Infallible>(Bytes::from_static(br#"{"detail": "Tenant"#))
                })
                .chain(stream::pending());
                Response::builder()
                    .status(403)
                    .body(AxumBody::from_stream(body))
                    .unwrap()
            }),
        )
        .route(
            "/echo",
            axum::routing::get(|req: Request<AxumBody>| async move {
                // A careless server that echoes every credential back, in every shape.
                let auth = req.headers()["authorization"].to_str().unwrap().to_owned();
                let key = req.headers()["x-api-key"].to_str().unwrap().to_owned();
                let uri = req.uri().to_string();
                let body = serde_json::json!({
                    "code": "INVALID_API_KEY",
                    "message": format!("Rejected {uri} with Authorization: {auth}"),
                    "fix": format!("X-Api-Key: {key} is not valid"),
                    "details": {"x-api-key": key, "query": uri},
                    "authorization": auth,
                });
                Response::builder()
                    .status(401)
                    .header(
                        "grpc-message",
                        format!(
                            "bad%20key%3A%20Bearer%20{}",
                            auth.trim_start_matches("Bearer ")
                        ),
                    )
                    .body(AxumBody::from(body.to_string()))
                    .unwrap()
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

fn get(base: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("{base}{path}"))
        .body(Full::default())
        .unwrap()
}

async fn call<S>(
    svc: &mut S,
    req: Request<Full<Bytes>>,
) -> Result<Response<hyper::body::Incoming>, Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<hyper::body::Incoming>, Error = Error>,
{
    svc.ready().await?.call(req).await
}

#[tokio::test]
async fn success_passes_through_untouched() {
    let (base, _) = server().await;
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client());
    // The response type is the client's own: `Response<hyper::body::Incoming>`, not wrapped.
    let res: Response<hyper::body::Incoming> = call(&mut svc, get(&base, "/ok")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], br#"{"ok": true}"#);
}

#[tokio::test]
async fn success_body_is_streamed_not_buffered() {
    let (base, state) = server().await;
    let (tx, rx) = mpsc::channel(4);
    *state.stream.lock().unwrap() = Some(rx);
    tx.send(Bytes::from_static(b"first")).await.unwrap();

    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client());
    let res = call(&mut svc, get(&base, "/stream")).await.unwrap();
    let mut body = res.into_body();
    // The first chunk is readable while the server has not produced the rest: the layer
    // returned the response without reading the body.
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"first");
    assert!(!body.is_end_stream());

    tx.send(Bytes::from_static(b"second")).await.unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
}

#[tokio::test]
async fn every_documented_error_shape_is_decoded() {
    let (base, _) = server().await;
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client());
    type Row = (
        &'static str,
        u16,
        ErrorCode,
        &'static str,
        Option<&'static str>,
        BodyShape,
        Disposition,
        Option<u64>,
    );
    let rows: Vec<Row> = vec![
        (
            "/space",
            409,
            ErrorCode::FailedPrecondition,
            "Space is not active",
            None,
            BodyShape::Detail,
            Disposition::FixRequest,
            None,
        ),
        (
            "/tenant",
            403,
            ErrorCode::PermissionDenied,
            "Tenant is suspended",
            None,
            BodyShape::Detail,
            Disposition::Forbidden,
            None,
        ),
        (
            "/agent",
            409,
            ErrorCode::AgentConnected,
            "Agent agt_... is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.",
            None,
            BodyShape::Structured,
            Disposition::FixRequest,
            None,
        ),
        (
            "/envelope",
            401,
            ErrorCode::InvalidApiKey,
            "The API key you sent is not recognized.",
            Some("Generate a new key in Settings → API Keys and update your config."),
            BodyShape::Envelope,
            Disposition::Reauthenticate,
            None,
        ),
        (
            "/mcp",
            403,
            ErrorCode::PermissionDenied,
            "Human-readable description",
            Some("Optional — actionable next step for the caller"),
            BodyShape::Mcp,
            Disposition::Forbidden,
            None,
        ),
        (
            "/jsonrpc",
            400,
            ErrorCode::InvalidArgument,
            "Input validation error",
            None,
            BodyShape::JsonRpc,
            Disposition::FixRequest,
            None,
        ),
        (
            "/proxy",
            502,
            ErrorCode::Unavailable,
            "502 Bad Gateway",
            None,
            BodyShape::Unrecognized,
            Disposition::Retry,
            None,
        ),
        (
            "/empty",
            500,
            ErrorCode::Internal,
            "Internal Server Error",
            None,
            BodyShape::Unrecognized,
            Disposition::Retry,
            None,
        ),
        (
            "/truncated",
            409,
            ErrorCode::FailedPrecondition,
            r#"{"detail": "Space is not"#,
            None,
            BodyShape::Unrecognized,
            Disposition::FixRequest,
            None,
        ),
        (
            "/grpc",
            200,
            ErrorCode::Unavailable,
            "backend restarting: retry",
            None,
            BodyShape::Grpc,
            Disposition::Retry,
            None,
        ),
        (
            "/ratelimit",
            429,
            ErrorCode::ResourceExhausted,
            "Too many requests",
            None,
            BodyShape::Detail,
            Disposition::RateLimited,
            Some(7),
        ),
        (
            "/refresh",
            503,
            ErrorCode::RefreshInProgress,
            "Another credential refresh for this team and agent is already running",
            None,
            BodyShape::Envelope,
            Disposition::Retry,
            Some(2),
        ),
        (
            "/pushback",
            200,
            ErrorCode::ResourceExhausted,
            "RESOURCE_EXHAUSTED",
            None,
            BodyShape::Grpc,
            // The server forbade a retry: the disposition says so.
            Disposition::DoNotRetry,
            None,
        ),
    ];
    assert_eq!(rows.len(), ROUTES.len());
    for (path, status, code, message, fix, shape, disposition, retry_after) in rows {
        let err = call(&mut svc, get(&base, path)).await.unwrap_err();
        assert_eq!(
            err.status(),
            Some(StatusCode::from_u16(status).unwrap()),
            "{path}"
        );
        assert_eq!(err.code(), &code, "{path}");
        assert_eq!(err.message(), message, "{path}");
        assert_eq!(err.fix(), fix, "{path}");
        assert_eq!(err.api().unwrap().shape(), shape, "{path}");
        assert_eq!(err.disposition(), disposition, "{path}");
        assert_eq!(
            err.retry_after(),
            retry_after.map(Duration::from_secs),
            "{path}"
        );
        assert_eq!(err.attempts(), 1);
        assert!(err.request_sent() && !err.is_transport(), "{path}");
        let api = err.api().unwrap();
        match path {
            "/agent" => {
                let remedy = api.agent_connected().unwrap();
                assert_eq!(api.field("agent_id").unwrap(), "agt_...");
                assert_eq!(
                    remedy.release_path().as_deref(),
                    Some("/api/actors/agt_.../release")
                );
            }
            "/mcp" => assert_eq!(api.details().unwrap()["nodeId"], "n_1"),
            "/jsonrpc" => assert_eq!(api.numeric_code(), Some(-32602)),
            "/grpc" => assert_eq!(api.numeric_code(), Some(14)),
            "/pushback" => {
                assert!(api.server_forbids_retry());
                assert!(!err.is_retryable());
            }
            _ => assert_eq!(err.is_retryable(), disposition.is_retryable(), "{path}"),
        }
    }
}

#[tokio::test]
async fn a_100_mib_error_body_is_read_only_up_to_max_body_bytes() {
    let (base, state) = server().await;
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new().max_body_bytes(16 * 1024))
        .service(client());
    let err = call(&mut svc, get(&base, "/huge")).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Internal);
    assert_eq!(err.message().chars().count(), 201, "a short excerpt");
    // The server could hand over only what the socket buffers hold on top of what was read.
    let sent = state.sent.load(Ordering::SeqCst);
    assert!(sent < 50 * 1024 * 1024, "{sent} bytes were produced");
}

#[tokio::test]
async fn an_endless_error_body_ends_at_max_body_bytes() {
    let (base, _) = server().await;
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client());
    let err = call(&mut svc, get(&base, "/endless")).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert!(
        err.message().starts_with("error error"),
        "{}",
        err.message()
    );
    // The connection is still usable for the next request (a new one is made if needed).
    let ok = call(&mut svc, get(&base, "/ok")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_trickling_error_body_ends_at_read_timeout() {
    let (base, _) = server().await;
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new().read_timeout(Some(Duration::from_millis(300))))
        .service(client());
    let err = call(&mut svc, get(&base, "/trickle")).await.unwrap_err();
    // Decoded as far as it got: a cut body, classified by its status.
    assert_eq!(err.status(), Some(StatusCode::FORBIDDEN));
    assert_eq!(err.code(), &ErrorCode::PermissionDenied);
    assert_eq!(err.message(), r#"{"detail": "Tenant"#);
}

/// A body that is always ready and never ends, counting the bytes it hands out.
#[derive(Debug)]
struct Endless {
    polled: Arc<AtomicUsize>,
    chunk: usize,
}

impl http_body::Body for Endless {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.polled.fetch_add(self.chunk, Ordering::SeqCst);
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'a'; self.chunk])))))
    }
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test]
async fn max_body_bytes_bounds_what_is_polled() {
    for (max, chunk) in [(4096, 1000), (64 * 1024, 1), (1, 7), (0, 5)] {
        let polled = Arc::new(AtomicUsize::new(0));
        let p = polled.clone();
        let inner = service_fn(move |_req: Request<()>| {
            let body = Endless {
                polled: p.clone(),
                chunk,
            };
            async move { Ok::<_, Infallible>(Response::builder().status(500).body(body).unwrap()) }
        });
        let mut svc = ErrorDecodeLayer::new().max_body_bytes(max).layer(inner);
        let err = svc
            .ready()
            .await
            .unwrap()
            .call(Request::new(()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), &ErrorCode::Internal);
        let polled = polled.load(Ordering::SeqCst);
        assert!(
            polled <= max + chunk,
            "max {max}, chunk {chunk}: polled {polled}"
        );
    }
}

/// A body that is always ready with empty frames and never ends.
#[derive(Debug)]
struct EmptyFrames;

impl http_body::Body for EmptyFrames {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
    }
}

// Real time, not `start_paused`: a body that is always ready keeps the runtime busy, so a
// paused clock would never auto-advance. No timing is asserted, only that it returns.
#[tokio::test]
async fn endless_empty_frames_end_at_read_timeout() {
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(Response::builder().status(503).body(EmptyFrames).unwrap())
    });
    let mut svc = ErrorDecodeLayer::new()
        .read_timeout(Some(Duration::from_millis(200)))
        .layer(inner);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Unavailable);
}

#[tokio::test]
async fn connection_refused_is_a_transport_error_never_sent() {
    // A port that was just free: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);

    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client());
    let err = call(&mut svc, get(&format!("http://{addr}"), "/ok"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), None);
    assert!(err.api().is_none());
    assert!(err.is_transport());
    assert!(err.is_retryable());
    assert_eq!(err.disposition(), Disposition::Retry);
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert!(
        !err.request_sent(),
        "a refused connection never carried the request"
    );
    let source = err.source().expect("the transport error");
    let hyper_err = source
        .downcast_ref::<hyper_util::client::legacy::Error>()
        .expect("source() is the hyper-util error");
    assert!(hyper_err.is_connect());
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn a_box_error_downcasts_to_error() {
    let (base, _) = server().await;
    // Timeout turns the inner error into a `tower::BoxError`.
    let mut svc = ServiceBuilder::new()
        .timeout(Duration::from_secs(60))
        .layer(ErrorDecodeLayer::new())
        .service(client());
    let boxed: tower::BoxError = svc
        .ready()
        .await
        .unwrap()
        .call(get(&base, "/envelope"))
        .await
        .unwrap_err();
    let err = boxed.downcast_ref::<Error>().expect("downcasts to Error");
    assert_eq!(err.code(), &ErrorCode::InvalidApiKey);
    // And `Error::transport` gives the same error back rather than wrapping it.
    let again = Error::transport(boxed);
    assert_eq!(again.code(), &ErrorCode::InvalidApiKey);
    assert!(!again.is_transport());
}

#[tokio::test]
async fn display_shows_code_message_and_fix_and_no_credential() {
    let (base, _) = server().await;
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client());

    let err = call(&mut svc, get(&base, "/envelope")).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "INVALID_API_KEY: The API key you sent is not recognized. (fix: Generate a new key in Settings → API Keys and update your config.)"
    );

    let req = Request::get(format!("{base}/echo?since=4&token=convo_{SECRET}"))
        .header("authorization", format!("Bearer convo_{SECRET}"))
        .header("x-api-key", SECRET)
        .body(Full::default())
        .unwrap();
    let err = call(&mut svc, req).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::InvalidApiKey);
    let api = err.api().unwrap();
    for text in [
        err.to_string(),
        format!("{err:?}"),
        format!("{err:#?}"),
        format!("{api:?}"),
        api.to_string(),
        api.details().unwrap().to_string(),
        api.field("authorization").unwrap().to_string(),
    ] {
        assert!(!text.contains(SECRET), "credential leaked: {text}");
    }
    assert!(
        err.message().contains("since=4"),
        "only the secret is removed: {}",
        err.message()
    );

    // The same echo in a grpc-message.
    let inner = service_fn(|_req: Request<()>| async {
        Ok::<_, Infallible>(
            Response::builder()
                .header("grpc-status", "16")
                .header(
                    "grpc-message",
                    format!("bad%20key%3A%20Bearer%20convo_{SECRET}%20token%3Dconvo_{SECRET}"),
                )
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
    });
    let mut svc = ErrorDecodeLayer::new().layer(inner);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Unauthenticated);
    assert!(!format!("{err} {err:?}").contains(SECRET), "{err:?}");
}

#[tokio::test]
async fn works_over_a_service_fn_with_any_body() {
    let inner = service_fn(|req: Request<String>| async move {
        let status = if req.body() == "fail" { 404 } else { 200 };
        let body = Full::new(Bytes::from_static(
            br#"{"code":"NOT_FOUND","message":"no such node","fix":"search first"}"#,
        ));
        Ok::<_, std::io::Error>(Response::builder().status(status).body(body).unwrap())
    });
    let mut svc = ErrorDecodeLayer::new().layer(inner);
    let ok = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new("ok".into()))
        .await
        .unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let err = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new("fail".into()))
        .await
        .unwrap_err();
    assert_eq!(
        (err.code(), err.fix()),
        (&ErrorCode::NotFound, Some("search first"))
    );
    let api: &ApiError = err.api().unwrap();
    assert_eq!(api.status(), StatusCode::NOT_FOUND);
}
