//! [`McpBody`]: the server's body, with the bytes read for inspection replayed first.

use bytes::{Buf, Bytes};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use std::{
    pin::Pin,
    task::{Context, Poll, ready},
};

pin_project! {
    /// The response body of [`McpDecode`](super::McpDecode): the server's body, byte for byte.
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
    pub(super) fn new(inner: B) -> Self {
        McpBody {
            prefix: None,
            inner: Some(inner),
            boxed: None,
            trailers: None,
        }
    }

    pub(super) fn replay(
        prefix: Bytes,
        rest: Option<Pin<Box<B>>>,
        trailers: Option<HeaderMap>,
    ) -> Self {
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
