//! Request bodies that can be sent again: by clone, or from a copy captured while the first
//! attempt streams.

use crate::sync::lock;
use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::{
    any::Any,
    convert::Infallible,
    fmt,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, ready},
};

/// A request body the [`Retry`](super::Retry) service can send again.
///
/// Cheaply cloneable bodies ([`Full`](http_body_util::Full), [`Empty`](http_body_util::Empty),
/// `String`, [`Bytes`], `Vec<u8>`, `()`, `&'static str`) are replayed by clone: nothing is
/// copied, and [`max_replay_bytes`](super::RetryLayer::max_replay_bytes) does not apply.
/// Streaming bodies (`tonic::body::Body` and `axum::body::Body` with their features,
/// [`BoxBody`](http_body_util::combinators::BoxBody),
/// [`UnsyncBoxBody`](http_body_util::combinators::UnsyncBoxBody)) are sent first through a
/// [`CaptureBody`], which copies every frame (trailers included) up to `max_replay_bytes`; a
/// retry sends the copy ([`ReplayedBody`]). A body over the limit, or not fully streamed when
/// the response came back, is not retried; one the first attempt never read is sent as is.
///
/// To make your own streaming body replayable, do what the built-in impls do:
///
/// ```
/// use bytes::Bytes;
/// use http_body_util::combinators::BoxBody;
/// use tower_api_retry::retry::{Captured, NotReplayable, ReplayBody};
///
/// struct MyBody(BoxBody<Bytes, std::io::Error>);
/// # impl http_body::Body for MyBody {
/// #     type Data = Bytes;
/// #     type Error = std::io::Error;
/// #     fn poll_frame(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>)
/// #         -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
/// #         std::pin::Pin::new(&mut self.0).poll_frame(cx)
/// #     }
/// # }
///
/// impl ReplayBody for MyBody {
///     type Replay = Captured;
///     fn capture(self, max_bytes: usize) -> (Self, Captured) {
///         let (body, copy) = Captured::capture(self.0, max_bytes);
///         (MyBody(BoxBody::new(body)), copy)
///     }
///     fn replay(copy: &Captured) -> Result<Self, NotReplayable> {
///         // Never sent (a refused connection): the original body, captured again.
///         if let Some(body) = copy.take_unsent::<BoxBody<Bytes, std::io::Error>>() {
///             return Ok(MyBody(BoxBody::new(body)));
///         }
///         let body = copy.replay()?;
///         Ok(MyBody(BoxBody::new(http_body_util::BodyExt::map_err(body, |e| match e {}))))
///     }
/// }
/// ```
pub trait ReplayBody: Sized {
    /// What is kept, between attempts, to send the body again.
    type Replay;

    /// Called once, before the first attempt: returns the body to send first and what is kept
    /// to send it again. A streaming body keeps at most `max_bytes` bytes.
    fn capture(self, max_bytes: usize) -> (Self, Self::Replay);

    /// Called before each further attempt: the body to send again, or why it cannot be.
    fn replay(copy: &Self::Replay) -> Result<Self, NotReplayable>;
}

