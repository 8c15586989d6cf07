//! A settled pace, in virtual time: clients of one token bucket (mostly 200 requests/s, burst
//! 20; `429` + `Retry-After: 1`), one process or several, each with its own gates or all on
//! one map, closed loop or open loop. Once settled, the clients send just under the server's
//! rate: few `429`s, and goodput near the server's rate. Figures are counts, never wall time;
//! `PACING_TRACE=1` prints them second by second. The rate-change runs, the longest, run with
//! the soak (`TOWER_API_RETRY_SOAK=1`, which `.ci/run` sets).

use crate::support::bucket::Bucket;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};
use tower_api_retry::{ApiContractLayer, RateLimitBackoffLayer, RateLimitGates};

/// How the clients load the server.
#[derive(Clone, Copy, Debug)]
enum Load {
    /// Each process's workers send one request after another.
    Closed { workers: usize },
    /// Each process starts requests at this rate, each in its own task.
    Open { per_second: f64 },
}

#[derive(Clone, Copy, Debug)]
struct Setup {
    /// The server's bucket: requests per second and burst.
    rate: f64,
    burst: f64,
    /// From this time on, the server's bucket refills at this rate.
    change: Option<(Duration, f64)>,
    processes: usize,
    /// One map of gates for every process (a fleet sharing its gates).
    shared: bool,
    load: Load,
    /// The server rejects every request for this long after its first `429`, whatever its
    /// `Retry-After` said (another client took the bucket meanwhile).
    held: Duration,
    run: Duration,
}

impl Setup {
    /// `load` for `run` on one process's shared gates, against a server of 200/s with a
    /// burst of 20 that keeps its rate and its word.
    fn new(load: Load, run: Duration) -> Setup {
        Setup {
            rate: 200.0,
            burst: 20.0,
            change: None,
            processes: 1,
            shared: true,
            load,
            held: Duration::ZERO,
            run,
        }
    }
}

/// The server's log: (arrival since the start, accepted).
type Log = Arc<Mutex<Vec<(Duration, bool)>>>;

type Client = BoxCloneService<
    Request<Full<Bytes>>,
    Response<tower_api_retry::rate_limit::ResponseBody<Full<Bytes>>>,
    tower::BoxError,
>;

async fn run(setup: Setup) -> Log {
    let start = Instant::now();
    let log: Log = Arc::default();
    let bucket = Arc::new(Mutex::new(Bucket::full(setup.rate, setup.burst, start)));
    let first429 = Arc::new(Mutex::new(None));
    let server = {
        let log = log.clone();
        service_fn(move |_req: Request<Full<Bytes>>| {
            let (log, bucket) = (log.clone(), bucket.clone());
            let first429 = first429.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1)).await;
                let now = Instant::now();
                let first = *first429.lock().unwrap();
                let held = first.is_some_and(|f: Instant| now < f + setup.held);
                let ok = !held && {
                    let mut bucket = bucket.lock().unwrap();
                    if let Some((_, rate)) = setup.change.filter(|(at, _)| now - start >= *at) {
                        bucket.rate = rate;
                    }
                    bucket.take(now)
                };
                if !ok {
                    first429.lock().unwrap().get_or_insert(now);
                }
                log.lock().unwrap().push((now - start, ok));
                let res = if ok {
                    Response::builder()
                        .status(200)
                        .body(Full::new(Bytes::from_static(b"{}")))
                } else {
                    Response::builder()
                        .status(429)
                        .header("retry-after", "1")
                        .body(Full::new(Bytes::from_static(
                            br#"{"code":"RESOURCE_EXHAUSTED","message":"slow down"}"#,
                        )))
                };
                Ok::<_, Infallible>(res.unwrap())
            }
        })
    };
    let shared = RateLimitGates::new();
    let clients: Vec<Client> = (0..setup.processes)
        .map(|_| {
            let gates = if setup.shared {
                shared.clone()
            } else {
                RateLimitGates::new()
            };
            let stack =
                ApiContractLayer::new().rate_limit(RateLimitBackoffLayer::new().gates(gates));
            BoxCloneService::new(
                ServiceBuilder::new()
                    .layer(stack)
                    .service(server.clone())
                    .map_err(Into::into),
            )
        })
        .collect();
    let end = start + setup.run;
    let mut tasks = tokio::task::JoinSet::new();
    for (p, client) in clients.into_iter().enumerate() {
        match setup.load {
            Load::Closed { workers } => {
                for w in 0..workers {
                    let client = client.clone();
                    tasks.spawn(async move {
                        let mut i = p * 7919 + w * 131;
                        while Instant::now() < end {
                            let _ = client.clone().oneshot(get(i)).await;
                            i += 1;
                        }
                    });
                }
            }
            Load::Open { per_second } => {
                let client = client.clone();
                tasks.spawn(async move {
                    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second));
                    let mut inner = tokio::task::JoinSet::new();
                    let mut i = p * 7919;
                    while Instant::now() < end {
                        tick.tick().await;
                        let client = client.clone();
                        inner.spawn(async move {
                            let _ = client.oneshot(get(i)).await;
                        });
                        i += 1;
                    }
                    inner.abort_all();
                });
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    log
}

