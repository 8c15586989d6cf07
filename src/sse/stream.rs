use super::{Event, parser::Parser};
use crate::{
    backoff::Backoff,
    contract::ErrorContract,
    decode::{Credentials, SensitiveHeaders},
    error::{ApiError, Error},
    reason::LocalFailure,
    reason::NotRetried,
    retry_after::MAX_HINT,
    text::{
        NOT_UNRESERVED,
        redact::redact,
        safe::{MAX_TEXT_CHARS, safe_text},
    },
};
use bytes::Buf;
use futures_core::{FusedStream, Stream};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
    header::{ACCEPT, CONTENT_TYPE},
    uri::PathAndQuery,
};
use http_body::Body;
use percent_encoding::utf8_percent_encode;
use std::{
    collections::VecDeque,
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
use tower::{BoxError, Service};

/// The default for [`ResumableEvents::max_retries`].
const DEFAULT_MAX_RETRIES: u32 = 5;
const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// The default for [`ResumableEvents::max_event_bytes`]: 1 MiB.
const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;
/// The query parameter that carries the resume cursor.
const SINCE: &str = "since";
/// The standard header that carries the resume cursor.
const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// A stream of server-sent events that reconnects with `?since=<last id>` when the
/// connection drops. See the [module docs](super) for the behaviour and an example.
///
/// `S` is the HTTP service (for example an [`ErrorDecode`](crate::decode::ErrorDecode)-wrapped
/// hyper-util client), `B` its request body (built with `B::default()` for each connection)
/// and `RB` its response body; all three are inferred.
///
/// It yields `Result<Event, Error>`; after an `Err` or the end (`None`) it yields nothing
/// more.
pub struct ResumableEvents<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    service: S,
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    backoff: Backoff,
    max_retries: u32,
    max_retry_after: Duration,
    parser: Parser,
    queue: VecDeque<Event>,
    /// Consecutive failed attempts since the last delivered event.
    failures: u32,
    previous_delay: Option<Duration>,
    sleep: Option<Pin<Box<Sleep>>>,
    state: State<S::Future, RB>,
    sensitive: SensitiveHeaders,
    contract: ErrorContract,
    _body: PhantomData<fn() -> B>,
}

enum State<F, RB> {
    /// Waiting for the service to be ready, then calling it.
    Idle,
    Connecting(Pin<Box<F>>),
    Reading(Pin<Box<RB>>),
    /// Backing off before the next connection (the timer is `sleep`).
    Waiting,
    Done,
}

// Every field that is polled in place is boxed, so the stream may move freely.
impl<S, B, RB> Unpin for ResumableEvents<S, B, RB> where
    S: Service<Request<B>, Response = Response<RB>>
{
}

