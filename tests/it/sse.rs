//! `ResumableEvents`: against a real axum SSE endpoint that drops connections at random
//! points, and against scripted services in paused time for the reconnect policy.

use axum::{
    Router,
    body::Body,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::get,
};
use bytes::Bytes;
use futures_util::{StreamExt, stream::BoxStream};
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{Empty, StreamBody};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::{
    collections::{HashMap, VecDeque},
    io,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::ServiceBuilder;
use tower_api_retry::{
    Disposition, ErrorCode, ErrorDecodeLayer, Event, ResumableEvents,
    backoff::{Backoff, Jitter},
};

const SECRET: &str = "convo_SECRET123";
const N: usize = 60;

fn id_of(i: usize) -> String {
    // Characters that must be percent-encoded in `?since=`.
    format!("ev {i}/&+ü")
}

fn event_text(i: usize) -> String {
    format!(
        "id: {}\nevent: tick\ndata: payload {i}\ndata: second line\n\n",
        id_of(i)
    )
}

/// One connection as the server saw it.
#[derive(Debug, Clone)]
struct Conn {
    since: Option<String>,
    start: usize,
    /// Complete events written before the drop.
    sent: usize,
    other_params: HashMap<String, String>,
    authorized_by: &'static str,
}

struct Server {
    rng: StdRng,
    requests: usize,
    conns: Vec<Conn>,
}

type Shared = Arc<Mutex<Server>>;

async fn events(
    State(server): State<Shared>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> axum::response::Response {
    server.lock().unwrap().requests += 1;
    let bearer = format!("Bearer {SECRET}");
    let authorized_by = if params.get("token").map(String::as_str) == Some(SECRET) {
        "query"
    } else if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(&bearer)
    {
        "header"
    } else {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(serde_json::json!({"detail": "Authentication required"})),
        )
            .into_response();
    };
    let since = params.get("since").cloned();
    let start = match &since {
        None => 0,
        Some(id) => match (1..=N).find(|&i| id_of(i) == *id) {
            Some(i) => i,
            None => return (StatusCode::BAD_REQUEST, "unknown cursor").into_response(),
        },
    };
    let mut other_params = params.clone();
    other_params.remove("since");
    let mut server = server.lock().unwrap();
    let k = server.rng.random_range(0..=4usize);
    let mode = server.rng.random_range(0..3u8);
    let end = (start + k).min(N);
    let mut bytes = b": hello\nretry: 1\n\n".to_vec();
    for i in start + 1..=end {
        bytes.extend_from_slice(event_text(i).as_bytes());
    }
    let last = end == N;
    if mode == 2 && !last {
        // Cut inside the next event, after its id: it must not move the cursor.
        let next = event_text(end + 1);
        let cut = server.rng.random_range(1..next.len() - 1);
        bytes.extend_from_slice(&next.as_bytes()[..cut]);
    }
    // Split into random chunks so lines and `\n\n` straddle writes.
    let mut chunks: Vec<Result<Bytes, io::Error>> = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let n = server.rng.random_range(1..=64usize).min(bytes.len() - at);
        chunks.push(Ok(Bytes::copy_from_slice(&bytes[at..at + n])));
        at += n;
    }
    if mode != 1 && !last {
        chunks.push(Err(io::Error::other("dropped")));
    }
    server.conns.push(Conn {
        since,
        start,
        sent: end - start,
        other_params,
        authorized_by,
    });
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

async fn serve(seed: u64) -> (String, Shared) {
    let shared = Arc::new(Mutex::new(Server {
        rng: StdRng::seed_from_u64(seed),
        requests: 0,
        conns: Vec::new(),
    }));
    let app = Router::new()
        .route("/api/events", get(events))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), shared)
}

fn client() -> impl tower::Service<
    Request<Empty<Bytes>>,
    Response = Response<hyper::body::Incoming>,
    Error = tower_api_retry::Error,
    Future: Send,
> + Clone {
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client)
}

fn fast() -> Backoff {
    Backoff::new()
        .base_delay(Duration::from_millis(1))
        .max_delay(Duration::from_millis(4))
}