macro_rules! replay_by_clone {
    ($([$($g:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($g)*> ReplayBody for $ty {
            type Replay = $ty;
            #[inline]
            fn capture(self, _max_bytes: usize) -> (Self, Self::Replay) {
                (self.clone(), self)
            }
            #[inline]
            fn replay(copy: &Self::Replay) -> Result<Self, NotReplayable> {
                Ok(copy.clone())
            }
        }
    )*};
}

replay_by_clone! {
    [D: Clone] http_body_util::Full<D>,
    [D] http_body_util::Empty<D>,
    [] String,
    [] Bytes,
    [] Vec<u8>,
    [] (),
    [] &'static str,
    [] &'static [u8],
}

/// Implements [`ReplayBody`] for body types that can wrap any other body (`Self::new`):
/// the first attempt sends the body through a [`CaptureBody`] that keeps a copy, a retry
/// sends the copy (`$copy` turns a [`ReplayedBody`] into `Self`), and a body that was never
/// sent is handed back whole. Used here and by the framework integrations.
macro_rules! replay_by_capture {
    ($([$($g:tt)*] $ty:ty => $copy:expr;)*) => {$(
        impl<$($g)*> $crate::retry::ReplayBody for $ty {
            type Replay = $crate::retry::Captured;
            fn capture(self, max_bytes: usize) -> (Self, Self::Replay) {
                $crate::retry::Captured::capture_with(self, max_bytes, Self::new)
            }
            fn replay(copy: &Self::Replay) -> Result<Self, $crate::retry::NotReplayable> {
                copy.replay_with(Self::new, $copy)
            }
        }
    )*};
}
#[cfg(any(feature = "tonic", feature = "axum"))]
pub(crate) use replay_by_capture;

replay_by_capture! {
    [E: 'static] http_body_util::combinators::BoxBody<Bytes, E> => |b| Self::new(never_fails(b));
    [E: 'static] http_body_util::combinators::UnsyncBoxBody<Bytes, E> => |b| Self::new(never_fails(b));
}

fn never_fails<E>(
    body: ReplayedBody,
) -> http_body_util::combinators::MapErr<ReplayedBody, fn(Infallible) -> E> {
    http_body_util::BodyExt::map_err(body, |e| match e {})
}

pub use crate::reason::NotReplayable;

#[derive(Default)]
struct State {
    data: Vec<Bytes>,
    len: usize,
    trailers: Option<HeaderMap>,
    complete: bool,
    overflow: bool,
    failed: bool,
    max_bytes: usize,
    /// The body itself, handed back by a [`CaptureBody`] dropped before anything was taken
    /// from it.
    unsent: Option<Box<dyn Any + Send>>,
}

/// The copy of a streaming body that a [`CaptureBody`] takes while it is sent.
///
/// See [`ReplayBody`].
#[derive(Clone)]
pub struct Captured {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// Known too large before sending: not captured.
    TooLarge,
    /// At its end before sending: replayed as an empty body, nothing shared.
    Empty,
    Shared(Arc<Mutex<State>>),
}

impl fmt::Debug for Captured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the bytes.
        let mut d = f.debug_struct("Captured");
        match &self.repr {
            Repr::TooLarge => d.field("overflow", &true),
            Repr::Empty => d.field("len", &0).field("complete", &true),
            Repr::Shared(s) => {
                let s = lock(s);
                d.field("len", &s.len)
                    .field("complete", &s.complete)
                    .field("overflow", &s.overflow)
                    .field("unsent", &s.unsent.is_some())
            }
        };
        d.finish()
    }
}

/// What a [`CaptureBody`] dropped before anything was taken from its body does with it.
fn hand_back<B: Send + 'static>(body: B, state: &Mutex<State>) {
    lock(state).unsent = Some(Box::new(body));
}

impl Captured {
    /// Wraps `body` so that what it streams is copied, up to `max_bytes` (trailers included).
    ///
    /// If the wrapper is dropped before anything was taken from `body` (the request never
    /// left: a refused connection, a closed gate), `body` is handed back, for
    /// [`take_unsent`](Self::take_unsent). A body already at its end counts as a complete,
    /// empty copy.
    pub fn capture<B>(body: B, max_bytes: usize) -> (CaptureBody<B>, Captured)
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
    {
        let state = Arc::new(Mutex::new(State {
            complete: body.is_end_stream(),
            max_bytes,
            ..State::default()
        }));
        let body = CaptureBody::new(body, Arc::clone(&state));
        (
            body,
            Captured {
                repr: Repr::Shared(state),
            },
        )
    }

    /// Like [`capture`](Self::capture), but skips the wrapper when the body is already known
    /// to be too large (its size hint) or empty (at its end), and re-wraps the capture with
    /// `wrap`.
    pub(crate) fn capture_with<B>(
        body: B,
        max_bytes: usize,
        wrap: impl FnOnce(CaptureBody<B>) -> B,
    ) -> (B, Captured)
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
    {
        if body.is_end_stream() {
            // Nothing to copy: sent as is, replayed as an empty body.
            return (body, Captured { repr: Repr::Empty });
        }
        if body.size_hint().lower() > max_bytes as u64 {
            // Sent once, untouched, never replayed.
            return (
                body,
                Captured {
                    repr: Repr::TooLarge,
                },
            );
        }
        let (body, copy) = Captured::capture(body, max_bytes);
        (wrap(body), copy)
    }

    /// The body itself, captured again, if the last attempt dropped it before taking anything
    /// from it (so it never left); `None` otherwise, or if `B` is not the type that was
    /// captured. It is handed back once per such attempt.
    pub fn take_unsent<B>(&self) -> Option<CaptureBody<B>>
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
    {
        let Repr::Shared(state) = &self.repr else {
            return None;
        };
        let mut s = lock(state);
        let body = match s.unsent.take()?.downcast::<B>() {
            Ok(body) => *body,
            Err(other) => {
                s.unsent = Some(other);
                return None;
            }
        };
        drop(s);
        Some(CaptureBody::new(body, Arc::clone(state)))
    }

    /// The body to send again: the unsent body if there is one, else the copy.
    pub(crate) fn replay_with<B>(
        &self,
        unsent: impl FnOnce(CaptureBody<B>) -> B,
        copied: impl FnOnce(ReplayedBody) -> B,
    ) -> Result<B, NotReplayable>
    where
        B: Body<Data = Bytes> + Unpin + Send + 'static,
    {
        match self.take_unsent() {
            Some(body) => Ok(unsent(body)),
            None => self.replay().map(copied),
        }
    }

    /// A body with the same frames as the one captured, or why there is none.
    pub fn replay(&self) -> Result<ReplayedBody, NotReplayable> {
        let state = match &self.repr {
            Repr::TooLarge => return Err(NotReplayable::TooLarge),
            Repr::Empty => return Ok(ReplayedBody::default()),
            Repr::Shared(state) => state,
        };
        let s = lock(state);
        if s.overflow {
            Err(NotReplayable::TooLarge)
        } else if s.failed {
            Err(NotReplayable::Failed)
        } else if !s.complete {
            Err(NotReplayable::Incomplete)
        } else {
            Ok(ReplayedBody {
                data: s.data.clone(),
                next: 0,
                trailers: s.trailers.clone(),
            })
        }
    }
}

/// A body that streams its inner body unchanged and keeps a copy for [`Captured`].
///
/// Frames are forwarded as they come, never held back and never truncated; past the limit
/// the copy is dropped and the body is no longer replayable. Dropped before anything was
/// taken from it, it hands its inner body back to the [`Captured`] copy.
pub struct CaptureBody<B> {
    /// `None` only once handed back, in `drop`.
    inner: Option<B>,
    state: Arc<Mutex<State>>,
    /// Set until the first frame (or end, or error) is taken from `inner`.
    hand_back: Option<fn(B, &Mutex<State>)>,
}

impl<B: Send + 'static> CaptureBody<B> {
    fn new(inner: B, state: Arc<Mutex<State>>) -> Self {
        CaptureBody {
            inner: Some(inner),
            state,
            hand_back: Some(hand_back::<B>),
        }
    }
}

