//! MCP mode of the error decoder: tool-call errors inside HTTP 200 JSON-RPC responses.
//! See [`McpDecodeLayer`].

use super::{
    Credentials, SensitiveHeaders,
    layer::{
        DEFAULT_MAX_BODY_BYTES, DEFAULT_READ_TIMEOUT, ErrorDecode, Fill, Limits, ReadEnd,
        ResponseFuture, poll_read,
    },
};
use crate::{
    ErrorContract, ErrorDecodeLayer,
    error::{ApiError, BodyShape, BoxError, Error},
};
use bytes::{Buf, Bytes};
use http::{
    HeaderMap, HeaderName, Request, Response, StatusCode, header::CONTENT_TYPE, response::Parts,
};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use serde::Deserialize;
use serde_json::Value;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::Sleep;
use tower::{Layer, Service};

impl ErrorDecodeLayer {
    /// The MCP mode: like [`ErrorDecodeLayer::new`], and also turns MCP tool-call errors in
    /// HTTP 200 responses into [`Error`]s. See [`McpDecodeLayer`].
    pub const fn mcp() -> McpDecodeLayer {
        McpDecodeLayer::new()
    }
}

/// [`ErrorDecodeLayer`] in MCP mode: also turns MCP tool-call errors in HTTP 200
/// responses into [`Error`]s.
///
/// Over MCP a tool error does not change the HTTP status. The second page documents two
/// forms, both of which [`McpDecode`] turns into the same typed [`Error`] as an HTTP error:
///
/// - a `result` with `isError: true` and the payload `{"error": {code, message, fix,
///   details}}`, either in `result.structuredContent` or as JSON text in a
///   `result.content[i]` of type `"text"`;
/// - a JSON-RPC `error` object (`-32602`: input validation; the number is kept as
///   [`ApiError::numeric_code`]).
///
/// So a `RESOURCE_EXHAUSTED` tool error is [`RateLimited`](crate::Disposition::RateLimited)
/// and closes the rate-limit gate, as for REST clients. Note that every MCP call is a `POST`:
/// [`RetryLayer`](crate::RetryLayer) retries a rate limit on its own, but a transient tool
/// error (`UNAVAILABLE`, `INTERNAL`, ...) only when the call carries an `Idempotency-Key` or
/// the layer is built with
/// [`retry_non_idempotent(true)`](crate::retry::RetryLayer::retry_non_idempotent), because
/// the tool may have had a side effect before it failed (the demo's MCP call opts in).
///
/// # Cost
///
/// The plain [`ErrorDecodeLayer`] never buffers a success. This mode must: a 2xx response
/// with a JSON content type (`application/json`, `*/*+json`) is read into memory up to
/// [`max_body_bytes`](McpDecodeLayer::max_body_bytes) and scanned once. Anything else (an
/// SSE stream, a body announced larger than the limit) passes through unread. A body that
/// turns out larger than the limit, or that trickles past
/// [`read_timeout`](McpDecodeLayer::read_timeout), is not inspected: [`McpBody`] replays
/// the bytes already read and then streams the rest, so the caller still gets it intact. An
/// ordinary result reaches the caller byte for byte as the server sent it.
///
/// A body that fails while it is being buffered is a transport error (`UNAVAILABLE`).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Service, ServiceExt};
/// use tower_api_retry::{Disposition, ErrorCode, ErrorDecodeLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = service_fn(|_req: Request<Full<Bytes>>| async {
///     let body = r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"structuredContent":
///         {"error":{"code":"RESOURCE_EXHAUSTED","message":"Too many requests"}}}}"#;
///     Ok::<_, std::io::Error>(Response::builder()
///         .header("content-type", "application/json")
///         .body(Full::new(Bytes::from(body)))
///         .unwrap())
/// });
/// let mut client = tower::ServiceBuilder::new().layer(ErrorDecodeLayer::mcp()).service(server);
///
/// let err = client.ready().await.unwrap().call(Request::new(Full::default())).await.unwrap_err();
/// assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
/// assert_eq!(err.disposition(), Disposition::RateLimited);
/// # }
/// ```
///
/// The request's credentials never show in an error, as with [`ErrorDecodeLayer`] (see
/// [`Credentials`]), whether the error came in an HTTP error or in a 200's tool result.
///
/// Built by [`ErrorDecodeLayer::mcp`] or [`McpDecodeLayer::new`].
#[derive(Clone, Debug)]
pub struct McpDecodeLayer {
    max_body_bytes: usize,
    read_timeout: Option<Duration>,
    sensitive: SensitiveHeaders,
    contract: ErrorContract,
}

