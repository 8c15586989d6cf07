//! [`ResponseFuture`]: decodes errors, then buffers a JSON success and inspects it.

use super::{
    McpBody,
    inspect::{inspect, is_json},
};
use crate::{
    contract::ErrorContract,
    decode::{
        Credentials,
        layer::{Fill, Limits, ReadEnd, ResponseFuture as DecodeFuture, poll_read},
    },
    error::Error,
};
use bytes::Bytes;
use http::{HeaderMap, Response, response::Parts};
use http_body::Body;
use pin_project_lite::pin_project;
use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};
use tokio::time::Sleep;
use tower::BoxError;

pin_project! {
    /// The response future of [`McpDecode`](super::McpDecode).
    pub struct ResponseFuture<F, B> {
        #[pin]
        pub(super) state: State<F, B>,
        pub(super) limits: Limits,
    }
}

pin_project! {
    #[project = StateProj]
    pub(super) enum State<F, B> {
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
