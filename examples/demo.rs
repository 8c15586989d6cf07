//! A guided tour of every documented behaviour, against an emulated API on loopback.
//!
//! ```sh
//! cargo run --example demo            # real waits (about 10 s)
//! cargo run --example demo -- --fast  # backoff shrunk 10× (server Retry-After still honoured)
//! ```
//!
//! Each scenario prints a timeline of what reached the server (attempt, status, code, wait) and
//! the outcome the caller saw. The demo exits non-zero if anything behaved differently from
//! the two documented error contracts.

#[path = "../tests/it/support/emulator.rs"]
mod emulator;
#[path = "../tests/it/support/grpc.rs"]
mod grpc;

use bytes::Bytes;
use emulator::{Emulator, Reply};
use http::{Method, Request, StatusCode};
use http_body_util::Full;
#[cfg(not(feature = "tonic"))]
use http_body_util::combinators::UnsyncBoxBody;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{
    Attempts, Disposition, Error, ErrorCode, ErrorDecodeLayer, McpDecodeLayer,
    RateLimitBackoffLayer, RetryLayer,
    backoff::Backoff,
    builtin::{BudgetState, Credits, Objective},
};

/// One attempt as the layer below the retry loop saw it.
#[derive(Clone, Debug)]
struct Line {
    at: Instant,
    what: String,
}

/// A layer between the retry loop and the rate-limit gate that records every attempt.
#[derive(Clone)]
struct Timeline {
    lines: Arc<Mutex<Vec<Line>>>,
}

impl Timeline {
    fn new() -> Self {
        Timeline {
            lines: Arc::default(),
        }
    }
    fn take(&self) -> Vec<Line> {
        std::mem::take(&mut self.lines.lock().unwrap())
    }
}

impl<S> Layer<S> for Timeline {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            lines: self.lines.clone(),
        }
    }
}

#[derive(Clone)]
struct Observe<S> {
    inner: S,
    lines: Arc<Mutex<Vec<Line>>>,
}

impl<S, B, RB> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = http::Response<RB>, Error = Error>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let target = format!("{} {}", req.method(), req.uri().path());
        let lines = self.lines.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await;
            let what = match &res {
                Ok(r) => format!("{target} → {}", r.status()),
                Err(e) if e.is_gate_closed() => format!("{target} → held at the rate-limit gate"),
                Err(e) => match e.status() {
                    Some(s) => format!(
                        "{target} → {} {} ({})",
                        s.as_u16(),
                        e.code(),
                        e.disposition()
                    ),
                    None => format!("{target} → no response: {} ({})", e.code(), e.disposition()),
                },
            };
            lines.lock().unwrap().push(Line {
                at: Instant::now(),
                what,
            });
            res
        })
    }
}

struct Demo {
    api: Emulator,
    timeline: Timeline,
    base: Duration,
    failed: AtomicBool,
}

impl Demo {
    fn check(&self, ok: bool, what: &str) {
        if ok {
            println!("   ✓ {what}");
        } else {
            println!("   ✗ {what}  <-- differs from the documented contract");
            self.failed.store(true, Ordering::SeqCst);
        }
    }

    fn print_timeline(&self, start: Instant) {
        let mut prev = start;
        for (n, line) in self.timeline.take().into_iter().enumerate() {
            let wait = line.at.saturating_duration_since(prev);
            println!(
                "   {:>7.3}s  attempt {}  {}  (+{:.2}s)",
                line.at.duration_since(start).as_secs_f64(),
                n + 1,
                line.what,
                wait.as_secs_f64()
            );
            prev = line.at;
        }
    }