fn get(i: usize) -> Request<Full<Bytes>> {
    Request::get(format!("http://api.test/limited/{}", i % 97))
        .body(Full::default())
        .unwrap()
}

/// From `from` to `to`: (429s per second, goodput as a share of `rate`).
fn figures(log: &Log, rate: f64, from: Duration, to: Duration) -> (f64, f64) {
    let log = log.lock().unwrap();
    let inside = log.iter().filter(|(t, _)| *t >= from && *t < to);
    let (ok, no) = inside.fold((0usize, 0usize), |(ok, no), (_, a)| {
        if *a { (ok + 1, no) } else { (ok, no + 1) }
    });
    let secs = (to - from).as_secs_f64();
    (no as f64 / secs, ok as f64 / secs / rate)
}

fn trace(log: &Log, what: &str) {
    if std::env::var_os("PACING_TRACE").is_none() {
        return;
    }
    let log = log.lock().unwrap();
    let mut per = std::collections::BTreeMap::<u64, (u32, u32)>::new();
    for (t, ok) in log.iter() {
        let e = per.entry(t.as_millis() as u64 / 1000).or_default();
        if *ok { e.0 += 1 } else { e.1 += 1 }
    }
    let line: Vec<String> = per
        .iter()
        .map(|(s, (ok, no))| format!("{s}:{ok}/{no}"))
        .collect();
    println!("{what}: {}", line.join(" "));
}

/// Runs `setup` and prints, then returns, its figures from `settled` on.
async fn measure(setup: Setup, settled: Duration) -> (f64, f64) {
    let log = run(setup).await;
    let (rejected, goodput) = figures(&log, setup.rate, settled, setup.run);
    println!(
        "{setup:?}: from {settled:?}, {rejected:.3} 429s per second, goodput {:.1} % of {}/s",
        100.0 * goodput,
        setup.rate
    );
    trace(&log, "ok/429 per second");
    (rejected, goodput)
}

const S: fn(u64) -> Duration = Duration::from_secs;

#[tokio::test(start_paused = true)]
async fn a_rejected_probe_does_not_leave_the_pace_stuck() {
    // The server keeps rejecting 1.5 s after its first `429`, though it said one second: the
    // probe at the reopening is rejected, before anything was sent at the pace. That teaches
    // nothing of the server's rate: the pace is back near it within seconds.
    let setup = Setup {
        shared: false,
        held: Duration::from_millis(1_500),
        ..Setup::new(Load::Closed { workers: 8 }, S(30))
    };
    let (_, goodput) = measure(setup, S(10)).await;
    assert!(goodput >= 0.9, "goodput {:.1} %", 100.0 * goodput);
}

/// Runs `setup`: from `from` on, at most `max_rejected` `429`s per second and goodput of at
/// least `min_goodput` of the server's rate.
async fn assert_figures(setup: Setup, from: Duration, max_rejected: f64, min_goodput: f64) {
    let (rejected, goodput) = measure(setup, from).await;
    assert!(
        rejected <= max_rejected,
        "{setup:?}: {rejected:.3} 429s per second"
    );
    assert!(
        goodput >= min_goodput,
        "{setup:?}: goodput {:.1} %",
        100.0 * goodput
    );
}

/// Runs `setup`: from `settled` on, at most 0.05 `429`s per second and goodput of at least
/// 95 % of the server's rate.
async fn assert_settled(setup: Setup, settled: Duration) {
    assert_figures(setup, settled, 0.05, 0.95).await;
}

/// A closed loop of `workers` in each of `processes` processes, all on one map of gates,
/// settled after 30 s: few `429`s and goodput near the server's rate.
async fn settled_closed_loop(processes: usize, workers: usize) {
    let setup = Setup {
        processes,
        ..Setup::new(Load::Closed { workers }, S(120))
    };
    assert_settled(setup, S(30)).await;
}

#[tokio::test(start_paused = true)]
async fn a_settled_pace_sends_just_under_the_servers_rate_and_probes_rarely() {
    for workers in [2, 8, 32] {
        settled_closed_loop(1, workers).await;
    }
}

#[tokio::test(start_paused = true)]
async fn five_hundred_workers_settle_under_the_servers_rate_too() {
    settled_closed_loop(1, 500).await;
}

