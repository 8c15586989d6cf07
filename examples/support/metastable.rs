//! A retry storm against a server of fixed capacity, on tokio's paused clock.
//!
//! The scenario of "Metastable Failures in Distributed Systems" (OSDI '22): an open-loop
//! load of 150 GETs a second for 30 s, to a server of 8 slots of 40 ms each (200 a second)
//! with a FIFO queue and no shedding, which keeps working on requests whose caller has gone.
//! From 2 s to 7 s its service time doubles (80 ms: 100 a second). Every client times each
//! attempt out after 1 s, innermost.
//!
//! The same load runs against three clients, each with its own server: no retries,
//! `tower::retry` retrying any error 3 times after 1 s, 2 s and 4 s, and this crate's default
//! stack. Time is virtual (`tokio::time::pause`), so a run takes a moment and its figures do
//! not depend on the machine.
//!
//! Used by `examples/metastable.rs` (the table) and `tests/it/metastable.rs` (the targets).
#![allow(dead_code, unreachable_pub)] // the example and the test each use their part

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{
    collections::BTreeMap,
    fmt::Write as _,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};
use tokio::{
    sync::{Semaphore, oneshot},
    time::{Instant, Sleep},
};
use tower::{
    BoxError, Service, ServiceBuilder, ServiceExt, timeout::TimeoutLayer, util::BoxCloneService,
};
use tower_api_retry::ServiceBuilderExt;

/// The request type.
pub type Req = Request<Full<Bytes>>;
/// The response type.
pub type Res = Response<Full<Bytes>>;

/// How long the open-loop load lasts.
pub const LOAD: Duration = Duration::from_secs(30);
/// Requests a second.
pub const RATE: u32 = 150;
/// The server's slots.
pub const SLOTS: usize = 8;
/// The service time of one request, outside the trigger.
pub const SERVICE: Duration = Duration::from_millis(40);
/// The service time during the trigger.
pub const SLOW_SERVICE: Duration = Duration::from_millis(80);
/// When the trigger starts and ends (seconds since the start of the load).
pub const TRIGGER: (u64, u64) = (2, 7);
/// Every client's per-attempt timeout.
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// How many seconds are counted (the load, and the tail of retries after it).
const SECONDS: usize = 120;

/// The clients compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// A timeout and nothing else.
    NoRetries,
    /// `tower::retry`: any error, 3 times, after 1 s, 2 s, 4 s (plus up to 20 % jitter).
    TowerRetry,
    /// `ServiceBuilder::new().api_contract().layer(TimeoutLayer::new(1 s))`.
    Crate,
}

impl Client {
    /// All three, in the table's order.
    pub const ALL: [Client; 3] = [Client::NoRetries, Client::TowerRetry, Client::Crate];

    /// The column's name.
    pub fn name(self) -> &'static str {
        match self {
            Client::NoRetries => "no retries",
            Client::TowerRetry => "tower::retry",
            Client::Crate => "tower-api-retry",
        }
    }
}

/// Per-second counts, by the second since the start of the load.
#[derive(Clone, Debug)]
struct Counts {
    start: Instant,
    /// Requests answered with success, by the second of the answer.
    good: Vec<u32>,
    /// Requests answered with an error, by the second of the answer.
    failed: Vec<u32>,
    /// Attempts that reached the server, by the second they arrived.
    sends: Vec<u32>,
    /// The last answer to a caller, since the start.
    last_answer: Duration,
    /// Why failed requests were not retried (this crate's `NotRetried`), with their
    /// attempts.
    reasons: BTreeMap<String, u32>,
}

impl Counts {
    fn new(start: Instant) -> Counts {
        Counts {
            start,
            good: vec![0; SECONDS],
            failed: vec![0; SECONDS],
            sends: vec![0; SECONDS],
            last_answer: Duration::ZERO,
            reasons: BTreeMap::new(),
        }
    }

    fn second(&self) -> usize {
        let s = Instant::now()
            .saturating_duration_since(self.start)
            .as_secs() as usize;
        s.min(SECONDS - 1)
    }
}

/// The server: `SLOTS` slots, a FIFO queue without shedding, work that goes on when the
/// caller has gone.
#[derive(Clone)]
struct Server {
    slots: Arc<Semaphore>,
    counts: Arc<Mutex<Counts>>,
}

