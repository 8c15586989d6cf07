//! A rate-limited server on loopback, a client-side stamp, and the figures both give.
//!
//! Shared by the integration tests (`support::limited`) and the rate-limit measurement
//! (`examples/rate_limits.rs`, through `#[path = "../tests/it/support/limited.rs"]`).
//!
//! - [`LimitedServer`] limits the path *template* `/limited/{n}`: every id shares one token
//!   bucket (200 requests/s, burst 20 by default), and an over-limit request gets
//!   `429` + `Retry-After: 1` + `{"code":"RESOURCE_EXHAUSTED","message":"Too many requests"}`.
//!   `/other` is never limited; `/down/{n}` always answers `503` +
//!   `{"code":"UNAVAILABLE",...}` (a server that is down). With [`Announce`], the limit is instead a fixed window of
//!   `quota` requests per `window` seconds (aligned to Unix time), announced on every response
//!   of the template in one [`Convention`]. Every arrival is logged ([`Arrival`]).
//! - [`Stamps`] is a tower layer for the client, placed between the stack under test and the
//!   network: it numbers every request (`x-seq`) and stamps it with how many `429`s
//!   (`x-rejected`) and how many responses (`x-received`) the client had received when it sent
//!   it. That makes "sent inside a window" causal: an arrival stamped `k` was sent after the
//!   client had seen the first `k` rejections, so if it falls inside the window of any of
//!   those, the client sent it knowing it should not ([`in_window`]).
//! - [`drive`] runs a load (workers, requests over several paths, an unrelated path probed on
//!   the side) through any client, and [`Figures`] sums a run up.
#![allow(dead_code, unreachable_pub)]

use axum::{
    Router, body::Body, extract::Request as AxumRequest, response::Response as AxumResponse,
};
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use http_body_util::{BodyExt, Full};
use std::{
    collections::HashSet,
    convert::Infallible,
    fmt,
    future::Future,
    net::SocketAddr,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};
use tower::{Layer, Service, ServiceExt, service_fn, util::BoxCloneService};

/// The request number the client-side stamp gives every request it sends.
pub const SEQ: &str = "x-seq";
/// How many `429`s the client had received when it sent the request.
pub const REJECTED: &str = "x-rejected";
/// How many responses the client had received when it sent the request.
pub const RECEIVED: &str = "x-received";
/// The process of a fleet that sent a request.
pub const WORKER: &str = "x-worker";
/// When the request left the client's stack (its gate let it through), in microseconds since
/// the Unix epoch: the client's clock, comparable across processes on one machine.
pub const SENT: &str = "x-sent-us";

/// The body of a `429`, in the shape of the contract pages' envelope.
pub const TOO_MANY: &str = r#"{"code":"RESOURCE_EXHAUSTED","message":"Too many requests"}"#;

/// The body of every answer on `/down/{n}`.
pub const DOWN: &str = r#"{"code":"UNAVAILABLE","message":"The service is briefly unavailable."}"#;

