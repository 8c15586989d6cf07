//! Gates shared by a fleet on a real `redis-server` (`RedisStore`).
//!
//! Every test starts its own redis-server on a free loopback port (`support::redis`), with
//! nothing saved to disk, and kills it at the end. Without redis-server the tests print how to
//! install it (`apt-get install -y redis-server`) and pass, except under `CI=true`, where they
//! fail. "Processes" are separate `RateLimitGates`, each with its own `RedisStore` (its own
//! connections and lease-holder name), except in `four_processes_share_one_window`, which
//! runs real OS processes (this test binary, re-run as workers).
//!
//! No timing upper bound is asserted anywhere. Lower bounds (nobody arrives before a window
//! ends) and orders (nobody arrives before the probe's answer) are the properties themselves.

use crate::support::{
    fleet,
    limited::{
        Convention, LimitedServer, Limits, Load, Stamps, drive, outcome, rejected_after_first,
        template_paths,
    },
    redis::{RedisCluster, RedisServer},
};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioExecutor;
use std::{
    collections::BTreeMap,
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tower::{ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};
use tower_api_retry::{
    ApiContractLayer, ErrorDecodeLayer,
    backoff::Backoff,
    rate_limit::{Key, RateLimitBackoffLayer, RateLimitGates, RedisStore},
};

const NS: &str = "key-id-test";
const URL: &str = "http://api.test/v1/tasks";

/// Waits (polling, never longer than 20 s) for `cond`; panics with `what` if it never holds.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A process's gates, shared through `redis`, once they are.
async fn shared(
    redis: &RedisServer,
    store: impl FnOnce(RedisStore) -> RedisStore,
) -> RateLimitGates {
    let gates = RateLimitGates::new()
        .shared(store(RedisStore::new(&redis.url(), NS).unwrap()))
        .unwrap();
    let g = gates.clone();
    eventually("the gates are shared", move || g.is_shared()).await;
    gates
}

/// One arrival at the in-process API: when it came and when it was answered.
#[derive(Clone, Copy, Debug)]
struct Seen {
    at: Instant,
    answered: Instant,
    status: u16,
}

/// An API that answers `429` + `Retry-After: 1` to the requests numbered in `limited`
/// (from 0) and `200` to the others, taking `took` for each, and logs every arrival.
#[derive(Clone)]
struct Api {
    log: Arc<Mutex<Vec<Seen>>>,
    limited: Arc<Vec<usize>>,
    took: Duration,
}

impl Api {
    fn new(limited: &[usize], took: Duration) -> Api {
        Api {
            log: Arc::default(),
            limited: Arc::new(limited.to_vec()),
            took,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.log.lock().unwrap().clone()
    }

    /// This API behind a rate-limit layer on `gates` and the decode layer.
    fn client(&self, gates: &RateLimitGates) -> Client {
        let api = self.clone();
        let inner = service_fn(move |_req: Request<Full<Bytes>>| {
            let api = api.clone();
            async move {
                let at = Instant::now();
                let n = api.log.lock().unwrap().len();
                let limited = api.limited.contains(&n);
                api.log.lock().unwrap().push(Seen {
                    at,
                    answered: at,
                    status: 0,
                });
                tokio::time::sleep(api.took).await;
                let res = if limited {
                    Response::builder()
                        .status(429)
                        .header("retry-after", "1")
                        .body(Full::new(Bytes::from_static(
                            br#"{"code":"RESOURCE_EXHAUSTED","message":"Slow down"}"#,
                        )))
                } else {
                    Response::builder().body(Full::new(Bytes::from_static(b"{}")))
                }
                .unwrap();
                let mut log = api.log.lock().unwrap();
                log[n].answered = Instant::now();
                log[n].status = res.status().as_u16();
                Ok::<_, Infallible>(res)
            }
        });
        BoxCloneService::new(
            ServiceBuilder::new()
                .map_response(|res: Response<_>| res.status())
                .layer(RateLimitBackoffLayer::new().gates(gates.clone()))
                .layer(ErrorDecodeLayer::new())
                .service(inner),
        )
    }
}

/// A process's client of the API: the status of a success, or the stack's error.
type Client = BoxCloneService<Request<Full<Bytes>>, StatusCode, tower_api_retry::Error>;

fn get() -> Request<Full<Bytes>> {
    Request::get(URL).body(Full::default()).unwrap()
}

fn key() -> Key {
    Key::from_uri(&URL.parse().unwrap())
}

/// Runs `f` with a fresh redis-server, or skips (see the module docs).
async fn with_redis<F, Fut>(f: F)
where
    F: FnOnce(RedisServer) -> Fut,
    Fut: Future<Output = ()>,
{
    if let Some(redis) = RedisServer::start() {
        f(redis).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_in_one_process_closes_the_path_in_the_other_and_one_probes() {
    with_redis(|redis| async move {
        let (a, b) = (shared(&redis, |s| s).await, shared(&redis, |s| s).await);
        // Each probe takes 50 ms, so a second probe would arrive while the first is out.
        let api = Api::new(&[0], Duration::from_millis(50));
        let (ca, cb) = (api.client(&a), api.client(&b));

        let first = ca.clone().oneshot(get()).await.unwrap_err();
        assert_eq!(first.status(), Some(StatusCode::TOO_MANY_REQUESTS));
        let b2 = b.clone();
        eventually("B hears of A's rejection", move || {
            b2.time_left(key()).is_some()
        })
        .await;

        // Both processes have requests waiting at the window's end.
        let mut calls = Vec::new();
        for client in [&ca, &cb, &ca, &cb, &cb] {
            calls.push(tokio::spawn(client.clone().oneshot(get())));
        }
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), StatusCode::OK);
        }

        let seen = api.seen();
        let window_end = seen[0].answered + Duration::from_secs(1);
        assert!(
            seen[1..].iter().all(|s| s.at >= window_end),
            "nobody arrives inside the window: {seen:?}"
        );
        let probe = seen[1];
        assert!(
            seen[2..].iter().all(|s| s.at >= probe.answered),
            "one probe for both processes, the others after its answer: {seen:?}"
        );
        // Opened fleet-wide: nothing left in Redis.
        let left: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("tower-api-retry:{{{NS}}}:gates"))
            .query(&mut redis.conn())
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    })
    .await;
}

