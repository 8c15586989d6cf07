//! Middleware that installs the three layers of the crate in the documented order, in one line.
//!
//! The order is [`RetryLayer`] outermost, then [`RateLimitBackoffLayer`], then
//! [`ErrorDecodeLayer`] innermost, right around the client:
//!
//! - the decode layer turns every error response into the crate's [`Error`](crate::Error), so
//!   the two layers outside it decide on the one classification;
//! - the rate-limit gate sits inside the retry layer, so every retried attempt passes the gate
//!   again: a rate-limited request's retry waits at its path's gate instead of hammering the
//!   server, and other requests for that path queue behind one probe;
//! - the retry layer is outermost, so it sees a closed gate as "never sent" and may retry even a
//!   POST after it.
//!
//! [`ApiContractLayer`] is that stack as one layer, with each part configurable;
//! [`ServiceBuilderExt`] adds its defaults to a `tower::ServiceBuilder` as
//! [`.api_contract()`](ServiceBuilderExt::api_contract), and a configured one goes in with
//! `.layer(ApiContractLayer::new()...)`. Both build exactly
//! `ServiceBuilder::new().layer(retry).layer(rate_limit).layer(decode)`: the service is
//! [`ApiContract<S>`], nothing is added around or between the three.
//!
//! # MCP clients
//!
//! Over MCP a tool-call error arrives inside an HTTP 200, which the plain decode layer lets
//! through. [`ApiContractLayer::mcp()`] is the same stack with
//! [`McpDecodeLayer`] innermost, so those errors are retried
//! and close the rate-limit gate like any other:
//!
//! ```text
//! ServiceBuilder::new().layer(ApiContractLayer::mcp()).service(client)
//! ```
//!
//! MCP mode changes the response body type: the service answers
//! `Response<`[`McpBody<B>`](crate::mcp::McpBody)`>` instead of the client's own
//! `Response<B>`, because a JSON success has to be read before it can be told from a tool
//! error. `McpBody` hands back exactly the bytes the server sent (buffered, or streamed when
//! the body is too large or too slow to inspect). The service is
//! [`ApiContract<S, McpDecodeLayer>`](ApiContract).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::{sync::{Arc, atomic::{AtomicU32, Ordering}}, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{ApiContractLayer, Attempts, RetryLayer, ServiceBuilderExt, backoff::Backoff};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let calls = Arc::new(AtomicU32::new(0));
//! let server = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let n = calls.fetch_add(1, Ordering::SeqCst);
//!     async move {
//!         let status = if n < 2 { 503 } else { 200 };
//!         Ok::<_, std::io::Error>(Response::builder().status(status).body(Full::new(Bytes::new())).unwrap())
//!     }
//! });
//!
//! // The documented defaults:
//! let _defaults = ServiceBuilder::new().api_contract().service(server.clone());
//!
//! // Or with each part configured:
//! let client = ServiceBuilder::new()
//!     .layer(ApiContractLayer::new().retry(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(100)))))
//!     .service(server);
//!
//! let res = client.oneshot(Request::get("/api/status").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(Attempts::of(&res), 3);
//! # }
//! ```

use crate::{
    contract::ErrorContract, decode::ErrorDecodeLayer, mcp::McpDecodeLayer,
    rate_limit::RateLimitBackoff, rate_limit::RateLimitBackoffLayer, retry::Retry,
    retry::RetryLayer,
};
use tower::{Layer, ServiceBuilder, layer::util::Stack};

/// The service an [`ApiContractLayer<D>`](ApiContractLayer) makes: retry, then the rate-limit
/// gate, then the decoding of `D`, around `S`. The one [`ApiContractLayer::mcp`] makes is
/// `ApiContract<S, McpDecodeLayer>`; its responses are `Response<McpBody<B>>`.
pub type ApiContract<S, D = ErrorDecodeLayer> = Retry<RateLimitBackoff<<D as Layer<S>>::Service>>;