async fn run_random_drops(seed: u64, by_header: bool) {
    let (base, shared) = serve(seed).await;
    let request = if by_header {
        Request::get(format!("{base}/api/events?x=1&since=bogus-replaced"))
            .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
    } else {
        Request::get(format!("{base}/api/events?token={SECRET}&x=1"))
    }
    .body(())
    .unwrap();
    let mut stream = ResumableEvents::new(client(), request)
        .backoff(fast())
        .max_retries(30);
    if by_header {
        // The template's `since` (a 400 if it were sent) is replaced by this cursor.
        stream = stream.resume_after(id_of(1));
    }
    let first = if by_header { 2 } else { 1 };

    let mut got: Vec<Event> = Vec::new();
    while got.len() < N + 1 - first {
        match stream.next().await {
            Some(Ok(event)) => got.push(event),
            other => panic!("seed {seed}: stream ended early: {other:?}"),
        }
    }
    for (event, i) in got.iter().zip(first..) {
        assert_eq!(event.id.as_deref(), Some(id_of(i).as_str()), "seed {seed}");
        assert_eq!(event.event, "tick");
        assert_eq!(event.data, format!("payload {i}\nsecond line"));
    }
    assert_eq!(stream.last_event_id(), Some(id_of(N).as_str()));

    let conns = shared.lock().unwrap().conns.clone();
    assert!(
        conns.len() > 5,
        "seed {seed}: the server dropped too rarely"
    );
    for (j, conn) in conns.iter().enumerate() {
        assert_eq!(conn.other_params.get("x").map(String::as_str), Some("1"));
        let expected_auth = if by_header { "header" } else { "query" };
        assert_eq!(conn.authorized_by, expected_auth);
        if j == 0 {
            let want = if by_header { Some(id_of(1)) } else { None };
            assert_eq!(conn.since, want, "seed {seed}");
            continue;
        }
        // The cursor of connection j is the last event the client received from
        // connection j-1: somewhere between where that one started and what it wrote.
        let prev = &conns[j - 1];
        assert!(
            conn.start >= prev.start && conn.start <= prev.start + prev.sent,
            "seed {seed}: connection {j} resumed at {} after {prev:?}",
            conn.start
        );
        assert_eq!(conn.since, (conn.start > 0).then(|| id_of(conn.start)));
    }
    // Every event was fetched from the server at least once, and delivered exactly once.
    assert_eq!(
        conns.last().map(|c| c.start + c.sent),
        Some(N),
        "seed {seed}"
    );
}

#[tokio::test]
async fn random_drops_lose_and_duplicate_nothing_with_a_query_token() {
    for seed in [1, 2, 3] {
        run_random_drops(seed, false).await;
    }
}

#[tokio::test]
async fn random_drops_lose_and_duplicate_nothing_with_a_header_token() {
    for seed in [4, 5] {
        run_random_drops(seed, true).await;
    }
}

#[tokio::test]
async fn unauthorized_ends_the_stream_after_one_request_and_hides_the_token() {
    let (base, shared) = serve(0).await;
    let request = Request::get(format!("{base}/api/events?token=convo_WRONG777"))
        .body(())
        .unwrap();
    let mut stream = ResumableEvents::new(client(), request).backoff(fast());
    let debug = format!("{stream:?}");
    assert!(!debug.contains("WRONG777"), "{debug}");
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
    assert_eq!(err.code(), &ErrorCode::Unauthenticated);
    assert_eq!(err.disposition(), Disposition::Reauthenticate);
    assert!(stream.next().await.is_none());
    assert_eq!(shared.lock().unwrap().requests, 1);
    for text in [err.to_string(), format!("{err:?}"), format!("{stream:?}")] {
        assert!(!text.contains("WRONG777"), "{text}");
    }
}