impl<S, B, RB> ResumableEvents<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    /// A stream that sends requests like `template` (method, URI, version, headers; its body
    /// is not used) through `service`. Nothing is sent before the stream is first polled.
    ///
    /// `Accept: text/event-stream` is added to the headers.
    pub fn new<T>(service: S, template: Request<T>) -> Self {
        let (parts, _) = template.into_parts();
        let mut headers = parts.headers;
        headers.insert(ACCEPT, HeaderValue::from_static("text/event-stream"));
        ResumableEvents {
            service,
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers,
            backoff: Backoff::new(),
            max_retries: DEFAULT_MAX_RETRIES,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            parser: Parser::new(DEFAULT_MAX_EVENT_BYTES),
            queue: VecDeque::new(),
            failures: 0,
            previous_delay: None,
            sleep: None,
            state: State::Idle,
            sensitive: SensitiveHeaders::new(),
            contract: ErrorContract::new(),
            _body: PhantomData,
        }
    }

    /// The wait between reconnections (default: [`Backoff::new`], 1 s doubling to 30 s plus
    /// up to 20 % jitter). The n-th consecutive failure without an event waits the n-th delay; a
    /// server's `retry:` or `Retry-After` raises it.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How many reconnections in a row may deliver no event before the stream ends with the
    /// last error (default 5). A connection that delivered an event resets the count.
    pub fn max_retries(mut self, max: u32) -> Self {
        self.max_retries = max;
        self
    }

    /// The longest server-requested wait (`retry:` or `Retry-After`) the stream waits out
    /// before reconnecting (default 30 s, as [`RetryLayer`](crate::RetryLayer)). A longer one
    /// ends the stream at once with the error, its [`retry_after`](Error::retry_after) set to
    /// what the server asked, so the caller can schedule the reconnection.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The largest line or event accepted, in bytes (default 1 MiB). A bigger one ends the
    /// stream with an `OUT_OF_RANGE` error.
    pub fn max_event_bytes(mut self, max: usize) -> Self {
        self.parser.set_limit(max);
        self
    }

    /// Starts after the event with this id: the first request already carries
    /// `?since=<id>`.
    pub fn resume_after(mut self, id: impl Into<String>) -> Self {
        self.parser.set_last_event_id(id.into());
        self
    }

    /// Also treats the value of the header `name` as a credential, as
    /// [`ErrorDecodeLayer::sensitive_header`](crate::ErrorDecodeLayer::sensitive_header) does.
    pub fn sensitive_header<N: TryInto<HeaderName>>(mut self, name: N) -> Self {
        self.sensitive = self.sensitive.with(name);
        self
    }

    /// The error contract that judges the answers this stream decodes itself (a service
    /// without [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) below it): a code the contract
    /// declares retryable (see [`ErrorContract`]) reconnects, one declared otherwise ends the
    /// stream.
    pub fn contract(mut self, contract: ErrorContract) -> Self {
        self.contract = contract;
        self
    }

    /// The id of the last delivered event (the `since` cursor of the next reconnection).
    pub fn last_event_id(&self) -> Option<&str> {
        Some(self.parser.last_event_id()).filter(|id| !id.is_empty())
    }

    fn request(&self) -> Request<B>
    where
        B: Default,
    {
        let id = self.parser.last_event_id();
        let mut req = Request::new(B::default());
        *req.method_mut() = self.method.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        if id.is_empty() {
            *req.uri_mut() = self.uri.clone();
        } else {
            *req.uri_mut() = with_since(&self.uri, id);
            if let Ok(value) = HeaderValue::from_str(id) {
                req.headers_mut().insert(LAST_EVENT_ID, value);
            }
        }
        req
    }

    /// The credentials of the requests this stream makes (error path only).
    fn credentials(&self) -> Credentials {
        Credentials::carried(&self.headers, &self.uri, self.sensitive.as_slice())
    }

    /// Handles a failed attempt: ends the stream, or schedules the next connection.
    fn fail(&mut self, mut err: Error) -> Option<Error> {
        if !err.is_retryable() {
            self.state = State::Done;
            return Some(err);
        }
        self.failures = self.failures.saturating_add(1);
        if self.failures > self.max_retries {
            err.set_attempts(self.failures);
            err.set_not_retried(NotRetried::StreamRetriesExhausted);
            self.state = State::Done;
            return Some(err);
        }
        let delay = self.backoff.delay(self.failures - 1, self.previous_delay);
        self.previous_delay = Some(delay);
        let floor = self
            .parser
            .retry()
            .max(err.retry_after())
            .unwrap_or_default()
            .min(MAX_HINT);
        if floor > self.max_retry_after {
            err.set_retry_after(floor);
            err.set_attempts(self.failures);
            err.set_not_retried(NotRetried::StreamRetryAfterTooLong {
                asked: floor,
                max: self.max_retry_after,
            });
            self.state = State::Done;
            return Some(err);
        }
        let delay = delay.max(floor);
        tracing::debug!(
            path = self.uri.path(),
            code = %err.code(),
            failures = self.failures,
            delay_ms = delay.as_millis() as u64,
            "event stream dropped, reconnecting"
        );
        let deadline = Instant::now() + delay;
        match &mut self.sleep {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.state = State::Waiting;
        None
    }
}

