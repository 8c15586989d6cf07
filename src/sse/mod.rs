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
//! Authentication is whatever the request template carries: headers (`Authorization:
//! Bearer convo_<key>`, `X-Api-Key`) are copied to every reconnect, and a
//! `?token=convo_<key>` query parameter is kept in every reconnect URI. The token never
//! appears in this crate's errors, `Debug` output or logs (the query string is redacted,
//! logs show the path only). The values the requests carry (`Authorization`, `X-Api-Key`,
//! `Cookie`, `?token=`, and any header named with
//! [`sensitive_header`](ResumableEvents::sensitive_header)) are scrubbed from every error the
//! stream yields, however the server echoes them (see
//! [`Credentials`](crate::decode::Credentials)).
//!
//! # Parser
//!
//! The `text/event-stream` parser is this crate's own (tested with the WHATWG examples): lines
//! ending in `\n`, `\r\n` or `\r` (split anywhere across chunks), multi-line `data` joined
//! with `\n`, `:` comments, `id` containing NUL ignored, `retry` digits only, a leading BOM,
//! dispatch on a blank line, an incomplete final event discarded. Unlike `eventsource-stream` and `sse-stream`, it bounds its buffers, so a hostile
//! or broken server cannot make the client grow a line without limit, and it exposes the "id
//! committed only at dispatch" cursor the resume logic needs. A line or an event larger than
//! [`max_event_bytes`](ResumableEvents::max_event_bytes) (default 1 MiB) ends the stream
//! with an `OUT_OF_RANGE` error instead.
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
