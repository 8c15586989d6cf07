//! How three clients fare against a server that limits a path template, and against the same
//! server announcing its quota in each header convention.
//!
//! ```sh
//! cargo run --example rate_limits
//! cargo run --example rate_limits -- --requests 600   # a shorter run
//! ```
//!
//! The server (in process, on loopback) limits `/limited/{n}` with one token bucket of 200
//! requests/s, burst 20, answering `429` + `Retry-After: 1` over it; `/other` is never limited.
//! 32 workers send 1,500 GETs over `/limited/1` .. `/limited/100` through a real hyper-util
//! client, while one more task sends GETs to `/other` one after another. The clients:
//!
//! - **bare**: the hyper-util client alone;
//! - **tower::retry**: `tower::retry` with a simple policy (retry 429, 5xx and transport
//!   errors up to 3 times after 100 ms doubling, full jitter; `Retry-After` not read);
//! - **api_contract()**: `ServiceBuilder::new().api_contract()`, the crate's defaults, no
//!   key function.
//!
//! Columns: *in-window*: requests that reached the limited template while a `429` the client
//! had already received said to wait (each request is stamped, under the stack, with the
//! number of `429`s the client had received when it sent it: a request sent before a `429`
//! came back never counts); *429s*: rejections the server answered; *failed*: requests whose
//! caller got an error; *goodput*: successes per second, and as a share of the 200/s the
//! server serves; */other worst*: the slowest request to the unrelated path; *total*: the
//! run's wall time.
//!
//! Then the server limits the template to a fixed window of 50 requests per second instead,
//! announced on every response, once per convention (IETF `RateLimit`/`RateLimit-Policy`,
//! `X-RateLimit-*` with a delta reset, with a Unix-epoch reset), and 16 workers send 200 GETs
//! over `/limited/1` .. `/limited/8`, bare and through `api_contract()`: *429s after the first
//! response* counts rejections of requests sent once the client had received an announcing
//! response; *goodput* is then a share of the quota.

#[path = "../tests/it/support/limited.rs"]
mod limited;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use limited::{Convention, Figures, LimitedServer, Limits, Load, Stamps, drive, outcome};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_api_retry::ServiceBuilderExt;

/// Retry 429, 5xx and transport errors up to 3 times, after 100 ms doubling with full jitter.
#[derive(Clone, Debug)]
struct Simple {
    attempt: u32,
}

impl<B, E> tower::retry::Policy<Request<Full<Bytes>>, Response<B>, E> for Simple {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<Full<Bytes>>,
        result: &mut Result<Response<B>, E>,
    ) -> Option<Self::Future> {
        let again = match result {
            Ok(res) => res.status() == 429 || res.status().is_server_error(),
            Err(_) => true,
        };
        if !again || self.attempt >= 3 {
            return None;
        }
        let base = Duration::from_millis(100) * 2u32.pow(self.attempt);
        self.attempt += 1;
        Some(tokio::time::sleep(base.mul_f64(rand::random::<f64>())))
    }

    fn clone_request(&mut self, req: &Request<Full<Bytes>>) -> Option<Request<Full<Bytes>>> {
        let mut copy = Request::new(req.body().clone());
        *copy.method_mut() = req.method().clone();
        *copy.uri_mut() = req.uri().clone();
        *copy.headers_mut() = req.headers().clone();
        Some(copy)
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Bare,
    TowerRetry,
    ApiContract,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare hyper-util",
            Kind::TowerRetry => "tower::retry",
            Kind::ApiContract => "api_contract()",
        }
    }
}

fn client(kind: Kind, stamps: &Stamps) -> limited::Client {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let stamp = stamps.layer();
    match kind {
        Kind::Bare => outcome(ServiceBuilder::new().layer(stamp).service(http)),
        Kind::TowerRetry => outcome(
            ServiceBuilder::new()
                .layer(tower::retry::RetryLayer::new(Simple { attempt: 0 }))
                .layer(stamp)
                .service(http),
        ),
        Kind::ApiContract => outcome(
            ServiceBuilder::new()
                .api_contract()
                .layer(stamp)
                .service(http),
        ),
    }
}

async fn measure(kind: Kind, limits: Limits, workers: usize, requests: usize, ids: u32) -> Figures {
    let server = LimitedServer::start(limits).await;
    let stamps = Stamps::new();
    let load = Load {
        workers,
        requests,
        paths: limited::template_paths(&server, ids),
        other: Some(server.url("/other")),
    };
    let run = drive(client(kind, &stamps), &load).await;
    Figures::of(
        &server.arrivals(),
        &stamps,
        &run,
        limits.served_rate(),
        |p| p.starts_with("/limited/"),
        Duration::ZERO,
    )
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".into(),
        |d| format!("{:.0} ms", d.as_secs_f64() * 1e3),
    )
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let requests = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(1_500);

    let limits = Limits::default();
    println!(
        "A path template /limited/{{n}} limited to {} req/s, burst {}, 429 + Retry-After: {}; \
         32 workers, {requests} GETs over ids 1..=100; /other probed throughout.\n",
        limits.rate, limits.burst, limits.retry_after_secs
    );
    println!(
        "{:<16} {:>10} {:>6} {:>7} {:>17} {:>13} {:>9}",
        "client", "in-window", "429s", "failed", "goodput", "/other worst", "total"
    );
    for kind in [Kind::Bare, Kind::TowerRetry, Kind::ApiContract] {
        let f = measure(kind, limits, 32, requests, 100).await;
        println!(
            "{:<16} {:>10} {:>6} {:>7} {:>8.0}/s {:>5.0} % {:>13} {:>7.2} s",
            kind.name(),
            f.in_window,
            f.rejected,
            f.failed,
            f.goodput,
            f.share * 100.0,
            ms(f.other_worst),
            f.elapsed.as_secs_f64(),
        );
    }

    let (quota, workers, announced) = (50, 16, (requests * 2 / 15).max(50));
    println!(
        "\nThe same template limited to an announced fixed window of {quota} requests per second; \
         {workers} workers, {announced} GETs over ids 1..=8.\n"
    );
    println!(
        "{:<20} {:<16} {:>6} {:>22} {:>7} {:>17} {:>13} {:>9}",
        "convention",
        "client",
        "429s",
        "after first response",
        "failed",
        "goodput",
        "/other worst",
        "total"
    );
    for convention in Convention::ALL {
        let limits = Limits::announced(convention, quota, 1);
        for kind in [Kind::Bare, Kind::ApiContract] {
            let f = measure(kind, limits, workers, announced, 8).await;
            println!(
                "{:<20} {:<16} {:>6} {:>22} {:>7} {:>8.0}/s {:>5.0} % {:>13} {:>7.2} s",
                convention.to_string(),
                kind.name(),
                f.rejected,
                f.rejected_after_first,
                f.failed,
                f.goodput,
                f.share * 100.0,
                ms(f.other_worst),
                f.elapsed.as_secs_f64(),
            );
        }
    }
    println!(
        "\nGoodput is successes per second of the run. A run of well under a second (the bare \
         client's) is mostly the burst or the first window's quota, granted at once: its share \
         is not the server's rate."
    );
}
