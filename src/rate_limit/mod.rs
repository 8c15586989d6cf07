//! Middleware that stops sending on a rate-limited or failing path until it recovers.
//!
//! The API's rule: "When you exceed a limit, the request is rejected rather than queued. Stop
//! sending requests on the affected path as soon as you see the rejection ... If a response
//! carries a `Retry-After` header, wait at least that long." And: "Handle a limit the same
//! way you handle any transient rejection": a path whose server is down is held the same
//! way (see [outages](#outages)).
//!
//! [`RateLimitBackoffLayer`] sits right outside [`ErrorDecodeLayer`](crate::ErrorDecodeLayer)
//! and does exactly that, per *key* (by default scheme + authority + the path's template, ids
//! replaced, without the query;
//! for gRPC the path is the method; see [`Key`] and
//! [`key_fn`](RateLimitBackoffLayer::key_fn)):
//!
//! - A rate limit for key K closes K's gate: an error that [the contract](crate::ErrorContract)
//!   calls [`RateLimited`](crate::Disposition::RateLimited) (429, or `RESOURCE_EXHAUSTED` in an
//!   HTTP body or a gRPC status, in the headers or the [trailers](#grpc-status-in-trailers),
//!   even when the server also forbade retrying it), or `REFRESH_IN_PROGRESS`. Other keys are
//!   not affected.
//! - K stays closed for the server's hint (`Retry-After`, `grpc-retry-pushback-ms`, capped at
//!   [`max_closed`](RateLimitBackoffLayer::max_closed), default 1 hour, so a hostile
//!   `Retry-After: 99999999999999999999` cannot shut a path for good), or
//!   without one for a [`Backoff`](crate::backoff::Backoff) delay that doubles with each
//!   consecutive rejection of K: 1 s, 2 s, 4 s, … capped at 30 s, plus up to 20 %. A
//!   rejection of a request that was already in flight when K closed only extends the gate to
//!   its own hint; it does not count as another consecutive rejection.
//! - While K is closed, no request for K reaches the inner service. A request waits at the
//!   gate up to [`max_wait`](RateLimitBackoffLayer::max_wait) (default 30 s). When the gate
//!   would not open in time, or with [`fail_fast`](RateLimitBackoffLayer::fail_fast), it fails
//!   at once with an [`Error`](crate::Error) coded `RESOURCE_EXHAUSTED`, no
//!   [`status`](crate::Error::status), [`retry_after`](crate::Error::retry_after) = the time
//!   left (zero while a probe is in flight), and
//!   [`request_sent`](crate::Error::request_sent) `false`, so a retry layer outside knows it
//!   is safe to send again.
//! - When K's time is up, exactly one request goes first as the *probe*. Everybody else waits
//!   for its answer. If it is anything but a rate limit (a success, or any other error
//!   response; for a path held for an [outage](#outages), anything but another transient
//!   rejection), K opens and the waiters follow in the order they arrived, at K's
//!   [pace](#pacing). If it is a rate limit, K closes again for the next, longer backoff
//!   (unless it is [the request's own](#one-requests-own-resource_exhausted)). If it gets no
//!   answer (a transport error) or is dropped, the next request takes the probe role:
//!   nothing deadlocks.
//! - Memory is bounded: only closed and paced keys are stored, at most
//!   [`max_keys`](RateLimitBackoffLayer::max_keys) of them (default 10,000); see
//!   [`RateLimitGates`] for what is dropped when.
//! - With no key closed, the success path costs one atomic load, hashing the key (about
//!   5 ns), one `Arc` clone for the response future, one more relaxed atomic load (is the
//!   path [watched](#outages)?) and, for a response with headers, one `content-type` lookup
//!   to tell gRPC responses apart (no allocation, no lock); `benches/gate.rs` measures it
//!   against the bare service.
//! - With other keys closed or paced, a request whose key (and quota scope) is not among
//!   them still takes no lock: the gates count their keys in a lock-free counting filter
//!   (a byte a counter, eight counters per key the map may hold, made at the first
//!   closure: 128 KiB for the default 10,000 keys), which it reads first. About 2 % of
//!   open keys share both counters with closed ones and look themselves up under the lock,
//!   which finds them open.
//!
//! Waiting uses tokio's clock, so tests with `tokio::time::pause()` are deterministic.
//!
//! # Pacing
//!
//! A server that rejected a burst accepts a rate, not a burst: releasing every waiter when
//! a window ends sends the burst again, and the next rejection follows. So a rate limit
//! also gives its key a *lane*:
//!
//! - **First come, first served.** Every request for the key takes a slot when it arrives,
//!   whether the gate is closed or open; slots are one pace interval apart, and the first
//!   one after the window is the probe. No request waits behind one that arrived later.
//!   When the gate closes again, every unused slot moves back by the same amount.
//! - **A learned pace.** The first rate limit of a key knows nothing of the server's
//!   capacity: its lane starts at 20 requests per second and doubles every 250 ms; when that
//!   overruns the server, the pace of one doubling before (the last one it took) becomes the
//!   ceiling. At each later rate limit, what the server *accepted* per second since the key
//!   reopened (its answers that were not rate limits, over the whole open time, so a burst
//!   the server saved while the gate was closed is not taken for its rate) becomes the
//!   ceiling; the pace drops to 80 % of it and climbs back along a cubic curve (as AWS's
//!   adaptive retry mode does, but from the accepted rate rather than the sending rate, so
//!   one decrease lands below the limit): fast while far below the ceiling, flat near it
//!   for a few seconds, then probing above it slowly (the curve is relative to the ceiling:
//!   a slow server is probed no more often than a quick one).
//! - **Bounded.** A lane unused for 30 s is forgotten, and the key goes back to the fast path;
//!   at most [`max_keys`](RateLimitGates::max_keys) lanes are kept. A request whose slot
//!   comes after its [`max_wait`](RateLimitBackoffLayer::max_wait) fails at once, unsent,
//!   like one at a closed gate. Other keys are never paced.
//!
//! # Outages
//!
//! A server that answers `503` is down for everyone, not for one request: sending every new
//! request and every retry to it during the outage multiplies its load exactly when it can
//! least take it, and spends the retry budget on retries that land inside the outage. So
//! transient rejections close their path's gate too, once they are clearly an outage, and the
//! gate holds the path the same way as for a rate limit:
//!
//! - **What counts** is the contract's: [`OutageSignals`](crate::OutageSignals) on
//!   [`ErrorContract::outages`](crate::ErrorContract::outages). By default `503` /
//!   `UNAVAILABLE`, `502`, `504`, `DEADLINE_EXCEEDED` answered by the server, and a refused
//!   connection; not a `500` / `INTERNAL` (often about one request's input: opt in with
//!   [`OutageSignals::INTERNAL`](crate::OutageSignals::INTERNAL)), nor a reset connection
//!   or a timeout of this client (the request may be the cause).
//! - **When it is an outage** is the contract's [`OutageRule`](crate::OutageRule), a
//!   circuit breaker's: 10 signals in a row with no other answer between them, or at least
//!   20 answers in the last second with 80 % or more of them signals. Below both the path
//!   stays open: one bad input in ten, a server failing a third of its requests at random,
//!   a message over tonic's size limit (tonic answers `OUT_OF_RANGE`, which is not transient
//!   at all), never stall the path; the retry layer deals with them request by request. A
//!   `429` or `RESOURCE_EXHAUSTED` (a rate limit) still closes at once; for a gRPC library's
//!   own `RESOURCE_EXHAUSTED`, see [below](#one-requests-own-resource_exhausted).
//! - **Cost**: a path is only counted once it has answered a signal; until then its
//!   successes cost one relaxed atomic load. A watched path's answers are counted under a
//!   lock until it has been quiet for 2 s.
//! - **Closed**: the path closes as for a rate limit, through the same store (a shared store
//!   shares it), for the server's `Retry-After` when the answer has one. Else it is held
//!   for half the [backoff](RateLimitBackoffLayer::backoff)'s base, then each hold 1.5
//!   times the one before (0.5 s, 0.75 s, 1.1 s, 1.7 s, … up to the backoff's cap, 30 s),
//!   jittered as the backoff is (up to +20 %): an outage may end at any moment, and the path
//!   is tested again only when its hold ends. Each hold is half the time held before it plus
//!   the first hold, so **the first request after the server recovers leaves at most half
//!   the time the path was held, plus 0.5 s, after it** (plus jitter; never more than the
//!   cap), while a server that stays down sees one probe at a time, further and further
//!   apart. New requests and retries for the path wait at the gate (or fail at once with
//!   [`fail_fast`](RateLimitBackoffLayer::fail_fast)). A probe answered with another
//!   signal closes the path again for the next hold; any other answer opens it. (A gate
//!   closed for a rate limit, or by another process sharing the store, opens on a probe's
//!   `503`: only a path this process saw go down is held by its probes' signals.)
//! - **The probe costs the least**: a request that must not be sent twice (a method that
//!   is not idempotent, without an `Idempotency-Key`) leaves the probe role to one that may
//!   be, while one waits at the gate: a refused GET costs nothing, a refused POST fails its
//!   caller.
//! - **Widened to the server**, as rate limits are (see [scope](#scope)): a server that is
//!   down is down on every path, but only its busy paths answer enough signals to close.
//!   When two paths of one server close for an outage within one second, every request to
//!   that server queues in the server's lane: it closes with each of those paths' closures
//!   and reopens on an outage's slow start (not at a pace lowered to what the server accepted
//!   while it was down), so its quiet paths are held too. It narrows again after 30 s
//!   without a closure. A contract with [`QuotaScope::Path`](crate::quota::QuotaScope::Path)
//!   keeps every outage to its own path.
//! - **Reopened with a ramp**, not a herd: the path's [lane](#pacing) lets its waiters go in
//!   the order they arrived, from 20 requests per second doubling every 250 ms for as long
//!   as its callers keep up with it, and up to twice the rate at which they ask once they
//!   do not. Demand is who waits, not who was let through: a worker pool's callers each
//!   wait for an answer before they ask again, so they always keep up, and the ramp doubles
//!   until the pool has caught up; the many callers of an open loop ask at their own rate,
//!   and its backlog drains at twice that rate at most, never at once. Once nobody waits
//!   the path is unpaced. An outage says nothing of the server's capacity, so the pace does
//!   not drop below what the server accepted before, as after a rate limit.
//!
//! ## One request's own `RESOURCE_EXHAUSTED`
//!
//! A gRPC library answers `RESOURCE_EXHAUSTED` of its own, with no pushback, to a message
//! over its size limit (gRPC core, and so grpcio: "Received message larger than max (N vs.
//! M)"): the code a server's quota uses too. Nothing but the message (which this crate does
//! not interpret) tells the two apart in one answer, so the first one closes the method as
//! any rate limit does. The same request's next answer tells them apart: the
//! [`RetryLayer`](crate::RetryLayer) outside marks a retry whose request the server last
//! answered with a `RESOURCE_EXHAUSTED` that names no wait, and when that retry gets the same
//! answer, it is the request's own failure (the same bytes fail the same way):
//!
//! - it is not retried again, with
//!   [`NotRetried::ExhaustedAgain`](crate::NotRetried::ExhaustedAgain);
//! - it neither closes nor extends the method's gate; as the probe, it hands the role on to
//!   the next waiting request, as a probe with no answer does. The method's other calls are
//!   held one first backoff at most (1 s plus up to 20 %), not for a second, longer one.
//!
//! A quota that names no wait still closes the method and is backed off: a call's first
//! answer is the method's, and as the probe it doubles the backoff; each call is tried twice.
//! A pushback (or any other wait the server names) makes every such answer a rate limit, as
//! before. A success of another call on the method, sent before it closed, does not reopen
//! it: against a real quota the calls of a burst are accepted and refused interleaved, and
//! the gate would flap. Without the retry layer (or with another one), every
//! `RESOURCE_EXHAUSTED` is a rate limit.
//!
//! Measured with `cargo run --release --example outages` (1,500 GETs started on schedule
//! over 8 s, each its own task, against a server that answers `503` from 1 to 3 s and from 5
//! to 6 s; the default one-line stack over a hyper-util client): see the README's
//! "Outages" section.
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use std::{convert::Infallible, sync::{Arc, atomic::{AtomicU32, Ordering}}};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{ApiContractLayer, RateLimitBackoffLayer, RetryLayer, ServiceBuilderExt};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // A server that is down.
//! let arrivals = Arc::new(AtomicU32::new(0));
//! let seen = arrivals.clone();
//! let server = service_fn(move |_req: Request<Full<Bytes>>| {
//!     seen.fetch_add(1, Ordering::SeqCst);
//!     async { Ok::<_, Infallible>(Response::builder().status(503).body(Full::<Bytes>::default()).unwrap()) }
//! });
//! let rate_limit = RateLimitBackoffLayer::new().fail_fast();
//! let gates = rate_limit.get_gates().clone();
//! let client = ServiceBuilder::new()
//!     .layer(
//!         ApiContractLayer::new().retry(RetryLayer::new().max_retries(0)).rate_limit(rate_limit),
//!     )
//!     .service(server);
//!
//! let get = |id: u32| Request::get(format!("http://api.test/v1/items/{id}")).body(Full::default()).unwrap();
//! for id in 0..10 {
//!     let err = client.clone().oneshot(get(id)).await.unwrap_err();
//!     assert_eq!(err.status().map(|s| s.as_u16()), Some(503));
//! }
//! // Ten in a row: the path is out. The next request is held at its gate (here, with
//! // fail_fast, refused at once, unsent) instead of reaching the server.
//! assert_eq!(gates.len(), 1);
//! let held = client.clone().oneshot(get(10)).await.unwrap_err();
//! assert!(held.is_gate_closed() && !held.request_sent());
//! assert_eq!(arrivals.load(Ordering::SeqCst), 10);
//! # }
//! ```
//!
//! # Announced quotas
//!
//! Servers that count requests often say so on every response, success or not:
//! `RateLimit-Policy` / `RateLimit` (the IETF draft), `X-RateLimit-Limit` / `-Remaining` /
//! `-Reset` (GitHub and many more), and, opted into on the contract, OpenAI's and Anthropic's
//! families; see [`quota`](crate::quota) for the conventions and how each is read. The
//! layer reads them from every response it passes (with none of them present, one pass over
//! the header names, no allocation), and from every error response the decode layer decoded
//! ([`Error::quota`](crate::Error::quota): a `429` or `503` that says how much is left and
//! when it resets), and stops *before* the `429`:
//!
//! - The quota belongs to its [scope](#scope): the whole server by default.
//! - The scope's lane keeps a budget: the announced remaining, less the requests still in
//!   flight (the server may not have counted them yet), counted down locally with every
//!   request sent, so 32 requests in flight cannot overshoot a quota of 5. The budget is
//!   spread over the time to the reset, not spent in a burst.
//! - When nothing is left, requests wait for the announced reset, bounded by
//!   [`max_closed`](RateLimitBackoffLayer::max_closed); then the whole quota (when its limit
//!   was announced) or a single request (when not) goes, and the next answers set the
//!   budget again. A reset given in whole seconds is rounded up by the server, so the
//!   earliest reset announced within a window is the one kept. The local count runs ahead
//!   of the answers (requests waiting for their turn in the next window are counted in it):
//!   an answer from before the local window began changes it only when the server's count
//!   went up by more than the requests in flight, which means the server's window turned
//!   before the local one; the local window then moves back to the server's. So a client
//!   whose first answer came late in a window does not stay late by as much in every window.
//! - An announced reset never opens a gate that a `429` closed for longer: both hold.
//!
//! # Scope
//!
//! A rate limit closes the gate of its own key (the path template). A quota announced in
//! headers applies to the whole server (scheme + authority), as GitHub's does, unless the
//! contract says [`QuotaScope::Path`](crate::quota::QuotaScope::Path).
//!
//! A server may also limit every path at once without saying so: nginx's `limit_req`,
//! keyed by client address, answers `429` on whichever path comes next. So when rate limits
//! hit two different keys of one server within one second, the limit is taken to be the
//! server's: its lane closes with the gate, and every request to that server queues in it,
//! paced, as a single path would. It narrows again after 30 s without a rate limit. Paths
//! closed for an [outage](#outages) widen the same way. A
//! server whose paths have separate limits that are often hit at the same time should say
//! so with [`QuotaScope::Path`](crate::quota::QuotaScope::Path) on the contract, which keeps
//! every limit to its own key.
//!
//! # Beyond one process
//!
//! A rate limit belongs to an API key, and a fleet of processes often shares one key. With
//! the `redis` feature, [`RedisStore`] shares the gates of every process that uses the same
//! Redis and namespace ([`RateLimitGates::shared`]):
//!
//! - **One rejection closes the path for the fleet.** A process that sees a rate limit
//!   closes its own gate at once and tells Redis with one script call, which publishes the
//!   closure; every other process closes the same key (the same [`Key`] in every process
//!   built from the same versions) within a pub/sub delivery, about a millisecond on a LAN.
//! - **One probe for the fleet.** When the window ends, the process whose request would
//!   probe first takes the key's probe lease in Redis (one script call per window, never one
//!   per waiting request); everyone else waits for its answer, which is published. A probe
//!   with no answer gives the lease back; a process that dies holding it lets it expire
//!   ([`probe_lease`](RedisStore::probe_lease), 5 s by default). After the opening, every
//!   process reopens at its own [pace](#pacing).
//! - **Nothing per success.** Each process keeps its own view (the in-memory gates), so
//!   with no key closed a request costs what it costs without Redis: no round trip, no
//!   command.
//! - **Clock-free.** The scripts read Redis's own clock (`TIME`); only durations travel.
//!   The fleet's gates live in one hash, `tower-api-retry:{<namespace>}:gates` (one hash
//!   tag per namespace, so a [Redis Cluster](RedisStore::cluster) keeps them in one slot),
//!   bounded by [`max_keys`](RateLimitGates::max_keys) in Redis too. What Redis says is
//!   bounded like a server's hint ([`RedisStore::max_closed`]).
//! - **Outages and rate limits alike.** A path closed for an [outage](#outages) is closed
//!   for the fleet too.
//! - **Redis is never a new way to fail.** Every call has a [timeout](RedisStore::timeout)
//!   (250 ms). While Redis is down, slow, restarting or failing over, each process works on
//!   its local gates, exactly as without a store, and logs one warning; when Redis answers
//!   again it reads every gate ([`resync_interval`](RedisStore::resync_interval), doubling
//!   up to four times it while Redis stays away) and shares again. Pub/sub drops messages by
//!   design, so a process also reads every gate on each (re)subscription and once per
//!   `resync_interval` while any of its gates is closed.
//!
//! A URL's password never appears in `Debug` output, errors or logs. For `rediss://`,
//! enable a TLS feature of the `redis` crate in your own `Cargo.toml` (for example
//! `redis = { version = "1", features = ["tokio-rustls-comp"] }`).
//!
//! # gRPC status in trailers
//!
//! A gRPC server may send its headers first and its status last, in the trailers: every
//! streaming call does, and so do unary calls of servers that send initial metadata (grpcio,
//! for one). Such a call is committed (its caller is already reading the response) and is not
//! retried, but a `RESOURCE_EXHAUSTED` there is as much a rate limit as a trailers-only one:
//! the response body, [`ResponseBody`], reads the trailers as they pass and closes the
//! method's gate for the `grpc-retry-pushback-ms` they carry (or the backoff), exactly as a
//! trailers-only rejection would. For a probe, its first message (the server took the call)
//! or its trailers are its answer; a probe whose body is dropped or fails before either hands
//! its role on.
//!
//! Only gRPC responses (`content-type: application/grpc…` without a `grpc-status` header) are
//! watched. Every other body, HTTP success bodies and their trailers included, is passed on
//! without being looked at: [`ResponseBody`] is then a plain wrapper, one branch per frame. It
//! is the one change this layer makes to a response: a service returning `Response<B>`
//! returns `Response<ResponseBody<B>>` through it (any code that is generic over the body,
//! such as `tonic::client::Grpc`, is unaffected; [`ResponseBody::into_inner`] gives `B`
//! back).
//!
//! A gRPC call also waits at a closed gate no longer than the `grpc-timeout` it carries (the
//! time its caller still waits; see [the retry layer's deadlines](crate::retry#deadlines)).
//!
//! ```
//! use bytes::Bytes;
//! use http::{HeaderMap, Request, Response};
//! use http_body_util::{BodyExt, Full, StreamBody};
//! use std::{convert::Infallible, time::Duration};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//! use tower_api_retry::{ErrorDecodeLayer, rate_limit::{Key, RateLimitBackoffLayer}};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! // Headers first, then RESOURCE_EXHAUSTED with an 800 ms pushback in the trailers.
//! let server = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let mut trailers = HeaderMap::new();
//!     trailers.insert("grpc-status", "8".parse().unwrap());
//!     trailers.insert("grpc-retry-pushback-ms", "800".parse().unwrap());
//!     let frames = [Ok::<_, Infallible>(http_body::Frame::<Bytes>::trailers(trailers))];
//!     let body = StreamBody::new(tokio_stream::iter(frames));
//!     Ok::<_, Infallible>(Response::builder().header("content-type", "application/grpc").body(body).unwrap())
//! });
//! let layer = RateLimitBackoffLayer::new();
//! let gates = layer.get_gates().clone();
//! let client = ServiceBuilder::new().layer(layer).layer(ErrorDecodeLayer::new()).service(server);
//!
//! let call = Request::post("http://svc.test/quota.Quota/Spend")
//!     .header("content-type", "application/grpc")
//!     .body(Full::default())
//!     .unwrap();
//! let res = client.oneshot(call).await.unwrap(); // headers: the call is committed
//! let trailers = res.into_body().collect().await.unwrap().trailers().cloned().unwrap();
//! assert_eq!(trailers["grpc-status"], "8"); // the caller sees the status, unchanged ...
//! // ... and the method's gate is closed for the pushback.
//! let key = Key::from_uri(&"http://svc.test/quota.Quota/Spend".parse().unwrap());
//! assert_eq!(gates.time_left(key), Some(Duration::from_millis(800)));
//! # }
//! ```
//!
//! # With a retry layer
//!
//! The documented order is `RetryLayer` outside, then this layer, then `ErrorDecodeLayer`
//! innermost: a retried attempt passes the gate again, so a rate-limited request's retry waits
//! at the gate instead of hammering the server, and retries of other requests for the same
//! key queue behind the probe.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use std::time::Duration;
//! use tower::{service_fn, Service, ServiceBuilder, ServiceExt};
//! use tower_api_retry::{ErrorCode, ErrorDecodeLayer, rate_limit::RateLimitBackoffLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let res = Response::builder()
//!         .status(429)
//!         .header("retry-after", "20")
//!         .body(Full::new(Bytes::from(r#"{"code":"RESOURCE_EXHAUSTED","message":"Slow down."}"#)))
//!         .unwrap();
//!     Ok::<_, std::io::Error>(res)
//! });
//! let mut client = ServiceBuilder::new()
//!     .layer(RateLimitBackoffLayer::new().max_wait(Duration::from_secs(5)))
//!     .layer(ErrorDecodeLayer::new())
//!     .service(server);
//!
//! let req = || Request::get("http://api.example.com/v1/tasks").body(Full::default()).unwrap();
//! let first = client.ready().await.unwrap().call(req()).await.unwrap_err();
//! assert_eq!(first.status(), Some(StatusCode::TOO_MANY_REQUESTS));
//!
//! // The path is closed for 20 s, longer than this client waits: fails at once, unsent.
//! let second = client.ready().await.unwrap().call(req()).await.unwrap_err();
//! assert!(second.is_gate_closed() && !second.request_sent());
//! assert_eq!(second.code(), &ErrorCode::ResourceExhausted);
//! assert_eq!(second.status(), None);
//! assert!(second.retry_after().unwrap() > Duration::from_secs(19));
//! # }
//! ```

mod body;
mod filter;
#[cfg(feature = "redis")]
mod fleet;
mod gate;
mod health;
mod key;
mod lanes;
mod layer;
mod notify;
mod pace;
mod policy;
mod service;
mod store;

pub use body::ResponseBody;
#[cfg(feature = "redis")]
pub use fleet::{
    DEFAULT_PROBE_LEASE, DEFAULT_REDIS_TIMEOUT, DEFAULT_RESYNC_INTERVAL, RedisStore,
    RedisStoreError,
};
pub use gate::{DEFAULT_MAX_KEYS, RateLimitGates};
pub use key::{Key, PathTemplate, RequestHead};
#[allow(deprecated)]
pub use layer::DEFAULT_RELEASE_JITTER;
pub use layer::{DEFAULT_MAX_CLOSED, DEFAULT_MAX_WAIT, RateLimitBackoffLayer};
pub use service::{RateLimitBackoff, ResponseFuture};
