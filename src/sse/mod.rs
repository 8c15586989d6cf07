//! A stream of server-sent events that survives disconnections: [`ResumableEvents`].
//!
//! The first page says: "Re-establish the SSE connection using the last received event_id as
//! a `?since=` cursor on the events endpoint". [`ResumableEvents`] does that over any tower
//! service of HTTP requests, typically a hyper-util client wrapped in
//! [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) so failures are typed:
//!
//! - when the connection drops it reconnects with `?since=<last id>` and `Last-Event-ID`,
//!   after the crate's jittered [`Backoff`](crate::backoff::Backoff) (a server's `retry:` or
//!   `Retry-After` is the minimum wait);
//! - an error that is not retryable ends the stream with the typed
//!   [`Error`](crate::Error); [`max_retries`](ResumableEvents::max_retries) counts only
//!   consecutive attempts that delivered no event;
//! - a `204 No Content` ends the stream; a success that is not `text/event-stream` ends it
//!   with an error (a missing `Content-Type` is accepted).
//!
//! An event is delivered only once complete, and the cursor only moves on a delivered event,
//! so a drop mid-event neither loses it nor duplicates the one before. The template's
//! credentials (`Authorization`, `?token=`) never appear in the errors, `Debug` or logs. The
//! parser bounds its buffers: a line or event over
//! [`max_event_bytes`](ResumableEvents::max_event_bytes) ends the stream with `OUT_OF_RANGE`.
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
