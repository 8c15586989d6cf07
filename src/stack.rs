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
//! [`ServiceBuilderExt`] adds it to a `tower::ServiceBuilder` as
//! [`.api_contract()`](ServiceBuilderExt::api_contract) or
//! [`.api_contract_with(layer)`](ServiceBuilderExt::api_contract_with). Both build exactly
//! `ServiceBuilder::new().layer(retry).layer(rate_limit).layer(decode)`: the service is
//! [`ApiContract<S>`], nothing is added around or between the three.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::{sync::{Arc, atomic::{AtomicU32, Ordering}}, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{ApiContractLayer, Attempts, RetryLayer, ServiceBuilderExt};
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
//!     .api_contract_with(
//!         ApiContractLayer::new().retry(RetryLayer::new().base_delay(Duration::from_millis(100))),
//!     )
//!     .service(server);
//!
//! let res = client.oneshot(Request::get("/api/status").body(Full::default()).unwrap()).await.unwrap();
//! assert_eq!(res.extensions().get::<Attempts>().map(Attempts::get), Some(3));
//! # }
//! ```

use crate::{
    ErrorDecodeLayer, RateLimitBackoffLayer, RetryLayer, decode::ErrorDecode,
    rate_limit::RateLimitBackoff, retry::Retry,
};
use tower::{Layer, ServiceBuilder, layer::util::Stack};

/// The service [`ApiContractLayer`] makes: retry, then the rate-limit gate, then decoding,
/// around `S`.
pub type ApiContract<S> = Retry<RateLimitBackoff<ErrorDecode<S>>>;

/// The three layers of the crate in the documented order, as one layer. See the
/// [module docs](self) for why this order and an example.
///
/// Every service this layer makes (and every clone) shares one retry budget and one gate map,
/// exactly as the separate layers do.
#[derive(Clone, Debug, Default)]
pub struct ApiContractLayer {
    retry: RetryLayer,
    rate_limit: RateLimitBackoffLayer,
    decode: ErrorDecodeLayer,
}

impl ApiContractLayer {
    /// The documented defaults: [`RetryLayer::new`], [`RateLimitBackoffLayer::new`],
    /// [`ErrorDecodeLayer::new`].
    pub fn new() -> Self {
        ApiContractLayer::default()
    }

    /// Replaces the retry layer (the outermost).
    pub fn retry(mut self, retry: RetryLayer) -> Self {
        self.retry = retry;
        self
    }

    /// Replaces the rate-limit layer (the middle one).
    pub fn rate_limit(mut self, rate_limit: RateLimitBackoffLayer) -> Self {
        self.rate_limit = rate_limit;
        self
    }

    /// Replaces the decode layer (the innermost).
    pub fn decode(mut self, decode: ErrorDecodeLayer) -> Self {
        self.decode = decode;
        self
    }

    /// The retry layer.
    pub fn retry_layer(&self) -> &RetryLayer {
        &self.retry
    }

    /// The rate-limit layer (its [`gate_map`](RateLimitBackoffLayer::gate_map) is the one the
    /// services share).
    pub fn rate_limit_layer(&self) -> &RateLimitBackoffLayer {
        &self.rate_limit
    }

    /// The decode layer.
    pub fn decode_layer(&self) -> &ErrorDecodeLayer {
        &self.decode
    }
}

impl<S> Layer<S> for ApiContractLayer {
    type Service = ApiContract<S>;

    fn layer(&self, inner: S) -> Self::Service {
        self.retry
            .layer(self.rate_limit.layer(self.decode.layer(inner)))
    }
}

/// Adds the crate's stack to a [`tower::ServiceBuilder`] in one line. See the
/// [module docs](self) for an example.
pub trait ServiceBuilderExt<L>: sealed::Sealed {
    /// Adds [`ApiContractLayer::new()`]: retry, rate-limit gate and decoding with the
    /// documented defaults, in the documented order.
    fn api_contract(self) -> ServiceBuilder<Stack<ApiContractLayer, L>>;

    /// Adds `layer`: the same stack with each part configured.
    fn api_contract_with(
        self,
        layer: ApiContractLayer,
    ) -> ServiceBuilder<Stack<ApiContractLayer, L>>;
}

impl<L> ServiceBuilderExt<L> for ServiceBuilder<L> {
    fn api_contract(self) -> ServiceBuilder<Stack<ApiContractLayer, L>> {
        self.layer(ApiContractLayer::new())
    }

    fn api_contract_with(
        self,
        layer: ApiContractLayer,
    ) -> ServiceBuilder<Stack<ApiContractLayer, L>> {
        self.layer(layer)
    }
}

mod sealed {
    pub trait Sealed {}
    impl<L> Sealed for tower::ServiceBuilder<L> {}
}
