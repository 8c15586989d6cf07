//! The rate-limit gate (`RateLimitBackoffLayer`) against scripted servers: what closes a
//! path's gate, for how long, the one probe and its waiters, the key bound. Paused-time tests
//! with a scripted service, and real loopback tests (`real`) with an axum server that
//! timestamps every request per path. Rate limits the way real servers count them (template
//! buckets, announced quotas) are in `server_limits`.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};
use tower_api_retry::{
    Disposition, Error, ErrorCode, ErrorContract, ErrorDecodeLayer, QuotaScope,
    backoff::{Backoff, Jitter},
    rate_limit::{Key, RateLimitBackoffLayer, RateLimitGates},
};

const MS: fn(u64) -> Duration = Duration::from_millis;
const S: fn(u64) -> Duration = Duration::from_secs;

/// What the scripted server answers: the `n`-th request (0-based) for a path.
#[derive(Clone, Default)]
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    /// Hold the response until this notify fires.
    hold: Option<Arc<tokio::sync::Notify>>,
    /// Fail as a transport error instead of answering.
    reset: bool,
}

fn ok() -> Reply {
    Reply {
        status: 200,
        ..Reply::default()
    }
}

fn too_many(retry_after: Option<u64>) -> Reply {
    let mut r = Reply {
        status: 429,
        body: r#"{"code":"RESOURCE_EXHAUSTED","message":"Too many requests."}"#.into(),
        ..Reply::default()
    };
    if let Some(s) = retry_after {
        r.headers.push(("retry-after", s.to_string()));
    }
    r
}

type Script = Arc<dyn Fn(&str, usize) -> Reply + Send + Sync>;

/// Every request the server saw: path and arrival time, plus when it answered.
/// Path, arrival, answer.
type Entry = (String, Instant, Option<Instant>);

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<Entry>>>, Arc<Mutex<HashMap<String, usize>>>);

impl Log {
    fn arrive(&self, path: &str) -> (usize, usize) {
        let mut log = self.0.lock().unwrap();
        let mut counts = self.1.lock().unwrap();
        let count = counts.entry(path.to_owned()).or_default();
        let nth = *count;
        *count += 1;
        log.push((path.to_owned(), Instant::now(), None));
        (log.len() - 1, nth)
    }
    fn done(&self, index: usize) {
        self.0.lock().unwrap()[index].2 = Some(Instant::now());
    }
    fn arrivals(&self, path: &str) -> Vec<Instant> {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|(p, ..)| p == path)
            .map(|(_, t, _)| *t)
            .collect()
    }
    fn answered(&self, path: &str) -> Vec<(Instant, Option<Instant>)> {
        let log = self.0.lock().unwrap();
        log.iter()
            .filter(|(p, ..)| p == path)
            .map(|(_, a, d)| (*a, *d))
            .collect()
    }
    fn count(&self, path: &str) -> usize {
        self.1.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

async fn answer(log: Log, script: Script, path: String) -> Result<Response<Full<Bytes>>, Reply> {
    let (index, nth) = log.arrive(&path);
    let reply = script(&path, nth);
    if let Some(hold) = &reply.hold {
        hold.notified().await;
    }
    log.done(index);
    if reply.reset {
        return Err(reply);
    }
    let mut res = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        res = res.header(*name, value);
    }
    Ok(res.body(Full::new(Bytes::from(reply.body))).unwrap())
}

type BoxFut = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, std::io::Error>> + Send>>;

/// A scripted in-process server: no sockets, so paused time is exact.
fn scripted(
    log: Log,
    script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = std::io::Error,
    Future = BoxFut,
> + Clone {
    let script: Script = Arc::new(script);
    service_fn(move |req: Request<Full<Bytes>>| {
        let (log, script) = (log.clone(), script.clone());
        let path = req.uri().path().to_owned();
        Box::pin(async move {
            answer(log, script, path)
                .await
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::ConnectionReset))
        }) as BoxFut
    })
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("http://api.test{path}?token=secret"))
        .body(Full::default())
        .unwrap()
}

async fn send<S>(client: &mut S, path: &str) -> Result<S::Response, Error>
where
    S: Service<Request<Full<Bytes>>, Error = Error>,
{
    client.ready().await?.call(get(path)).await
}

/// A contract whose rate limits are per path, never widened to the whole server.
fn per_path() -> ErrorContract {
    ErrorContract::new().quota_scope(QuotaScope::Path)
}