impl<B> Drop for CaptureBody<B> {
    fn drop(&mut self) {
        // Only on the error path: a body that was polled to a frame has no `hand_back`.
        if let (Some(hand_back), Some(inner)) = (self.hand_back.take(), self.inner.take()) {
            hand_back(inner, &self.state);
        }
    }
}

impl<B> fmt::Debug for CaptureBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaptureBody").finish_non_exhaustive()
    }
}

impl<B> Body for CaptureBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let frame = ready!(Pin::new(inner).poll_frame(cx));
        // Something was taken: from now on only the copy can be replayed.
        this.hand_back = None;
        let mut s = lock(&this.state);
        match &frame {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if !s.overflow {
                        if data.len() > s.max_bytes - s.len {
                            s.overflow = true;
                            s.data = Vec::new();
                            s.trailers = None;
                        } else {
                            s.len += data.len();
                            s.data.push(data.clone());
                        }
                    }
                } else if let Some(trailers) = frame.trailers_ref() {
                    if !s.overflow {
                        s.trailers = Some(trailers.clone());
                    }
                    s.complete = true;
                }
            }
            Some(Err(_)) => s.failed = true,
            None => s.complete = true,
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        let end = self.inner.as_ref().is_none_or(B::is_end_stream);
        if end {
            // A peer may stop polling once this is true, without waiting for `None`.
            lock(&self.state).complete = true;
        }
        end
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), B::size_hint)
    }
}

