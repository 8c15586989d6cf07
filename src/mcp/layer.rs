//! [`McpDecodeLayer`], its service [`McpDecode`] and its [`ResponseFuture`], which decodes
//! errors, then buffers a JSON success and inspects it.

use super::{
    McpBody,
    inspect::{inspect, is_json},
};
use crate::{
    contract::ErrorContract,
    decode::{
        Credentials, ErrorDecode, ErrorDecodeLayer,
        layer::{Fill, Limits, ReadEnd, ResponseFuture as DecodeFuture, poll_read},
    },
    error::Error,
};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, response::Parts};
use http_body::Body;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};
use tokio::time::Sleep;
use tower::{BoxError, Layer, Service};

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
///   [`ApiError::numeric_code`](crate::ApiError::numeric_code)).
///
/// Every MCP call is a `POST`, so a transient tool error is retried only with an
/// `Idempotency-Key` or [`retry_non_idempotent(true)`](crate::retry::RetryLayer::retry_non_idempotent).
///
/// # Cost
///
/// A 2xx response with a JSON content type is read into memory up to
/// [`max_body_bytes`](ErrorDecodeLayer::max_body_bytes) and scanned once; anything else passes
/// through unread. A body over the limit, or past
/// [`read_timeout`](ErrorDecodeLayer::read_timeout), is not inspected: [`McpBody`] replays
/// the bytes already read, then streams the rest. A body that fails while it is being
/// buffered is a transport error (`UNAVAILABLE`).
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use http::{Request, Response};
/// use http_body_util::Full;
/// use tower::{service_fn, Service, ServiceExt};
/// use tower_api_retry::{Disposition, ErrorCode, McpDecodeLayer};
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
/// let mut client = tower::ServiceBuilder::new().layer(McpDecodeLayer::new()).service(server);
///
/// let err = client.ready().await.unwrap().call(Request::new(Full::default())).await.unwrap_err();
/// assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
/// assert_eq!(err.disposition(), Disposition::RateLimited);
/// # }
/// ```
///
/// Built by [`McpDecodeLayer::new`], or from a configured [`ErrorDecodeLayer`] with `From`.
#[derive(Clone, Debug)]
pub struct McpDecodeLayer {
    /// The plain decoder's configuration, which this mode shares (its limits also bound
    /// the inspection of successes).
    pub(crate) plain: ErrorDecodeLayer,
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
            plain: ErrorDecodeLayer::new(),
        }
    }
}

impl From<ErrorDecodeLayer> for McpDecodeLayer {
    /// The MCP mode of a configured decoder: its contract, its sensitive headers and its
    /// limits, which also bound the inspection of successes.
    fn from(plain: ErrorDecodeLayer) -> Self {
        McpDecodeLayer { plain }
    }
}

impl<S> Layer<S> for McpDecodeLayer {
    type Service = McpDecode<S>;
    fn layer(&self, inner: S) -> Self::Service {
        McpDecode {
            limits: self.plain.limits,
            inner: self.plain.layer(inner),
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

impl<S, ReqB, B> Service<Request<ReqB>> for McpDecode<S>
where
    S: Service<Request<ReqB>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<McpBody<B>>;
    type Error = Error;
    type Future = ResponseFuture<S::Future, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        ResponseFuture {
            state: State::Decoding {
                future: self.inner.call(req),
            },
            limits: self.limits,
        }
    }
}

pin_project! {
    /// The response future of [`McpDecode`](super::McpDecode).
    pub struct ResponseFuture<F, B> {
        #[pin]
        state: State<F, B>,
        limits: Limits,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, B> {
        Decoding { #[pin] future: DecodeFuture<F, B> },
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
                    let (credentials, contract) = future.take_context();
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
                                let err = Error::transport_with(e, credentials, contract);
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
                            let err = Error::from_api(api).judged(contract);
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
