//! [`McpDecodeLayer`] and its service, [`McpDecode`].

use super::{McpBody, ResponseFuture, future::State};
use crate::{
    decode::ErrorDecodeLayer,
    decode::{ErrorDecode, layer::Limits},
    error::Error,
};
use http::{Request, Response};
use http_body::Body;
use std::task::{Context, Poll};
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
            limits: self.plain.limits(),
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