    fn stack(
        &self,
    ) -> impl Service<
        Request<Full<Bytes>>,
        Response = http::Response<tower_api_retry::rate_limit::ResponseBody<hyper::body::Incoming>>,
        Error = Error,
        Future: Send,
    > + Clone
    + Send
    + 'static {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(Backoff::new().base_delay(self.base)))
            .layer(self.timeline.clone())
            .layer(RateLimitBackoffLayer::new())
            .layer(ErrorDecodeLayer::new())
            .service(client)
    }

    fn request(&self, method: Method, path: &str) -> Request<Full<Bytes>> {
        Request::builder()
            .method(method)
            .uri(self.api.url(path))
            .header("authorization", "Bearer convo_demo_secret_key")
            .body(Full::new(Bytes::from_static(b"{\"demo\":true}")))
            .unwrap()
    }
}

fn heading(n: u32, title: &str, page: &str) {
    println!("\n{n}. {title}\n   page: {page}");
}

#[tokio::main]
async fn main() {
    let fast = std::env::args().any(|a| a == "--fast");
    let demo = Demo {
        api: Emulator::start().await,
        timeline: Timeline::new(),
        base: if fast {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        },
        failed: AtomicBool::new(false),
    };
    println!(
        "tower-api-retry demo: emulated API on {}{}",
        demo.api.addr(),
        if fast { " (--fast)" } else { "" }
    );
    let total = Instant::now();

    transient_503(&demo).await;
    rate_limit_one_path(&demo).await;
    refresh_in_progress(&demo).await;
    key_revoked(&demo).await;
    agent_connected(&demo).await;
    needs_human(&demo).await;
    grpc_unavailable(&demo).await;
    mcp_tool_errors(&demo).await;
    budgets(&demo);

    println!("\nfinished in {:.1}s", total.elapsed().as_secs_f64());
    if demo.failed.load(Ordering::SeqCst) {
        println!("SOMETHING BEHAVED DIFFERENTLY FROM THE PAGES");
        std::process::exit(1);
    }
    println!("every behaviour matched the documented contracts");
}

async fn transient_503(d: &Demo) {
    heading(
        1,
        "A transient 503 is retried with backoff until it succeeds",
        "5xx: retry, 1 s doubling, cap 30 s",
    );
    d.api.script(
        "/api/spaces/s1",
        [
            Reply::detail(503, "Server restarting"),
            Reply::detail(503, "Server restarting"),
        ],
    );
    let start = Instant::now();
    let res = d
        .stack()
        .oneshot(d.request(Method::GET, "/api/spaces/s1"))
        .await;
    d.print_timeline(start);
    match res {
        Ok(res) => {
            let attempts = Attempts::of(&res);
            println!("   outcome: {} after {} attempts", res.status(), attempts);
            d.check(
                res.status() == StatusCode::OK && attempts == 3,
                "200 on the third attempt",
            );
        }
        Err(e) => d.check(false, &format!("unexpected error {e}")),
    }
    let seen = d.api.seen("/api/spaces/s1");
    d.check(seen.len() == 3, "the server saw exactly 3 requests");
    // The waits as the server saw them (each includes a request's trip, so it can only be
    // longer than the client's wait): never shorter than the schedule, which adds up to 20 %.
    let (first, second) = (d.base, d.base * 2);
    if let [a, b, c] = &seen[..] {
        let (w1, w2) = (b.at.duration_since(a.at), c.at.duration_since(b.at));
        println!(
            "   waits seen by the server: {:.3}s, then {:.3}s (schedule: {:.2}–{:.2}s, then {:.2}–{:.2}s)",
            w1.as_secs_f64(),
            w2.as_secs_f64(),
            first.as_secs_f64(),
            first.mul_f64(1.2).as_secs_f64(),
            second.as_secs_f64(),
            second.mul_f64(1.2).as_secs_f64(),
        );
        d.check(
            w1 >= first,
            &format!("first wait at least {:.2}s", first.as_secs_f64()),
        );
        d.check(
            w2 >= second,
            &format!("second wait at least {:.2}s", second.as_secs_f64()),
        );
    }
}

