//! A fleet of worker processes on one rate-limited API, and its figures: used by the
//! `fleet` tests and by `examples/fleet.rs`.
//!
//! The API is a [`LimitedServer`] in the calling process. Each worker is a separate OS
//! process (the caller says how to start one: the test binary or the example, run again with
//! [`API`], [`NAME`] and maybe [`REDIS`] in its environment), runs [`worker`] and prints one
//! line, `fleet-worker: ok=N failed=N rejected=N`. Every request carries `x-worker`, so the
//! API's log tells the processes apart.
#![allow(dead_code, unreachable_pub)]

use super::limited::{Arrival, LimitedServer, Limits, Load, SENT, Stamps, WORKER, drive, outcome};
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{collections::BTreeMap, time::Duration};
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
    let mut children = Vec::new();
    for n in 0..processes {
        let mut cmd = command();
        cmd.env(API, server.url(""))
            .env(NAME, n.to_string())
            .env_remove(REDIS)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
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
        let num = |name: &str| -> usize {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("worker {n}: no {name} in {line}"))
        };
        reported.insert(n, (num("ok"), num("failed")));
    }
    figures(&server.arrivals(), &reported)
}

/// The body of a worker process, when its environment names an API (else `false`):
/// `workers` tasks send `requests` GETs over `/limited/0` .. `/limited/15` through the
/// default stack, on gates shared through the environment's Redis, if any.
pub fn worker(workers: usize, requests: usize) -> bool {
    let Ok(api) = std::env::var(API) else {
        return false;
    };
    let name: u64 = std::env::var(NAME)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let redis = std::env::var(REDIS).ok();
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
                RedisStore::cluster(&urls, NAMESPACE).unwrap()
            } else {
                RedisStore::new(&url, NAMESPACE).unwrap()
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
        }
        let stamps = Stamps::new();
        let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let client = outcome(
            ServiceBuilder::new()
                .layer(
                    ApiContractLayer::new().rate_limit(RateLimitBackoffLayer::new().gates(gates)),
                )
                .map_request(move |mut req: http::Request<Full<Bytes>>| {
                    let sent = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_micros() as u64);
                    req.headers_mut().insert(WORKER, HeaderValue::from(name));
                    req.headers_mut().insert(SENT, HeaderValue::from(sent));
                    req
                })
                .layer(stamps.layer())
                .service(http),
        );
        let load = Load {
            workers,
            requests,
            paths: (0..16).map(|i| format!("{api}/limited/{i}")).collect(),
            other: None,
        };
        let run = drive(client, &load).await;
        println!(
            "fleet-worker: ok={} failed={} rejected={}",
            run.ok,
            run.failed,
            stamps.rejected().len()
        );
    });
    true
}
