//! A fleet of worker processes on one rate-limited API, and its figures: used by the
//! `fleet` tests and by `examples/fleet.rs`.
//!
//! The API is a [`LimitedServer`] in the calling process. Each worker is a separate OS
//! process (the caller says how to start one: the test binary or the example, run again with
//! [`API`], [`NAME`] and maybe [`REDIS`] in its environment), runs [`worker`] and prints one
//! line, `fleet-worker: ok=N failed=N rejected=N last_us=N`. Every request carries
//! `x-worker`, so the API's log tells the processes apart. A worker sends a number of
//! requests ([`run`]), or sends from one instant to another ([`Timed`], [`run_timed`]).
#![allow(dead_code, unreachable_pub)]

use super::limited::{Arrival, LimitedServer, Limits, Load, SENT, Stamps, WORKER, drive, outcome};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tower::ServiceBuilder;
use tower_api_retry::{
    ApiContractLayer,
    rate_limit::{RateLimitBackoffLayer, RateLimitGates, RedisStore},
};

/// The environment of a worker: the API's base URL.
pub const API: &str = "FLEET_WORKER_API";
/// The worker's number.
pub const NAME: &str = "FLEET_WORKER_NAME";
/// The Redis URL to share gates through (a cluster: its nodes' URLs, comma-separated);
/// absent for local gates.
pub const REDIS: &str = "FLEET_WORKER_REDIS";
/// The namespace every worker shares.
pub const NAMESPACE: &str = "fleet-demo-key-id";
/// Another namespace to share gates in, instead of [`NAMESPACE`].
pub const SPACE: &str = "FLEET_WORKER_NAMESPACE";
/// A timed worker: when to begin sending, in microseconds since the Unix epoch.
pub const START: &str = "FLEET_WORKER_START_US";
/// A timed worker: when to stop starting requests, in microseconds since the Unix epoch.
pub const UNTIL: &str = "FLEET_WORKER_UNTIL_US";
/// A timed worker: the path template to send to, `limited` or `down` (see [`Timed`]).
pub const TEMPLATE: &str = "FLEET_WORKER_TEMPLATE";
/// A worker on shared gates waits until they count this many processes before it sends.
pub const SHARERS: &str = "FLEET_WORKER_SHARERS";

/// The API every fleet run meets: one token bucket of 200 requests/s, burst 20, on
/// `/limited/{n}`, answering `429` + `Retry-After: 1` over it.
pub const LIMITS: Limits = Limits {
    rate: 200.0,
    burst: 20,
    retry_after_secs: 1,
    announce: None,
};

/// How long the fleet may take to hear of a `429`: the rejecting process reads the answer and
/// runs its script, Redis publishes, every other process applies the message. That takes
/// well under a millisecond on an idle machine (`benches/fleet.rs`); a 2-core machine
/// running four worker processes beside the tests can hold any of those steps up for tens
/// of milliseconds.
pub const GRACE: Duration = Duration::from_millis(200);

/// What one process saw, and what the API saw of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessFigures {
    pub ok: usize,
    pub failed: usize,
    /// `429`s the API answered it.
    pub rejected: usize,
    /// Its requests sent inside the window of any `429` (its own or another process's), more
    /// than [`GRACE`] after that `429` was answered. Sent means let through by the process's
    /// gate (its `x-sent-us` stamp): a request let through before the gate could know, and
    /// delivered late by a loaded machine, is not counted; a gate that had [`GRACE`] to hear
    /// of the window and still let a request through is.
    pub in_window: usize,
    /// Its arrivals that were a window's probes (see [`FleetFigures::probes`]).
    pub probes: usize,
}

/// The fleet's figures, from the API's own log.
#[derive(Clone, Debug, Default)]
pub struct FleetFigures {
    pub processes: BTreeMap<u64, ProcessFigures>,
    /// Windows: `429` windows merged where they overlap.
    pub windows: usize,
    /// For each window, the arrivals at or after its end and before the first of them was
    /// answered: the requests that tested the path at once. One per window is what the
    /// page asks of the whole fleet.
    pub probes: Vec<usize>,
}

impl FleetFigures {
    pub fn total(&self) -> ProcessFigures {
        let mut t = ProcessFigures::default();
        for p in self.processes.values() {
            t.ok += p.ok;
            t.failed += p.failed;
            t.rejected += p.rejected;
            t.in_window += p.in_window;
            t.probes += p.probes;
        }
        t
    }
}