/// An API whose every answer is `503 Service Unavailable`, counting the requests it saw.
fn down(seen: Arc<Mutex<usize>>, gates: &RateLimitGates) -> Client {
    let inner = service_fn(move |_req: Request<Full<Bytes>>| {
        *seen.lock().unwrap() += 1;
        let body = br#"{"code":"UNAVAILABLE","message":"down"}"#;
        let res = Response::builder()
            .status(503)
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        std::future::ready(Ok::<_, Infallible>(res))
    });
    BoxCloneService::new(
        ServiceBuilder::new()
            .map_response(|res: Response<_>| res.status())
            .layer(RateLimitBackoffLayer::new().gates(gates.clone()))
            .layer(ErrorDecodeLayer::new())
            .service(inner),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_one_process_saw_is_held_by_the_others_through_their_probes() {
    with_redis(|redis| async move {
        let (a, b) = (shared(&redis, |s| s).await, shared(&redis, |s| s).await);
        let seen = Arc::new(Mutex::new(0));
        let (ca, cb) = (down(seen.clone(), &a), down(seen.clone(), &b));
        // Ten outage signals in a row: A takes the path out.
        for _ in 0..10 {
            let err = ca.clone().oneshot(get()).await.unwrap_err();
            assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        }
        assert!(
            a.time_left(key()).is_some(),
            "A holds the path for its outage"
        );
        let b2 = b.clone();
        eventually("B hears of A's closure", move || {
            b2.time_left(key()).is_some()
        })
        .await;
        // B's request waits for the hold to end and probes for the fleet: the server is still
        // down, so the path stays closed everywhere (a gate closed for a rate limit would
        // open on any other answer).
        let probe = cb.clone().oneshot(get()).await.unwrap_err();
        assert_eq!(probe.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(
            *seen.lock().unwrap(),
            11,
            "B's probe was the only request after A's ten"
        );
        assert!(
            b.time_left(key()).is_some(),
            "B holds the outage after its probe"
        );
        let gates: BTreeMap<String, String> = redis::cmd("HGETALL")
            .arg(format!("tower-api-retry:{{{NS}}}:gates"))
            .query(&mut redis.conn())
            .unwrap();
        assert!(
            gates.values().any(|g| g.ends_with("|1")),
            "the fleet holds it as an outage: {gates:?}"
        );
        // A's next request is held too: it waits for the fleet's next probe, and so is sent
        // after B's, never beside it.
        let next = ca.clone().oneshot(get()).await.unwrap_err();
        assert_eq!(next.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(*seen.lock().unwrap(), 12);
        assert!(a.time_left(key()).is_some() && b.time_left(key()).is_some());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_spend_one_announced_quota_without_a_429() {
    with_redis(|redis| async move {
        let (a, b) = (shared(&redis, |s| s).await, shared(&redis, |s| s).await);
        // Each process counts the fleet before it sends: a process not yet counted is one
        // the others cannot leave a share for.
        eventually("both count two processes", || {
            // Both asked each time: asking is what starts a count.
            [a.sharers(), b.sharers()] == [Some(2), Some(2)]
        })
        .await;
        // 50 requests a second for the whole key, announced on every answer.
        let server = LimitedServer::start(Limits::announced(Convention::IetfDraft, 50, 1)).await;
        let stamps = Stamps::new();
        let client = |gates: &RateLimitGates| {
            let layer = ApiContractLayer::new()
                .rate_limit(RateLimitBackoffLayer::new().gates(gates.clone()));
            let http = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .build_http::<Full<Bytes>>();
            outcome(
                ServiceBuilder::new()
                    .layer(layer)
                    .layer(stamps.layer())
                    .service(http),
            )
        };
        let load = Load {
            workers: 8,
            requests: 150,
            paths: template_paths(&server, 8),
            other: None,
        };
        let (ra, rb) = tokio::join!(drive(client(&a), &load), drive(client(&b), &load));
        let arrivals = server.arrivals();
        let rejected = rejected_after_first(&arrivals);
        let all = arrivals.iter().filter(|a| a.status == 429).count();
        println!(
            "two processes, one quota of 50/s: ok {} + {}, failed {} + {}, 429s {all} \
             ({rejected} in windows the fleet could foresee), in {:?} and {:?}",
            ra.ok, rb.ok, ra.failed, rb.failed, ra.elapsed, rb.elapsed
        );
        assert_eq!(rejected, 0, "429s once the fleet knew of the quota");
        assert_eq!(ra.failed + rb.failed, 0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn successes_cost_no_redis_command_and_a_rejection_one_script_call() {
    with_redis(|redis| async move {
        // No periodic reading while a gate is closed: only what requests cause is counted.
        let a = shared(&redis, |s| s.resync_interval(Duration::from_secs(3600))).await;
        let api = Api::new(&[200], Duration::ZERO);
        let client = api.client(&a);
        redis.reset_stats();
        for _ in 0..200 {
            assert_eq!(client.clone().oneshot(get()).await.unwrap(), StatusCode::OK);
        }
        // Then one rejection. Changes reach Redis in order, so once its closure is published,
        // anything the successes had sent would have been run before it.
        let rejected = client.clone().oneshot(get()).await.unwrap_err();
        assert_eq!(rejected.status(), Some(StatusCode::TOO_MANY_REQUESTS));
        eventually("the closure is published", || {
            redis.commands().get("publish") == Some(&1)
        })
        .await;
        let commands = redis.commands();
        println!("redis commands for 200 successes and one rejection: {commands:?}");
        assert_eq!(commands.get("evalsha"), Some(&1), "{commands:?}");
        // Everything else ran inside that one script.
        let script = ["evalsha", "time", "hget", "hlen", "hset", "publish"];
        assert!(
            commands.keys().all(|c| script.contains(&c.as_str())),
            "{commands:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_falls_back_to_local_gates_then_shares_again() {
    with_redis(|mut redis| async move {
        let store = |s: RedisStore| s.resync_interval(Duration::from_millis(100));
        let a = shared(&redis, store).await;
        let b = shared(&redis, store).await;
        let api = Api::new(&[50, 52], Duration::ZERO);
        let (ca, cb) = (api.client(&a), api.client(&b));

        redis.kill();
        let a2 = a.clone();
        eventually("A sees Redis gone", move || !a2.is_shared()).await;
        // Requests neither fail nor block because of Redis.
        for _ in 0..50 {
            assert_eq!(ca.clone().oneshot(get()).await.unwrap(), StatusCode::OK);
        }
        // A rate limit still closes the path locally.
        assert!(ca.clone().oneshot(get()).await.is_err());
        assert!(a.time_left(key()).is_some());
        assert_eq!(b.time_left(key()), None, "not shared while Redis is down");

        redis.restart();
        // B is not waiting on the key A closed while Redis was away.
        sharing_resumes(&a, &b, &cb).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_resubscribes_and_reads_the_gates_again() {
    with_redis(|redis| async move {
        let a = shared(&redis, |s| s).await;
        let b = shared(&redis, |s| s).await;
        let api = Api::new(&[0], Duration::ZERO);
        let killed: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("pubsub")
            .query(&mut redis.conn())
            .unwrap();
        assert_eq!(killed, 2);
        // A closes while B may still be resubscribing: B learns either way.
        assert!(api.client(&a).oneshot(get()).await.is_err());
        let b2 = b.clone();
        eventually("B hears of A's rejection", move || {
            b2.time_left(key()).is_some()
        })
        .await;
        let (a2, b2) = (a.clone(), b.clone());
        eventually("both subscribed again", move || {
            a2.is_shared() && b2.is_shared()
        })
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_lease_holder_delays_the_probe_only_until_its_lease_ends() {
    with_redis(|redis| async move {
        // A process closed the key, took the probe lease for 400 ms and died.
        let mut conn = redis.conn();
        // Taken before the lease's start is read, so the lease ends 400 ms after it or later.
        let start = Instant::now();
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query(&mut conn).unwrap();
        let now = secs * 1000 + micros / 1000;
        let gate = format!("{}|1|1000|deadbeefdeadbeef|{}|0", now - 1, now + 400);
        redis::cmd("HSET")
            .arg(format!("tower-api-retry:{{{NS}}}:gates"))
            .arg(format!("{}", key()))
            .arg(gate)
            .query::<()>(&mut conn)
            .unwrap();
        // A new process reads the gates when it subscribes.
        let b = shared(&redis, |s| s).await;
        assert!(b.time_left(key()).is_some());
        let api = Api::new(&[], Duration::ZERO);
        assert_eq!(api.client(&b).oneshot(get()).await.unwrap(), StatusCode::OK);
        let seen = api.seen();
        assert_eq!(seen.len(), 1);
        assert!(
            seen[0].at >= start + Duration::from_millis(300),
            "the probe waited for the dead holder's lease: {:?}",
            seen[0].at - start
        );
        let b2 = b.clone();
        eventually("opened", move || b2.time_left(key()).is_none()).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_from_redis_are_loaded_again() {
    with_redis(|redis| async move {
        let (a, b) = (shared(&redis, |s| s).await, shared(&redis, |s| s).await);
        // The first and third requests the API sees are rate limited.
        let api = Api::new(&[0, 2], Duration::ZERO);
        let (ca, cb) = (api.client(&a), api.client(&b));
        // What a restart, a failover or a node that never saw the scripts leaves: none loaded.
        let flush = || {
            redis::cmd("SCRIPT")
                .arg("FLUSH")
                .query::<()>(&mut redis.conn())
                .unwrap()
        };

        flush();
        assert!(ca.clone().oneshot(get()).await.is_err());
        let b2 = b.clone();
        eventually("B hears of A's rejection", move || {
            b2.time_left(key()).is_some()
        })
        .await;
        // B probes when the window ends, and the path opens fleet-wide.
        assert_eq!(cb.clone().oneshot(get()).await.unwrap(), StatusCode::OK);
        let a2 = a.clone();
        eventually("A hears the path opened", move || {
            a2.time_left(key()).is_none()
        })
        .await;

        flush();
        assert!(cb.clone().oneshot(get()).await.is_err());
        let a2 = a.clone();
        eventually("A hears of B's rejection", move || {
            a2.time_left(key()).is_some()
        })
        .await;
        assert_eq!(api.seen().len(), 3, "nothing else reached the API");
    })
    .await;
}

#[test]
fn the_url_password_never_shows() {
    let store = RedisStore::new("redis://user:s3cr3t-Pa55word@127.0.0.1:6390/2", NS).unwrap();
    let debug = format!("{store:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("user"),
        "{debug}"
    );
    assert!(debug.contains("127.0.0.1:6390"), "{debug}");
    let bad = RedisStore::new("http://user:s3cr3t-Pa55word@host/", NS).unwrap_err();
    assert!(!format!("{bad} {bad:?}").contains("s3cr3t"));
    assert!(RedisStore::new("redis://127.0.0.1/", "a{b}").is_err());
    assert!(RedisStore::new("redis://127.0.0.1/", "").is_err());
    // Outside a runtime the background tasks cannot start: an error, not a panic.
    let err = RateLimitGates::new()
        .shared(RedisStore::new("redis://127.0.0.1/", NS).unwrap())
        .unwrap_err();
    assert_eq!(err, tower_api_retry::rate_limit::RedisStoreError::NoRuntime);
}

// ---------------------------------------------------------------------------------------------
// A fleet of OS processes: this test binary, run again as workers.

const WORKERS: usize = 8;
const PROCESSES: usize = 4;
const REQUESTS_PER_PROCESS: usize = 150;

/// The command that runs this binary's `fleet_worker`.
fn worker_command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["fleet::fleet_worker", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_share_one_window_and_one_probe() {
    with_redis(|redis| async move {
        let local = fleet::run(PROCESSES, None, worker_command).await;
        let shared = fleet::run(PROCESSES, Some(&redis.url()), worker_command).await;
        println!("{PROCESSES} processes x {WORKERS} workers, {REQUESTS_PER_PROCESS} requests each");
        println!(
            "local gates:  {:?} probes {:?}",
            local.total(),
            local.probes
        );
        println!(
            "shared gates: {:?} probes {:?}",
            shared.total(),
            shared.probes
        );
        assert_one_window_one_probe(&shared);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_os_processes_spend_one_announced_quota_without_a_429() {
    with_redis(|redis| async move {
        // 50 requests a second for the whole key, announced on every answer.
        let server = LimitedServer::start(Limits::announced(Convention::IetfDraft, 50, 1)).await;
        let reported = fleet::run_counted(&server, 3, &redis.url(), worker_command).await;
        let arrivals = server.arrivals();
        let rejected = rejected_after_first(&arrivals);
        let all = arrivals.iter().filter(|a| a.status == 429).count();
        let ok: usize = reported.values().map(|r| r.ok).sum();
        let failed: usize = reported.values().map(|r| r.failed).sum();
        println!(
            "three processes, one quota of 50/s: ok {ok}, failed {failed}, 429s {all} \
             ({rejected} in windows the fleet could foresee)"
        );
        assert_eq!(rejected, 0, "429s once the fleet knew of the quota");
        assert_eq!((ok, failed), (3 * REQUESTS_PER_PROCESS, 0));
    })
    .await;
}

/// One worker process of the fleet (run by `four_processes_share_one_window_and_one_probe`
/// and the other multi-process tests, with its environment set; does nothing on its own).
#[test]
#[ignore = "a worker process, run by the multi-process tests"]
fn fleet_worker() {
    fleet::worker(WORKERS, REQUESTS_PER_PROCESS);
}

// ---------------------------------------------------------------------------------------------
// The same on a Redis Cluster of three primaries.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_three_primary_cluster_the_fleet_shares_one_window_and_one_probe() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = cluster.urls().join(",");
    let shared = fleet::run(PROCESSES, Some(&urls), worker_command).await;
    println!(
        "cluster, shared gates: {:?} probes {:?}",
        shared.total(),
        shared.probes
    );
    assert_one_window_one_probe(&shared);
}

/// Four worker processes (8 closed-loop workers each) send through the default stack for
/// 10 s to a path that always answers `503`, on `redis` or each on its own gates: the sends
/// per logical request, and how long after the load the last caller had its answer.
async fn down_for_four(redis: Option<&RedisServer>) -> (f64, Duration) {
    let server = LimitedServer::start(fleet::LIMITS).await;
    // Far enough ahead for every process to start and share its gates.
    let start = std::time::SystemTime::now() + Duration::from_secs(2);
    let timed = fleet::Timed {
        start,
        until: start + Duration::from_secs(10),
        down: true,
    };
    let url = redis.map(RedisServer::url);
    let redis = url.as_deref().map(|url| (url, "fleet-down"));
    let reports = fleet::run_timed(&server, PROCESSES, redis, timed, worker_command).await;
    let logical: usize = reports.values().map(|r| r.ok + r.failed).sum();
    assert_eq!(
        reports.values().map(|r| r.ok).sum::<usize>(),
        0,
        "the server is down"
    );
    let sends = server.arrivals().len();
    let last = reports.values().filter_map(|r| r.last_answer).max();
    let tail = last.map_or(Duration::ZERO, |l| {
        l.duration_since(timed.until).unwrap_or_default()
    });
    (sends as f64 / logical.max(1) as f64, tail)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_sends_each_request_about_once_to_a_server_that_stays_down() {
    with_redis(|redis| async move {
        let (shared, local) = tokio::join!(down_for_four(Some(&redis)), down_for_four(None));
        println!(
            "always 503, 4 processes x 8 workers, 10 s: sends per request {:.2} shared, {:.2} \
             local; last answer {:?} and {:?} after the load",
            shared.0, local.0, shared.1, local.1
        );
        // The path is held as an outage fleet-wide: only probes reach the server, and a caller
        // held at the gate has its answer when its retry schedule is spent.
        assert!(shared.0 <= 1.10, "shared gates amplify: {shared:?}");
        assert!(shared.0 <= local.0, "shared {shared:?}, local {local:?}");
    })
    .await;
}

/// What a fleet sharing its gates must show: every request done, the limit met, nobody
/// let through inside a window [`fleet::GRACE`] after its `429`, and one probe per window,
/// fleet-wide.
fn assert_one_window_one_probe(shared: &fleet::FleetFigures) {
    let total = shared.total();
    assert_eq!(total.failed, 0, "{shared:?}");
    assert_eq!(total.ok, PROCESSES * REQUESTS_PER_PROCESS);
    assert!(
        total.rejected > 0 && shared.windows > 0,
        "the fleet met the limit: {shared:?}"
    );
    assert_eq!(total.in_window, 0, "{shared:?}");
    assert!(
        shared.probes.iter().all(|&n| n == 1),
        "one probe per window, fleet-wide: {shared:?}"
    );
}

/// Two processes' gates, shared through `cluster`, once both are.
async fn two_on_cluster(
    cluster: &RedisCluster,
    store: impl Fn(RedisStore) -> RedisStore,
) -> (RateLimitGates, RateLimitGates) {
    let urls = cluster.urls();
    let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
    let share = || {
        RateLimitGates::new()
            .shared(store(RedisStore::cluster(&urls, NS).unwrap()))
            .unwrap()
    };
    let (a, b) = (share(), share());
    let (a2, b2) = (a.clone(), b.clone());
    eventually("shared on the cluster", move || {
        a2.is_shared() && b2.is_shared()
    })
    .await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_changes_go_to_the_shard_that_holds_the_gates_only() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let (a, b) = two_on_cluster(&cluster, |s| s).await;
    for node in &cluster.nodes {
        node.reset_stats();
    }
    let api = Api::new(&[0], Duration::ZERO);
    assert!(api.client(&a).oneshot(get()).await.is_err());
    let b2 = b.clone();
    eventually("B hears of A's rejection", move || {
        b2.time_left(key()).is_some()
    })
    .await;
    let channel = format!("tower-api-retry:{{{NS}}}:events");
    let owner = cluster.owner_of(&channel).port();
    for node in &cluster.nodes {
        let commands = node.commands();
        assert_eq!(commands.get("publish"), None, "no broadcast: {commands:?}");
        let sharded = commands.get("spublish").copied().unwrap_or(0);
        let expected = u64::from(node.port() == owner);
        assert_eq!(sharded, expected, "node {}: {commands:?}", node.port());
    }
    // Both processes listen on the shard's own channel.
    let subscribers: Vec<redis::Value> = redis::cmd("PUBSUB")
        .arg("SHARDNUMSUB")
        .arg(&channel)
        .query(&mut cluster.owner_of(&channel).conn())
        .unwrap();
    assert_eq!(
        redis::from_redis_value_ref::<i64>(&subscribers[1]).unwrap(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_killed_and_restarted_falls_back_then_shares_again() {
    let Some(mut cluster) = RedisCluster::start() else {
        return;
    };
    let (a, b) = two_on_cluster(&cluster, |s| s.resync_interval(Duration::from_millis(100))).await;
    let api = Api::new(&[0, 29, 31], Duration::ZERO);
    let (ca, cb) = (api.client(&a), api.client(&b));
    // Shared: A's rejection closes the path for B.
    assert!(ca.clone().oneshot(get()).await.is_err());
    let b2 = b.clone();
    eventually("B hears of A's rejection", move || {
        b2.time_left(key()).is_some()
    })
    .await;

    // The primary that holds the namespace's gates dies.
    let owner = cluster.owner_of(&format!("tower-api-retry:{{{NS}}}:gates"));
    owner.kill();
    // Requests neither fail nor block because of Redis: the path opens by its local probe
    // (its window ends) and requests flow.
    let started = Instant::now();
    for _ in 0..28 {
        assert_eq!(ca.clone().oneshot(get()).await.unwrap(), StatusCode::OK);
    }
    println!(
        "28 requests with the gates' primary down: {:?}",
        started.elapsed()
    );
    // A rate limit still closes the path, locally.
    assert!(ca.clone().oneshot(get()).await.is_err());
    assert!(a.time_left(key()).is_some());

    owner.restart();
    cluster.wait_ok();
    sharing_resumes(&a, &b, &cb).await;
}

/// Once Redis is back, both processes share again: B's next request goes, and its next
/// rejection (the API's next scripted `429`) reaches A.
async fn sharing_resumes(a: &RateLimitGates, b: &RateLimitGates, cb: &Client) {
    let (a2, b2) = (a.clone(), b.clone());
    eventually("sharing resumes", move || a2.is_shared() && b2.is_shared()).await;
    // A's own closure's time runs out first, so time left on A afterwards can only be B's.
    let a2 = a.clone();
    eventually("A's own closure's time is up", move || {
        a2.time_left(key()).is_none_or(|left| left.is_zero())
    })
    .await;
    assert_eq!(cb.clone().oneshot(get()).await.unwrap(), StatusCode::OK);
    assert!(cb.clone().oneshot(get()).await.is_err());
    let a2 = a.clone();
    eventually("A hears of B's rejection", move || {
        a2.time_left(key()).is_some_and(|left| !left.is_zero())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_redis_closes_nothing_past_max_closed_and_junk_is_ignored() {
    with_redis(|redis| async move {
        let hash = format!("tower-api-retry:{{{NS}}}:gates");
        let mut conn = redis.conn();
        let other = Key::from_uri(&"http://api.test/v1/other".parse().unwrap());
        // A gate closed for about ten years, and junk beside it.
        redis::cmd("HSET")
            .arg(&hash)
            .arg(format!("{}", key()))
            .arg("99999999999999|7|99999999999|x|0|1")
            .arg(format!("{other}"))
            .arg("not a gate")
            .arg("junk-field")
            .arg("1|1|1||0|7")
            .query::<()>(&mut conn)
            .unwrap();
        let b = shared(&redis, |s| s.max_closed(Duration::from_secs(60))).await;
        let left = b.time_left(key()).expect("closed by the fleet");
        assert!(left <= Duration::from_secs(60), "{left:?}");
        assert_eq!(b.time_left(other), None, "junk closes nothing");
        // Junk on the channel is ignored too.
        for junk in [
            "c",
            "c zz 1 1 1",
            "o",
            "x 0000000000000001",
            "c 0000000000000001 -5 x 1 1",
            "c 0000000000000001 5 1 1",
        ] {
            redis::cmd("PUBLISH")
                .arg(format!("tower-api-retry:{{{NS}}}:events"))
                .arg(junk)
                .query::<()>(&mut conn)
                .unwrap();
        }
        assert!(b.is_shared());
        assert_eq!(b.len(), 1);
        // Junk counts of members, then a closure: the channel is read in order, so once the
        // closure is applied, so was the junk before it.
        assert_eq!(b.sharers(), Some(1), "counting from here");
        let closure = format!("c {other} 5000 1 5000 0");
        for message in [
            "m",
            "m x",
            "m -1",
            "m 99999999999",
            "m 0",
            "m 3 extra",
            &closure,
        ] {
            redis::cmd("PUBLISH")
                .arg(format!("tower-api-retry:{{{NS}}}:events"))
                .arg(message)
                .query::<()>(&mut conn)
                .unwrap();
        }
        let b2 = b.clone();
        eventually("the closure after the junk", move || {
            b2.time_left(other).is_some()
        })
        .await;
        assert!(matches!(b.sharers(), Some(1..=1_000_000)));
        assert!(b.is_shared());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_the_retry_budgets_floor() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower_api_retry::{RetryLayer, retry::RetryBudget};
    with_redis(|redis| async move {
        // A floor only (no ratio): 30 retries a second, a reserve of 300, for the fleet.
        let budget = RetryBudget::new(Duration::from_secs(10), 30, 0.0);
        let mut layers = Vec::new();
        for _ in 0..3 {
            let gates = shared(&redis, |s| s).await;
            let retry = RetryLayer::new()
                .budget(budget)
                .max_retries(1)
                .backoff(Backoff::new().base_delay(Duration::from_millis(1)))
                .max_budget_wait(Duration::ZERO);
            gates.share_retry_budget(&retry);
            layers.push((gates, retry));
        }
        let all: Vec<RetryLayer> = layers.iter().map(|(_, r)| r.clone()).collect();
        eventually("three processes share the floor", move || {
            all.iter().all(|r| r.budget_sharers() == Some(3))
        })
        .await;

        // Every request fails with a 503 once, and is retried if the budget allows.
        let calls = Arc::new(AtomicUsize::new(0));
        let started = Instant::now();
        for (_, retry) in &layers {
            let calls = calls.clone();
            let server = service_fn(move |_req: Request<Full<Bytes>>| {
                calls.fetch_add(1, Ordering::Relaxed);
                async {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .status(503)
                            .body(Full::new(Bytes::from_static(
                                br#"{"code":"UNAVAILABLE","message":"down"}"#,
                            )))
                            .unwrap(),
                    )
                }
            });
            let client = ServiceBuilder::new()
                .layer(retry.clone())
                .layer(ErrorDecodeLayer::new())
                .service(server);
            for _ in 0..300 {
                assert!(client.clone().oneshot(get()).await.is_err());
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let retries = calls.load(Ordering::Relaxed) - 900;
        // Each process has a third of the reserve (100) and of the floor (10/s); alone, each
        // would have retried all of its 300 requests.
        let bound = 3.0 * (100.0 + 10.0 * elapsed) + 3.0;
        println!("900 failures, {retries} retries in {elapsed:.2} s (bound {bound:.0})");
        assert!(retries as f64 <= bound, "{retries} retries > {bound}");
        assert!(retries < 900);
    })
    .await;
}