impl<S, B, RB> Stream for ResumableEvents<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Default,
    RB: Body,
    RB::Error: Into<BoxError>,
{
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(event) = this.queue.pop_front() {
                this.failures = 0;
                this.previous_delay = None;
                return Poll::Ready(Some(Ok(event)));
            }
            let failure = match &mut this.state {
                State::Done => return Poll::Ready(None),
                State::Idle => match ready!(this.service.poll_ready(cx)) {
                    Ok(()) => {
                        let future = this.service.call(this.request());
                        this.state = State::Connecting(Box::pin(future));
                        continue;
                    }
                    Err(e) => Error::transport_with(e, &this.credentials(), &this.contract),
                },
                State::Connecting(future) => match ready!(future.as_mut().poll(cx)) {
                    Ok(res) if res.status() == StatusCode::NO_CONTENT => {
                        // "Stop reconnecting", in the words of the spec.
                        this.state = State::Done;
                        return Poll::Ready(None);
                    }
                    Ok(res) if res.status().is_success() && !is_event_stream(res.headers()) => {
                        // The spec fails the connection for good: another content type is
                        // not a stream that a reconnect would fix.
                        this.state = State::Done;
                        let got = res.headers().get(CONTENT_TYPE).map(HeaderValue::as_bytes);
                        let got = String::from_utf8_lossy(got.unwrap_or_default());
                        let got = safe_text(&got, MAX_TEXT_CHARS, &this.credentials());
                        let err = Error::local(
                            LocalFailure::NotAnEventStream,
                            res.status(),
                            &format!(", got {got}"),
                        );
                        return Poll::Ready(Some(Err(err)));
                    }
                    Ok(res) if res.status().is_redirection() => {
                        // Redirects are not followed (credentials stay with the original
                        // authority), and the same request would be redirected again.
                        this.state = State::Done;
                        let err = Error::local(LocalFailure::Redirected, res.status(), "");
                        return Poll::Ready(Some(Err(err)));
                    }
                    Ok(res) if res.status().is_success() => {
                        this.parser.reset();
                        this.state = State::Reading(Box::pin(res.into_body()));
                        continue;
                    }
                    // A service without `ErrorDecodeLayer` may hand back an error response:
                    // type it by its status and headers.
                    Ok(res) => Error::from_api(ApiError::decode_with(
                        res.status(),
                        res.headers(),
                        &[],
                        &this.credentials(),
                    ))
                    .judged(&this.contract),
                    // An error from below (typed by `ErrorDecodeLayer`, or a transport
                    // failure) is scrubbed of this stream's credentials too.
                    Err(e) => Error::transport_with(e, &this.credentials(), &this.contract),
                },
                State::Reading(body) => match ready!(body.as_mut().poll_frame(cx)) {
                    Some(Ok(frame)) => {
                        let Ok(mut data) = frame.into_data() else {
                            continue; // trailers
                        };
                        while data.has_remaining() {
                            let chunk = data.chunk();
                            let n = chunk.len();
                            if let Err(too_large) = this.parser.push(chunk, &mut this.queue) {
                                this.state = State::Done;
                                this.queue.clear();
                                let failure = LocalFailure::EventTooLarge {
                                    limit: too_large.limit,
                                };
                                let err = Error::local(failure, StatusCode::OK, "");
                                return Poll::Ready(Some(Err(err)));
                            }
                            data.advance(n);
                        }
                        continue;
                    }
                    Some(Err(e)) => Error::transport_with(e, &this.credentials(), &this.contract),
                    None => Error::transport_with(
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the event stream ended",
                        ),
                        &Credentials::new(),
                        &this.contract,
                    ),
                },
                State::Waiting => {
                    if let Some(sleep) = &mut this.sleep {
                        ready!(sleep.as_mut().poll(cx));
                    }
                    this.state = State::Idle;
                    continue;
                }
            };
            if let Some(err) = this.fail(failure) {
                return Poll::Ready(Some(Err(err)));
            }
        }
    }
}

impl<S, B, RB> FusedStream for ResumableEvents<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Error: Into<BoxError>,
    B: Default,
    RB: Body,
    RB::Error: Into<BoxError>,
{
    fn is_terminated(&self) -> bool {
        matches!(self.state, State::Done) && self.queue.is_empty()
    }
}

impl<S, B, RB> fmt::Debug for ResumableEvents<S, B, RB>
where
    S: Service<Request<B>, Response = Response<RB>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URI's query may hold `?token=convo_<key>`; header values are never shown.
        let uri = self.uri.to_string();
        let state = match self.state {
            State::Idle => "idle",
            State::Connecting(_) => "connecting",
            State::Reading(_) => "reading",
            State::Waiting => "waiting",
            State::Done => "done",
        };
        f.debug_struct("ResumableEvents")
            .field("method", &self.method)
            .field("uri", &redact(&self.credentials().scrub(&uri)))
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("last_event_id", &self.last_event_id())
            .field("failures", &self.failures)
            .field("max_retries", &self.max_retries)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

/// `true` for `text/event-stream` (any parameters) and for a response without a
/// `Content-Type`, which some servers omit.
fn is_event_stream(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_TYPE) {
        None => true,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.split(';').next())
            .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("text/event-stream")),
    }
}

/// `uri` with its `since` parameter set to `id` (percent-encoded): an existing `since` is
/// replaced, every other parameter is kept as it was.
pub(crate) fn with_since(uri: &Uri, id: &str) -> Uri {
    let mut query = String::new();
    for pair in uri.query().unwrap_or("").split('&') {
        let name = pair.split('=').next().unwrap_or("");
        if pair.is_empty() || name == SINCE {
            continue;
        }
        query.push_str(pair);
        query.push('&');
    }
    query.push_str(SINCE);
    query.push('=');
    query.extend(utf8_percent_encode(id, NOT_UNRESERVED));
    let mut parts = uri.clone().into_parts();
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    let Ok(pq) = PathAndQuery::try_from(format!("{path}?{query}")) else {
        return uri.clone();
    };
    parts.path_and_query = Some(pq);
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_set_replaced_and_encoded() {
        let cases = [
            ("http://h/api/events", "7", "http://h/api/events?since=7"),
            (
                "http://h/api/events?token=convo_k&since=3&x=1",
                "9",
                "http://h/api/events?token=convo_k&x=1&since=9",
            ),
            (
                "http://h/e?since=1&since=2",
                "a b&c/ü",
                "http://h/e?since=a%20b%26c%2F%C3%BC",
            ),
            ("http://h?x=1", "ev-1_2.3~", "http://h/?x=1&since=ev-1_2.3~"),
            ("/relative?sincere=1", "5", "/relative?sincere=1&since=5"),
        ];
        for (uri, id, want) in cases {
            let uri: Uri = uri.parse().unwrap();
            assert_eq!(with_since(&uri, id).to_string(), want);
        }
    }
}