/// The three layers of the crate in the documented order, as one layer. See the
/// [module docs](self) for why this order and an example.
///
/// `D` is the innermost, decoding layer: [`ErrorDecodeLayer`] (the default) or, for MCP
/// clients, [`McpDecodeLayer`] (see [`ApiContractLayer::mcp`]).
///
/// Every service this layer makes (and every clone) shares one retry budget and one gate map,
/// exactly as the separate layers do.
#[derive(Clone, Debug, Default)]
pub struct ApiContractLayer<D = ErrorDecodeLayer> {
    retry: RetryLayer,
    rate_limit: RateLimitBackoffLayer,
    decode: D,
    contract: Option<ErrorContract>,
}

impl ApiContractLayer {
    /// The documented defaults: [`RetryLayer::new`], [`RateLimitBackoffLayer::new`],
    /// [`ErrorDecodeLayer::new`].
    pub fn new() -> Self {
        ApiContractLayer::default()
    }

    /// The documented defaults for an MCP client: [`RetryLayer::new`],
    /// [`RateLimitBackoffLayer::new`] and [`McpDecodeLayer::new`], so a tool-call error inside
    /// an HTTP 200 is a typed [`Error`](crate::Error) that the two outer layers act on.
    ///
    /// **The response body type changes**: the service answers `Response<McpBody<B>>`
    /// ([`McpBody`](crate::mcp::McpBody)) where the client answers `Response<B>`, because
    /// a JSON success is read (up to
    /// [`max_body_bytes`](ErrorDecodeLayer::max_body_bytes)) to tell it from a tool error. The
    /// caller still gets the server's bytes unchanged. See [`McpDecodeLayer`] for what is
    /// inspected and what it costs.
    ///
    /// Every MCP call is a `POST`: a rate limit is retried, but a transient tool error
    /// (`UNAVAILABLE`, `INTERNAL`, …) only with an `Idempotency-Key` or
    /// [`retry_non_idempotent(true)`](RetryLayer::retry_non_idempotent), since the tool may
    /// have had an effect before it failed.
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::{BodyExt, Full};
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// use tower_api_retry::{ApiContractLayer, ErrorCode, RetryLayer};
    ///
    /// # #[tokio::main(flavor = "current_thread", start_paused = true)]
    /// # async fn main() {
    /// // Stands in for an MCP server: the first call fails inside an HTTP 200, then succeeds.
    /// let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    /// let server = service_fn(move |_req: Request<Full<Bytes>>| {
    ///     let first = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0;
    ///     async move {
    ///         let body = if first {
    ///             r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"structuredContent":
    ///                {"error":{"code":"UNAVAILABLE","message":"The index is restarting"}}}}"#
    ///         } else {
    ///             r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"done"}]}}"#
    ///         };
    ///         let res = Response::builder().header("content-type", "application/json");
    ///         Ok::<_, std::io::Error>(res.body(Full::new(Bytes::from(body))).unwrap())
    ///     }
    /// });
    ///
    /// let client = ServiceBuilder::new()
    ///     .layer(ApiContractLayer::mcp().retry(RetryLayer::new().retry_non_idempotent(true)))
    ///     .service(server);
    ///
    /// let call = Request::post("/mcp").body(Full::from(r#"{"method":"tools/call"}"#)).unwrap();
    /// let res = client.oneshot(call).await.unwrap(); // retried after the tool error
    /// // `res` is a `Response<McpBody<Full<Bytes>>>`: the server's bytes, unchanged.
    /// let body = res.into_body().collect().await.unwrap().to_bytes();
    /// assert!(body.ends_with(br#""text":"done"}]}}"#));
    /// # }
    /// ```
    pub fn mcp() -> ApiContractLayer<McpDecodeLayer> {
        ApiContractLayer::default()
    }
}

impl<D: DecodeMode> ApiContractLayer<D> {
    /// Replaces the retry layer (the outermost).
    pub fn retry(mut self, retry: RetryLayer) -> Self {
        self.retry = match &self.contract {
            Some(contract) => retry.contract(contract.clone()),
            None => retry,
        };
        self
    }

    /// Replaces the rate-limit layer (the middle one).
    pub fn rate_limit(mut self, rate_limit: RateLimitBackoffLayer) -> Self {
        self.rate_limit = match &self.contract {
            Some(contract) => rate_limit.contract(contract.clone()),
            None => rate_limit,
        };
        self
    }