/// The figures of `arrivals`; `reported` is each process's `(ok, failed)`.
pub fn figures(arrivals: &[Arrival], reported: &BTreeMap<u64, (usize, usize)>) -> FleetFigures {
    let grace = GRACE;
    let windows: Vec<(Duration, Duration)> = arrivals
        .iter()
        .filter(|a| a.status == 429)
        .filter_map(|a| Some((a.answered, a.answered + a.retry_after?)))
        .collect();
    let mut merged: Vec<(Duration, Duration)> = Vec::new();
    let mut sorted = windows.clone();
    sorted.sort();
    for (from, to) in sorted {
        match merged.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => merged.push((from, to)),
        }
    }
    let mut processes: BTreeMap<u64, ProcessFigures> = reported
        .iter()
        .map(|(&n, &(ok, failed))| {
            (
                n,
                ProcessFigures {
                    ok,
                    failed,
                    ..ProcessFigures::default()
                },
            )
        })
        .collect();
    for a in arrivals {
        let p = processes.entry(a.worker.unwrap_or(u64::MAX)).or_default();
        p.rejected += usize::from(a.status == 429);
        let sent = a.sent.unwrap_or(a.at);
        if windows
            .iter()
            .any(|&(from, to)| sent > from + grace && a.at < to)
        {
            p.in_window += 1;
        }
    }
    let mut probes = Vec::new();
    for &(_, end) in &merged {
        let after: Vec<&Arrival> = arrivals.iter().filter(|a| a.at >= end).collect();
        let Some(first_answer) = after.iter().map(|a| a.answered).min() else {
            continue;
        };
        let probing: Vec<&&Arrival> = after.iter().filter(|a| a.at < first_answer).collect();
        for a in &probing {
            processes
                .entry(a.worker.unwrap_or(u64::MAX))
                .or_default()
                .probes += 1;
        }
        probes.push(probing.len());
    }
    FleetFigures {
        processes,
        windows: merged.len(),
        probes,
    }
}

/// Runs `processes` workers against a fresh API, sharing gates through `redis` (or each on
/// its own gates), and returns the figures. `command` makes the command that starts a
/// worker; the environment is added here.
pub async fn run(
    processes: usize,
    redis: Option<&str>,
    command: impl Fn() -> tokio::process::Command,
) -> FleetFigures {
    let server = LimitedServer::start(LIMITS).await;
    let reported = spawn(&server, processes, redis, &[], command).await;
    let reported = reported
        .iter()
        .map(|(&n, r)| (n, (r.ok, r.failed)))
        .collect();
    figures(&server.arrivals(), &reported)
}

/// A timed run: every worker begins sending at `start` and starts requests until `until`
/// (both on the system clock, the same for every process), to `/limited/{n}` or, with
/// `down`, to `/down/{n}` (always `503`).
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    pub start: SystemTime,
    pub until: SystemTime,
    pub down: bool,
}

/// What one worker process printed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Report {
    /// Its logical requests that succeeded, and those that failed.
    pub ok: usize,
    pub failed: usize,
    /// When its last request got its answer, on the system clock.
    pub last_answer: Option<SystemTime>,
}

/// Runs `processes` workers against `server`, sharing gates through `redis`, and returns what
/// each reported. Each waits until its gates count every process before it sends, so none
/// spends a share of an announced quota that another was not counted in.
pub async fn run_counted(
    server: &LimitedServer,
    processes: usize,
    redis: &str,
    command: impl Fn() -> tokio::process::Command,
) -> BTreeMap<u64, Report> {
    let env = [(SHARERS, processes.to_string())];
    spawn(server, processes, Some(redis), &env, command).await
}

/// Runs `processes` workers as `timed` says against `server`, sharing gates in `namespace`
/// through `redis` (or each on its own gates), and returns what each reported.
pub async fn run_timed(
    server: &LimitedServer,
    processes: usize,
    redis: Option<(&str, &str)>,
    timed: Timed,
    command: impl Fn() -> tokio::process::Command,
) -> BTreeMap<u64, Report> {
    let mut env = vec![
        (START, unix_us(timed.start).to_string()),
        (UNTIL, unix_us(timed.until).to_string()),
        (
            TEMPLATE,
            if timed.down { "down" } else { "limited" }.to_owned(),
        ),
    ];
    if let Some((_, namespace)) = redis {
        env.push((SPACE, namespace.to_owned()));
    }
    spawn(server, processes, redis.map(|(url, _)| url), &env, command).await
}

fn unix_us(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Starts `processes` workers on `server` with `env` added, and waits for their reports.
async fn spawn(
    server: &LimitedServer,
    processes: usize,
    redis: Option<&str>,
    env: &[(&str, String)],
    command: impl Fn() -> tokio::process::Command,
) -> BTreeMap<u64, Report> {
    let mut children = Vec::new();
    for n in 0..processes {
        let mut cmd = command();
        cmd.env(API, server.url(""))
            .env(NAME, n.to_string())
            .env_remove(REDIS)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(url) = redis {
            cmd.env(REDIS, url);
        }
        children.push((n as u64, cmd.spawn().expect("start a worker process")));
    }
    let mut reported = BTreeMap::new();
    for (n, child) in children {
        let out = child.wait_with_output().await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout
            .lines()
            .find_map(|l| Some(l.split_once("fleet-worker: ")?.1))
            .unwrap_or_else(|| panic!("worker {n} failed: {stdout}"));
        let num = |name: &str| -> u64 {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("worker {n}: no {name} in {line}"))
        };
        let last = num("last_us");
        reported.insert(
            n,
            Report {
                ok: num("ok") as usize,
                failed: num("failed") as usize,
                last_answer: (last > 0).then(|| UNIX_EPOCH + Duration::from_micros(last)),
            },
        );
    }
    reported
}