/// A body rebuilt from a [`Captured`] copy: the same data frames and trailers.
#[derive(Clone, Default)]
pub struct ReplayedBody {
    data: Vec<Bytes>,
    next: usize,
    trailers: Option<HeaderMap>,
}

impl fmt::Debug for ReplayedBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReplayedBody").finish_non_exhaustive()
    }
}

impl Body for ReplayedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = &mut *self;
        if let Some(data) = this.data.get_mut(this.next) {
            this.next += 1;
            return Poll::Ready(Some(Ok(Frame::data(std::mem::take(data)))));
        }
        Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }

    fn is_end_stream(&self) -> bool {
        self.next >= self.data.len() && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        let left: usize = self.data[self.next.min(self.data.len())..]
            .iter()
            .map(Bytes::len)
            .sum();
        if self.trailers.is_some() {
            // An exact size makes an HTTP/1 client frame the body with Content-Length, which
            // cannot carry trailers: hyper would drop them. A lower bound keeps it chunked.
            let mut hint = SizeHint::new();
            hint.set_lower(left as u64);
            return hint;
        }
        SizeHint::with_exact(left as u64)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody, combinators::UnsyncBoxBody};

    pub(crate) fn frames(
        chunks: &[&'static [u8]],
        trailer: bool,
    ) -> UnsyncBoxBody<Bytes, std::io::Error> {
        let mut f: Vec<Result<Frame<Bytes>, std::io::Error>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        if trailer {
            let mut t = HeaderMap::new();
            t.insert("x-checksum", "abc".parse().unwrap());
            f.push(Ok(Frame::trailers(t)));
        }
        StreamBody::new(futures_util::stream::iter(f)).boxed_unsync()
    }

    pub(crate) async fn drain<B: Body<Data = Bytes>>(body: B) -> (Bytes, Option<HeaderMap>)
    where
        B::Error: fmt::Debug,
    {
        let c = body.collect().await.unwrap();
        let t = c.trailers().cloned();
        (c.to_bytes(), t)
    }

    /// Sends `body` once through its capture, then twice from the copy.
    pub(crate) async fn three_attempts<B>(
        body: B,
        max: usize,
    ) -> Vec<Result<(Bytes, Option<HeaderMap>), NotReplayable>>
    where
        B: ReplayBody<Replay = Captured> + Body<Data = Bytes>,
        B::Error: fmt::Debug,
    {
        let (first, copy) = body.capture(max);
        let mut out = vec![Ok(drain(first).await)];
        for _ in 0..2 {
            out.push(match B::replay(&copy) {
                Ok(b) => Ok(drain(b).await),
                Err(e) => Err(e),
            });
        }
        out
    }

    #[tokio::test]
    async fn streaming_bodies_replay_identically_with_trailers() {
        let got = three_attempts(frames(&[b"he", b"llo", b" world"], true), 64).await;
        let first = got[0].clone().unwrap();
        assert_eq!(&first.0[..], b"hello world");
        assert_eq!(first.1.as_ref().unwrap()["x-checksum"], "abc");
        assert!(got.iter().all(|a| a.as_ref() == Ok(&first)));

        let boxed = http_body_util::Full::new(Bytes::from_static(b"ab"))
            .map_err(|e| -> std::io::Error { match e {} })
            .boxed();
        let got = three_attempts(boxed, 64).await;
        assert!(
            got.iter()
                .all(|a| a.as_ref().map(|x| &x.0[..]) == Ok(&b"ab"[..]))
        );
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_sent_whole_and_not_replayed() {
        let got = three_attempts(frames(&[b"0123456789", b"0123456789"], true), 15).await;
        assert_eq!(got[0].as_ref().unwrap().0.len(), 20);
        assert!(got[0].as_ref().unwrap().1.is_some());
        assert_eq!(got[1], Err(NotReplayable::TooLarge));
        // Known too large up front (size hint): not even wrapped.
        let full = http_body_util::Full::new(Bytes::from_static(b"0123456789"))
            .map_err(|e| match e {})
            .boxed_unsync();
        let got = three_attempts(full, 5).await;
        assert_eq!(got[0].as_ref().unwrap().0.len(), 10);
        assert_eq!(got[1], Err(NotReplayable::TooLarge));
    }

    #[tokio::test]
    async fn an_unfinished_or_failed_body_is_not_replayed() {
        let (mut first, copy) = frames(&[b"a", b"b"], false).capture(64);
        let _ = first.frame().await;
        assert_eq!(
            UnsyncBoxBody::<Bytes, std::io::Error>::replay(&copy).err(),
            Some(NotReplayable::Incomplete)
        );
        let failing: UnsyncBoxBody<Bytes, std::io::Error> =
            StreamBody::new(futures_util::stream::iter(vec![
                Ok(Frame::data(Bytes::from_static(b"a"))),
                Err(std::io::Error::other("boom")),
            ]))
            .boxed_unsync();
        let (mut first, copy) = failing.capture(64);
        while let Some(Ok(_)) = first.frame().await {}
        assert_eq!(
            UnsyncBoxBody::<Bytes, std::io::Error>::replay(&copy).err(),
            Some(NotReplayable::Failed)
        );
    }

    type Boxed = UnsyncBoxBody<Bytes, std::io::Error>;

    #[tokio::test]
    async fn an_unsent_body_is_handed_back_once_and_captured_again() {
        let (first, copy) = frames(&[b"a", b"b"], true).capture(64);
        drop(first);
        // The original, wrapped again: sent, it is captured like the first time.
        let second = Boxed::replay(&copy).unwrap();
        assert!(copy.take_unsent::<Boxed>().is_none());
        assert_eq!(&drain(second).await.0[..], b"ab");
        let (data, trailers) = drain(Boxed::replay(&copy).unwrap()).await;
        assert_eq!(&data[..], b"ab");
        assert_eq!(trailers.unwrap()["x-checksum"], "abc");
        // Handed back only once per unsent attempt; a wrong type leaves it in place.
        let (first, copy) = Captured::capture(frames(&[b"a"], false), 64);
        drop(first);
        assert!(copy.take_unsent::<http_body_util::Empty<Bytes>>().is_none());
        let again = copy.take_unsent::<Boxed>().unwrap();
        assert!(copy.take_unsent::<Boxed>().is_none());
        // Dropped unsent again: handed back again.
        drop(again);
        assert!(copy.take_unsent::<Boxed>().is_some());
    }

    #[tokio::test]
    async fn a_body_polled_without_a_frame_is_handed_back() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
        let body = StreamBody::new(tokio_stream::wrappers::ReceiverStream::new(rx)).boxed_unsync();
        let (mut first, copy) = body.capture(64);
        let waker = std::task::Waker::noop();
        let pending = Pin::new(&mut first).poll_frame(&mut Context::from_waker(waker));
        assert!(pending.is_pending());
        drop(first);
        let mut second = Boxed::replay(&copy).unwrap();
        tx.send(Ok(Frame::data(Bytes::from_static(b"x"))))
            .await
            .unwrap();
        drop(tx);
        assert_eq!(
            &second.frame().await.unwrap().unwrap().into_data().unwrap()[..],
            b"x"
        );
    }

    #[tokio::test]
    async fn a_partly_sent_body_is_not_handed_back() {
        let (mut first, copy) = frames(&[b"a", b"b"], false).capture(64);
        let _ = first.frame().await;
        drop(first);
        assert!(copy.take_unsent::<Boxed>().is_none());
        assert_eq!(Boxed::replay(&copy).err(), Some(NotReplayable::Incomplete));
    }

    #[tokio::test]
    async fn a_body_at_its_end_is_an_empty_copy() {
        // Not even wrapped, and never sent: still replayable, as an empty body.
        let empty = http_body_util::Empty::<Bytes>::new().boxed_unsync();
        let (first, copy) = empty.capture(64);
        drop(first);
        assert_eq!(format!("{copy:?}"), "Captured { len: 0, complete: true }");
        for _ in 0..2 {
            let replayed = Boxed::replay(&copy).unwrap();
            assert!(replayed.is_end_stream());
            assert_eq!(drain(replayed).await, (Bytes::new(), None));
        }
        // Through the public wrapper: a complete copy at once.
        let (_first, copy) = Captured::capture(http_body_util::Empty::<Bytes>::new(), 64);
        assert!(copy.replay().unwrap().is_end_stream());
    }
}
