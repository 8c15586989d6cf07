use super::{
    ReplayBody, RetryLayer, RetryOverride,
    deadline::{CallDeadline, Deadline, GRPC_TIMEOUT, encode_grpc_timeout},
    future::{ResponseFuture, Retrying},
};
use crate::{error::Error, telemetry};
use http::{Request, Response};
use std::{
    sync::Arc,
    task::{Context, Poll},
};
use tokio::time::Instant;
use tower::BoxError;
use tower::Service;

/// The service of [`RetryLayer`](super::RetryLayer). See the [module docs](super) for an example.
///
/// Clones share the retry budget.
#[derive(Clone, Debug)]
pub struct Retry<S> {
    pub(crate) inner: S,
    pub(crate) layer: Arc<RetryLayer>,
}

impl<S, B, ResB> Service<Request<B>> for Retry<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    type Response = Response<ResB>;
    type Error = Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Error::transport)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        // The request's own policy, if it carries one; else the layer's.
        let over = req.extensions().get::<RetryOverride>().copied();
        let over = over.unwrap_or_default();
        let max_retries = over.max_retries.unwrap_or(self.layer.max_retries);
        let deadline = over.deadline.unwrap_or(self.layer.deadline);
        if max_retries == 0 {
            // No retry can apply: no copy, no clone, no budget. A deadline still bounds the
            // waits below.
            let mut req = req;
            if let Some(d) =
                deadline.and_then(|d| Deadline::of(Some(d), req.headers(), Instant::now))
            {
                req.extensions_mut().insert(CallDeadline::new(d.at));
            }
            let span = telemetry::attempt_span(req.method(), 0);
            let future = telemetry::in_span(&span, || self.inner.call(req));
            return ResponseFuture::new(future, span, None);
        }
        if let Some(budget) = &self.layer.budget {
            budget.deposit();
        }
        // Cloned here, not in the `Retrying` below: a clone between the fields would copy the
        // request's head once more on every call.
        let layer = Arc::clone(&self.layer);
        let (mut parts, body) = req.into_parts();
        let (body, copy) = body.capture(self.layer.max_replay_bytes);
        // The layer's (or the override's) deadline, or a gRPC call's own `grpc-timeout`: a
        // plain HTTP request without a deadline costs one look-up of a standard header.
        let deadline = if deadline.is_some() || crate::grpc::is_grpc(&parts.headers) {
            Deadline::of(deadline, &parts.headers, Instant::now)
        } else {
            None
        };
        if let Some(deadline) = deadline {
            // Every attempt carries it, so no wait below outlasts it.
            parts.extensions.insert(CallDeadline::new(deadline.at));
        }
        let mut first = parts.clone();
        let mut cutoff = None;
        if let Some(deadline) = deadline.filter(|d| d.grpc) {
            // A gRPC call is cut off at its deadline, the first attempt too. The layer's
            // deadline is the call's: the first attempt carries it. (When the request's own
            // `grpc-timeout` is the deadline, the first attempt is sent as is.)
            if deadline.from_layer {
                let timeout = encode_grpc_timeout(deadline.limit);
                first.headers.insert(GRPC_TIMEOUT, timeout);
            }
            cutoff = Some(Box::pin(tokio::time::sleep_until(deadline.at)));
        }
        // The ready service goes with the future; `self` keeps a fresh clone (tower's idiom).
        let clone = self.inner.clone();
        let mut service = std::mem::replace(&mut self.inner, clone);
        let span = telemetry::attempt_span(&parts.method, 0);
        let future = telemetry::in_span(&span, || service.call(Request::from_parts(first, body)));
        let retry = Retrying {
            service,
            max_retries,
            idempotent: over.idempotent,
            parts,
            copy,
            layer,
            deadline,
            cutoff,
            last: None,
            previous: None,
            pending: None,
            exhausted: false,
            hold: None,
            spent: 0,
            ends: None,
        };
        ResponseFuture::new(future, span, Some(retry))
    }
}