fn no_jitter() -> RateLimitBackoffLayer {
    RateLimitBackoffLayer::new().backoff(Backoff::new().jitter(Jitter::None))
}

#[tokio::test(start_paused = true)]
async fn retry_after_closes_only_that_path_and_nothing_is_sent_inside_the_window() {
    let log = Log::default();
    let server = scripted(log.clone(), |path, n| match (path, n) {
        ("/limited", 0) => too_many(Some(3)),
        _ => ok(),
    });
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let t0 = Instant::now();

    let err = send(&mut client, "/limited").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(err.disposition(), Disposition::RateLimited);

    // The next request for the path waits at the gate ...
    let mut waiting = client.clone();
    let waiter = tokio::spawn(async move { send(&mut waiting, "/limited").await });
    // ... while other paths are served at once.
    tokio::time::sleep(MS(500)).await;
    send(&mut client, "/other").await.unwrap();
    send(&mut client, "/limited/sub").await.unwrap();
    assert_eq!(log.arrivals("/other"), [t0 + MS(500)]);
    assert_eq!(log.count("/limited"), 1);

    waiter.await.unwrap().unwrap();
    let limited = log.arrivals("/limited");
    assert_eq!(limited.len(), 2);
    assert!(limited[1] >= t0 + S(3), "{:?}", limited[1] - t0);
    // Open again (and paced, until the path has been idle for 30 s).
    assert_eq!(client.gates().len(), 0);
    assert_eq!(client.gates().paced(), 1);
}

