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
//! [`ApiContractLayer`] is that stack as one layer, each part configurable, plus one link
//! between the parts: a first attempt held for an outage waits no longer than the retry
//! layer's schedule (see [`RateLimitBackoffLayer::max_outage_wait`]);
//! [`ServiceBuilderExt::api_contract`] adds its defaults to a `tower::ServiceBuilder`.
//! [`ApiContractLayer::mcp()`] puts [`McpDecodeLayer`] innermost, for MCP clients.
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

/// The three layers of the crate in the documented order, as one layer (see the
/// [module docs](self)). `D` is the decoding layer: [`ErrorDecodeLayer`] or [`McpDecodeLayer`].
///
/// Every service this layer makes (and every clone) shares one retry budget and one gate map.
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
    /// The service answers `Response<McpBody<B>>` ([`McpBody`](crate::mcp::McpBody)): a JSON
    /// success is read to tell it from a tool error, and handed back unchanged. An MCP call is
    /// a `POST`, so a transient tool error is retried only with an `Idempotency-Key` or
    /// [`retry_non_idempotent(true)`](RetryLayer::retry_non_idempotent).
    ///
    /// ```
    /// use bytes::Bytes;
    /// use http::{Request, Response};
    /// use http_body_util::Full;
    /// use tower::{ServiceBuilder, ServiceExt, service_fn};
    /// use tower_api_retry::{ApiContractLayer, ErrorCode};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// // Stands in for an MCP server whose tool fails inside an HTTP 200.
    /// let server = service_fn(|_req: Request<Full<Bytes>>| async {
    ///     let body = r#"{"jsonrpc":"2.0","id":1,"result":{"isError":true,"structuredContent":
    ///                   {"error":{"code":"NOT_FOUND","message":"No such index"}}}}"#;
    ///     let res = Response::builder().header("content-type", "application/json");
    ///     Ok::<_, std::io::Error>(res.body(Full::new(Bytes::from(body))).unwrap())
    /// });
    /// let client = ServiceBuilder::new().layer(ApiContractLayer::mcp()).service(server);
    /// let call = Request::post("/mcp").body(Full::from(r#"{"method":"tools/call"}"#)).unwrap();
    /// let err = client.oneshot(call).await.unwrap_err();
    /// assert_eq!(err.code(), &ErrorCode::NotFound);
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

    /// Hands `contract` to every layer of the stack, including layers given after it (see
    /// [`ErrorContract`]).
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
        let inner = self.decode.layer(inner);
        // A first attempt held for an outage waits no longer than the retry schedule.
        let inner = match self.rate_limit.max_outage_wait {
            Some(_) => self.rate_limit.layer(inner),
            None => {
                let bound = self.retry.schedule();
                self.rate_limit.clone().max_outage_wait(bound).layer(inner)
            }
        };
        self.retry.layer(inner)
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
    /// Adds [`ApiContractLayer::new()`]; a configured stack goes in with `.layer(...)`.
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