async fn rate_limit_one_path(d: &Demo) {
    heading(
        2,
        "429 with Retry-After pauses one path while another is served",
        "Rate Limiting: stop sending on the affected path; honour Retry-After",
    );
    d.api.script("/api/events", [Reply::too_many(1)]);
    let stack = d.stack();
    let start = Instant::now();
    let limited = tokio::spawn(stack.clone().oneshot(d.request(Method::GET, "/api/events")));
    // Give the first request time to hit the limit, then use another path meanwhile.
    while d.api.seen("/api/events").is_empty() {
        tokio::task::yield_now().await;
    }
    let other = stack
        .clone()
        .oneshot(d.request(Method::GET, "/api/spaces/s2"))
        .await;
    let other_at = start.elapsed();
    let limited = limited.await.unwrap();
    d.print_timeline(start);
    let seen = d.api.seen("/api/events");
    let gap = seen
        .get(1)
        .map(|s| s.at.duration_since(seen[0].at))
        .unwrap_or_default();
    println!(
        "   outcome: /api/spaces/s2 served after {:.2}s; /api/events {} after a {:.2}s pause",
        other_at.as_secs_f64(),
        limited
            .as_ref()
            .map(|r| r.status().to_string())
            .unwrap_or_else(|e| e.to_string()),
        gap.as_secs_f64()
    );
    d.check(
        other.is_ok() && other_at < Duration::from_secs(1),
        "the other path flowed during the pause",
    );
    d.check(
        limited.is_ok() && seen.len() == 2 && gap >= Duration::from_secs(1),
        "the limited path waited Retry-After (1 s) and then succeeded",
    );
}

async fn refresh_in_progress(d: &Demo) {
    heading(
        3,
        "REFRESH_IN_PROGRESS (503 + Retry-After) is honoured, even for a POST",
        "Auth codes: Retryable — honor the Retry-After header",
    );
    d.api
        .script("/api/agents/a1/refresh", [Reply::refresh_in_progress(1)]);
    let start = Instant::now();
    let res = d
        .stack()
        .oneshot(d.request(Method::POST, "/api/agents/a1/refresh"))
        .await;
    d.print_timeline(start);
    let seen = d.api.seen("/api/agents/a1/refresh");
    let gap = seen
        .get(1)
        .map(|s| s.at.duration_since(seen[0].at))
        .unwrap_or_default();
    println!(
        "   outcome: {:?} after waiting {:.2}s",
        res.as_ref().map(|r| r.status()),
        gap.as_secs_f64()
    );
    d.check(
        res.is_ok() && seen.len() == 2 && gap >= Duration::from_secs(1),
        "retried once, no sooner than Retry-After",
    );
}

async fn key_revoked(d: &Demo) {
    heading(
        4,
        "401 KEY_REVOKED is surfaced at once, with its fix",
        "INVALID_API_KEY … KEY_EXPIRED: 401, generate a new key; 4xx: do not retry",
    );
    d.api.script(
        "/api/me",
        [Reply::envelope(
            401,
            "KEY_REVOKED",
            "The key was rotated or revoked.",
            Some("Generate a fresh key in Settings → API Keys"),
        )],
    );
    let start = Instant::now();
    let res = d.stack().oneshot(d.request(Method::GET, "/api/me")).await;
    d.print_timeline(start);
    match res {
        Err(e) => {
            println!("   outcome: {e}");
            println!(
                "   disposition: {}; debug shows no key: {}",
                e.disposition(),
                !format!("{e:?}").contains("convo_")
            );
            d.check(
                e.code() == &ErrorCode::KeyRevoked
                    && e.disposition() == Disposition::Reauthenticate
                    && e.fix().is_some(),
                "typed KEY_REVOKED with its fix",
            );
            d.check(e.attempts() == 1, "not retried");
        }
        Ok(r) => d.check(false, &format!("unexpected {}", r.status())),
    }
    d.check(
        d.api.seen("/api/me").len() == 1,
        "the server saw exactly 1 request",
    );
}

