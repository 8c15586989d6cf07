//! A fleet of worker processes on one API key, with gates shared on Redis or each process on
//! its own gates: the figures of the fleet as one client.
//!
//! ```sh
//! cargo run --release --example fleet --features redis
//! FLEET_SECS=6 cargo run --release --example fleet --features redis    # a quick check
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run --release --example fleet --features redis
//! ```
//!
//! The API (in this process, on loopback) limits `/limited/{n}` with one token bucket of 200
//! requests/s, burst 20, answering `429` + `Retry-After: 1` over it: the limit of one API key.
//! `/down/{n}` always answers `503`. For N = 1, 4 and 8 worker processes (this program,
//! started again), each running 8 closed-loop workers through the default stack
//! (`ServiceBuilder::new().api_contract()`'s layers) over hyper-util, first on gates shared
//! through Redis (`REDIS_URL`, or a `redis-server` started here on a free port when one is
//! installed: `apt-get install -y redis-server`), then each process on its own gates, it runs:
//!
//! - **a steady run** of [`RUN`] (or `FLEET_SECS` seconds) on `/limited/{n}`, every process
//!   starting at the same instant. After a [`WARM_UP`] of 2 s: *goodput*, the `200`s answered
//!   per second as a share of the server's rate; *429/s settled*, the `429`s answered per
//!   second; *fairness*, Jain's index of the processes' `200`s (1 is an even split, 1/N one
//!   process taking all). Over the whole run: *arrivals inside a window*, requests a
//!   process's gate let through inside the window (`Retry-After`) of any `429` the API
//!   answered to the fleet, more than 200 ms after that `429` (the time a closure may take to
//!   reach every process on a loaded machine).
//! - **an outage run** on `/down/{n}`: the workers start requests for half as long as the
//!   steady run (10 s), then wait for their answers, however long that takes. *Amplification*, the requests the API
//!   received per logical request; *time until the last caller's answer*, from the start.
//!
//! Under the table, lines per row say where the figures come from: for the steady run, each
//! second's goodput after the warm-up, when the `429`s were answered and each process's
//! `200`s; for the outage run, each second's sends (as `second:sends`) and the densest 50 ms
//! after the first attempts (which all leave at once).

#[path = "../tests/it/support/external.rs"]
mod external;
#[path = "../tests/it/support/fleet.rs"]
mod fleet;
#[path = "../tests/it/support/limited.rs"]
mod limited;
#[path = "../tests/it/support/redis.rs"]
mod redis_server;

use fleet::{LIMITS, Timed};
use limited::{Arrival, LimitedServer};
use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

/// Worker processes in each row.
const PROCESSES: [usize; 3] = [1, 4, 8];
/// Closed-loop workers in each process.
const WORKERS: usize = 8;
/// The steady run's length (`FLEET_SECS` overrides it); the outage run's load lasts half.
const RUN: Duration = Duration::from_secs(20);
/// The start of the steady run left out of goodput, `429`s per second and fairness.
const WARM_UP: Duration = Duration::from_secs(2);
/// Time for the worker processes to start (and share their gates) before they begin.
const LEAD: Duration = Duration::from_secs(2);

fn main() {
    // Started again as a worker: `worker` runs it, with its own runtime.
    if fleet::worker(WORKERS, 0) {
        return;
    }
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime")
        .block_on(measure());
}

/// One row of the table.
struct Row {
    processes: usize,
    shared: bool,
    steady: Steady,
    outage: Outage,
}

/// The steady run's figures.
struct Steady {
    /// `200`s per second after the warm-up, over the server's rate.
    goodput: f64,
    rejected_per_sec: f64,
    in_window: usize,
    fairness: f64,
    /// Each second's `200`s after the warm-up, over the server's rate.
    per_second: Vec<f64>,
    /// When each `429` after the warm-up was answered, from the start.
    rejections: Vec<Duration>,
    /// Each process's `200`s after the warm-up.
    per_process: Vec<usize>,
}