#[tokio::test(start_paused = true)]
async fn exactly_one_probe_with_100_waiters() {
    let log = Log::default();
    let hold = Arc::new(tokio::sync::Notify::new());
    let probe_hold = hold.clone();
    let server = scripted(log.clone(), move |_, n| match n {
        0 => too_many(Some(1)),
        1 => Reply {
            hold: Some(probe_hold.clone()),
            ..ok()
        },
        _ => ok(),
    });
    let client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    send(&mut client.clone(), "/k").await.unwrap_err();

    let waiters: Vec<_> = (0..100)
        .map(|_| {
            let mut c = client.clone();
            tokio::spawn(async move { send(&mut c, "/k").await })
        })
        .collect();
    // Past the window: the probe is at the server and held there. Nobody else went.
    tokio::time::sleep(S(5)).await;
    assert_eq!(log.count("/k"), 2);
    tokio::time::sleep(S(20)).await;
    assert_eq!(log.count("/k"), 2);

    hold.notify_one();
    for w in waiters {
        w.await.unwrap().unwrap();
    }
    let seen = log.answered("/k");
    assert_eq!(seen.len(), 101); // the first rejection, then the probe and 99 followers
    let probe_done = seen[1].1.unwrap();
    assert!(seen[2..].iter().all(|(arrived, _)| *arrived >= probe_done));
    // Paced after the probe's answer: one at a time, never two at the same instant, the
    // gaps no longer than the first pace's (10 per second, then faster).
    let mut followers: Vec<_> = seen[2..].iter().map(|(a, _)| *a).collect();
    followers.sort();
    assert!(followers[0] >= probe_done);
    for pair in followers.windows(2) {
        assert!(
            pair[1] > pair[0] && pair[1] - pair[0] <= MS(100),
            "{pair:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn repeated_429_grows_the_window() {
    let log = Log::default();
    let server = scripted(
        log.clone(),
        |_, n| if n < 5 { too_many(None) } else { ok() },
    );
    let mut client = ServiceBuilder::new()
        .layer(no_jitter().max_wait(S(60)))
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let t0 = Instant::now();
    for _ in 0..5 {
        let err = send(&mut client, "/k").await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    }
    send(&mut client, "/k").await.unwrap();
    let at: Vec<_> = log.arrivals("/k").iter().map(|t| *t - t0).collect();
    // 1 s, 2 s, 4 s, 8 s, 16 s between consecutive rejections.
    assert_eq!(at, [S(0), S(1), S(3), S(7), S(15), S(31)]);
    // A success resets the count: the next rejection waits 1 s again.
    assert_eq!(client.gates().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_is_capped_and_jittered() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, _| too_many(None));
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().max_wait(S(60)))
        .layer(ErrorDecodeLayer::new())
        .service(server);
    for _ in 0..9 {
        send(&mut client, "/k").await.unwrap_err();
    }
    let at = log.arrivals("/k");
    let gaps: Vec<_> = at.windows(2).map(|w| w[1] - w[0]).collect();
    assert_eq!(gaps.len(), 8);
    for (i, gap) in gaps.iter().enumerate() {
        let nominal = Backoff::new().nominal(i as u32);
        // 1, 2, 4, 8, 16 s plus up to 20 %, never less; at the 30 s cap, 24–30 s.
        let (lo, hi) = if nominal < S(30) {
            (nominal, nominal.mul_f64(1.2))
        } else {
            (S(24), S(30))
        };
        assert!(*gap >= lo && *gap <= hi + MS(1), "{i}: {gap:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn fail_fast_error_fields() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, _| too_many(Some(7)));
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().fail_fast())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    send(&mut client, "/k").await.unwrap_err();
    tokio::time::advance(S(2)).await;
    let err = send(&mut client, "/k").await.unwrap_err();
    assert!(err.is_gate_closed());
    assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
    assert_eq!(err.status(), None);
    assert_eq!(err.retry_after(), Some(S(5)));
    assert!(!err.request_sent());
    assert!(err.is_retryable());
    assert_eq!(err.disposition(), Disposition::RateLimited);
    assert!(!format!("{err} {err:?}").contains("secret"));
    assert_eq!(log.count("/k"), 1);
    // A wait longer than max_wait also fails at once.
    let mut patient = ServiceBuilder::new()
        .layer(
            RateLimitBackoffLayer::new()
                .max_wait(S(2))
                .gates(client.gates().clone()),
        )
        .layer(ErrorDecodeLayer::new())
        .service(scripted(log.clone(), |_, _| ok()));
    let t = Instant::now();
    let err = send(&mut patient, "/k").await.unwrap_err();
    assert_eq!((err.retry_after(), Instant::now()), (Some(S(5)), t));
}

#[tokio::test(start_paused = true)]
async fn a_request_waits_up_to_max_wait_then_is_sent() {
    let log = Log::default();
    let server = scripted(
        log.clone(),
        |_, n| if n == 0 { too_many(Some(4)) } else { ok() },
    );
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().max_wait(S(5)))
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let t0 = Instant::now();
    send(&mut client, "/k").await.unwrap_err();
    send(&mut client, "/k").await.unwrap();
    assert_eq!(log.arrivals("/k")[1] - t0, S(4));
}

#[tokio::test(start_paused = true)]
async fn a_probe_that_fails_in_transport_hands_the_role_on() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, n| match n {
        0 => too_many(Some(1)),
        1 => Reply {
            reset: true,
            ..ok()
        },
        _ => ok(),
    });
    let client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    send(&mut client.clone(), "/k").await.unwrap_err();
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            let mut c = client.clone();
            tokio::spawn(async move { send(&mut c, "/k").await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    let transport = results
        .iter()
        .filter(|r| r.as_ref().is_err_and(Error::is_transport));
    assert_eq!(transport.count(), 1);
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 2);
    assert_eq!(log.count("/k"), 4);
    assert_eq!(client.gates().len(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_hands_the_role_on() {
    let log = Log::default();
    let never = Arc::new(tokio::sync::Notify::new());
    let server = scripted(log.clone(), move |_, n| match n {
        0 => too_many(Some(1)),
        1 => Reply {
            hold: Some(never.clone()),
            ..ok()
        },
        _ => ok(),
    });
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    send(&mut client, "/k").await.unwrap_err();
    tokio::time::advance(S(1)).await;
    // The probe hangs; an outer timeout drops it.
    let probe = tokio::time::timeout(S(1), send(&mut client, "/k")).await;
    assert!(probe.is_err());
    assert_eq!(log.count("/k"), 2);
    send(&mut client, "/k").await.unwrap();
    assert_eq!(log.count("/k"), 3);
}

#[tokio::test(start_paused = true)]
async fn refresh_in_progress_closes_the_gate() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, n| match n {
        0 => Reply {
            status: 503,
            headers: vec![("retry-after", "2".into())],
            body: r#"{"code":"REFRESH_IN_PROGRESS","message":"Another refresh is running."}"#
                .into(),
            ..Reply::default()
        },
        _ => ok(),
    });
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().fail_fast())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let err = send(&mut client, "/api/connect").await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::RefreshInProgress);
    let held = send(&mut client, "/api/connect").await.unwrap_err();
    assert!(held.is_gate_closed());
    assert_eq!(held.retry_after(), Some(S(2)));
    tokio::time::advance(S(2)).await;
    send(&mut client, "/api/connect").await.unwrap();
    assert_eq!(log.count("/api/connect"), 2);
}