    /// Replaces the configuration of the decode layer (the innermost). A layer made by
    /// [`ApiContractLayer::mcp`] keeps decoding in MCP mode, with this configuration (see
    /// [`McpDecodeLayer`]'s `From<ErrorDecodeLayer>`).
    pub fn decode(mut self, decode: ErrorDecodeLayer) -> Self {
        let decode = D::from_plain(decode);
        self.decode = match &self.contract {
            Some(contract) => decode.with_contract(contract.clone()),
            None => decode,
        };
        self
    }

    /// Hands `contract` to every layer of the stack, so decoding, retrying and the rate-limit
    /// gates all read an API's declared codes the same way (see [`ErrorContract`]). It also
    /// applies to the layers given after it ([`retry`](Self::retry),
    /// [`rate_limit`](Self::rate_limit), [`decode`](Self::decode)).
    ///
    /// ```
    /// use tower::ServiceBuilder;
    /// use tower_api_retry::{ApiContractLayer, Disposition, ErrorContract, RetryLayer};
    ///
    /// let contract = ErrorContract::new().code("QUOTA_EXCEEDED", Disposition::RateLimited);
    /// // The retry layer given after the contract reads it too.
    /// let layer = ApiContractLayer::new()
    ///     .contract(contract)
    ///     .retry(RetryLayer::new().max_retries(5));
    /// let builder = ServiceBuilder::new().layer(layer);
    /// # let _ = builder;
    /// ```
    pub fn contract(mut self, contract: ErrorContract) -> Self {
        self.retry = self.retry.contract(contract.clone());
        self.rate_limit = self.rate_limit.contract(contract.clone());
        self.decode = self.decode.with_contract(contract.clone());
        self.contract = Some(contract);
        self
    }
}

impl<S, D> Layer<S> for ApiContractLayer<D>
where
    D: DecodeMode + Layer<S>,
{
    type Service = Retry<RateLimitBackoff<D::Service>>;

    fn layer(&self, inner: S) -> Self::Service {
        self.retry
            .layer(self.rate_limit.layer(self.decode.layer(inner)))
    }
}

/// A layer [`ApiContractLayer`] accepts as its innermost, decoding layer:
/// [`ErrorDecodeLayer`] or [`McpDecodeLayer`].
///
/// This trait is sealed: the two outer layers rely on every error being decoded by the crate.
pub trait DecodeMode: sealed::Decode {}

impl DecodeMode for ErrorDecodeLayer {}
impl DecodeMode for McpDecodeLayer {}

/// Adds the crate's stack to a [`tower::ServiceBuilder`] in one line. See the
/// [module docs](self) for an example.
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Adds [`ApiContractLayer::new()`]: retry, rate-limit gate and decoding with the
    /// documented defaults, in the documented order.
    /// A configured stack, or the MCP one, goes in as any layer does:
    /// `.layer(ApiContractLayer::mcp())`.
    fn api_contract(self) -> ServiceBuilder<Stack<ApiContractLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn api_contract(self) -> ServiceBuilder<Stack<ApiContractLayer, L>> {
        self.layer(ApiContractLayer::new())
    }
}

mod sealed {
    use crate::{contract::ErrorContract, decode::ErrorDecodeLayer, mcp::McpDecodeLayer};

    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}

    /// What [`ApiContractLayer`](super::ApiContractLayer) needs of its decode layer.
    pub trait Decode {
        /// The decode layer of this mode, configured as `plain`.
        fn from_plain(plain: ErrorDecodeLayer) -> Self;
        /// The same decode layer, consulting `contract`.
        fn with_contract(self, contract: ErrorContract) -> Self;
    }
    impl Decode for ErrorDecodeLayer {
        fn from_plain(plain: ErrorDecodeLayer) -> Self {
            plain
        }
        fn with_contract(self, contract: ErrorContract) -> Self {
            self.contract(contract)
        }
    }
    impl Decode for McpDecodeLayer {
        fn from_plain(plain: ErrorDecodeLayer) -> Self {
            McpDecodeLayer::from(plain)
        }
        fn with_contract(self, contract: ErrorContract) -> Self {
            McpDecodeLayer::from(self.plain.contract(contract))
        }
    }
}