#[tokio::test]
async fn a_refused_connection_error_does_not_show_the_token() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let request = Request::get(format!("http://{addr}/api/events?token={SECRET}"))
        .header(header::AUTHORIZATION, format!("Bearer {SECRET}"))
        .body(())
        .unwrap();
    let mut stream = ResumableEvents::new(client(), request).max_retries(0);
    let err = stream.next().await.unwrap().unwrap_err();
    assert!(err.is_transport() && !err.request_sent());
    for text in [err.to_string(), format!("{err:?}"), format!("{stream:?}")] {
        assert!(!text.contains("SECRET123"), "{text}");
    }
}

// ---- scripted services, paused time ----

type ScriptBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, io::Error>>>;

enum Reply {
    /// An SSE body that ends normally.
    Events(&'static str),
    /// An SSE body that fails after its text.
    Broken(&'static str),
    Status(u16, Option<&'static str>),
    /// A body with this content type.
    Typed(&'static str, &'static str),
}

#[derive(Clone, Default)]
struct Script {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    calls: Arc<Mutex<Vec<(Instant, http::Uri, http::HeaderMap)>>>,
}

impl Script {
    fn new(replies: impl IntoIterator<Item = Reply>) -> Script {
        Script {
            replies: Arc::new(Mutex::new(replies.into_iter().collect())),
            calls: Default::default(),
        }
    }

    fn calls(&self) -> Vec<(Instant, http::Uri, http::HeaderMap)> {
        self.calls.lock().unwrap().clone()
    }

    fn service(
        &self,
    ) -> impl tower::Service<
        Request<Empty<Bytes>>,
        Response = Response<ScriptBody>,
        Error = tower_api_retry::Error,
        Future: Send,
    > + Clone {
        let script = self.clone();
        let inner = tower::service_fn(move |req: Request<Empty<Bytes>>| {
            script.calls.lock().unwrap().push((
                Instant::now(),
                req.uri().clone(),
                req.headers().clone(),
            ));
            let reply = script
                .replies
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or(Reply::Status(503, None));
            async move {
                let frames = |text: &'static str, fail: bool| -> ScriptBody {
                    let mut items = vec![Ok(Frame::data(Bytes::from_static(text.as_bytes())))];
                    if fail {
                        items.push(Err(io::Error::other("reset")));
                    }
                    StreamBody::new(futures_util::stream::iter(items).boxed())
                };
                let empty = || StreamBody::new(futures_util::stream::empty().boxed());
                let res = match reply {
                    Reply::Events(text) => Response::new(frames(text, false)),
                    Reply::Broken(text) => Response::new(frames(text, true)),
                    Reply::Typed(content_type, text) => {
                        let mut res = Response::new(frames(text, false));
                        res.headers_mut()
                            .insert(header::CONTENT_TYPE, content_type.parse().unwrap());
                        res
                    }
                    Reply::Status(code, retry_after) => {
                        let mut res = Response::new(empty());
                        *res.status_mut() = StatusCode::from_u16(code).unwrap();
                        if let Some(ra) = retry_after {
                            res.headers_mut()
                                .insert(header::RETRY_AFTER, ra.parse().unwrap());
                        }
                        res
                    }
                };
                Ok::<_, io::Error>(res)
            }
        });
        ServiceBuilder::new()
            .layer(ErrorDecodeLayer::new())
            .service(inner)
    }
}

fn template() -> Request<()> {
    Request::get("http://h/events?token=convo_SCRIPTED")
        .body(())
        .unwrap()
}

fn no_jitter(base_ms: u64) -> Backoff {
    Backoff::new()
        .base_delay(Duration::from_millis(base_ms))
        .jitter(Jitter::None)
}

#[tokio::test(start_paused = true)]
async fn not_found_and_forbidden_end_the_stream_after_one_request() {
    for code in [401, 403, 404] {
        let script = Script::new([Reply::Status(code, None)]);
        let mut stream = ResumableEvents::new(script.service(), template());
        let err = stream.next().await.unwrap().unwrap_err();
        assert_eq!(err.status().map(|s| s.as_u16()), Some(code));
        assert!(!err.is_retryable());
        assert!(stream.next().await.is_none());
        assert_eq!(script.calls().len(), 1, "{code}");
    }
}

#[tokio::test(start_paused = true)]
async fn unavailable_reconnects_after_the_backoff_and_retry_after() {
    let script = Script::new([
        Reply::Status(503, None),
        Reply::Status(503, Some("20")),
        Reply::Events("id: 1\ndata: a\n\n"),
    ]);
    let mut stream = ResumableEvents::new(script.service(), template()).backoff(no_jitter(100));
    let event = stream.next().await.unwrap().unwrap();
    assert_eq!((event.id.as_deref(), event.data.as_str()), (Some("1"), "a"));
    let calls = script.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[1].0 - calls[0].0, Duration::from_millis(100));
    // Retry-After: 20 beats the 200 ms backoff.
    assert_eq!(calls[2].0 - calls[1].0, Duration::from_secs(20));
    assert_eq!(calls[2].2[header::ACCEPT], "text/event-stream");
}

#[tokio::test(start_paused = true)]
async fn the_retry_cap_surfaces_the_error() {
    let script = Script::new([]);
    let mut stream = ResumableEvents::new(script.service(), template())
        .backoff(no_jitter(10))
        .max_retries(3);
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert_eq!(err.attempts(), 4);
    assert!(err.note().is_some());
    assert!(stream.next().await.is_none());
    let calls = script.calls();
    assert_eq!(calls.len(), 4);
    let gaps: Vec<_> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert_eq!(
        gaps,
        [10, 20, 40].map(Duration::from_millis),
        "doubling backoff"
    );
}

#[tokio::test(start_paused = true)]
async fn progress_resets_the_retry_count() {
    // Ten connections, each delivers one event and then breaks: far more drops than the cap
    // of 2, but none without progress.
    let replies = [
        "id: 1\ndata: 1\n\n",
        "id: 2\ndata: 2\n\n",
        "id: 3\ndata: 3\n\n",
        "id: 4\ndata: 4\n\n",
        "id: 5\ndata: 5\n\n",
        "id: 6\ndata: 6\n\n",
        "id: 7\ndata: 7\n\n",
        "id: 8\ndata: 8\n\n",
        "id: 9\ndata: 9\n\n",
        "id: 10\ndata: 10\n\n",
    ]
    .map(Reply::Broken);
    let script = Script::new(replies);
    let mut stream = ResumableEvents::new(script.service(), template())
        .backoff(no_jitter(10))
        .max_retries(2);
    let mut data = Vec::new();
    let err = loop {
        match stream.next().await.unwrap() {
            Ok(event) => data.push(event.data),
            Err(err) => break err,
        }
    };
    assert_eq!(data, (1..=10).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(err.attempts(), 3);
    let calls = script.calls();
    // 10 connections with events, then the one that broke after 10 and two retries.
    assert_eq!(calls.len(), 12);
    for (j, call) in calls.iter().enumerate().skip(1) {
        let want = format!("http://h/events?token=convo_SCRIPTED&since={}", j.min(10));
        assert_eq!(call.1.to_string(), want);
        assert_eq!(call.2["last-event-id"], j.min(10).to_string().as_str());
    }
}

#[tokio::test(start_paused = true)]
async fn the_servers_retry_field_is_the_minimum_wait() {
    let script = Script::new([
        Reply::Events("retry: 10000\nid: 1\ndata: a\n\n"),
        Reply::Events("id: 2\ndata: b\n\n"),
    ]);
    let mut stream = ResumableEvents::new(script.service(), template()).backoff(no_jitter(1));
    let first = stream.next().await.unwrap().unwrap();
    assert_eq!(first.retry, Some(Duration::from_secs(10)));
    let second = stream.next().await.unwrap().unwrap();
    assert_eq!(second.data, "b");
    let calls = script.calls();
    assert_eq!(calls[1].0 - calls[0].0, Duration::from_secs(10));
    assert_eq!(calls[1].1.query(), Some("token=convo_SCRIPTED&since=1"));
}

#[tokio::test(start_paused = true)]
async fn a_hostile_retry_field_ends_the_stream_instead_of_waiting_a_year() {
    let script = Script::new([
        Reply::Events("retry: 99999999999\nid: 1\ndata: a\n\n"),
        Reply::Events("id: 2\ndata: b\n\n"),
    ]);
    let mut stream = ResumableEvents::new(script.service(), template()).backoff(no_jitter(1));
    assert_eq!(stream.next().await.unwrap().unwrap().data, "a");
    let err = tokio::time::timeout(Duration::from_secs(60), stream.next())
        .await
        .expect("no silent year-long wait")
        .unwrap()
        .unwrap_err();
    assert!(
        err.retry_after().unwrap() > Duration::from_secs(86_400),
        "the server's ask is reported"
    );
    assert!(err.note().unwrap().contains("max_retry_after"), "{err}");
    assert!(stream.next().await.is_none());
    assert_eq!(script.calls().len(), 1, "not reconnected");
}

#[tokio::test(start_paused = true)]
async fn a_redirect_ends_the_stream_after_one_request() {
    let script = Script::new([Reply::Status(307, None)]);
    let mut stream = ResumableEvents::new(script.service(), template()).backoff(no_jitter(1));
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.status(), Some(http::StatusCode::TEMPORARY_REDIRECT));
    assert!(!err.is_retryable());
    assert!(stream.next().await.is_none());
    assert_eq!(script.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn an_event_cut_by_a_drop_is_received_once_after_the_reconnect() {
    let script = Script::new([
        Reply::Broken("id: 1\ndata: a\n\nid: 2\ndata: b-part"),
        Reply::Events("id: 2\ndata: b\n\n"),
    ]);
    let mut stream = ResumableEvents::new(script.service(), template()).backoff(no_jitter(1));
    let a = stream.next().await.unwrap().unwrap();
    let b = stream.next().await.unwrap().unwrap();
    assert_eq!((a.data.as_str(), b.data.as_str()), ("a", "b"));
    assert_eq!(
        script.calls()[1].1.query(),
        Some("token=convo_SCRIPTED&since=1")
    );
}

#[tokio::test(start_paused = true)]
async fn an_oversized_event_ends_the_stream_instead_of_growing() {
    let script = Script::new([Reply::Events(
        "data: 0123456789012345678901234567890123456789\n\n",
    )]);
    let mut stream = ResumableEvents::new(script.service(), template()).max_event_bytes(16);
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), &ErrorCode::OutOfRange);
    assert!(!err.is_retryable());
    assert!(stream.next().await.is_none());
    assert_eq!(script.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn no_content_means_stop() {
    let script = Script::new([Reply::Status(204, None)]);
    let mut stream = ResumableEvents::new(script.service(), template());
    assert!(stream.next().await.is_none());
    assert_eq!(script.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn debug_redacts_the_query_and_header_values() {
    let script = Script::new([]);
    let request = Request::get("http://h/events?token=convo_TOPSECRET&since=4")
        .header(header::AUTHORIZATION, "Bearer convo_HEADERSECRET")
        .header("x-api-key", "mk_APIKEYSECRET")
        .body(())
        .unwrap();
    let stream = ResumableEvents::new(script.service(), request);
    let debug = format!("{stream:?} {stream:#?}");
    for secret in ["TOPSECRET", "HEADERSECRET", "APIKEYSECRET"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    assert!(debug.contains("/events"), "{debug}");
}

#[tokio::test(start_paused = true)]
async fn a_response_that_is_not_an_event_stream_ends_the_stream() {
    let script = Script::new([
        Reply::Typed("text/event-stream; charset=utf-8", "id: 1\ndata: a\n\n"),
        Reply::Typed("text/html", "<html>login</html>"),
    ]);
    let mut stream = ResumableEvents::new(script.service(), template()).backoff(no_jitter(1));
    assert_eq!(stream.next().await.unwrap().unwrap().data, "a");
    let err = stream.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
    assert!(err.message().contains("text/html"));
    assert!(stream.next().await.is_none());
    assert_eq!(script.calls().len(), 2);
}