#[tokio::test(start_paused = true)]
async fn other_errors_do_not_close_the_gate() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, _| Reply {
        status: 503,
        ..Reply::default()
    });
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().fail_fast())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    for _ in 0..3 {
        let err = send(&mut client, "/k").await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
    }
    assert!(client.gates().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_429_closes_the_gate_whatever_code_its_body_carries() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, n| match n {
        0 => Reply {
            status: 429,
            body: r#"{"code":"INVALID_ARGUMENT","message":"slow down"}"#.into(),
            headers: vec![("retry-after", "5".into())],
            ..Reply::default()
        },
        _ => ok(),
    });
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().fail_fast())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let err = send(&mut client, "/k").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    let held = send(&mut client, "/k").await.unwrap_err();
    assert!(held.is_gate_closed(), "{held:?}");
    assert_eq!(log.count("/k"), 1);
}

#[tokio::test(start_paused = true)]
async fn grpc_resource_exhausted_closes_the_method() {
    let log = Log::default();
    let server = scripted(log.clone(), |path, n| match (path, n) {
        ("/helloworld.Greeter/SayHello", 0) => Reply {
            status: 200,
            headers: vec![
                ("content-type", "application/grpc".into()),
                ("grpc-status", "8".into()),
                ("grpc-message", "quota".into()),
                ("grpc-retry-pushback-ms", "1500".into()),
            ],
            ..Reply::default()
        },
        _ => ok(),
    });
    let mut client = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().fail_fast())
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let method = "/helloworld.Greeter/SayHello";
    let err = send(&mut client, method).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
    let held = send(&mut client, method).await.unwrap_err();
    assert_eq!(held.retry_after(), Some(MS(1500)));
    // Another method of the same service is not affected.
    send(&mut client, "/helloworld.Greeter/SayGoodbye")
        .await
        .unwrap();
    tokio::time::advance(MS(1500)).await;
    send(&mut client, method).await.unwrap();
    assert_eq!(log.count(method), 2);
}

#[tokio::test(start_paused = true)]
async fn two_stacks_share_one_gate_map_and_clones_share_theirs() {
    let log = Log::default();
    let gates = RateLimitGates::new();
    let mut a = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new().gates(gates.clone()))
        .layer(ErrorDecodeLayer::new())
        .service(scripted(log.clone(), |_, _| too_many(Some(10))));
    let mut b = ServiceBuilder::new()
        .layer(
            RateLimitBackoffLayer::new()
                .gates(gates.clone())
                .fail_fast(),
        )
        .layer(ErrorDecodeLayer::new())
        .service(scripted(log.clone(), |_, _| ok()));
    let mut b2 = b.clone();
    send(&mut a, "/k").await.unwrap_err();
    assert_eq!(gates.len(), 1);
    assert!(send(&mut b, "/k").await.unwrap_err().is_gate_closed());
    assert!(send(&mut b2, "/k").await.unwrap_err().is_gate_closed());
    assert_eq!(
        gates.time_left(Key::from_uri(&"http://api.test/k".parse().unwrap())),
        Some(S(10))
    );
    assert_eq!(log.count("/k"), 1);
}

#[tokio::test(start_paused = true)]
async fn custom_key_fn_and_ungated_requests() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, _| too_many(Some(10)));
    // One gate per host; `/health` never gated.
    let mut client = ServiceBuilder::new()
        .layer(
            RateLimitBackoffLayer::new()
                .fail_fast()
                .key_fn(|req| (req.uri().path() != "/health").then(|| Key::of(&req.uri().host()))),
        )
        .layer(ErrorDecodeLayer::new())
        .service(server);
    send(&mut client, "/a").await.unwrap_err();
    assert!(send(&mut client, "/b").await.unwrap_err().is_gate_closed());
    let health = send(&mut client, "/health").await.unwrap_err();
    assert_eq!(health.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(log.count("/b"), 0);
    assert_eq!(log.count("/health"), 1);
}