impl Default for McpDecodeLayer {
    fn default() -> Self {
        McpDecodeLayer::new()
    }
}

impl McpDecodeLayer {
    /// Reads at most 64 KiB of an error or JSON success body, for at most 10 seconds.
    pub const fn new() -> Self {
        McpDecodeLayer {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            read_timeout: Some(DEFAULT_READ_TIMEOUT),
            sensitive: SensitiveHeaders::new(),
            contract: ErrorContract::new(),
        }
    }

    /// The most bytes of a body that are read and inspected. An error body is cut there, as
    /// in [`ErrorDecodeLayer::max_body_bytes`]; a success body larger than this is passed
    /// through uninspected (and intact).
    pub const fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    /// How long reading a body for inspection may take (`None`: no limit). A success body
    /// still incomplete by then is passed through uninspected (and intact).
    pub const fn read_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.read_timeout = timeout;
        self
    }

    /// Also treats the value of the header `name` as a credential, as
    /// [`ErrorDecodeLayer::sensitive_header`] does.
    ///
    /// ```
    /// use tower_api_retry::ErrorDecodeLayer;
    ///
    /// let layer = ErrorDecodeLayer::mcp().sensitive_header("x-team-secret");
    /// # let _ = layer;
    /// ```
    pub fn sensitive_header<N: TryInto<HeaderName>>(mut self, name: N) -> Self {
        if let Ok(name) = name.try_into() {
            self.sensitive = self.sensitive.with(name);
        }
        self
    }

    /// The error contract that gives a decoded error its disposition, tool-call errors
    /// included, as [`ErrorDecodeLayer::contract`] does.
    ///
    /// ```
    /// use tower_api_retry::{Disposition, ErrorContract, ErrorDecodeLayer};
    ///
    /// let contract = ErrorContract::new().code("QUOTA_EXCEEDED", Disposition::RateLimited);
    /// let layer = ErrorDecodeLayer::mcp().contract(contract);
    /// # let _ = layer;
    /// ```
    pub fn contract(mut self, contract: ErrorContract) -> Self {
        self.contract = contract;
        self
    }

    /// The error contract this layer consults.
    pub fn error_contract(&self) -> &ErrorContract {
        &self.contract
    }

    fn plain(&self) -> ErrorDecodeLayer {
        let mut plain = ErrorDecodeLayer::new()
            .max_body_bytes(self.max_body_bytes)
            .read_timeout(self.read_timeout)
            .contract(self.contract.clone());
        for name in self.sensitive.as_slice() {
            plain = plain.sensitive_header(name.clone());
        }
        plain
    }
}

impl<S> Layer<S> for McpDecodeLayer {
    type Service = McpDecode<S>;
    fn layer(&self, inner: S) -> Self::Service {
        let plain = self.plain();
        McpDecode {
            limits: plain.limits(),
            inner: plain.layer(inner),
        }
    }
}

/// The service of [`McpDecodeLayer`]: an [`ErrorDecode`] that also inspects JSON successes.
/// See [`McpDecodeLayer`] for an example.
#[derive(Clone, Debug)]
pub struct McpDecode<S> {
    inner: ErrorDecode<S>,
    limits: Limits,
}

impl<S> McpDecode<S> {
    /// Wraps `inner` with the default configuration.
    pub fn new(inner: S) -> Self {
        McpDecodeLayer::new().layer(inner)
    }

    /// A layer with the default configuration.
    pub fn layer() -> McpDecodeLayer {
        McpDecodeLayer::new()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// Consumes `self`, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

impl<S, ReqB, B> Service<Request<ReqB>> for McpDecode<S>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<McpBody<B>>;
    type Error = Error;
    type Future = McpResponseFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        McpResponseFuture {
            state: State::Decoding {
                future: self.inner.call(req),
            },
            limits: self.limits,
        }
    }
}

pin_project! {
    /// The response future of [`McpDecode`].
    pub struct McpResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        limits: Limits,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Decoding { #[pin] future: ResponseFuture<F, B> },
        Buffering {
            parts: Option<Parts>,
            credentials: Credentials,
            contract: ErrorContract,
            // Boxed so the unread rest can be handed to the caller: only in this mode, only
            // for JSON successes, which are being buffered anyway.
            body: Option<Pin<Box<B>>>,
            buf: Vec<u8>,
            trailers: Option<HeaderMap>,
            #[pin]
            deadline: Option<Sleep>,
        },
    }
}