/// The body of a worker process, when its environment names an API (else `false`):
/// `workers` tasks send `requests` GETs over `/limited/0` .. `/limited/15` through the
/// default stack, on gates shared through the environment's Redis, if any. A timed worker
/// ([`START`] in its environment) ignores `requests`: its tasks send one request after
/// another from [`START`] and start none after [`UNTIL`].
pub fn worker(workers: usize, requests: usize) -> bool {
    let Ok(api) = std::env::var(API) else {
        return false;
    };
    let name: u64 = std::env::var(NAME)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let redis = std::env::var(REDIS).ok();
    let namespace = std::env::var(SPACE).unwrap_or_else(|_| NAMESPACE.to_owned());
    let us = |name: &str| -> Option<SystemTime> {
        let us: u64 = std::env::var(name).ok()?.parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_micros(us))
    };
    let timed = us(START).zip(us(UNTIL));
    let template = std::env::var(TEMPLATE).unwrap_or_else(|_| "limited".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let mut gates = RateLimitGates::new();
        if let Some(url) = redis {
            // A list of URLs is a cluster.
            let store = if url.contains(',') {
                let urls: Vec<&str> = url.split(',').collect();
                RedisStore::cluster(&urls, &namespace).unwrap()
            } else {
                RedisStore::new(&url, &namespace).unwrap()
            };
            gates = gates.shared(store).unwrap();
            let start = std::time::Instant::now();
            while !gates.is_shared() {
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "the gates never shared"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if let Some(n) = std::env::var(SHARERS).ok().and_then(|n| n.parse().ok()) {
                while gates.sharers() != Some(n) {
                    assert!(
                        start.elapsed() < Duration::from_secs(20),
                        "the gates never counted {n} processes"
                    );
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
        let stamps = Stamps::new();
        let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let client = outcome(
            ServiceBuilder::new()
                .layer(
                    ApiContractLayer::new().rate_limit(RateLimitBackoffLayer::new().gates(gates)),
                )
                .map_request(move |mut req: http::Request<Full<Bytes>>| {
                    let sent = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64);
                    req.headers_mut().insert(WORKER, HeaderValue::from(name));
                    req.headers_mut().insert(SENT, HeaderValue::from(sent));
                    req
                })
                .layer(stamps.layer())
                .service(http),
        );
        let paths: Vec<String> = (0..16).map(|i| format!("{api}/{template}/{i}")).collect();
        let (ok, failed, last) = match timed {
            Some((start, until)) => drive_until(client, workers, paths, start, until).await,
            None => {
                let load = Load {
                    workers,
                    requests,
                    paths,
                    other: None,
                };
                let run = drive(client, &load).await;
                (run.ok, run.failed, None)
            }
        };
        println!(
            "fleet-worker: ok={ok} failed={failed} rejected={} last_us={}",
            stamps.rejected().len(),
            last.map_or(0, unix_us)
        );
    });
    true
}

/// `workers` tasks send GETs over `paths` in turn, one after another, from `start` until
/// `until`: the successes, the failures and when the last answer came.
async fn drive_until(
    client: super::limited::Client,
    workers: usize,
    paths: Vec<String>,
    start: SystemTime,
    until: SystemTime,
) -> (usize, usize, Option<SystemTime>) {
    use tower::ServiceExt;
    let wait = start.duration_since(SystemTime::now()).unwrap_or_default();
    tokio::time::sleep(wait).await;
    let next = Arc::new(AtomicUsize::new(0));
    let paths = Arc::new(paths);
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (client, next, paths) = (client.clone(), next.clone(), paths.clone());
            tokio::spawn(async move {
                let (mut ok, mut failed, mut last) = (0, 0, None);
                while SystemTime::now() < until {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let req = http::Request::get(&paths[i % paths.len()])
                        .body(Full::default())
                        .unwrap();
                    if client.clone().oneshot(req).await.unwrap_or(false) {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                    last = Some(SystemTime::now());
                }
                (ok, failed, last)
            })
        })
        .collect();
    let (mut ok, mut failed, mut last) = (0, 0, None);
    for task in tasks {
        let (o, f, l) = task.await.expect("a worker task");
        ok += o;
        failed += f;
        last = last.max(l);
    }
    (ok, failed, last)
}