async fn agent_connected(d: &Demo) {
    heading(
        5,
        "409 agent_connected: agent_id and the release / X-Force-Rotate remedy",
        "Errors: agent connected elsewhere",
    );
    let path = "/api/actors/agt_42/rotate-key";
    d.api.script(path, [Reply::agent_connected("agt_42")]);
    let start = Instant::now();
    let res = d.stack().oneshot(d.request(Method::POST, path)).await;
    d.print_timeline(start);
    let Err(e) = res else {
        return d.check(false, "expected a 409");
    };
    let Some(conflict) = e.api().and_then(|a| a.agent_connected()) else {
        return d.check(false, "expected agent_connected");
    };
    println!("   outcome: {e}");
    println!(
        "   agent_id: {:?}; remedy 1: POST {}; remedy 2: send again with X-Force-Rotate: true",
        conflict.agent_id(),
        conflict.release_path().unwrap_or_default()
    );
    d.check(
        conflict.agent_id() == Some("agt_42") && e.attempts() == 1,
        "agent_id reachable, not retried on its own",
    );
    // The caller decides to force the rotation: a new, deliberate request.
    let mut forced = d.request(Method::POST, path);
    conflict.force_rotate(&mut forced);
    let start = Instant::now();
    let res = d.stack().oneshot(forced).await;
    d.print_timeline(start);
    let seen = d.api.seen(path);
    d.check(
        res.is_ok()
            && seen.len() == 2
            && seen[1]
                .headers
                .get("x-force-rotate")
                .is_some_and(|v| v == "true"),
        "the forced rotation carried X-Force-Rotate: true",
    );
}

async fn needs_human(d: &Demo) {
    heading(
        6,
        "A need-a-human code is surfaced without retries",
        "SUBSCRIPTION_CANCELED 409: automated callers should stop retrying",
    );
    d.api.script(
        "/api/agents/a2/connect",
        [Reply::envelope(
            409,
            "SUBSCRIPTION_CANCELED",
            "No active subscription for the requested agent",
            Some("Re-subscribe to the agent"),
        )],
    );
    let start = Instant::now();
    let res = d
        .stack()
        .oneshot(d.request(Method::POST, "/api/agents/a2/connect"))
        .await;
    d.print_timeline(start);
    let Err(e) = res else {
        return d.check(false, "expected an error");
    };
    println!("   outcome: {e} → {}", e.disposition());
    d.check(
        e.disposition() == Disposition::NeedsHuman
            && d.api.seen("/api/agents/a2/connect").len() == 1,
        "NeedsHuman, sent once",
    );
}

async fn grpc_unavailable(d: &Demo) {
    heading(
        7,
        "A gRPC UNAVAILABLE is retried over a tonic Channel",
        "UNAVAILABLE: retry with exponential backoff and jitter",
    );
    let server = grpc::GrpcServer::start().await;
    server.script(
        grpc::SAY,
        [grpc::GrpcReply::Status(
            tonic::Code::Unavailable,
            "warming up",
        )],
    );
    let channel = tonic::transport::Channel::from_shared(server.url())
        .unwrap()
        .connect_lazy();
    // With the crate's `tonic` feature the stack takes tonic's request body as it is.
    #[cfg(feature = "tonic")]
    let stack = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(Backoff::new().base_delay(d.base)))
        .layer(d.timeline.clone())
        .layer(RateLimitBackoffLayer::new())
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    // Without it, box the body (a replayable body type) on the way in and unbox it for the channel.
    #[cfg(not(feature = "tonic"))]
    let stack = ServiceBuilder::new()
        .map_request(|req: Request<tonic::body::Body>| req.map(UnsyncBoxBody::new))
        .layer(RetryLayer::new().backoff(Backoff::new().base_delay(d.base)))
        .layer(d.timeline.clone())
        .layer(RateLimitBackoffLayer::new())
        .map_request(|req: Request<UnsyncBoxBody<Bytes, tonic::Status>>| {
            req.map(tonic::body::Body::new)
        })
        .layer(ErrorDecodeLayer::new())
        .service(channel);
    let mut client = tonic::client::Grpc::new(stack);
    let start = Instant::now();
    let req = grpc::SayRequest {
        name: "ada".into(),
        payload: b"same bytes every attempt".to_vec(),
    };
    let res = grpc::call(&mut client, grpc::SAY, req.clone()).await;
    d.print_timeline(start);
    let seen = server.seen(grpc::SAY);
    println!(
        "   outcome: {:?}",
        res.as_ref()
            .map(|r| r.message.clone())
            .map_err(|s| s.code())
    );
    d.check(res.is_ok() && seen.len() == 2, "retried once, then OK");
    d.check(
        seen.iter().all(|s| s.request == req),
        "the server received the identical message on every attempt",
    );
}

