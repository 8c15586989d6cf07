use super::{Credentials, SensitiveHeaders, is_error};
use crate::{
    contract::ErrorContract,
    error::{ApiError, BodyShape, Error},
    telemetry::{self, Started},
};
use bytes::Buf;
use http::{HeaderName, Request, Response, response::Parts};
use http_body::Body;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::Sleep;
use tower::BoxError;
use tower::{Layer, Service};

/// The default for [`ErrorDecodeLayer::max_body_bytes`]: 64 KiB.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 64 * 1024;
/// The default for [`ErrorDecodeLayer::read_timeout`]: 10 seconds.
pub(crate) const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How many body frames one poll reads before yielding to the runtime.
const FRAMES_PER_POLL: usize = 64;

/// How [`poll_read`] fills its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Up to the limit exactly; the rest of a chunk is dropped (an error body, decoded as far
    /// as it goes).
    Truncate,
    /// Whole chunks, until the buffer holds more than the limit (a success that must reach
    /// the caller intact).
    WholeChunks,
}

/// How a [`poll_read`] ended.
pub(crate) enum ReadEnd<E> {
    /// The buffer reached the limit; the body may have more.
    Full,
    /// The body ended, with its trailers if it had any.
    End(Option<http::HeaderMap>),
    /// The body failed.
    Failed(E),
}

/// Reads `body` into `buf`, bounded by `max` bytes as `fill` says. Yields to the runtime after
/// [`FRAMES_PER_POLL`] frames, so a body that is always ready with tiny or empty frames can
/// neither starve other tasks nor keep the caller's read timeout from firing.
pub(crate) fn poll_read<B: Body>(
    mut body: Pin<&mut B>,
    buf: &mut Vec<u8>,
    max: usize,
    fill: Fill,
    cx: &mut Context<'_>,
) -> Poll<ReadEnd<B::Error>> {
    let full = |buf: &Vec<u8>| match fill {
        Fill::Truncate => buf.len() >= max,
        Fill::WholeChunks => buf.len() > max,
    };
    for _ in 0..FRAMES_PER_POLL {
        if full(buf) {
            return Poll::Ready(ReadEnd::Full);
        }
        match ready!(body.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => match frame.into_data() {
                Ok(mut data) => {
                    while data.has_remaining() {
                        let chunk = data.chunk();
                        let take = match fill {
                            Fill::Truncate => chunk.len().min(max - buf.len()),
                            Fill::WholeChunks => chunk.len(),
                        };
                        if take == 0 {
                            break;
                        }
                        buf.extend_from_slice(&chunk[..take]);
                        data.advance(take);
                    }
                }
                Err(frame) => return Poll::Ready(ReadEnd::End(frame.into_trailers().ok())),
            },
            Some(Err(e)) => return Poll::Ready(ReadEnd::Failed(e)),
            None => return Poll::Ready(ReadEnd::End(None)),
        }
    }
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Turns error responses into [`Error`]s. See the [module docs](crate::decode) for an example.
///
/// The layer remembers the [`Credentials`] each request carries; none of them shows in an
/// error built from the response, however the server echoes it.
#[derive(Clone, Debug)]
pub struct ErrorDecodeLayer {
    pub(crate) limits: Limits,
    sensitive: SensitiveHeaders,
    contract: ErrorContract,
}

/// How much of an error body is read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    pub(crate) max_body_bytes: usize,
    pub(crate) read_timeout: Option<Duration>,
}

impl Default for ErrorDecodeLayer {
    fn default() -> Self {
        ErrorDecodeLayer::new()
    }
}

impl ErrorDecodeLayer {
    /// Reads at most 64 KiB of an error body, for at most 10 seconds.
    pub const fn new() -> Self {
        ErrorDecodeLayer {
            limits: Limits {
                max_body_bytes: DEFAULT_MAX_BODY_BYTES,
                read_timeout: Some(DEFAULT_READ_TIMEOUT),
            },
            sensitive: SensitiveHeaders::new(),
            contract: ErrorContract::new(),
        }
    }

    /// The most bytes of an error body that are read; the rest is never polled. A body cut
    /// short is decoded as far as it goes (usually as an unrecognised body, by its status).
    pub const fn max_body_bytes(mut self, max: usize) -> Self {
        self.limits.max_body_bytes = max;
        self
    }

    /// How long reading an error body may take before it is decoded as far as it got
    /// (`None`: no limit). This bounds a body that trickles a byte a second.
    pub const fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.limits.read_timeout = timeout;
        self
    }

    /// Also treats the value of the header `name` as a credential: wherever a server echoes
    /// it, an error shows `[REDACTED]` instead (see [`Credentials`]). May be called for several
    /// headers. A string that is not a valid header name is ignored: no request can carry it.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_api_retry::ErrorDecodeLayer;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // A server that echoes the header back in its error.
    /// let server = service_fn(|req: Request<Full<Bytes>>| async move {
    ///     let secret = req.headers()["x-team-secret"].to_str().unwrap().to_owned();
    ///     let body = format!(r#"{{"detail": "secret {secret} is not valid here"}}"#);
    ///     Ok::<_, std::io::Error>(Response::builder().status(403).body(Full::new(Bytes::from(body))).unwrap())
    /// });
    /// let client = ErrorDecodeLayer::new().sensitive_header("x-team-secret").layer(server);
    ///
    /// let req = Request::get("/api/me").header("x-team-secret", "team-4f7a9c2e").body(Full::default()).unwrap();
    /// let err = client.oneshot(req).await.unwrap_err();
    /// assert_eq!(err.message(), "secret [REDACTED] is not valid here");
    /// # }
    /// ```
    pub fn sensitive_header<N: TryInto<HeaderName>>(mut self, name: N) -> Self {
        self.sensitive = self.sensitive.with(name);
        self
    }

    /// The error contract that gives a decoded error its disposition: codes an API declares
    /// mean what they were declared to mean (see [`ErrorContract`] for an example).
    pub fn contract(mut self, contract: ErrorContract) -> Self {
        self.contract = contract;
        self
    }
}

