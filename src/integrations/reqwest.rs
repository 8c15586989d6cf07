//! A [`reqwest::Client`] under the stack.
//!
//! The layers of this crate speak `http`; a `reqwest::Client` speaks [`reqwest::Request`].
//! [`ReqwestService`] converts between the two with reqwest's own conversions, so all of the
//! client's configuration still applies. Its errors are classified like hyper's, and its
//! request bodies replay on retry (see [`BodyCopy`]).
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use http_body_util::BodyExt;
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use tower_api_retry::{Disposition, ErrorCode, ServiceBuilderExt};
//! use tower_api_retry::integrations::reqwest::ReqwestService;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), tower::BoxError> {
//! # // An API on loopback: `/api/spaces` answers 200, anything else the "Errors" page's 409.
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let api = format!("http://{}", listener.local_addr()?);
//! # let app = axum::Router::new()
//! #     .route("/api/spaces", axum::routing::get(|| async { "[]" }))
//! #     .fallback(|| async { (axum::http::StatusCode::CONFLICT, r#"{"detail": "Space is not active"}"#) });
//! # tokio::spawn(async move { axum::serve(listener, app).await });
//! // Your reqwest client, configured as usual.
//! let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
//! // Retries, rate-limit gates and typed errors, in the documented order.
//! let mut client = ServiceBuilder::new().api_contract().service(ReqwestService::new(client));
//!
//! let request = Request::get(format!("{api}/api/spaces")).body(reqwest::Body::default())?;
//! let response = client.ready().await?.call(request).await?;
//! assert_eq!(response.status(), StatusCode::OK);
//! // The client's own response, its body untouched.
//! let body = response.into_body().collect().await?.to_bytes();
//! assert_eq!(&body[..], b"[]");
//!
//! // An error response is one typed `Error`.
//! let request = Request::post(format!("{api}/api/spaces/s1/events"))
//!     .header("content-type", "application/json")
//!     .body(reqwest::Body::from(r#"{"kind": "note"}"#))?;
//! let err = client.ready().await?.call(request).await.unwrap_err();
//! assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
//! assert_eq!(err.disposition(), Disposition::FixRequest);
//! assert_eq!(err.attempts(), 1);
//! # Ok(())
//! # }
//! ```
//!
//! # reqwest's features, retries and redirects
//!
//! This crate's `reqwest` feature enables no feature of reqwest (no TLS): your own `reqwest`
//! dependency decides.
//!
//! Do not also give reqwest a status-based retry policy
//! ([`ClientBuilder::retry`](reqwest::ClientBuilder::retry)): every attempt of the stack would
//! become several. reqwest keeps `X-Api-Key` across a cross-host redirect: an API
//! authenticated by it is safer with [`redirect::Policy::none()`](reqwest::redirect::Policy::none).

use crate::{
    code::ErrorCode,
    error::Error,
    retry::{Captured, NotReplayable, ReplayBody},
};
use bytes::Bytes;
use http_body::{Body as _, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll, Waker, ready},
};
use tower::Service;

