//! The response body of [`RateLimitBackoff`](super::RateLimitBackoff).

use super::service::Track;
use crate::error::{ApiError, Error};
use http::{HeaderMap, StatusCode};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    fmt,
    pin::Pin,
    task::{Context, Poll, ready},
};

pin_project! {
    /// The response body of [`RateLimitBackoff`](super::RateLimitBackoff): the inner service's
    /// body, every frame passed on unchanged. For a gRPC response whose status comes in the
    /// trailers, it reads them as they pass, and a rate limit there closes the method's gate
    /// as a trailers-only rejection would.
    pub struct ResponseBody<B> {
        #[pin]
        inner: B,
        // Only for a gRPC response with its status still to come. Inline: no allocation.
        watch: Option<Track>,
    }
}

impl<B> ResponseBody<B> {
    /// A body that passes `inner` on and watches nothing.
    pub(crate) fn plain(inner: B) -> Self {
        ResponseBody { inner, watch: None }
    }

    /// A body whose trailers report to the gate map.
    pub(crate) fn watched(inner: B, track: Track) -> Self {
        ResponseBody {
            inner,
            watch: Some(track),
        }
    }
}

impl<B: fmt::Debug> fmt::Debug for ResponseBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("inner", &self.inner)
            .field("watching", &self.watch.is_some())
            .finish()
    }
}

impl<B: Body> Body for ResponseBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if let Some(track) = this.watch.as_mut()
            && saw(track, &frame)
        {
            // The outcome is known: stop watching (a probe not settled is handed on).
            *this.watch = None;
        }
        Poll::Ready(frame)
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Tells the gate map what a frame of a watched gRPC response says. Returns `true` once there
/// is nothing more to learn.
fn saw<D, E>(track: &mut Track, frame: &Option<Result<Frame<D>, E>>) -> bool {
    match frame {
        Some(Ok(frame)) => match frame.trailers_ref() {
            Some(trailers) => {
                trailers_seen(track, trailers);
                true
            }
            None => {
                // A message: the server took the call, so a probe has its answer. A rate
                // limit in the trailers after it still closes the gate.
                if track.probe.is_some() {
                    track.finish_slow(None);
                }
                false
            }
        },
        // Failed or ended without a status: no answer (a probe is handed on).
        Some(Err(_)) | None => true,
    }
}

#[inline(never)]
fn trailers_seen(track: &mut Track, trailers: &HeaderMap) {
    if crate::grpc::is_error(trailers) {
        let err = Error::from_api(ApiError::decode(StatusCode::OK, trailers, b""));
        track.finish_slow(Some(&err));
    } else {
        track.finish_slow(None);
    }
}