/// A header convention for announcing a quota.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Convention {
    /// draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "default";q=50;w=1` and
    /// `RateLimit: "default";r=<left>;t=<seconds to reset>`.
    IetfDraft,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` in seconds from now.
    XRateLimitDelta,
    /// `X-RateLimit-Limit`, `-Remaining`, `-Reset` as Unix epoch seconds (GitHub's form).
    XRateLimitEpoch,
}

impl Convention {
    /// Every convention, in the order of the measurement.
    pub const ALL: [Convention; 3] = [
        Convention::IetfDraft,
        Convention::XRateLimitDelta,
        Convention::XRateLimitEpoch,
    ];
}

impl fmt::Display for Convention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Convention::IetfDraft => "IETF RateLimit",
            Convention::XRateLimitDelta => "X-RateLimit (delta)",
            Convention::XRateLimitEpoch => "X-RateLimit (epoch)",
        })
    }
}

/// An announced quota: `quota` requests per `window_secs` seconds, windows aligned to Unix time.
#[derive(Clone, Copy, Debug)]
pub struct Announce {
    pub convention: Convention,
    pub quota: u32,
    pub window_secs: u64,
}

/// How the server limits `/limited/{n}`.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Token bucket refill, requests per second (unused with `announce`).
    pub rate: f64,
    /// Token bucket size (unused with `announce`).
    pub burst: u32,
    /// `Retry-After` of a bucket rejection, in seconds.
    pub retry_after_secs: u64,
    /// Limit by an announced fixed window instead of the bucket.
    pub announce: Option<Announce>,
}

impl Default for Limits {
    /// 200 requests/s, burst 20, `Retry-After: 1`, nothing announced.
    fn default() -> Self {
        Limits {
            rate: 200.0,
            burst: 20,
            retry_after_secs: 1,
            announce: None,
        }
    }
}

impl Limits {
    /// A server announcing `quota` requests per `window_secs` in `convention`.
    pub fn announced(convention: Convention, quota: u32, window_secs: u64) -> Limits {
        Limits {
            announce: Some(Announce {
                convention,
                quota,
                window_secs,
            }),
            ..Limits::default()
        }
    }

    /// The requests per second the server serves on the template.
    pub fn served_rate(&self) -> f64 {
        match self.announce {
            Some(a) => f64::from(a.quota) / a.window_secs as f64,
            None => self.rate,
        }
    }
}

/// One request as the server saw it. Times are from the server's start (or, for logs of
/// another server, from its first line).
#[derive(Clone, Debug)]
pub struct Arrival {
    /// When it arrived.
    pub at: Duration,
    /// When it was answered.
    pub answered: Duration,
    pub path: String,
    pub status: u16,
    /// The `Retry-After` answered with it.
    pub retry_after: Option<Duration>,
    /// The client's stamps, when present.
    pub seq: Option<u64>,
    pub rejected_before: Option<u64>,
    pub received_before: Option<u64>,
    /// The `x-worker` header: which process of a fleet sent it.
    pub worker: Option<u64>,
    /// When the client's gate let it through, on the server's timeline (from [`SENT`]).
    pub sent: Option<Duration>,
    /// The announced window it was counted in (the Unix time over the window's length).
    pub window: Option<u64>,
}

#[derive(Debug)]
struct Gate {
    tokens: f64,
    last: Instant,
    window: u64,
    used: u32,
}

struct ServerState {
    limits: Limits,
    start: Instant,
    /// `start` on the system clock, to place the clients' [`SENT`] stamps.
    start_unix: SystemTime,
    gate: Mutex<Gate>,
    log: Mutex<Vec<Arrival>>,
}

/// The rate-limited server. Stops when dropped.
pub struct LimitedServer {
    addr: SocketAddr,
    state: Arc<ServerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LimitedServer {
    /// Starts the server on `127.0.0.1:0`.
    pub async fn start(limits: Limits) -> LimitedServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let now = Instant::now();
        let state = Arc::new(ServerState {
            limits,
            start: now,
            start_unix: SystemTime::now(),
            gate: Mutex::new(Gate {
                tokens: f64::from(limits.burst),
                last: now,
                window: 0,
                used: 0,
            }),
            log: Mutex::default(),
        });
        let st = state.clone();
        let app = Router::new().fallback(move |req: AxumRequest| {
            let state = st.clone();
            async move { handle(&state, &req) }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        LimitedServer { addr, state, task }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The limits it enforces.
    pub fn limits(&self) -> Limits {
        self.state.limits
    }

    /// Where `t`, on the system clock, falls on the server's timeline (that of
    /// [`Arrival::at`]); zero before the server started.
    pub fn timeline(&self, t: SystemTime) -> Duration {
        t.duration_since(self.state.start_unix).unwrap_or_default()
    }

    /// Every request so far, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.log.lock().unwrap().clone()
    }
}

fn header_u64(req: &AxumRequest, name: &str) -> Option<u64> {
    req.headers().get(name)?.to_str().ok()?.parse().ok()
}

fn handle(state: &ServerState, req: &AxumRequest) -> AxumResponse {
    let at = state.start.elapsed();
    let path = req.uri().path().to_owned();
    let mut window = None;
    let mut res = if path.starts_with("/limited/") {
        let (res, counted_in) = limited(state);
        window = counted_in;
        res
    } else if path == "/other" {
        json(StatusCode::OK, r#"{"ok":true}"#)
    } else if path.starts_with("/down/") {
        json(StatusCode::SERVICE_UNAVAILABLE, DOWN)
    } else {
        json(
            StatusCode::NOT_FOUND,
            r#"{"code":"NOT_FOUND","message":"No such path"}"#,
        )
    };
    let retry_after = res
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .map(Duration::from_secs);
    let arrival = Arrival {
        at,
        answered: state.start.elapsed(),
        path,
        status: res.status().as_u16(),
        retry_after,
        seq: header_u64(req, SEQ),
        rejected_before: header_u64(req, REJECTED),
        received_before: header_u64(req, RECEIVED),
        worker: header_u64(req, WORKER),
        sent: header_u64(req, SENT).and_then(|us| {
            (UNIX_EPOCH + Duration::from_micros(us))
                .duration_since(state.start_unix)
                .ok()
        }),
        window,
    };
    // Logged before the response leaves, so the log never misses an answered request.
    state.log.lock().unwrap().push(arrival);
    res.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    res
}

fn json(status: StatusCode, body: &'static str) -> AxumResponse {
    AxumResponse::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

/// The answer on the template: the bucket's, or the announced window's (and that window).
fn limited(state: &ServerState) -> (AxumResponse, Option<u64>) {
    let limits = &state.limits;
    let mut gate = state.gate.lock().unwrap();
    let Some(announce) = limits.announce else {
        let now = Instant::now();
        let refill = now.duration_since(gate.last).as_secs_f64() * limits.rate;
        gate.tokens = (gate.tokens + refill).min(f64::from(limits.burst));
        gate.last = now;
        if gate.tokens >= 1.0 {
            gate.tokens -= 1.0;
            return (json(StatusCode::OK, r#"{"ok":true}"#), None);
        }
        let mut res = json(StatusCode::TOO_MANY_REQUESTS, TOO_MANY);
        res.headers_mut()
            .insert("retry-after", limits.retry_after_secs.into());
        return (res, None);
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64();
    let w = announce.window_secs.max(1);
    let window = (unix / w as f64).floor() as u64;
    if window != gate.window {
        gate.window = window;
        gate.used = 0;
    }
    let end = (window + 1) * w;
    let reset = ((end as f64 - unix).ceil() as u64).max(1);
    let allowed = gate.used < announce.quota;
    if allowed {
        gate.used += 1;
    }
    let left = announce.quota - gate.used.min(announce.quota);
    let mut res = if allowed {
        json(StatusCode::OK, r#"{"ok":true}"#)
    } else {
        let mut res = json(StatusCode::TOO_MANY_REQUESTS, TOO_MANY);
        res.headers_mut().insert("retry-after", reset.into());
        res
    };
    let h = res.headers_mut();
    let q = announce.quota;
    match announce.convention {
        Convention::IetfDraft => {
            h.insert(
                "ratelimit-policy",
                format!("\"default\";q={q};w={w}").parse().unwrap(),
            );
            h.insert(
                "ratelimit",
                format!("\"default\";r={left};t={reset}").parse().unwrap(),
            );
        }
        Convention::XRateLimitDelta | Convention::XRateLimitEpoch => {
            h.insert("x-ratelimit-limit", q.into());
            h.insert("x-ratelimit-remaining", left.into());
            let reset = if announce.convention == Convention::XRateLimitEpoch {
                end
            } else {
                reset
            };
            h.insert("x-ratelimit-reset", reset.into());
        }
    }
    (res, Some(window))
}

// ---------------------------------------------------------------------------------------------
// The client-side stamp.

#[derive(Debug, Default)]
pub struct Book {
    received: u64,
    /// The `x-seq` of every 429 received, in the order received.
    rejected: Vec<u64>,
}

/// The shared counters of a [`StampLayer`]: clone to read them after a run.
#[derive(Clone, Debug, Default)]
pub struct Stamps {
    next: Arc<AtomicU64>,
    book: Arc<Mutex<Book>>,
}

impl Stamps {
    pub fn new() -> Stamps {
        Stamps::default()
    }

    /// A layer stamping with these counters.
    pub fn layer(&self) -> StampLayer {
        StampLayer {
            stamps: self.clone(),
        }
    }

    /// The `x-seq` of every `429` the client received, in the order received.
    pub fn rejected(&self) -> Vec<u64> {
        self.book.lock().unwrap().rejected.clone()
    }

    /// How many requests went through.
    pub fn sent(&self) -> u64 {
        self.next.load(Ordering::SeqCst)
    }
}

/// Stamps every request with [`SEQ`], [`REJECTED`] and [`RECEIVED`], and counts what comes
/// back. Put it right above the client, under the stack being measured.
#[derive(Clone, Debug)]
pub struct StampLayer {
    stamps: Stamps,
}

impl<S> Layer<S> for StampLayer {
    type Service = Stamp<S>;
    fn layer(&self, inner: S) -> Stamp<S> {
        Stamp {
            inner,
            stamps: self.stamps.clone(),
        }
    }
}

/// The service of [`StampLayer`].
#[derive(Clone, Debug)]
pub struct Stamp<S> {
    inner: S,
    stamps: Stamps,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, RB> Service<Request<B>> for Stamp<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = Response<StampBody<RB>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<StampBody<RB>>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let seq = self.stamps.next.fetch_add(1, Ordering::SeqCst);
        let (rejected, received) = {
            let book = self.stamps.book.lock().unwrap();
            (book.rejected.len() as u64, book.received)
        };
        let h = req.headers_mut();
        h.insert(SEQ, seq.into());
        h.insert(REJECTED, rejected.into());
        h.insert(RECEIVED, received.into());
        let future = self.inner.call(req);
        let book = self.stamps.book.clone();
        Box::pin(async move {
            let res = future.await?;
            book.lock().unwrap().received += 1;
            // A 429 counts as received when its body is done with (read to its end by the
            // decode layer, or dropped): that is when the client knows it is a rate limit
            // and the gate above closes. Counting it at the head would blame the requests
            // sent while its error body was still being read.
            let hook = (res.status() == StatusCode::TOO_MANY_REQUESTS).then(|| RejectedHook {
                book: book.clone(),
                seq,
            });
            Ok(res.map(|inner| StampBody { inner, _hook: hook }))
        })
    }
}

/// A response body under [`Stamp`]: unchanged, but a `429`'s is counted when dropped.
#[derive(Debug)]
pub struct StampBody<B> {
    inner: B,
    _hook: Option<RejectedHook>,
}

#[derive(Debug)]
pub struct RejectedHook {
    book: Arc<Mutex<Book>>,
    seq: u64,
}

impl Drop for RejectedHook {
    fn drop(&mut self) {
        self.book.lock().unwrap().rejected.push(self.seq);
    }
}

impl<B: HttpBody + Unpin> HttpBody for StampBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------------------------------------
// The figures.

/// Arrivals in scope that the client sent inside the window of a `429` it had already
/// received: an arrival stamped `k` (it was sent after the client received `429`s number
/// 1..=k, numbered in the order the client received them, `rejected` being their `x-seq`s)
/// that arrived before `answered + Retry-After` of any of those. `slack` absorbs the
/// resolution of a log's clock (zero for [`LimitedServer`]'s own).
pub fn in_window(
    arrivals: &[Arrival],
    rejected: &[u64],
    in_scope: impl Fn(&str) -> bool,
    slack: Duration,
) -> Vec<Arrival> {
    let ends: std::collections::HashMap<u64, Duration> = arrivals
        .iter()
        .filter(|a| a.status == 429)
        .filter_map(|a| Some((a.seq?, a.answered + a.retry_after?)))
        .collect();
    // closes[k] = the latest window end among the first k rejections received.
    let mut closes = vec![Duration::ZERO];
    for seq in rejected {
        let end = ends.get(seq).copied().unwrap_or_default();
        closes.push(end.max(*closes.last().unwrap()));
    }
    arrivals
        .iter()
        .filter(|a| in_scope(&a.path))
        .filter(|a| {
            let k = a.rejected_before.unwrap_or(0) as usize;
            k > 0 && a.at + slack < closes[k.min(closes.len() - 1)]
        })
        .cloned()
        .collect()
}

/// A client as [`drive`] uses it: `true` when the request succeeded.
pub type Client = BoxCloneService<Request<Full<Bytes>>, bool, Infallible>;

/// Wraps any HTTP client service: success means a 2xx response (whose body is then read).
pub fn outcome<S, B>(service: S) -> Client
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: HttpBody + Send + 'static,
    B::Data: Send,
{
    BoxCloneService::new(service_fn(move |req: Request<Full<Bytes>>| {
        let service = service.clone();
        async move {
            let Ok(res) = service.oneshot(req).await else {
                return Ok(false);
            };
            let ok = res.status().is_success();
            // Read the body, so the connection goes back to the pool.
            let read = res.into_body().collect().await.is_ok();
            Ok(ok && read)
        }
    }))
}

/// A load: `requests` GETs over `paths` (absolute URLs, taken in turn) by `workers` tasks,
/// while one more task sends GETs to `other` one after another.
#[derive(Clone, Debug)]
pub struct Load {
    pub workers: usize,
    pub requests: usize,
    pub paths: Vec<String>,
    pub other: Option<String>,
}

/// What a load gave, as the client saw it.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub ok: usize,
    pub failed: usize,
    pub elapsed: Duration,
    /// How long each request of the load took, end to end (waits included), sorted.
    pub latencies: Vec<Duration>,
    /// How long each request to the unrelated path took, sorted.
    pub other: Vec<Duration>,
}

impl Run {
    pub fn worst(&self) -> Duration {
        self.latencies.last().copied().unwrap_or_default()
    }
    pub fn median(&self) -> Duration {
        self.latencies
            .get(self.latencies.len() / 2)
            .copied()
            .unwrap_or_default()
    }
    pub fn other_worst(&self) -> Option<Duration> {
        self.other.last().copied()
    }
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// Runs `load` through `client`.
pub async fn drive(client: Client, load: &Load) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let paths = Arc::new(load.paths.clone());
    let start = Instant::now();
    let prober = load.other.clone().map(|url| {
        let (client, done) = (client.clone(), done.clone());
        tokio::spawn(async move {
            let mut took = Vec::new();
            while !done.load(Ordering::SeqCst) {
                let t = Instant::now();
                let _ = client.clone().oneshot(get(&url)).await;
                took.push(t.elapsed());
                // Pacing of the probe itself, not synchronisation.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            took
        })
    });
    let workers: Vec<_> = (0..load.workers)
        .map(|_| {
            let (client, next, paths) = (client.clone(), next.clone(), paths.clone());
            let requests = load.requests;
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= requests {
                        return mine;
                    }
                    let t = Instant::now();
                    let ok = client
                        .clone()
                        .oneshot(get(&paths[i % paths.len()]))
                        .await
                        .unwrap_or(false);
                    mine.push((ok, t.elapsed()));
                }
            })
        })
        .collect();
    let mut run = Run::default();
    for w in workers {
        for (ok, took) in w.await.expect("worker") {
            if ok {
                run.ok += 1;
            } else {
                run.failed += 1;
            }
            run.latencies.push(took);
        }
    }
    run.elapsed = start.elapsed();
    done.store(true, Ordering::SeqCst);
    if let Some(p) = prober {
        run.other = p.await.expect("prober");
    }
    run.latencies.sort();
    run.other.sort();
    run
}

/// `/limited/1` .. `/limited/{ids}` on `server`.
pub fn template_paths(server: &LimitedServer, ids: u32) -> Vec<String> {
    (1..=ids)
        .map(|n| server.url(&format!("/limited/{n}")))
        .collect()
}

/// A run summed up.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Arrivals on the limited scope sent inside a window already announced to the client.
    pub in_window: usize,
    /// `429`s answered.
    pub rejected: usize,
    /// `429`s answered to requests sent after the client had received a first response, see
    /// [`rejected_after_first`].
    pub rejected_after_first: usize,
    pub ok: usize,
    pub failed: usize,
    /// Successes per second.
    pub goodput: f64,
    /// `goodput` over the rate the server serves.
    pub share: f64,
    pub worst: Duration,
    pub median: Duration,
    pub other_worst: Option<Duration>,
    pub elapsed: Duration,
}

/// The `429`s answered to requests sent after the client had received a first response.
///
/// A window that also counted a request sent before any response is left out: the client
/// could not know of the quota when it sent that one, nor in which window it would land (a
/// request sent just before a window ends can reach the server just after).
pub fn rejected_after_first(arrivals: &[Arrival]) -> usize {
    let blind: HashSet<u64> = arrivals
        .iter()
        .filter(|a| a.received_before == Some(0))
        .filter_map(|a| a.window)
        .collect();
    arrivals
        .iter()
        .filter(|a| a.status == 429 && a.received_before.unwrap_or(0) > 0)
        .filter(|a| a.window.is_none_or(|w| !blind.contains(&w)))
        .count()
}

impl Figures {
    /// Sums up `run`, judged on the server's `arrivals` (`rate`: what it serves per second).
    pub fn of(
        arrivals: &[Arrival],
        stamps: &Stamps,
        run: &Run,
        rate: f64,
        in_scope: impl Fn(&str) -> bool,
        slack: Duration,
    ) -> Figures {
        let rejected = stamps.rejected();
        let goodput = run.ok as f64 / run.elapsed.as_secs_f64().max(1e-9);
        Figures {
            in_window: in_window(arrivals, &rejected, &in_scope, slack).len(),
            rejected: arrivals.iter().filter(|a| a.status == 429).count(),
            rejected_after_first: rejected_after_first(arrivals),
            ok: run.ok,
            failed: run.failed,
            goodput,
            share: goodput / rate,
            worst: run.worst(),
            median: run.median(),
            other_worst: run.other_worst(),
            elapsed: run.elapsed,
        }
    }

    /// One line for a test's output.
    pub fn line(&self) -> String {
        format!(
            "in-window arrivals {}, 429s {} ({} after the first response), ok {}, failed {}, \
             goodput {:.0} req/s ({:.0} % of the server's rate), worst wait {:.2?} (median {:.2?}), \
             worst wait of the unrelated path {}, total {:.2?}",
            self.in_window,
            self.rejected,
            self.rejected_after_first,
            self.ok,
            self.failed,
            self.goodput,
            self.share * 100.0,
            self.worst,
            self.median,
            self.other_worst
                .map_or_else(|| "-".to_owned(), |d| format!("{d:.2?}")),
            self.elapsed,
        )
    }
}
