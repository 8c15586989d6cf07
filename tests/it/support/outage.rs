//! A server with scheduled outages, an open-loop and a closed-loop load, and the figures they
//! give.
//!
//! Shared by the integration tests (`support::outage`, in tokio's paused time, the server a
//! `service_fn`) and the measurement (`examples/outages.rs`, on loopback in real time,
//! through `#[path = "../tests/it/support/outage.rs"]`, next to `limited.rs`).
//!
//! - [`Outages`] answers `/v1/items/{n}` with `503` + `{"code":"UNAVAILABLE",...}` inside its
//!   outage windows and `200 {}` outside them; `/other` always answers `200`. Every arrival is
//!   logged with its time since [`Outages::begin`].
//! - [`open_loop`] starts each request on schedule in its own task, whatever happened to the
//!   ones before (many independent callers); [`closed_loop`] has workers send one request
//!   after another; [`paced_closed_loop`] has workers take the scheduled requests in turn,
//!   each sent at its time or as soon as a worker is free (a worker pool behind a queue).
//!   All ask `/other` on the side.
//! - [`Figures`] sums a run up: amplification (arrivals at the server per request),
//!   arrivals during the outages, failed requests, time to finish, `/other`'s worst latency;
//!   [`Recovery`] how soon and how fully the template came back after each outage, and the
//!   busiest 250 ms slice.
#![allow(dead_code, unreachable_pub)]

use super::limited::Client;
use bytes::Bytes;
use http::{Method, Request, Response, Uri};
use http_body_util::Full;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};
use tokio::time::Instant;
use tower::ServiceExt;

/// The path template that goes down.
pub const ITEMS: &str = "/v1/items/";
/// The unrelated path.
pub const OTHER: &str = "/other";

/// One arrival at the server.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// Time since [`Outages::begin`].
    pub at: Duration,
    /// On the template that goes down.
    pub items: bool,
    pub status: u16,
    /// The request's number in its plan (`?n=`), when it has one.
    pub id: Option<usize>,
    pub post: bool,
}

/// The server's schedule and log.
#[derive(Debug)]
pub struct Outages {
    /// `[from, to)` windows, from [`Outages::begin`], in which `/v1/items/…` answers `503`.
    pub windows: Vec<(Duration, Duration)>,
    start: Mutex<Instant>,
    log: Mutex<Vec<Arrival>>,
}

impl Outages {
    pub fn new(windows: &[(Duration, Duration)]) -> Arc<Outages> {
        Arc::new(Outages {
            windows: windows.to_vec(),
            start: Mutex::new(Instant::now()),
            log: Mutex::default(),
        })
    }

    /// The run starts now: the windows count from here.
    pub fn begin(&self) {
        *self.start.lock().unwrap() = Instant::now();
        self.log.lock().unwrap().clear();
    }

    /// `true` when `at` (from the start) falls in an outage.
    pub fn down(&self, at: Duration) -> bool {
        self.windows
            .iter()
            .any(|(from, to)| at >= *from && at < *to)
    }

    /// The status for a `method` request to `uri` now, logged.
    pub fn answer(&self, method: &Method, uri: &Uri) -> (u16, &'static str) {
        let at = self.start.lock().unwrap().elapsed();
        let items = uri.path().starts_with(ITEMS);
        let id = uri
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok());
        let (status, body) = if items && self.down(at) {
            (
                503,
                r#"{"code":"UNAVAILABLE","message":"The service is briefly unavailable."}"#,
            )
        } else {
            (200, "{}")
        };
        let post = method == Method::POST;
        self.log.lock().unwrap().push(Arrival {
            at,
            items,
            status,
            id,
            post,
        });
        (status, body)
    }

    /// The response for a `method` request to `uri` now, logged.
    pub fn respond(&self, method: &Method, uri: &Uri) -> Response<Full<Bytes>> {
        let (status, body) = self.answer(method, uri);
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    /// Every arrival so far.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.log.lock().unwrap().clone()
    }
}