/// A [`reqwest::Client`] as a `tower::Service<http::Request<B>>` answering
/// `http::Response<reqwest::Body>`, so that the crate's layers can wrap it. See the
/// [module docs](self) for an example.
///
/// `B` is the request body type: `reqwest::Body` from [`new`](ReqwestService::new), any other
/// `B: Into<reqwest::Body>` from `From`, for example `ReqwestService::<String>::from(client)`.
///
/// # Errors
///
/// Its error is the crate's [`Error`], classified from reqwest's own error kinds the
/// way [`Error::transport`] classifies hyper's. [`source`](std::error::Error::source) is
/// reqwest's error, which can be downcast to [`reqwest::Error`]:
///
/// | reqwest failed | [`code`](Error::code) | [`request_sent`](Error::request_sent) | retried |
/// | --- | --- | --- | --- |
/// | to connect: refused, DNS, TLS handshake ([`is_connect`](reqwest::Error::is_connect)) | `UNAVAILABLE` | `false` | yes, even a `POST` |
/// | to connect in time ([`connect_timeout`](reqwest::ClientBuilder::connect_timeout)) | `DEADLINE_EXCEEDED` | `false` | yes, even a `POST` |
/// | in time ([`timeout`](reqwest::ClientBuilder::timeout), [`read_timeout`](reqwest::ClientBuilder::read_timeout)) | `DEADLINE_EXCEEDED` | `true` | when the method allows it |
/// | after connecting: a reset, a closed connection, a failing request body | `UNAVAILABLE` | `true` | when the method allows it |
/// | to build the request: a URI without scheme or host ([`is_builder`](reqwest::Error::is_builder)) | `INVALID_ARGUMENT` | `false` | no: fix the request |
///
/// "When the method allows it": an idempotent method, or an `Idempotency-Key` (see
/// [`RetryLayer`](crate::RetryLayer)). The URL in reqwest's error loses its query, fragment
/// and user info, where credentials travel.
pub struct ReqwestService<B = reqwest::Body> {
    client: reqwest::Client,
    _body: PhantomData<fn(B)>,
}

impl ReqwestService {
    /// Wraps `client`, for requests with a `reqwest::Body`.
    pub fn new(client: reqwest::Client) -> Self {
        ReqwestService::from(client)
    }
}

impl<B> From<reqwest::Client> for ReqwestService<B> {
    fn from(client: reqwest::Client) -> Self {
        ReqwestService {
            client,
            _body: PhantomData,
        }
    }
}

impl<B> Clone for ReqwestService<B> {
    fn clone(&self) -> Self {
        ReqwestService::from(self.client.clone())
    }
}

impl<B> fmt::Debug for ReqwestService<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReqwestService")
            .field("client", &self.client)
            .finish()
    }
}

/// What `reqwest::Client` answers a `reqwest::Request` with.
type Pending = <reqwest::Client as Service<reqwest::Request>>::Future;

impl<B> Service<http::Request<B>> for ReqwestService<B>
where
    B: Into<reqwest::Body>,
{
    type Response = http::Response<reqwest::Body>;
    type Error = Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Service::<reqwest::Request>::poll_ready(&mut self.client, cx).map_err(classify)
    }

    fn call(&mut self, request: http::Request<B>) -> ResponseFuture {
        let state = match reqwest::Request::try_from(request) {
            Ok(request) => State::Called {
                future: self.client.call(request),
            },
            Err(err) => State::Failed {
                error: Some(classify(err)),
            },
        };
        ResponseFuture { state }
    }
}

pin_project! {
    /// The response future of [`ReqwestService`].
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        Called { #[pin] future: Pending },
        Failed { error: Option<Error> },
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<reqwest::Body>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Called { future } => Poll::Ready(
                ready!(future.poll(cx))
                    .map(http::Response::from)
                    .map_err(classify),
            ),
            StateProj::Failed { error } => {
                Poll::Ready(Err(error.take().expect("polled after completion")))
            }
        }
    }
}

/// reqwest's error as the crate's [`Error`], classified from reqwest's own error kinds (its
/// timeouts are a private type that the chain of sources does not show).
fn classify(mut err: reqwest::Error) -> Error {
    if let Some(url) = err.url_mut() {
        // Where credentials travel; the scheme, host and path are enough to tell what failed.
        url.set_query(None);
        url.set_fragment(None);
        let _ = url.set_username("");
        let _ = url.set_password(None);
    }
    let code = if err.is_builder() {
        Some(ErrorCode::InvalidArgument)
    } else if err.is_timeout() {
        Some(ErrorCode::DeadlineExceeded)
    } else {
        None
    };
    // reqwest writes nothing before it has a connection: a failure to connect (refused, DNS,
    // TLS handshake, connect timeout) never sent the request, nor did one it could not build.
    let never_sent = err.is_connect() || err.is_builder();
    Error::transport_as(err, code, never_sent)
}

