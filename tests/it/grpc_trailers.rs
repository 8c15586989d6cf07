//! A gRPC status in the trailers teaches the rate-limit gate: on tokio's paused clock, with a
//! scripted service whose bodies send headers first, then (maybe) a message, then trailers.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, Uri};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Full};
use std::{
    convert::Infallible,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    Error, ErrorDecodeLayer,
    backoff::{Backoff, Jitter},
    rate_limit::{Key, RateLimitBackoffLayer, RateLimitGates, ResponseBody},
};

const MS: fn(u64) -> Duration = Duration::from_millis;
const URI: &str = "http://svc.test/echo.Echo/Say";

/// A response body: an optional message, then trailers, or nothing more ever (`hang`).
struct Scripted {
    message: Option<Bytes>,
    trailers: Option<HeaderMap>,
    hang: bool,
}

impl Body for Scripted {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(m) = self.message.take() {
            return Poll::Ready(Some(Ok(Frame::data(m))));
        }
        if self.hang {
            return Poll::Pending;
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

#[derive(Clone, Copy)]
enum Answer {
    /// Headers, no message, then `grpc-status` (and maybe a pushback) in the trailers.
    Trailers(u32, Option<&'static str>),
    /// Headers, a message, then `grpc-status: 0`.
    Ok,
    /// Headers and a message, then nothing more.
    MessageThenHang,
}

fn trailers(code: u32, pushback: Option<&'static str>) -> HeaderMap {
    let mut t = HeaderMap::new();
    t.insert("grpc-status", HeaderValue::from(code));
    if let Some(p) = pushback {
        t.insert("grpc-retry-pushback-ms", HeaderValue::from_static(p));
    }
    t
}

fn respond(content_type: &'static str, answer: Answer) -> Response<Scripted> {
    let body = match answer {
        Answer::Trailers(code, pushback) => Scripted {
            message: None,
            trailers: Some(trailers(code, pushback)),
            hang: false,
        },
        Answer::Ok => Scripted {
            message: Some(Bytes::from_static(b"\0\0\0\0\0")),
            trailers: Some(trailers(0, None)),
            hang: false,
        },
        Answer::MessageThenHang => Scripted {
            message: Some(Bytes::from_static(b"\0\0\0\0\0")),
            trailers: None,
            hang: true,
        },
    };
    Response::builder()
        .header("content-type", content_type)
        .body(body)
        .unwrap()
}

type Client =
    tower::util::BoxCloneSyncService<Request<Full<Bytes>>, Response<ResponseBody<Scripted>>, Error>;

/// The gate over a scripted server that answers the n-th request with `script[n]` (then OK),
/// and logs arrivals.
fn stack(
    content_type: &'static str,
    script: Vec<Answer>,
) -> (Client, RateLimitGates, Arc<Mutex<Vec<Instant>>>) {
    let arrivals = Arc::new(Mutex::new(Vec::new()));
    let log = arrivals.clone();
    let script = Arc::new(script);
    let server = service_fn(move |_req: Request<Full<Bytes>>| {
        let n = {
            let mut log = log.lock().unwrap();
            log.push(Instant::now());
            log.len() - 1
        };
        let answer = script.get(n).copied().unwrap_or(Answer::Ok);
        async move { Ok::<_, Infallible>(respond(content_type, answer)) }
    });
    let gates = RateLimitGates::new();
    let layer = RateLimitBackoffLayer::new()
        .backoff(Backoff::new().jitter(Jitter::None))
        .gates(gates.clone());
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ErrorDecodeLayer::new())
        .service(server);
    (Client::new(svc), gates, arrivals)
}

fn call() -> Request<Full<Bytes>> {
    Request::post(URI)
        .header("content-type", "application/grpc")
        .body(Full::default())
        .unwrap()
}

fn key() -> Key {
    Key::from_uri(&Uri::from_static(URI))
}

/// Sends a call and reads its whole body; returns the trailers.
async fn unary(client: &Client) -> Option<HeaderMap> {
    let res = client.clone().oneshot(call()).await.unwrap();
    res.into_body().collect().await.unwrap().trailers().cloned()
}

#[tokio::test(start_paused = true)]
async fn resource_exhausted_in_trailers_closes_the_method_for_its_pushback() {
    let (client, gates, arrivals) =
        stack("application/grpc", vec![Answer::Trailers(8, Some("800"))]);
    let res = client.clone().oneshot(call()).await.unwrap();
    // The status is not known until the trailers have been read.
    assert!(gates.is_empty());
    let trailers = res.into_body().collect().await.unwrap().trailers().cloned();
    assert_eq!(trailers.unwrap()["grpc-status"], "8", "passed on unchanged");
    assert_eq!(gates.time_left(key()), Some(MS(800)));

    // The next call waits at the gate; its answer opens it again.
    let start = Instant::now();
    unary(&client).await;
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals[1] - start, MS(800));
    assert_eq!(gates.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_probe_rejected_in_its_trailers_doubles_the_backoff() {
    let (client, gates, _) = stack(
        "application/grpc",
        vec![Answer::Trailers(8, None), Answer::Trailers(8, None)],
    );
    unary(&client).await;
    assert_eq!(gates.time_left(key()), Some(MS(1000)), "the first backoff");
    // The probe goes at 1 s and is rejected in its trailers: a consecutive rejection.
    unary(&client).await;
    assert_eq!(gates.time_left(key()), Some(MS(2000)), "the second backoff");
    unary(&client).await;
    assert_eq!(gates.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_probe_answered_with_a_message_opens_the_gate_before_its_trailers() {
    let (client, gates, _) = stack(
        "application/grpc",
        vec![Answer::Trailers(8, Some("100")), Answer::MessageThenHang],
    );
    unary(&client).await;
    assert_eq!(gates.len(), 1);
    // A streaming probe: its first message is its answer, whenever the stream ends.
    let res = client.clone().oneshot(call()).await.unwrap();
    let mut body = res.into_body();
    assert!(body.frame().await.unwrap().unwrap().is_data());
    assert_eq!(gates.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_probe_dropped_before_its_status_hands_the_role_on() {
    let (client, gates, arrivals) = stack(
        "application/grpc",
        vec![Answer::Trailers(8, Some("100")), Answer::Trailers(0, None)],
    );
    unary(&client).await;
    // The probe's response is dropped unread: the next request probes at once.
    let probe = client.clone().oneshot(call()).await.unwrap();
    drop(probe);
    assert_eq!(gates.len(), 1);
    let start = Instant::now();
    unary(&client).await;
    assert_eq!(
        arrivals.lock().unwrap()[2],
        start,
        "sent at once, as the probe"
    );
    assert_eq!(gates.len(), 0);
}

#[tokio::test(start_paused = true)]
async fn trailers_of_other_responses_are_never_read() {
    // Not gRPC: a `grpc-status` in HTTP trailers means nothing.
    let (client, gates, _) = stack("application/json", vec![Answer::Trailers(8, Some("800"))]);
    let t = unary(&client).await.unwrap();
    assert_eq!(t["grpc-status"], "8");
    assert!(gates.is_empty());
    // A success is passed on frame by frame, unchanged.
    let (client, gates, _) = stack("application/grpc", vec![Answer::Ok]);
    let res = client.clone().oneshot(call()).await.unwrap();
    let body = res.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "0");
    assert_eq!(&body.to_bytes()[..], b"\0\0\0\0\0");
    assert!(gates.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_rate_limit_after_messages_still_closes_the_gate() {
    // A stream that sent messages and then ran into its quota.
    struct Stream(u8);
    impl Body for Stream {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            self.0 += 1;
            Poll::Ready(match self.0 {
                1 | 2 => Some(Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0")))),
                3 => Some(Ok(Frame::trailers(trailers(8, Some("300"))))),
                _ => None,
            })
        }
    }
    let gates = RateLimitGates::new();
    let layer = RateLimitBackoffLayer::new().gates(gates.clone());
    let svc = ServiceBuilder::new()
        .layer(layer)
        .layer(ErrorDecodeLayer::new())
        .service(service_fn(|_req: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/grpc+proto")
                    .body(Stream(0))
                    .unwrap(),
            )
        }));
    let res = svc.oneshot(call()).await.unwrap();
    res.into_body().collect().await.unwrap();
    assert_eq!(gates.time_left(key()), Some(MS(300)));
}