#[tokio::test(start_paused = true)]
async fn a_fleet_of_four_or_eight_on_one_map_settles_under_the_servers_rate() {
    settled_closed_loop(4, 8).await;
    settled_closed_loop(8, 8).await;
}

#[tokio::test(start_paused = true)]
async fn a_slow_server_with_a_small_burst_is_probed_rarely() {
    let setup = Setup {
        rate: 20.0,
        burst: 5.0,
        ..Setup::new(Load::Closed { workers: 32 }, S(600))
    };
    assert_settled(setup, S(60)).await;
}

#[tokio::test(start_paused = true)]
async fn an_open_loop_under_the_servers_rate_is_never_paced_below_it() {
    let setup = Setup::new(Load::Open { per_second: 180.0 }, S(60));
    let (rejected, goodput) = measure(setup, S(10)).await;
    assert_eq!(rejected, 0.0);
    assert!(goodput >= 0.89, "goodput {:.1} %", 100.0 * goodput);
}

#[tokio::test(start_paused = true)]
async fn a_server_that_slows_down_or_speeds_up_is_followed() {
    // Twelve minutes of virtual time: about ten seconds of CPU, so it runs with the soak.
    if !std::env::var("TOWER_API_RETRY_SOAK").is_ok_and(|v| v == "1") {
        println!(
            "skipping the rate-change runs: run them with TOWER_API_RETRY_SOAK=1 cargo test \
             --all-features --test it pacing_settled"
        );
        return;
    }
    // At 60 s the server's rate changes from 200/s; from 90 s on, the pace is just under the
    // new rate.
    for to in [50.0, 100.0, 300.0] {
        let setup = Setup {
            change: Some((S(60), to)),
            ..Setup::new(Load::Closed { workers: 8 }, S(240))
        };
        let log = run(setup).await;
        let (rejected, goodput) = figures(&log, to, S(90), setup.run);
        println!(
            "200/s, then {to}/s: from 90 s, {rejected:.3} 429s per second, goodput {:.1} % of {to}/s",
            100.0 * goodput
        );
        trace(&log, "ok/429 per second");
        assert!(rejected <= 0.05, "{to}/s: {rejected:.3} 429s per second");
        assert!(goodput >= 0.95, "{to}/s: goodput {:.1} %", 100.0 * goodput);
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_loop_above_the_servers_rate_is_never_stalled() {
    // 300 and 1,000 requests a second for a server of 200: the queue at the gate grows to
    // its bound (`max_wait`), and requests past it fail at once; a rejection that moves the
    // queue back fails thousands of them together, in any order. The path goes on sending
    // at the server's rate: no stretch of seconds without a request, and no slot kept for a
    // request that gave up.
    for (per_second, secs) in [(300.0, 100), (1_000.0, 60)] {
        let setup = Setup::new(Load::Open { per_second }, S(secs));
        let log = run(setup).await;
        trace(
            &log,
            &format!("open loop at {per_second}/s, ok/429 per second"),
        );
        for from in (10..secs - 5).step_by(5) {
            let (_, goodput) = figures(&log, setup.rate, S(from), S(from + 5));
            assert!(
                goodput >= 0.5,
                "{per_second}/s, from {from} s to {} s: goodput {:.1} %",
                from + 5,
                100.0 * goodput
            );
        }
        let (_, goodput) = figures(&log, setup.rate, S(20), S(secs));
        assert!(
            goodput >= 0.85,
            "{per_second}/s: goodput {:.1} %",
            100.0 * goodput
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_fast_server_is_learned_not_slow_started_again_at_every_rejection() {
    // 1,000 requests/s: the slow start runs long enough that the pace at its end is over four
    // times what it let through on average. Its rejection still measures the server: the
    // pace keeps a ceiling and climbs from it, where starting over from 20/s at every
    // rejection left the path at a fifth of the server's rate.
    for workers in [8, 32] {
        let setup = Setup {
            rate: 1_000.0,
            ..Setup::new(Load::Closed { workers }, S(60))
        };
        assert_figures(setup, S(20), 0.1, 0.75).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_server_that_allows_no_burst_is_paced_not_stalled() {
    // A bucket of one token (nginx's `limit_req` without `burst`): a request right behind
    // the probe that reopened the path is rejected. The first request after the probe waits
    // the pace's gap, so the path learns the server's rate, where it sent one probe and one
    // rejected request a second for as long as it ran.
    for rate in [50.0, 200.0] {
        let setup = Setup {
            rate,
            burst: 1.0,
            ..Setup::new(Load::Closed { workers: 8 }, S(60))
        };
        assert_figures(setup, S(20), 0.1, 0.65).await;
    }
}