/// Which methods a load sends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mix {
    /// Every request a GET.
    #[default]
    Gets,
    /// Every request a POST without an `Idempotency-Key`: never safe to send twice.
    Posts,
    /// Every other request a POST.
    Halves,
}

/// A load on the template that goes down.
#[derive(Clone, Debug)]
pub struct Plan {
    pub requests: usize,
    /// The requests start evenly over this long (open loop and paced closed loop), or the
    /// workers stop starting new ones after it (closed loop).
    pub over: Duration,
    /// `http://host:port`, or any authority the client routes.
    pub base: String,
    pub mix: Mix,
}

impl Plan {
    /// `requests` GETs over `over` to `base`.
    pub fn gets(requests: usize, over: Duration, base: &str) -> Plan {
        Plan {
            requests,
            over,
            base: base.into(),
            mix: Mix::Gets,
        }
    }

    fn item(&self, i: usize) -> Request<Full<Bytes>> {
        let post = match self.mix {
            Mix::Gets => false,
            Mix::Posts => true,
            Mix::Halves => i % 2 == 1,
        };
        let method = if post { Method::POST } else { Method::GET };
        Request::builder()
            .method(method)
            .uri(format!("{}{ITEMS}{}?n={i}", self.base, i % 97))
            .body(Full::default())
            .unwrap()
    }

    /// The offered rate, requests per second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.over.as_secs_f64()
    }
}

fn get(url: &str) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

/// What a load gave, as the client saw it.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub requests: usize,
    pub failed: usize,
    /// From the first start to the last answer.
    pub finish: Duration,
    /// End-to-end latency of each request to the template, waits included, sorted.
    pub latencies: Vec<Duration>,
    /// The slowest request to `/other`.
    pub other_worst: Duration,
}

/// Asks `/other` every 50 ms until `done`; returns the slowest answer.
fn side(client: &Client, base: &str, done: &Arc<AtomicBool>) -> tokio::task::JoinHandle<Duration> {
    let (client, done, url) = (client.clone(), done.clone(), format!("{base}{OTHER}"));
    tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        while !done.load(Ordering::SeqCst) {
            let t = Instant::now();
            let _ = client.clone().oneshot(get(&url)).await;
            worst = worst.max(t.elapsed());
            // The side path's own pace, not synchronisation.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        worst
    })
}

/// Starts `plan.requests` GETs evenly over `plan.over`, each in its own task, whatever
/// became of the ones before.
pub async fn open_loop(client: Client, plan: &Plan) -> Run {
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let other = side(&client, &plan.base, &done);
    let step = plan.over / plan.requests.max(1) as u32;
    let tasks: Vec<_> = (0..plan.requests)
        .map(|i| {
            let (client, req) = (client.clone(), plan.item(i));
            let at = start + step * i as u32;
            tokio::spawn(async move {
                tokio::time::sleep_until(at).await;
                let t = Instant::now();
                let ok = client.oneshot(req).await.unwrap_or(false);
                (ok, t.elapsed())
            })
        })
        .collect();
    finish(plan.requests, start, tasks, done, other).await
}

/// `workers` tasks send one GET after another until `plan.over` has passed.
pub async fn closed_loop(client: Client, plan: &Plan, workers: usize) -> Run {
    pool(client, plan, workers, false).await
}

/// `workers` tasks take the plan's requests in turn; each is sent at its time on the
/// schedule (`plan.requests` evenly over `plan.over`), or as soon as a worker is free when
/// the workers are behind: a worker pool that waits for each answer.
pub async fn paced_closed_loop(client: Client, plan: &Plan, workers: usize) -> Run {
    pool(client, plan, workers, true).await
}