impl<F, B> std::fmt::Debug for McpResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for McpResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<McpBody<B>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Decoding { mut future } => {
                    let res = ready!(future.as_mut().poll(cx))?;
                    let max = this.limits.max_body_bytes;
                    let announced = res.body().size_hint().lower() as usize;
                    if !res.status().is_success()
                        || !is_json(res.headers())
                        || max == 0
                        || announced > max
                    {
                        return Poll::Ready(Ok(res.map(McpBody::new)));
                    }
                    let (parts, body) = res.into_parts();
                    let cap = body.size_hint().upper().unwrap_or(0) as usize;
                    let credentials = future.as_mut().take_credentials();
                    let contract = future.take_contract();
                    this.state.set(State::Buffering {
                        parts: Some(parts),
                        credentials,
                        contract,
                        body: Some(Box::pin(body)),
                        buf: Vec::with_capacity(cap.min(max).min(8 * 1024)),
                        trailers: None,
                        deadline: this.limits.read_timeout.map(tokio::time::sleep),
                    });
                }
                StateProj::Buffering {
                    parts,
                    credentials,
                    contract,
                    body,
                    buf,
                    trailers,
                    deadline,
                } => {
                    let timed_out = deadline.as_pin_mut().is_some_and(|d| d.poll(cx).is_ready());
                    let mut ended = false;
                    if !timed_out {
                        let inner = body.as_mut().expect("polled after completion");
                        // Whole chunks: what is read must be replayed.
                        let max = this.limits.max_body_bytes;
                        match ready!(poll_read(inner.as_mut(), buf, max, Fill::WholeChunks, cx)) {
                            ReadEnd::Full => {}
                            ReadEnd::End(t) => {
                                *trailers = t;
                                ended = true;
                            }
                            ReadEnd::Failed(e) => {
                                let mut err = Error::transport_with(e, credentials);
                                err.restamp(contract);
                                return Poll::Ready(Err(err));
                            }
                        }
                    }
                    let parts = parts.take().expect("polled after completion");
                    let prefix = Bytes::from(std::mem::take(buf));
                    if ended {
                        if let Some(api) =
                            inspect(parts.status, &parts.headers, &prefix, credentials)
                        {
                            tracing::debug!(code = %api.code(), "decoded MCP tool-call error");
                            let mut err = Error::from_api(api);
                            err.restamp(contract);
                            return Poll::Ready(Err(err));
                        }
                        body.take();
                        let body = McpBody::replay(prefix, None, trailers.take());
                        return Poll::Ready(Ok(Response::from_parts(parts, body)));
                    }
                    // Too large or too slow to inspect: replay the prefix, stream the rest.
                    let body = McpBody::replay(prefix, body.take(), None);
                    return Poll::Ready(Ok(Response::from_parts(parts, body)));
                }
            }
        }
    }
}

/// `true` for `application/json` and any `*/*+json` media type.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(essence.len().saturating_sub(5)..)
            .is_some_and(|s| s.eq_ignore_ascii_case("+json"))
}

/// The first look at a JSON-RPC message: is it an error at all? Everything else is skipped.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    result: Option<ProbeResult>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ProbeResult {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// The parts of an error result the decoder reads.
#[derive(Deserialize)]
struct ErrorResult {
    result: ErrorResultInner,
}

#[derive(Deserialize)]
struct ErrorResultInner {
    #[serde(rename = "structuredContent", default)]
    structured: Option<Value>,
    #[serde(default)]
    content: Option<Value>,
}

/// The MCP error in a successful response body, if it holds one.
///
/// `None` for anything that is not a JSON-RPC error response or a tool result with
/// `isError: true`. Pure; used by [`McpDecode`].
pub(crate) fn inspect(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &Credentials,
) -> Option<ApiError> {
    let decode = |body: &[u8]| ApiError::decode_with(status, headers, body, credentials);
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if probe.error.as_ref().is_some_and(Value::is_object) {
        // A JSON-RPC error object: `ApiError::decode` knows the envelope. (`"error": false` or
        // `null` in a result is not an error.)
        return Some(decode(body));
    }
    if probe.result?.is_error != Some(true) {
        return None;
    }
    let result = serde_json::from_slice::<ErrorResult>(body)
        .ok()
        .map(|r| r.result);
    let (structured, content) = match result {
        Some(r) => (r.structured, r.content),
        None => (None, None),
    };
    if let Some(structured) = structured.filter(Value::is_object) {
        let bytes = serde_json::to_vec(&structured).unwrap_or_default();
        let api = decode(&bytes);
        if api.shape() != BodyShape::Unrecognized {
            return Some(api);
        }
    }
    let texts: Vec<&str> = content
        .as_ref()
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|i| i.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    for text in &texts {
        let api = decode(text.as_bytes());
        if api.shape() != BodyShape::Unrecognized {
            return Some(api);
        }
    }
    // `isError` with no documented payload: an error all the same, coded by the status
    // (UNKNOWN for a 200), with the first text as its message.
    let mut api = decode(texts.first().unwrap_or(&"").as_bytes());
    api.shape = BodyShape::Mcp;
    Some(api)
}

