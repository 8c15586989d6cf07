//! A stream of server-sent events that survives disconnections: [`ResumableEvents`].
//!
//! The first page says: "Re-establish the SSE connection using the last received event_id as
//! a `?since=` cursor on the events endpoint". [`ResumableEvents`] does that over any tower
//! service of HTTP requests, typically a hyper-util client wrapped in
//! [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) so failures are typed:
//!
//! - it opens the endpoint (`Accept: text/event-stream`) and yields parsed [`Event`]s;
//! - it remembers the last event id, and when the connection drops (a body error, or the
//!   end of the body) it reconnects with `?since=<last id>` (percent-encoded, replacing a
//!   `since` already in the URI, other parameters kept) and the standard `Last-Event-ID`
//!   header, after the crate's jittered [`Backoff`](crate::backoff::Backoff); a `retry:`
//!   field from the server (and a `Retry-After` on an error) is the minimum wait;
//! - an error that is not retryable (401, 403, 404, ...: `!err.is_retryable()`) ends the
//!   stream with the typed [`Error`](crate::Error) after that one request; transient ones
//!   reconnect, and the retry cap ([`max_retries`](ResumableEvents::max_retries), default
//!   5) counts only consecutive attempts that delivered no event: an attempt that delivered
//!   one resets it;
//! - a `204 No Content` ends the stream (the server says "stop reconnecting"), a success
//!   whose `Content-Type` is not `text/event-stream` ends it with a `FAILED_PRECONDITION`
//!   error (the spec fails such a connection for good; a missing `Content-Type` is
//!   accepted).
//!
//! An event is delivered only once it is complete (the blank line that ends it arrived), and
//! the cursor only moves on a delivered event, so a drop in the middle of an event neither
//! loses it (it is sent again after the cursor) nor duplicates the one before.
//!
//! The request template's headers and query (`Authorization`, `?token=`) are copied to every
//! reconnect; their values never appear in the errors the stream yields, its `Debug` output or
//! its logs (see [`Credentials`](crate::decode::Credentials)).
//!
//! The `text/event-stream` parser is this crate's own, because it bounds its buffers: a line
//! or an event larger than [`max_event_bytes`](ResumableEvents::max_event_bytes) ends the
//! stream with an `OUT_OF_RANGE` error.
//!
//! # Example
//!
//! ```no_run
//! use bytes::Bytes;
//! use futures_util::StreamExt;
//! use http::Request;
//! use http_body_util::Empty;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use tower_api_retry::{ErrorDecodeLayer, sse::ResumableEvents};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), tower_api_retry::Error> {
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
//! let client = tower::ServiceBuilder::new().layer(ErrorDecodeLayer::new()).service(client);
//!
//! let request = Request::get("http://127.0.0.1:8080/api/spaces/sp_1/events?token=convo_KEY")
//!     .body(())
//!     .unwrap();
//! let mut events = ResumableEvents::new(client, request).max_retries(5);
//! while let Some(event) = events.next().await {
//!     let event = event?; // a 401 ends the stream here, typed
//!     println!("{:?} {}: {}", event.id, event.event, event.data);
//! }
//! # Ok(())
//! # }
//! ```

pub(crate) mod parser;
mod stream;

pub use stream::ResumableEvents;

use std::time::Duration;

/// One server-sent event.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The last event id when this event was dispatched (set by this event's `id:` field
    /// or an earlier one), `None` when there is none. This is the `since` cursor after it.
    pub id: Option<String>,
    /// The event type (`event:`), `"message"` when the server named none.
    pub event: String,
    /// The data, lines joined with `\n`.
    pub data: String,
    /// The reconnection time this event's block set with `retry:`, if it did.
    pub retry: Option<Duration>,
}