async fn mcp_tool_errors(d: &Demo) {
    heading(
        8,
        "MCP: a tool error inside an HTTP 200 becomes the same typed Error",
        "MCP Error Codes: isError: true with {\"error\": {code, message, fix}}",
    );
    d.api.script(
        "/mcp",
        [
            Reply::mcp_error("UNAVAILABLE", "The search index is restarting"),
            Reply::mcp_result("done"),
            Reply::mcp_error(
                "PERMISSION_DENIED",
                "The write is outside your allowed subtree",
            ),
        ],
    );
    // The timeline layer sits between the retry loop and the gate, so the three layers are
    // spelled out here; without it the same stack is
    // `ServiceBuilder::new().layer(ApiContractLayer::mcp().retry(..))`.
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .backoff(Backoff::new().base_delay(d.base))
                .retry_non_idempotent(true),
        )
        .layer(d.timeline.clone())
        .layer(RateLimitBackoffLayer::new())
        .layer(McpDecodeLayer::new())
        .service(client);
    let call = || {
        Request::post(d.api.url("/mcp"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}"#,
            )))
            .unwrap()
    };
    let start = Instant::now();
    let first = stack.clone().oneshot(call()).await;
    d.print_timeline(start);
    println!(
        "   outcome: {:?}",
        first
            .as_ref()
            .map(|r| r.status())
            .map_err(|e| e.to_string())
    );
    d.check(
        first.is_ok() && d.api.seen("/mcp").len() == 2,
        "UNAVAILABLE tool error retried (tools/call opted in), then the result",
    );
    let start = Instant::now();
    let second = stack.clone().oneshot(call()).await;
    d.print_timeline(start);
    match second {
        Err(e) => {
            println!("   outcome: {e} → {}", e.disposition());
            d.check(
                e.code() == &ErrorCode::PermissionDenied && d.api.seen("/mcp").len() == 3,
                "PERMISSION_DENIED surfaced, sent once",
            );
        }
        Ok(r) => d.check(false, &format!("unexpected {}", r.status())),
    }
}

fn budgets(d: &Demo) {
    heading(
        9,
        "Budgets & quotas: pacing from currentObjective, credits shown as dollars",
        "Budgets & Quotas",
    );
    for (json, want) in [
        (
            r#"{"remaining": 4200, "remainingPct": 84}"#,
            BudgetState::Normal,
        ),
        (
            r#"{"remaining": 120, "remainingPct": 24}"#,
            BudgetState::SlowDown,
        ),
        (
            r#"{"remaining": 7, "remainingPct": 7}"#,
            BudgetState::Finalize,
        ),
        (
            r#"{"remaining": 0, "remainingPct": 0, "abortSignal": {"reason": "budget exhausted"}}"#,
            BudgetState::Abort,
        ),
    ] {
        let o: Objective = serde_json::from_str(json).unwrap();
        println!(
            "   {json:<75} → {:?}, {} left",
            o.state(),
            o.remaining.unwrap_or(Credits(0))
        );
        d.check(o.state() == want, &format!("{want:?}"));
    }
}