/// What the retry layer keeps of a `reqwest::Body` between attempts: the bytes of a buffered
/// body, or the [`Captured`] copy of a streaming one.
///
/// A buffered body is replayed from its shared bytes; a streaming one is copied while the
/// first attempt streams it, up to [`max_replay_bytes`](crate::RetryLayer::max_replay_bytes)
/// (see [`ReplayBody`]).
#[derive(Clone)]
pub struct BodyCopy(Repr);

#[derive(Clone)]
enum Repr {
    Buffered(Bytes),
    Streaming(Captured),
}

impl fmt::Debug for BodyCopy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the bytes.
        match &self.0 {
            Repr::Buffered(bytes) => f
                .debug_struct("Buffered")
                .field("len", &bytes.len())
                .finish(),
            Repr::Streaming(copy) => fmt::Debug::fmt(copy, f),
        }
    }
}

impl ReplayBody for reqwest::Body {
    type Replay = BodyCopy;

    fn capture(self, max_bytes: usize) -> (Self, BodyCopy) {
        match buffered(self) {
            Ok(bytes) => (
                reqwest::Body::from(bytes.clone()),
                BodyCopy(Repr::Buffered(bytes)),
            ),
            Err(body) => {
                let (body, copy) = Captured::capture_with(body, max_bytes, reqwest::Body::wrap);
                (body, BodyCopy(Repr::Streaming(copy)))
            }
        }
    }

    fn replay(copy: &BodyCopy) -> Result<Self, NotReplayable> {
        match &copy.0 {
            Repr::Buffered(bytes) => Ok(reqwest::Body::from(bytes.clone())),
            Repr::Streaming(copy) => copy.replay_with(reqwest::Body::wrap, reqwest::Body::wrap),
        }
    }
}

/// The bytes of a buffered body, taken out without copying them; a streaming body is handed
/// back.
fn buffered(mut body: reqwest::Body) -> Result<Bytes, reqwest::Body> {
    if body.as_bytes().is_none() {
        return Err(body);
    }
    // reqwest hands a buffered body out at once, in one frame, and is then at its end.
    let first = match Pin::new(&mut body).poll_frame(&mut Context::from_waker(Waker::noop())) {
        Poll::Pending => return Err(body),
        Poll::Ready(None) => return Ok(Bytes::new()),
        Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
            Ok(data) if body.is_end_stream() => return Ok(data),
            Ok(data) => Ok(Frame::data(data)),
            Err(frame) => Ok(frame),
        },
        Poll::Ready(Some(Err(err))) => Err(err),
    };
    // Anything else: what was taken, then the rest, sent (and copied) as a stream.
    Err(reqwest::Body::wrap(Resumed {
        first: Some(first),
        rest: body,
    }))
}

/// A body with one frame already taken out of it, put back in front.
struct Resumed {
    first: Option<Result<Frame<Bytes>, reqwest::Error>>,
    rest: reqwest::Body,
}

