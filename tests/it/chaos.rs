//! Chaos soak: 2,000 requests at concurrency 32 through the full stack against a server that
//! injects faults at random (fixed seed). Everything is asserted from the server's own log.
//!
//! The soak takes over a minute of real time, so it runs only when `TOWER_API_RETRY_SOAK=1`
//! (`.ci/run` sets it): `TOWER_API_RETRY_SOAK=1 cargo test --all-features --test it chaos`.
//! Without it the test prints that it was skipped and passes.

use crate::support::{Emulator, checksum, emulator::Chaos};
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{collections::HashMap, time::Duration};
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::{
    Attempts, ErrorContract, ErrorDecodeLayer, QuotaScope, RateLimitBackoffLayer, RetryLayer,
    backoff::Backoff, rate_limit::RateLimitGates,
};

const REQUESTS: usize = 2_000;
const CONCURRENCY: usize = 32;
/// Distinct routes (`/items/shelf-N`: words, not ids, so each has its own gate).
const PATHS: usize = 48;
const MAX_KEYS: usize = 64;
// Generous, so that on a loaded machine a quick reply is not mistaken for a slow one.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_soak() {
    if !std::env::var("TOWER_API_RETRY_SOAK").is_ok_and(|v| v == "1") {
        println!(
            "skipping the chaos soak (over a minute of real time): \
             run it with TOWER_API_RETRY_SOAK=1 cargo test --all-features --test it chaos"
        );
        return;
    }
    let api = Emulator::start().await;
    api.chaos(Chaos {
        seed: 0x5eed,
        unavailable: 30,
        rate_limited: 10,
        reset: 5,
        slow: 5,
        garbage: 2,
        bad_request: 3,
        slow_for: Duration::from_secs(3),
        retry_after_secs: 1,
        // Two outages of the whole server: every path answers 503.
        bursts: vec![
            (Duration::from_millis(1000), Duration::from_millis(1600)),
            (Duration::from_millis(3000), Duration::from_millis(3400)),
        ],
    });
    let gates = RateLimitGates::with_max_keys(MAX_KEYS);
    let probe = GateProbe::<()>::shared();
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(
                    Backoff::new()
                        .base_delay(Duration::from_millis(10))
                        .max_delay(Duration::from_millis(200)),
                )
                // A third of the answers fail: the budget is spent all through the soak, and
                // a retry waits for it half a second at most.
                .max_budget_wait(Duration::from_millis(500)),
        )
        .layer(tower::layer::layer_fn({
            let probe = probe.clone();
            move |inner| GateProbe {
                inner,
                probe: probe.clone(),
            }
        }))
        .layer(
            RateLimitBackoffLayer::new()
                .gates(gates.clone())
                .max_wait(Duration::from_secs(5))
                // The emulator limits each path on its own, at random: say so, or its 429s
                // on many paths at once read as a limit of the whole server.
                .contract(ErrorContract::new().quota_scope(QuotaScope::Path)),
        )
        .layer(tower::timeout::TimeoutLayer::new(ATTEMPT_TIMEOUT))
        .layer(ErrorDecodeLayer::new())
        .service(client);

    // The gate map's size, sampled all through the run, not only when requests finish.
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let gates = gates.clone();
        let sampling = sampling.clone();
        tokio::spawn(async move {
            let mut max = 0;
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                max = max.max(gates.len());
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            max
        })
    };

    let started = tokio::time::Instant::now();
    let outcomes: Vec<(usize, Outcome)> = tokio::time::timeout(
        Duration::from_secs(120),
        stream::iter(0..REQUESTS)
            .map(|i| {
                let stack = stack.clone();
                let api = api.clone();
                let gates = gates.clone();
                async move {
                    let (method, keyed) = match i % 4 {
                        0 | 1 => (Method::GET, false),
                        2 => (Method::POST, true),
                        _ => (Method::POST, false),
                    };
                    let mut req = Request::builder()
                        .method(method)
                        .uri(api.url(&format!(
                            "/items/shelf-{}?token=convo_SOAKSECRET",
                            i % PATHS
                        )))
                        .header("x-req", i.to_string())
                        .header("authorization", "Bearer convo_SOAKSECRET");
                    if keyed {
                        req = req.header("idempotency-key", format!("key-{i}"));
                    }
                    let req = req.body(Full::new(body_of(i))).unwrap();
                    let res = stack.oneshot(req).await;
                    assert!(
                        gates.len() <= MAX_KEYS,
                        "gate map above its bound: {}",
                        gates.len()
                    );
                    let outcome = match res {
                        Ok(r) => Outcome {
                            result: Ok(r.status().as_u16()),
                            attempts: Attempts::of(&r),
                            status: Some(r.status().as_u16()),
                            transport: false,
                            sent: true,
                        },
                        Err(e) => {
                            let text = format!("{e} {e:?}");
                            assert!(!text.contains("SOAKSECRET"), "a credential leaked: {text}");
                            Outcome {
                                result: Err(e.code().as_str().to_owned()),
                                attempts: e.attempts(),
                                status: e.status().map(|s| s.as_u16()),
                                transport: e.is_transport(),
                                sent: e.request_sent(),
                            }
                        }
                    };
                    (i, outcome)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect(),
    )
    .await
    .expect("the soak ended in bounded time: no request hung");
    let elapsed = started.elapsed();
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let max_gate_keys = sampler.await.unwrap();
    assert!(
        max_gate_keys <= MAX_KEYS,
        "gate map above its bound during the run: {max_gate_keys}"
    );
    assert_eq!(
        outcomes.len(),
        REQUESTS,
        "every request ended in a response or a typed error"
    );

    // What the server saw, by request.
    let seen = api.all_seen();
    let mut by_req: HashMap<usize, Vec<&crate::support::Seen>> = HashMap::new();
    for s in &seen {
        let id: usize = s.headers["x-req"].to_str().unwrap().parse().unwrap();
        by_req.entry(id).or_default().push(s);
    }
    // In the order the client sent them, not the order they reached the server: on a loaded
    // machine an attempt given up for slow can reach the server after the next one.
    let sent_as =
        |s: &crate::support::Seen| -> u64 { s.headers["x-seq"].to_str().unwrap().parse().unwrap() };
    for attempts in by_req.values_mut() {
        attempts.sort_by_key(|s| sent_as(s));
    }

    // Every request ended in a response or a typed error that matches what the server did
    // last: a 200 after a 200; an error response with the status the server sent; a
    // transport error after a reset or a reply slower than the attempt timeout; a closed gate
    // without the request being sent. The server never saw more attempts than the client
    // counted (a closed gate counts an attempt the server does not see).
    let known = [
        "UNAVAILABLE",
        "RESOURCE_EXHAUSTED",
        "DEADLINE_EXCEEDED",
        "INVALID_ARGUMENT",
        "FAILED_PRECONDITION",
        "INTERNAL",
    ];
    for (id, o) in &outcomes {
        let attempts = by_req.get(id).map_or(&[][..], Vec::as_slice);
        assert!(o.attempts >= 1, "request {id}: no attempt counted");
        assert!(
            attempts.len() <= o.attempts as usize,
            "request {id}: the server saw {} attempts, the client counted {}",
            attempts.len(),
            o.attempts
        );
        let last = attempts.last().map(|a| a.reply.as_str());
        match &o.result {
            Ok(status) => {
                assert_eq!(*status, 200, "request {id}");
                assert_eq!(
                    last,
                    Some("200"),
                    "request {id}: ok, but the server's last reply"
                );
            }
            Err(code) => {
                assert!(
                    known.contains(&code.as_str()),
                    "request {id}: untyped error {code}"
                );
                if let Some(status) = o.status {
                    assert_eq!(last, Some(status.to_string().as_str()), "request {id}");
                } else if o.transport && code != "DEADLINE_EXCEEDED" {
                    // A timeout may follow any reply: on a loaded machine even a quick one can
                    // miss the attempt timeout. Any other transport error follows a reset.
                    assert!(
                        matches!(last, Some("reset")),
                        "request {id}: transport error {code} after {last:?}"
                    );
                } else if o.transport {
                } else {
                    assert!(!o.sent, "request {id}: {code} without a status nor a send");
                }
            }
        }
    }

    // Bodies: every attempt of a request carried byte-identical bodies.
    for (id, attempts) in &by_req {
        let want = checksum(&body_of(*id));
        assert!(
            attempts.iter().all(|a| a.body_sum == want),
            "request {id}: bodies differ across attempts"
        );
    }

    // Nothing the contract forbids was retried: a 400 is always a request's last attempt, and
    // a POST without an Idempotency-Key is sent again only after a rejection without processing.
    for (id, attempts) in &by_req {
        for (n, a) in attempts.iter().enumerate() {
            let last = n + 1 == attempts.len();
            assert!(
                a.reply != "400" || last,
                "request {id}: retried after a 400"
            );
            let unkeyed_post =
                a.method == Method::POST && !a.headers.contains_key("idempotency-key");
            assert!(
                !unkeyed_post || last || a.reply == "429",
                "request {id}: unkeyed POST retried after {}",
                a.reply
            );
        }
    }

    // No request for a path left the client after the client had learnt of a 429 for that
    // path, and arrived inside the window that 429 announced. Causal, not timed: an attempt's
    // entry into the gate layer is stamped above the gate, and a 429 is recorded above the gate
    // once the gate has handled it, so an attempt stamped later than that record was checked
    // against a closed gate. An attempt already past the gate when the 429 came back may still
    // arrive inside the window, and is not counted.
    let learnt = probe.learnt.lock().unwrap().clone();
    let entered = |s: &crate::support::Seen| -> Option<u64> {
        s.headers.get("x-seq")?.to_str().ok()?.parse().ok()
    };
    let entered_at = probe.entered.lock().unwrap().clone();
    let mut inside = 0;
    let mut windows = 0;
    for limited in seen.iter().filter(|s| s.reply == "429") {
        let Some(learnt_at) = entered(limited).and_then(|seq| learnt.get(&seq)) else {
            continue; // the client never saw this 429 (its attempt timed out first)
        };
        windows += 1;
        let window_end = limited.at + Duration::from_secs(1); // the chaos server's Retry-After
        inside += seen
            .iter()
            .filter(|s| {
                s.path == limited.path
                    && s.at < window_end
                    && entered(s)
                        .and_then(|seq| entered_at.get(&seq))
                        .is_some_and(|at| at > learnt_at)
            })
            .count();
    }
    assert!(windows > 0, "the soak saw no rate-limit window");
    assert_eq!(
        inside, 0,
        "requests sent after a 429 arrived inside its window"
    );

    // The retry budget held: 20 % of requests, a reserve of 10/s × 10 s, and 10/s refill.
    let attempts = seen.len();
    let retries = attempts.saturating_sub(by_req.len());
    let bound = (REQUESTS as f64 * 0.2 + 100.0 + 10.0 * elapsed.as_secs_f64()).ceil() as usize;
    assert!(
        retries <= bound,
        "{retries} retries exceed the budget bound {bound}"
    );

    let mut tally: HashMap<String, usize> = HashMap::new();
    for (_, o) in &outcomes {
        let key = match &o.result {
            Ok(s) => format!("ok {s}"),
            Err(code) => format!("err {code}"),
        };
        *tally.entry(key).or_default() += 1;
    }
    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort();
    println!(
        "chaos soak: {REQUESTS} requests, {attempts} attempts, amplification {:.3}, retries {retries} (budget bound {bound}), \
         429 windows {}, gate keys {} at the end, {max_gate_keys} at most (bound {MAX_KEYS}), {:.1}s",
        attempts as f64 / REQUESTS as f64,
        api.rate_limited().len(),
        gates.len(),
        elapsed.as_secs_f64()
    );
    println!("outcomes: {tally:?}");
}

/// How one request ended.
struct Outcome {
    /// The final status, or the error's code.
    result: Result<u16, String>,
    /// Attempts the client counted (`Attempts` extension, or `Error::attempts`).
    attempts: u32,
    /// The HTTP status of the last response, if there was one.
    status: Option<u16>,
    transport: bool,
    sent: bool,
}

fn body_of(i: usize) -> Bytes {
    Bytes::from(format!(
        "{{\"request\":{i},\"payload\":\"{}\"}}",
        "p".repeat(i % 97)
    ))
}

/// Sits between the retry layer and the gate: stamps every attempt with a sequence number and
/// the time it entered the gate layer, and records when a 429 came back up through the gate.
#[derive(Clone)]
struct GateProbe<S> {
    inner: S,
    probe: std::sync::Arc<Probe>,
}

#[derive(Default)]
struct Probe {
    next: std::sync::atomic::AtomicU64,
    entered: std::sync::Mutex<HashMap<u64, std::time::Instant>>,
    learnt: std::sync::Mutex<HashMap<u64, std::time::Instant>>,
}

impl GateProbe<()> {
    fn shared() -> std::sync::Arc<Probe> {
        std::sync::Arc::default()
    }
}

impl<S, B, R> tower::Service<Request<B>> for GateProbe<S>
where
    S: tower::Service<Request<B>, Response = R, Error = tower_api_retry::Error> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = R;
    type Error = tower_api_retry::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<R, tower_api_retry::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let seq = self
            .probe
            .next
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        req.headers_mut().insert("x-seq", seq.into());
        self.probe
            .entered
            .lock()
            .unwrap()
            .insert(seq, std::time::Instant::now());
        let future = self.inner.call(req);
        let probe = self.probe.clone();
        Box::pin(async move {
            let res = future.await;
            if let Err(e) = &res
                && e.status() == Some(http::StatusCode::TOO_MANY_REQUESTS)
            {
                probe
                    .learnt
                    .lock()
                    .unwrap()
                    .insert(seq, std::time::Instant::now());
            }
            res
        })
    }
}