impl Service<Req> for Server {
    type Response = Res;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Res, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Req) -> Self::Future {
        let start = {
            let mut c = self.counts.lock().unwrap();
            let s = c.second();
            c.sends[s] += 1;
            c.start
        };
        let (tx, rx) = oneshot::channel();
        let slots = Arc::clone(&self.slots);
        // The work is the server's: dropping the response future does not cancel it.
        tokio::spawn(async move {
            // Tokio's semaphore is fair: the queue is first in, first out.
            let _slot = slots.acquire_owned().await.expect("never closed");
            let at = Instant::now().saturating_duration_since(start);
            let slow = at >= Duration::from_secs(TRIGGER.0) && at < Duration::from_secs(TRIGGER.1);
            tokio::time::sleep(if slow { SLOW_SERVICE } else { SERVICE }).await;
            let _ = tx.send(());
        });
        Box::pin(async move {
            rx.await.map_err(|_| "the server dropped the request")?;
            Ok(Response::new(Full::new(Bytes::from_static(
                b"{\"ok\":true}",
            ))))
        })
    }
}

/// `tower::retry` as a fair user writes it: any error, at most 3 retries, waiting 1 s, 2 s,
/// 4 s plus up to 20 % (this crate's documented schedule).
#[derive(Clone)]
struct Backoff3 {
    retries: u32,
}

impl<E> tower::retry::Policy<Req, Res, E> for Backoff3 {
    type Future = Sleep;

    fn retry(&mut self, _: &mut Req, result: &mut Result<Res, E>) -> Option<Sleep> {
        if result.is_ok() || self.retries == 3 {
            return None;
        }
        let nominal = Duration::from_secs(1 << self.retries);
        self.retries += 1;
        let jitter = nominal.mul_f64(rand::random::<f64>() * 0.2);
        Some(tokio::time::sleep(nominal + jitter))
    }

    fn clone_request(&mut self, req: &Req) -> Option<Req> {
        let mut out = Request::new(req.body().clone());
        *out.method_mut() = req.method().clone();
        *out.uri_mut() = req.uri().clone();
        *out.headers_mut() = req.headers().clone();
        Some(out)
    }
}

/// One client's run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Which client.
    pub client: Client,
    /// Successes a second, by the second of the answer.
    pub goodput: Vec<u32>,
    /// Attempts that reached the server, by the second.
    pub sends: Vec<u32>,
    /// Failed requests, by the second of the answer.
    pub failed_per_sec: Vec<u32>,
    /// Requests made.
    pub requests: u32,
    /// Requests that failed.
    pub failed: u32,
    /// Attempts that reached the server.
    pub total_sends: u32,
    /// When the last caller got its answer, since the start.
    pub last_answer: Duration,
    /// Why failed requests were not retried, with how many attempts they had.
    pub reasons: BTreeMap<String, u32>,
}

impl Report {
    /// The mean goodput before the trigger.
    pub fn pre_trigger_goodput(&self) -> f64 {
        let pre = &self.goodput[..TRIGGER.0 as usize];
        pre.iter().map(|&g| f64::from(g)).sum::<f64>() / pre.len() as f64
    }

    /// The first second, at or after the trigger's end, from which goodput stays at 95 % of
    /// the pre-trigger goodput until the load ends; `None` if it never gets back.
    pub fn recovered_at(&self) -> Option<u64> {
        let bar = 0.95 * self.pre_trigger_goodput();
        let end = LOAD.as_secs() as usize;
        (TRIGGER.1 as usize..end)
            .find(|&s| self.goodput[s..end].iter().all(|&g| f64::from(g) >= bar))
            .map(|s| s as u64)
    }

    /// Seconds from the trigger's end until goodput is back (see [`Report::recovered_at`]).
    pub fn recovery(&self) -> Option<u64> {
        self.recovered_at().map(|s| s - TRIGGER.1)
    }

    /// Attempts sent per request.
    pub fn sends_per_request(&self) -> f64 {
        f64::from(self.total_sends) / f64::from(self.requests)
    }
}

fn boxed(client: Client, server: Server) -> BoxCloneService<Req, Res, BoxError> {
    match client {
        Client::NoRetries => BoxCloneService::new(
            ServiceBuilder::new()
                .layer(TimeoutLayer::new(TIMEOUT))
                .service(server),
        ),
        Client::TowerRetry => BoxCloneService::new(
            ServiceBuilder::new()
                .layer(tower::retry::RetryLayer::new(Backoff3 { retries: 0 }))
                .layer(TimeoutLayer::new(TIMEOUT))
                .service(server),
        ),
        Client::Crate => BoxCloneService::new(
            ServiceBuilder::new()
                .map_err(BoxError::from)
                .map_response(|res: Response<_>| res.map(|_| Full::new(Bytes::new())))
                .api_contract()
                .layer(TimeoutLayer::new(TIMEOUT))
                .service(server),
        ),
    }
}