impl http_body::Body for Resumed {
    type Data = Bytes;
    type Error = reqwest::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, reqwest::Error>>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(first));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let first = match &self.first {
            Some(Ok(frame)) => frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => 0,
        };
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower() + first);
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper + first);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn streaming(chunks: &[&'static [u8]]) -> reqwest::Body {
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        reqwest::Body::wrap(StreamBody::new(futures_util::stream::iter(frames)))
    }

    async fn drain(body: reqwest::Body) -> Bytes {
        body.collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_buffered_body_replays_its_own_bytes_without_a_copy() {
        let original = Bytes::from(vec![7u8; 4096]);
        let (first, copy) = reqwest::Body::from(original.clone()).capture(16);
        // Not subject to max_replay_bytes, like `Full`: the bytes are shared.
        assert_eq!(format!("{copy:?}"), "Buffered { len: 4096 }");
        assert_eq!(
            first.as_bytes().map(<[u8]>::as_ptr),
            Some(original.as_ptr())
        );
        for _ in 0..2 {
            let again = reqwest::Body::replay(&copy).unwrap();
            assert_eq!(
                again.as_bytes().map(<[u8]>::as_ptr),
                Some(original.as_ptr())
            );
            assert_eq!(drain(again).await, original);
        }
        assert_eq!(drain(first).await, original);

        let (first, copy) = reqwest::Body::default().capture(16);
        assert!(first.is_end_stream());
        assert!(reqwest::Body::replay(&copy).unwrap().is_end_stream());
    }

    #[tokio::test]
    async fn a_streaming_body_is_captured_and_replayed() {
        let (first, copy) = streaming(&[b"he", b"llo"]).capture(64);
        assert!(first.as_bytes().is_none());
        // Not sent to its end yet: nothing to replay.
        assert_eq!(
            reqwest::Body::replay(&copy).err(),
            Some(NotReplayable::Incomplete)
        );
        assert_eq!(&drain(first).await[..], b"hello");
        for _ in 0..2 {
            let again = reqwest::Body::replay(&copy).unwrap();
            assert_eq!(&drain(again).await[..], b"hello");
        }

        let (first, copy) = streaming(&[b"0123456789", b"0123456789"]).capture(15);
        assert_eq!(drain(first).await.len(), 20, "sent whole");
        assert_eq!(
            reqwest::Body::replay(&copy).err(),
            Some(NotReplayable::TooLarge)
        );
    }

    #[tokio::test]
    async fn a_streaming_body_never_sent_is_sent_as_it_is() {
        let (first, copy) = streaming(&[b"a", b"b"]).capture(64);
        // The attempt dropped it untouched (a refused connection).
        drop(first);
        let again = reqwest::Body::replay(&copy).unwrap();
        assert_eq!(&drain(again).await[..], b"ab");
        // Sent this time: later attempts replay the copy.
        assert_eq!(
            &drain(reqwest::Body::replay(&copy).unwrap()).await[..],
            b"ab"
        );
    }

    #[tokio::test]
    async fn a_resumed_body_puts_its_first_frame_back() {
        let body = Resumed {
            first: Some(Ok(Frame::data(Bytes::from_static(b"ab")))),
            rest: streaming(&[b"cd", b"e"]),
        };
        assert!(!body.is_end_stream());
        assert_eq!(body.size_hint().lower(), 2);
        let (first, copy) = reqwest::Body::wrap(body).capture(64);
        assert_eq!(&drain(first).await[..], b"abcde");
        assert_eq!(
            &drain(reqwest::Body::replay(&copy).unwrap()).await[..],
            b"abcde"
        );
    }

    #[tokio::test]
    async fn a_request_reqwest_cannot_build_is_a_local_error_never_sent() {
        let mut svc = ReqwestService::new(reqwest::Client::new());
        let request = http::Request::get("/relative/only")
            .body(reqwest::Body::default())
            .unwrap();
        let err = svc.call(request).await.unwrap_err();
        assert_eq!(err.code(), &ErrorCode::InvalidArgument);
        assert_eq!(err.disposition(), crate::classify::Disposition::FixRequest);
        assert!(!err.request_sent() && !err.is_retryable());
        let source = std::error::Error::source(&err).unwrap();
        assert!(
            source
                .downcast_ref::<reqwest::Error>()
                .unwrap()
                .is_builder()
        );
    }

    #[tokio::test]
    async fn the_url_in_reqwests_error_loses_its_query_and_user_info() {
        // A port that was just free: connecting is refused.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut svc = ReqwestService::new(reqwest::Client::new());
        let request = http::Request::get(format!("http://{addr}/api/x?token=convo_SECRET#frag"))
            .body(reqwest::Body::default())
            .unwrap();
        let err = svc.call(request).await.unwrap_err();
        assert!(!err.request_sent());
        let source = std::error::Error::source(&err)
            .unwrap()
            .downcast_ref::<reqwest::Error>()
            .unwrap();
        assert_eq!(
            source.url().map(reqwest::Url::as_str),
            Some(format!("http://{addr}/api/x").as_str())
        );
        for text in [
            err.to_string(),
            format!("{err:?}"),
            source.to_string(),
            format!("{source:?}"),
        ] {
            assert!(!text.contains("SECRET") && !text.contains("frag"), "{text}");
        }
    }
}