impl<S> Layer<S> for ErrorDecodeLayer {
    type Service = ErrorDecode<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ErrorDecode {
            inner,
            config: self.clone(),
        }
    }
}

/// The service of [`ErrorDecodeLayer`].
#[derive(Clone, Debug)]
pub struct ErrorDecode<S> {
    inner: S,
    config: ErrorDecodeLayer,
}

impl<S, ReqB, B> Service<Request<ReqB>> for ErrorDecode<S>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<B>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Error::transport)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let credentials =
            Credentials::carried(req.headers(), req.uri(), self.config.sensitive.as_slice());
        let started = Started::now(req.method());
        ResponseFuture {
            state: State::Calling {
                future: self.inner.call(req),
            },
            limits: self.config.limits,
            credentials,
            contract: self.config.contract.clone(),
            started,
        }
    }
}

pin_project! {
    /// The response future of [`ErrorDecode`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        limits: Limits,
        // Fingerprints of the request's credentials, for an error built from the response.
        credentials: Credentials,
        // Cloned per call: free for the built-in contract.
        contract: ErrorContract,
        // For the request duration metric (empty without the `metrics` feature).
        started: Started,
    }
}

impl<F, B> ResponseFuture<F, B> {
    /// Hands the request's credentials and the contract over (to the MCP decoder, which
    /// inspects successes).
    pub(crate) fn take_context(self: Pin<&mut Self>) -> (Credentials, ErrorContract) {
        let this = self.project();
        (
            std::mem::take(this.credentials),
            std::mem::take(this.contract),
        )
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Calling { #[pin] future: F },
        // Boxed: only an error response gets here, and the success path's future stays as
        // small as the inner one.
        Reading { reading: Pin<Box<Reading<B>>> },
    }
}

pin_project! {
    #[project = ReadingProj]
    struct Reading<B> {
        parts: Option<Parts>,
        credentials: Credentials,
        #[pin]
        body: B,
        buf: Vec<u8>,
        #[pin]
        deadline: Option<Sleep>,
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<B>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let res = match ready!(future.poll(cx)) {
                        Ok(res) => res,
                        Err(e) => {
                            let err = Error::transport_with(e, this.credentials, this.contract);
                            telemetry::request_failed(this.started, &err);
                            return Poll::Ready(Err(err));
                        }
                    };
                    if !is_error(res.status(), res.headers()) {
                        telemetry::request_ok(this.started, res.status());
                        return Poll::Ready(Ok(res));
                    }
                    let (parts, body) = res.into_parts();
                    let config = *this.limits;
                    if crate::grpc::is_error(&parts.headers) || config.max_body_bytes == 0 {
                        // A gRPC error is all in the headers (trailers-only): no body to read.
                        let err = decode(&parts, &[], this.credentials, true, this.contract);
                        telemetry::request_failed(this.started, &err);
                        return Poll::Ready(Err(err));
                    }
                    let hint = body.size_hint().upper().unwrap_or(0);
                    let cap = (hint as usize).min(config.max_body_bytes).min(8 * 1024);
                    this.state.set(State::Reading {
                        reading: Box::pin(Reading {
                            parts: Some(parts),
                            credentials: std::mem::take(this.credentials),
                            body,
                            buf: Vec::with_capacity(cap),
                            deadline: config.read_timeout.map(tokio::time::sleep),
                        }),
                    });
                }
                StateProj::Reading { reading } => {
                    let ReadingProj {
                        parts,
                        credentials,
                        mut body,
                        buf,
                        deadline,
                    } = reading.as_mut().project();
                    let timed_out = deadline.as_pin_mut().is_some_and(|d| d.poll(cx).is_ready());
                    let mut complete = false;
                    if !timed_out {
                        // Full, ended or failed half-way, a body is decoded as far as it got:
                        // the status alone already says what happened.
                        let end = ready!(poll_read(
                            body.as_mut(),
                            buf,
                            this.limits.max_body_bytes,
                            Fill::Truncate,
                            cx
                        ));
                        complete = matches!(end, ReadEnd::End(_));
                    }
                    let parts = parts.take().expect("polled after completion");
                    let err = decode(&parts, buf, credentials, complete, this.contract);
                    telemetry::request_failed(this.started, &err);
                    return Poll::Ready(Err(err));
                }
            }
        }
    }
}

fn decode(
    parts: &Parts,
    body: &[u8],
    credentials: &Credentials,
    complete: bool,
    contract: &ErrorContract,
) -> Error {
    let api = ApiError::decode_body(parts.status, &parts.headers, body, credentials, complete);
    tracing::debug!(status = parts.status.as_u16(), code = %api.code(), "decoded error response");
    if api.shape() == BodyShape::Unrecognized {
        telemetry::undecodable(parts.status);
    }
    let mut err = Error::from_api(api).judged(contract);
    // Error responses announce quotas too (a 429 with `RateLimit: ...;r=0;t=30`).
    err.set_quota(crate::quota::Quota::read(
        &parts.headers,
        contract.rate_limit_headers,
        std::time::SystemTime::now(),
    ));
    err
}