/// `workers` tasks take requests in turn, each waiting for its answer: the plan's requests
/// on their schedule when `paced`, else as many as they can until `plan.over` has passed.
async fn pool(client: Client, plan: &Plan, workers: usize, paced: bool) -> Run {
    let start = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let other = side(&client, &plan.base, &done);
    let next = Arc::new(AtomicUsize::new(0));
    let step = plan.over / plan.requests.max(1) as u32;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, next, plan) = (client.clone(), next.clone(), plan.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    if !paced && Instant::now() >= start + plan.over {
                        return mine;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if paced {
                        if i >= plan.requests {
                            return mine;
                        }
                        tokio::time::sleep_until(start + step * i as u32).await;
                    }
                    let t = Instant::now();
                    let ok = client.clone().oneshot(plan.item(i)).await.unwrap_or(false);
                    mine.push((ok, t.elapsed()));
                }
            })
        })
        .collect();
    let mut run = Run::default();
    for task in tasks {
        for (ok, took) in task.await.expect("worker") {
            run.requests += 1;
            run.failed += usize::from(!ok);
            run.latencies.push(took);
        }
    }
    run.finish = start.elapsed();
    done.store(true, Ordering::SeqCst);
    run.other_worst = other.await.expect("side path");
    run.latencies.sort();
    run
}

async fn finish(
    requests: usize,
    start: Instant,
    tasks: Vec<tokio::task::JoinHandle<(bool, Duration)>>,
    done: Arc<AtomicBool>,
    other: tokio::task::JoinHandle<Duration>,
) -> Run {
    let mut run = Run {
        requests,
        ..Run::default()
    };
    for task in tasks {
        let (ok, took) = task.await.expect("request task");
        run.failed += usize::from(!ok);
        run.latencies.push(took);
    }
    run.finish = start.elapsed();
    done.store(true, Ordering::SeqCst);
    run.other_worst = other.await.expect("side path");
    run.latencies.sort();
    run
}

/// A run summed up.
#[derive(Clone, Debug)]
pub struct Figures {
    /// Arrivals on the template per request.
    pub amplification: f64,
    /// Arrivals on the template during the outages.
    pub outage_arrivals: usize,
    /// First attempts the schedule starts during the outages (open loop: the offered load).
    pub offered_in_outages: usize,
    pub failed: usize,
    pub requests: usize,
    pub finish: Duration,
    pub other_worst: Duration,
}

impl Figures {
    /// Sums `run` up from the server's log. `over` is the open loop's schedule (for the
    /// offered load during the outages).
    pub fn of(server: &Outages, run: &Run, over: Duration) -> Figures {
        let items: Vec<_> = server.arrivals().into_iter().filter(|a| a.items).collect();
        let step = over / run.requests.max(1) as u32;
        let offered_in_outages = (0..run.requests)
            .filter(|i| server.down(step * *i as u32))
            .count();
        Figures {
            amplification: items.len() as f64 / run.requests.max(1) as f64,
            outage_arrivals: items.iter().filter(|a| server.down(a.at)).count(),
            offered_in_outages,
            failed: run.failed,
            requests: run.requests,
            finish: run.finish,
            other_worst: run.other_worst,
        }
    }