pin_project! {
    /// The response body of [`McpDecode`]: the server's body, byte for byte.
    ///
    /// When the layer read part or all of the body to inspect it, those bytes are replayed
    /// first and the rest (if any) is streamed from the connection.
    pub struct McpBody<B> {
        prefix: Option<Bytes>,
        #[pin]
        inner: Option<B>,
        // The rest of a body that was partly read for inspection.
        boxed: Option<Pin<Box<B>>>,
        trailers: Option<HeaderMap>,
    }
}

impl<B> McpBody<B> {
    fn new(inner: B) -> Self {
        McpBody {
            prefix: None,
            inner: Some(inner),
            boxed: None,
            trailers: None,
        }
    }

    fn replay(prefix: Bytes, rest: Option<Pin<Box<B>>>, trailers: Option<HeaderMap>) -> Self {
        McpBody {
            prefix: (!prefix.is_empty()).then_some(prefix),
            inner: None,
            boxed: rest,
            trailers,
        }
    }
}

impl<B> std::fmt::Debug for McpBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpBody")
            .field("replayed", &self.prefix.as_ref().map_or(0, Bytes::len))
            .finish_non_exhaustive()
    }
}

impl<B> Body for McpBody<B>
where
    B: Body,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        let polled = if let Some(inner) = this.inner.as_mut().as_pin_mut() {
            Some(ready!(inner.poll_frame(cx)))
        } else if let Some(boxed) = this.boxed.as_mut() {
            Some(ready!(boxed.as_mut().poll_frame(cx)))
        } else {
            None
        };
        match polled {
            Some(Some(Ok(frame))) => {
                let frame = frame.map_data(|mut d| d.copy_to_bytes(d.remaining()));
                return Poll::Ready(Some(Ok(frame)));
            }
            Some(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Some(None) => {
                this.inner.set(None);
                *this.boxed = None;
            }
            None => {}
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.trailers.is_none()
            && self.inner.as_ref().is_none_or(Body::is_end_stream)
            && self.boxed.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, Bytes::len) as u64;
        let mut hint = match (&self.inner, &self.boxed) {
            (Some(inner), _) => inner.size_hint(),
            (None, Some(boxed)) => boxed.size_hint(),
            (None, None) => SizeHint::with_exact(0),
        };
        // Upper first: `set_lower` asserts that the lower bound stays below the upper one.
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper.saturating_add(prefix));
        }
        hint.set_lower(hint.lower().saturating_add(prefix));
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn json_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        h
    }

    #[test]
    fn inspect_ignores_ordinary_and_odd_messages() {
        let h = json_headers();
        for body in [
            &br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#[..],
            br#"{"jsonrpc":"2.0","id":1,"result":{"isError":false}}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":[1,2]}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":null,"error":null}"#,
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[]},"error":false}"#,
            br#"[{"jsonrpc":"2.0","id":1,"result":{}}]"#,
            b"not json",
            b"",
        ] {
            assert!(inspect(StatusCode::OK, &h, body, &Credentials::new()).is_none());
        }
    }

    #[test]
    fn inspect_prefers_structured_content_then_text() {
        let h = json_headers();
        let both = br#"{"result":{"isError":true,"content":[{"type":"text","text":"{\"error\":{\"code\":\"NOT_FOUND\",\"message\":\"t\"}}"}],"structuredContent":{"error":{"code":"ALREADY_EXISTS","message":"s"}}}}"#;
        let api = inspect(StatusCode::OK, &h, both, &Credentials::new()).unwrap();
        assert_eq!(api.code(), &crate::ErrorCode::AlreadyExists);
        let envelope = br#"{"result":{"isError":true,"content":[{"type":"text","text":"{\"code\":\"UNAVAILABLE\",\"message\":\"later\"}"}]}}"#;
        let api = inspect(StatusCode::OK, &h, envelope, &Credentials::new()).unwrap();
        assert_eq!(api.code(), &crate::ErrorCode::Unavailable);
        assert!(crate::Error::from(api).is_retryable());
    }

    #[test]
    fn is_json_media_types() {
        let mut h = HeaderMap::new();
        for (ct, want) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/event-stream", false),
            ("json", false),
        ] {
            h.insert(CONTENT_TYPE, ct.parse().unwrap());
            assert_eq!(is_json(&h), want, "{ct}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }

    type Chunks =
        StreamBody<futures_util::stream::BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;

    fn respond(
        frames: Vec<Frame<Bytes>>,
        trickle: bool,
    ) -> impl Service<Request<()>, Response = Response<Chunks>, Error = Infallible, Future: Send> + Clone
    {
        let frames = std::sync::Arc::new(std::sync::Mutex::new(Some(frames)));
        tower::service_fn(move |_: Request<()>| {
            let frames = frames.lock().unwrap().take().unwrap();
            async move {
                use futures_util::StreamExt;
                let stream = futures_util::stream::iter(frames.into_iter().map(Ok));
                let stream = if trickle {
                    stream
                        .then(|f| async {
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            f
                        })
                        .boxed()
                } else {
                    stream.boxed()
                };
                let mut res = Response::new(StreamBody::new(stream));
                *res.headers_mut() = json_headers();
                Ok(res)
            }
        })
    }

    async fn frames_of<B: Body<Data = Bytes>>(body: B) -> (Vec<u8>, Option<HeaderMap>)
    where
        B::Error: std::fmt::Debug,
    {
        let collected = body.collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        (collected.to_bytes().to_vec(), trailers)
    }

    #[tokio::test]
    async fn trailers_survive_inspection() {
        let mut trailers = HeaderMap::new();
        trailers.insert("x-t", "1".parse().unwrap());
        let svc = respond(
            vec![
                Frame::data(Bytes::from_static(br#"{"result":"#)),
                Frame::data(Bytes::from_static(b"{}}")),
                Frame::trailers(trailers.clone()),
            ],
            false,
        );
        let res = McpDecode::new(svc).oneshot(Request::new(())).await.unwrap();
        let (bytes, got) = frames_of(res.into_body()).await;
        assert_eq!(bytes, br#"{"result":{}}"#);
        assert_eq!(got, Some(trailers));
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_success_is_passed_through_uninspected() {
        let parts: Vec<Frame<Bytes>> = br#"{"result":{"isError":true}}"#
            .iter()
            .map(|b| Frame::data(Bytes::copy_from_slice(&[*b])))
            .collect();
        let svc = respond(parts, true);
        let layer = ErrorDecodeLayer::mcp().read_timeout(Some(Duration::from_secs(5)));
        let res = layer.layer(svc).oneshot(Request::new(())).await.unwrap();
        let (bytes, _) = frames_of(res.into_body()).await;
        assert_eq!(bytes, br#"{"result":{"isError":true}}"#);
    }

    /// A body that is always ready with an empty frame: the buffering loop must yield.
    struct EmptyFramesForever;

    impl Body for EmptyFramesForever {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            Poll::Ready(Some(Ok(Frame::data(Bytes::new()))))
        }
    }

    #[tokio::test]
    async fn endless_empty_frames_end_at_read_timeout() {
        let svc = tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(EmptyFramesForever)
                    .unwrap(),
            )
        });
        let layer = ErrorDecodeLayer::mcp().read_timeout(Some(Duration::from_millis(50)));
        let res = tokio::time::timeout(
            Duration::from_secs(20),
            layer.layer(svc).oneshot(Request::new(())),
        )
        .await
        .expect("the MCP decoder yields, so its read timeout fires");
        assert!(res.is_ok(), "passed through uninspected");
    }

    /// An exact-length body that sends its first chunk and then stalls.
    struct Stalls {
        first: Option<Bytes>,
        left: u64,
    }

    impl Body for Stalls {
        type Data = Bytes;
        type Error = Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            match self.first.take() {
                Some(b) => {
                    self.left -= b.len() as u64;
                    Poll::Ready(Some(Ok(Frame::data(b))))
                }
                None => Poll::Pending,
            }
        }
        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.left)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn size_hint_of_a_replayed_prefix_is_consistent() {
        let svc = tower::service_fn(|_: Request<()>| async {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", "application/json")
                    .body(Stalls {
                        first: Some(Bytes::from_static(b"{\"result\":")),
                        left: 100,
                    })
                    .unwrap(),
            )
        });
        let layer = ErrorDecodeLayer::mcp().read_timeout(Some(Duration::from_millis(100)));
        let res = layer.layer(svc).oneshot(Request::new(())).await.unwrap();
        let hint = res.body().size_hint();
        assert_eq!((hint.lower(), hint.upper()), (100, Some(100)));
    }
}