/// The outage run's figures.
struct Outage {
    logical: usize,
    sends: usize,
    last_answer: Duration,
    /// Sends per second from the start.
    per_second: Vec<usize>,
    /// The densest 50 ms of sends after the first attempts: how many, and when it began.
    densest: (usize, Duration),
}

async fn measure() {
    let run = std::env::var("FLEET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(RUN, Duration::from_secs_f64);
    assert!(
        run > WARM_UP,
        "FLEET_SECS must be more than the warm-up (2 s)"
    );
    // Redis: the given one, or one of our own.
    let own;
    let url = match std::env::var("REDIS_URL") {
        Ok(url) => url,
        Err(_) => {
            // Without redis-server, `external` prints how to install it.
            match redis_server::RedisServer::start() {
                Some(server) => {
                    own = server;
                    own.url()
                }
                None => {
                    println!(
                        "Set REDIS_URL, or install redis-server to let this example start one."
                    );
                    return;
                }
            }
        }
    };
    println!(
        "N processes x {WORKERS} workers on one API key limited to {} requests/s (burst {}); \
         steady runs of {run:.0?}, warm-up {WARM_UP:.0?}; outage load {:.0?}",
        LIMITS.rate,
        LIMITS.burst,
        run / 2
    );
    let mut rows = Vec::new();
    for processes in PROCESSES {
        for shared in [true, false] {
            // Every run its own namespace: nothing one run leaves in Redis meets the next.
            let namespace = format!("fleet-example-{}-{}", std::process::id(), rows.len());
            let redis = shared.then_some((url.as_str(), namespace.as_str()));
            let gates = if shared { "shared" } else { "local" };
            eprintln!("N = {processes}, {gates} gates: steady run");
            let steady = steady(processes, redis, run).await;
            eprintln!("N = {processes}, {gates} gates: outage run");
            let outage = outage(processes, redis, run / 2).await;
            rows.push(Row {
                processes,
                shared,
                steady,
                outage,
            });
        }
    }
    print_table(&rows);
}

/// Starts `processes` workers that begin [`LEAD`] from now and start requests for `secs`.
async fn timed(
    server: &LimitedServer,
    processes: usize,
    redis: Option<(&str, &str)>,
    secs: Duration,
    down: bool,
) -> (SystemTime, BTreeMap<u64, fleet::Report>) {
    let exe = std::env::current_exe().expect("this program's path");
    let start = SystemTime::now() + LEAD;
    let timed = Timed {
        start,
        until: start + secs,
        down,
    };
    let command = || tokio::process::Command::new(&exe);
    let reported = fleet::run_timed(server, processes, redis, timed, command).await;
    (start, reported)
}

async fn steady(processes: usize, redis: Option<(&str, &str)>, run: Duration) -> Steady {
    let server = LimitedServer::start(LIMITS).await;
    let (start, reported) = timed(&server, processes, redis, run, false).await;
    let arrivals = server.arrivals();
    let (from, to) = (
        server.timeline(start) + WARM_UP,
        server.timeline(start) + run,
    );
    let settled = (to - from).as_secs_f64();
    let inside = |t: Duration| from <= t && t < to;
    let ok: Vec<&Arrival> = arrivals
        .iter()
        .filter(|a| a.status == 200 && inside(a.answered))
        .collect();
    let rejections: Vec<Duration> = arrivals
        .iter()
        .filter(|a| a.status == 429 && inside(a.at))
        .map(|a| a.answered - server.timeline(start))
        .collect();
    let mut per_process = vec![0usize; processes];
    for a in &ok {
        if let Some(n) = a.worker.and_then(|n| per_process.get_mut(n as usize)) {
            *n += 1;
        }
    }
    let mut per_second = vec![0usize; (settled.floor() as usize).max(1)];
    for a in &ok {
        if let Some(s) = per_second.get_mut((a.answered - from).as_secs() as usize) {
            *s += 1;
        }
    }
    let reported_ok = reported
        .iter()
        .map(|(&n, r)| (n, (r.ok, r.failed)))
        .collect();
    Steady {
        goodput: ok.len() as f64 / settled / LIMITS.rate,
        rejected_per_sec: rejections.len() as f64 / settled,
        in_window: fleet::figures(&arrivals, &reported_ok).total().in_window,
        fairness: jain(&per_process),
        per_second: per_second.iter().map(|&n| n as f64 / LIMITS.rate).collect(),
        rejections,
        per_process,
    }
}

async fn outage(processes: usize, redis: Option<(&str, &str)>, load: Duration) -> Outage {
    let server = LimitedServer::start(LIMITS).await;
    let (start, reported) = timed(&server, processes, redis, load, true).await;
    let t0 = server.timeline(start);
    let mut sends: Vec<Duration> = server
        .arrivals()
        .iter()
        .filter(|a| a.path.starts_with("/down/"))
        .map(|a| a.at.saturating_sub(t0))
        .collect();
    sends.sort();
    let last_answer = reported
        .values()
        .filter_map(|r| r.last_answer?.duration_since(start).ok())
        .max()
        .unwrap_or_default();
    let mut per_second = vec![0; sends.last().map_or(0, |t| t.as_secs() as usize + 1)];
    for t in &sends {
        per_second[t.as_secs() as usize] += 1;
    }
    // The first attempts all leave at the start: the herds that matter come after.
    let window = Duration::from_millis(50);
    let first = Duration::from_millis(500);
    let densest = (0..sends.len())
        .filter(|&i| sends[i] >= first)
        .map(|i| {
            let n = sends[i..]
                .iter()
                .take_while(|&&t| t < sends[i] + window)
                .count();
            (n, sends[i])
        })
        .max_by_key(|&(n, _)| n)
        .unwrap_or_default();
    Outage {
        logical: reported.values().map(|r| r.ok + r.failed).sum(),
        sends: sends.len(),
        last_answer,
        per_second,
        densest,
    }
}

/// Jain's fairness index of `x`: 1 when every share is equal, 1/n when one takes all.
fn jain(x: &[usize]) -> f64 {
    let sum: f64 = x.iter().map(|&v| v as f64).sum();
    let squares: f64 = x.iter().map(|&v| (v as f64).powi(2)).sum();
    if squares == 0.0 {
        return 0.0;
    }
    sum * sum / (x.len() as f64 * squares)
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| N | gates | goodput after warm-up | 429/s settled | arrivals inside a window \
         | fairness (Jain) | sends per logical request at 100 % 503 \
         | time until the last caller's answer |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let (s, o) = (&r.steady, &r.outage);
        println!(
            "| {} | {} | {:.1} % | {:.2} | {} | {:.2} | {:.2} | {:.1} s |",
            r.processes,
            if r.shared { "shared" } else { "local" },
            s.goodput * 100.0,
            s.rejected_per_sec,
            s.in_window,
            s.fairness,
            o.sends as f64 / o.logical.max(1) as f64,
            o.last_answer.as_secs_f64(),
        );
    }
    println!();
    for r in rows {
        let (s, o) = (&r.steady, &r.outage);
        let gates = if r.shared { "shared" } else { "local" };
        let list = |items: Vec<String>| items.join(" ");
        println!(
            "N = {}, {gates}: goodput by second after the warm-up (%): {}",
            r.processes,
            list(
                s.per_second
                    .iter()
                    .map(|g| format!("{:.0}", g * 100.0))
                    .collect()
            )
        );
        println!(
            "    429s answered at (s): {}; each process's 200s: {}",
            list(
                s.rejections
                    .iter()
                    .map(|t| format!("{:.2}", t.as_secs_f64()))
                    .collect()
            ),
            list(s.per_process.iter().map(usize::to_string).collect())
        );
        println!(
            "    outage: {} logical requests, {} sends, densest 50 ms after 0.5 s: {} sends \
             at {:.2} s; sends by second (s:n): {}",
            o.logical,
            o.sends,
            o.densest.0,
            o.densest.1.as_secs_f64(),
            list(
                o.per_second
                    .iter()
                    .enumerate()
                    .filter(|&(_, &n)| n > 0)
                    .map(|(s, n)| format!("{s}:{n}"))
                    .collect()
            ),
        );
    }
}