#[tokio::test(start_paused = true)]
async fn the_key_bound_holds_after_30_000_distinct_keys() {
    let log = Log::default();
    let server = scripted(log.clone(), |_, _| too_many(Some(60)));
    let mut client = ServiceBuilder::new()
        // One limit per path (or rejections on many paths make it the whole server's).
        .layer(
            RateLimitBackoffLayer::new()
                .fail_fast()
                .contract(per_path()),
        )
        .layer(ErrorDecodeLayer::new())
        .service(server);
    let gates = client.gates().clone();
    assert_eq!(gates.max_keys(), 10_000);
    // Three times the bound: two thirds of the keys are evicted on the way.
    for i in 0..30_000 {
        let err = send(&mut client, &format!("/k/n{i}")).await.unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
        assert!(gates.len() <= 10_000);
    }
    assert_eq!(gates.len(), 10_000);
    // The newest rejections are the ones kept.
    assert!(
        send(&mut client, "/k/n29999")
            .await
            .unwrap_err()
            .is_gate_closed()
    );
    // Expired entries are dropped (30 s after their window), and the fast path is back.
    tokio::time::advance(S(60 + 31)).await;
    assert_eq!(
        send(&mut client, "/k/n0").await.unwrap_err().status(),
        Some(StatusCode::TOO_MANY_REQUESTS)
    );
    assert_eq!(gates.len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Real loopback peers: an axum server on 127.0.0.1:0, a hyper-util client. Real time, small
// windows; assertions only on the server's own timestamps (ordering, nothing inside a window).

mod real {
    use super::*;
    use hyper_util::{
        client::legacy::{Client, connect::HttpConnector},
        rt::TokioExecutor,
    };

    struct Server {
        base: String,
        log: Log,
    }

    async fn serve(script: impl Fn(&str, usize) -> Reply + Send + Sync + 'static) -> Server {
        let log = Log::default();
        let script: Script = Arc::new(script);
        let (l, s) = (log.clone(), script.clone());
        let app = axum::Router::new().fallback(move |req: Request<axum::body::Body>| {
            let (log, script) = (l.clone(), s.clone());
            async move {
                let path = req.uri().path().to_owned();
                match answer(log, script, path).await {
                    Ok(res) => res.map(axum::body::Body::new),
                    Err(_) => Response::builder()
                        .status(500)
                        .body(axum::body::Body::empty())
                        .unwrap(),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server {
            base: format!("http://{addr}"),
            log,
        }
    }

    fn client() -> Client<HttpConnector, Full<Bytes>> {
        Client::builder(TokioExecutor::new()).build_http()
    }

    async fn call<S, B>(client: &mut S, url: String) -> Result<Response<B>, Error>
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Error>,
    {
        let req = Request::get(url).body(Full::default()).unwrap();
        client.ready().await?.call(req).await
    }

    #[tokio::test]
    async fn zero_requests_inside_the_window_and_other_paths_served() {
        let server = serve(|path, n| match (path, n) {
            ("/limited", 0) => too_many(Some(1)),
            _ => ok(),
        })
        .await;
        let mut c = ServiceBuilder::new()
            .layer(RateLimitBackoffLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(client());
        let base = server.base.clone();
        let err = call(&mut c, format!("{base}/limited?token=t"))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::TOO_MANY_REQUESTS));
        let closed_at = server.log.answered("/limited")[0].1.unwrap();

        let mut waiting = c.clone();
        let url = format!("{base}/limited");
        let waiter = tokio::spawn(async move { call(&mut waiting, url).await });
        for _ in 0..5 {
            call(&mut c, format!("{base}/other")).await.unwrap();
        }
        waiter.await.unwrap().unwrap();

        let limited = server.log.arrivals("/limited");
        let other = server.log.arrivals("/other");
        assert_eq!(limited.len(), 2);
        assert_eq!(other.len(), 5);
        // Nothing for the path inside its 1 s window; the other path served during it.
        assert!(limited[1] >= closed_at + S(1) - MS(5));
        assert!(other.iter().all(|t| *t < limited[1]));
    }

    #[tokio::test]
    async fn exactly_one_probe_with_100_waiters() {
        let server = serve(|_, n| match n {
            0 => too_many(Some(1)),
            _ => ok(),
        })
        .await;
        let c = ServiceBuilder::new()
            .layer(RateLimitBackoffLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(client());
        let url = format!("{}/k", server.base);
        call(&mut c.clone(), url.clone()).await.unwrap_err();
        let waiters: Vec<_> = (0..100)
            .map(|_| {
                let (mut c, url) = (c.clone(), url.clone());
                tokio::spawn(async move { call(&mut c, url).await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        let seen = server.log.answered("/k");
        assert_eq!(seen.len(), 101); // the first rejection, then the probe and 99 followers
        let (probe_at, probe_done) = (seen[1].0, seen[1].1.unwrap());
        assert!(probe_at >= seen[0].1.unwrap() + S(1) - MS(5));
        // Until the probe had its answer, the server saw only the probe.
        assert!(seen[2..].iter().all(|(arrived, _)| *arrived >= probe_done));
    }

    #[tokio::test]
    async fn repeated_429_grows_the_window() {
        let server = serve(|_, n| if n < 4 { too_many(None) } else { ok() }).await;
        let backoff = Backoff::new().base_delay(MS(100)).jitter(Jitter::None);
        let mut c = ServiceBuilder::new()
            .layer(RateLimitBackoffLayer::new().backoff(backoff))
            .layer(ErrorDecodeLayer::new())
            .service(client());
        let url = format!("{}/k", server.base);
        for _ in 0..4 {
            call(&mut c, url.clone()).await.unwrap_err();
        }
        call(&mut c, url).await.unwrap();
        let seen = server.log.answered("/k");
        assert_eq!(seen.len(), 5);
        for i in 1..5 {
            // No request inside the window opened by the previous rejection: 100, 200, 400,
            // 800 ms (measured from the server's answer, minus a little clock slack).
            let window = backoff.nominal(i as u32 - 1);
            assert!(seen[i].0 + MS(5) >= seen[i - 1].1.unwrap() + window, "{i}");
        }
    }

    #[tokio::test]
    async fn fail_fast_refresh_in_progress_and_grpc_status_8() {
        let server = serve(|path, n| match (path, n) {
            ("/fast", 0) => too_many(Some(30)),
            ("/api/connect", 0) => Reply {
                status: 503,
                headers: vec![("retry-after", "30".into())],
                body: r#"{"code":"REFRESH_IN_PROGRESS","message":"busy"}"#.into(),
                ..Reply::default()
            },
            ("/pkg.Svc/Method", 0) => Reply {
                status: 200,
                headers: vec![
                    ("content-type", "application/grpc".into()),
                    ("grpc-status", "8".into()),
                ],
                ..Reply::default()
            },
            _ => ok(),
        })
        .await;
        // Three paths with limits of their own.
        let mut c = ServiceBuilder::new()
            .layer(
                RateLimitBackoffLayer::new()
                    .fail_fast()
                    .contract(per_path()),
            )
            .layer(ErrorDecodeLayer::new())
            .service(client());
        for path in ["/fast", "/api/connect", "/pkg.Svc/Method"] {
            let url = format!("{}{path}", server.base);
            let first = call(&mut c, url.clone()).await.unwrap_err();
            assert!(first.request_sent(), "{path}");
            let held = call(&mut c, url).await.unwrap_err();
            assert!(held.is_gate_closed(), "{path}");
            assert_eq!(held.code(), &ErrorCode::ResourceExhausted);
            assert_eq!(held.status(), None);
            assert!(!held.request_sent());
            let left = held.retry_after().unwrap();
            if path == "/pkg.Svc/Method" {
                // No hint: the first backoff step, 1 s plus up to 20 %.
                assert!(left <= MS(1200), "{left:?}");
            } else {
                assert!(left > S(25) && left <= S(30), "{left:?}");
            }
            assert_eq!(server.log.count(path), 1, "{path}");
        }
        assert_eq!(c.gates().len(), 3);
        call(&mut c, format!("{}/elsewhere", server.base))
            .await
            .unwrap();
    }
}

/// The documented stacks compile: a hyper-util client and a tonic channel, futures `Send`.
#[tokio::test]
async fn composes_with_hyper_util_and_tonic() {
    fn send_future<S, R>(_: &S)
    where
        S: Service<R, Error = Error>,
        S::Future: Send + 'static,
    {
    }
    fn grpc_service<T: tonic::client::GrpcService<tonic::body::Body>>(_: &T) {}

    let http = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Full<Bytes>>(),
        );
    send_future::<_, Request<Full<Bytes>>>(&http);

    let channel = tonic::transport::Endpoint::from_static("http://127.0.0.1:1").connect_lazy();
    let grpc = ServiceBuilder::new()
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    send_future::<_, Request<tonic::body::Body>>(&grpc);
    grpc_service(&grpc);
    let _client = tonic::client::Grpc::new(grpc);
}