/// Runs the load against `client`. Call it on a runtime whose clock is paused.
pub async fn run(client: Client) -> Report {
    let start = Instant::now();
    let counts = Arc::new(Mutex::new(Counts::new(start)));
    let server = Server {
        slots: Arc::new(Semaphore::new(SLOTS)),
        counts: Arc::clone(&counts),
    };
    let svc = boxed(client, server);
    let requests = RATE * LOAD.as_secs() as u32;
    let period = Duration::from_secs(1) / RATE;
    let mut callers = tokio::task::JoinSet::new();
    for i in 0..requests {
        tokio::time::sleep_until(start + period * i).await;
        let svc = svc.clone();
        let counts = Arc::clone(&counts);
        callers.spawn(async move {
            let req = Request::get("http://api.example.com/v1/items")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let result = svc.oneshot(req).await;
            let mut c = counts.lock().unwrap();
            let s = c.second();
            c.last_answer = c.last_answer.max(Instant::now().duration_since(c.start));
            match result {
                Ok(_) => c.good[s] += 1,
                Err(e) => {
                    c.failed[s] += 1;
                    if let Some(e) = e.downcast_ref::<tower_api_retry::Error>() {
                        let why = e
                            .not_retried()
                            .map_or_else(|| "-".to_owned(), |n| format!("{n:?}"));
                        let why = why.split([' ', '{', '(']).next().unwrap_or("").to_owned();
                        *c.reasons
                            .entry(format!("{why} after {}", e.attempts()))
                            .or_default() += 1;
                    }
                }
            }
        });
    }
    while callers.join_next().await.is_some() {}
    let c = counts.lock().unwrap().clone();
    Report {
        client,
        requests,
        failed: c.failed.iter().sum(),
        total_sends: c.sends.iter().sum(),
        goodput: c.good,
        sends: c.sends,
        failed_per_sec: c.failed,
        last_answer: c.last_answer,
        reasons: c.reasons,
    }
}

/// Runs every client side by side, each against its own server, on one paused clock.
pub async fn run_all() -> Vec<Report> {
    let runs = Client::ALL.map(|c| tokio::spawn(run(c)));
    let mut out = Vec::new();
    for r in runs {
        out.push(r.await.expect("the run panicked"));
    }
    out
}

/// The side-by-side table: per second (goodput / sends / failed), then the summary.
pub fn table(reports: &[Report]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{:>4} ", "sec");
    for r in reports {
        let _ = write!(out, "| {:^26} ", r.client.name());
    }
    out.push('\n');
    let _ = write!(out, "{:>4} ", "");
    for _ in reports {
        let _ = write!(out, "| {:>8} {:>8} {:>8} ", "goodput", "sends", "failed");
    }
    out.push('\n');
    let last = reports
        .iter()
        .map(|r| r.last_answer.as_secs() as usize + 1)
        .max()
        .unwrap_or(0)
        .max(LOAD.as_secs() as usize)
        .min(SECONDS);
    for s in 0..last {
        let mark = if (TRIGGER.0 as usize..TRIGGER.1 as usize).contains(&s) {
            '*'
        } else {
            ' '
        };
        let _ = write!(out, "{s:>3}{mark} ");
        for r in reports {
            let _ = write!(
                out,
                "| {:>8} {:>8} {:>8} ",
                r.goodput[s], r.sends[s], r.failed_per_sec[s]
            );
        }
        out.push('\n');
    }
    out.push('\n');
    let row = |out: &mut String, name: &str, f: &dyn Fn(&Report) -> String| {
        let _ = write!(out, "{name:<34}");
        for r in reports {
            let _ = write!(out, "| {:>18} ", f(r));
        }
        out.push('\n');
    };
    let _ = write!(out, "{:<34}", "");
    for r in reports {
        let _ = write!(out, "| {:>18} ", r.client.name());
    }
    out.push('\n');
    row(&mut out, "pre-trigger goodput (/s)", &|r| {
        format!("{:.1}", r.pre_trigger_goodput())
    });
    row(&mut out, "goodput back after trigger's end", &|r| {
        r.recovery()
            .map_or_else(|| "never".to_owned(), |s| format!("{s} s"))
    });
    row(&mut out, "failed requests", &|r| {
        format!("{} of {}", r.failed, r.requests)
    });
    row(&mut out, "sends per request", &|r| {
        format!("{:.2}", r.sends_per_request())
    });
    row(&mut out, "last caller's answer", &|r| {
        format!("{:.1} s", r.last_answer.as_secs_f64())
    });
    for r in reports.iter().filter(|r| !r.reasons.is_empty()) {
        let _ = writeln!(
            out,
            "\n{} failures (why not retried, after attempts):",
            r.client.name()
        );
        for (why, n) in &r.reasons {
            let _ = writeln!(out, "  {n:>5}  {why}");
        }
    }
    out
}