    /// Arrivals on the template per half second: (from, answered 200, answered 503).
    pub fn timeline(server: &Outages) -> Vec<(f64, u32, u32)> {
        let mut per = std::collections::BTreeMap::<u64, (u32, u32)>::new();
        for a in server.arrivals().into_iter().filter(|a| a.items) {
            let e = per.entry(a.at.as_millis() as u64 / 500).or_default();
            if a.status == 200 {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
        }
        per.into_iter()
            .map(|(k, (ok, down))| (k as f64 / 2.0, ok, down))
            .collect()
    }

    /// Prints [`timeline`](Self::timeline) when `OUTAGES_TRACE` is set.
    pub fn trace(server: &Outages) {
        if std::env::var_os("OUTAGES_TRACE").is_some() {
            for (from, ok, down) in Figures::timeline(server) {
                println!("{from:>5.1}s ok {ok:>4} 503 {down}");
            }
        }
    }

    /// POSTs that reached the server more than once.
    pub fn posts_sent_twice(server: &Outages) -> usize {
        let mut seen = std::collections::HashMap::<usize, usize>::new();
        for a in server.arrivals().into_iter().filter(|a| a.post) {
            *seen.entry(a.id.expect("numbered")).or_default() += 1;
        }
        seen.values().filter(|n| **n > 1).count()
    }

    pub fn line(&self) -> String {
        format!(
            "amplification {:.2}, arrivals during the outages {} (offered {}), failed {} of {}, finished in {:.1} s, /other worst {:?}",
            self.amplification,
            self.outage_arrivals,
            self.offered_in_outages,
            self.failed,
            self.requests,
            self.finish.as_secs_f64(),
            self.other_worst,
        )
    }
}

/// The width of a slice of the server's log.
pub const SLICE: Duration = Duration::from_millis(250);

/// How the template came back after each outage, from the server's log.
#[derive(Clone, Debug)]
pub struct Recovery {
    /// Per outage: from its end to the first success on the template (the first successful
    /// probe).
    pub gaps: Vec<Duration>,
    /// Per outage: the template's arrivals in the slice that ends 1 s after that first
    /// success, as a share of the offered rate (none when the slice falls in an outage).
    pub served: Vec<f64>,
    /// The most arrivals on the template in one [`SLICE`], and where it began.
    pub busiest: (usize, Duration),
    /// The slices that carried more than twice the offered rate and more than the requests
    /// queued at their start plus one slice of the offered rate: (start, arrivals, bound).
    pub herds: Vec<(Duration, usize, usize)>,
}

impl Recovery {
    /// The recovery of the template from each outage of `plan`'s `server`, from its log:
    /// the plan's requests are numbered (`?n=`) and due evenly over `plan.over`.
    pub fn of(server: &Outages, plan: &Plan) -> Recovery {
        let offered = plan.rate();
        let items: Vec<Arrival> = server.arrivals().into_iter().filter(|a| a.items).collect();
        let mut gaps = Vec::new();
        let mut served = Vec::new();
        for (_, to) in &server.windows {
            let Some(first) = items.iter().find(|a| a.at >= *to && a.status == 200) else {
                continue;
            };
            gaps.push(first.at - *to);
            let until = first.at + Duration::from_secs(1);
            let from = until - SLICE;
            if server.down(from) || server.down(until) || until > plan.over {
                continue;
            }
            let n = items
                .iter()
                .filter(|a| a.at >= from && a.at < until)
                .count();
            served.push(n as f64 / SLICE.as_secs_f64() / offered);
        }
        let mut slices = std::collections::BTreeMap::<u128, usize>::new();
        for a in &items {
            *slices
                .entry(a.at.as_nanos() / SLICE.as_nanos())
                .or_default() += 1;
        }
        let busiest = slices
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (*n, SLICE * *k as u32))
            .unwrap_or_default();
        // Requests due and not yet done at the start of each slice: a request is done at its
        // last arrival (retries of the ones before it are still queued).
        let step = plan.over.as_secs_f64() / plan.requests.max(1) as f64;
        let per_slice = offered * SLICE.as_secs_f64();
        let mut last = std::collections::HashMap::<usize, Duration>::new();
        for a in &items {
            if let Some(id) = a.id {
                last.insert(id, a.at);
            }
        }
        let mut herds = Vec::new();
        for (k, n) in slices {
            let start = SLICE * k as u32;
            let due = ((start.as_secs_f64() / step).ceil() as usize).min(plan.requests);
            let done = last.values().filter(|at| **at < start).count();
            let queued = due.saturating_sub(done);
            let bound = (2.0 * per_slice).max(queued as f64 + per_slice).ceil() as usize;
            if n > bound {
                herds.push((start, n, bound));
            }
        }
        Recovery {
            gaps,
            served,
            busiest,
            herds,
        }
    }

    pub fn line(&self) -> String {
        let gaps: Vec<String> = self
            .gaps
            .iter()
            .map(|g| format!("{:.2} s", g.as_secs_f64()))
            .collect();
        let served: Vec<String> = self
            .served
            .iter()
            .map(|s| format!("{:.0} %", s * 100.0))
            .collect();
        format!(
            "first success after each outage: {}; served 1 s later: {}; busiest slice: {} at {:.2} s; herds: {:?}",
            gaps.join(", "),
            served.join(", "),
            self.busiest.0,
            self.busiest.1.as_secs_f64(),
            self.herds
        )
    }
}
