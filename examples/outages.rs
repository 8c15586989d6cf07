//! How the default stack fares against a server that goes down twice.
//!
//! ```sh
//! cargo run --release --example outages
//! cargo run --release --example outages -- --requests 600   # a shorter run
//! ```
//!
//! The server (in process, on loopback) answers `/v1/items/{n}` with `503` +
//! `{"code":"UNAVAILABLE",...}` from 1 to 3 s and from 5 to 6 s after the run starts, and
//! `200 {}` otherwise; `/other` is never down. The client is a real hyper-util client under
//! the one-line default stack, `ServiceBuilder::new().api_contract()`. The load is 1,500
//! requests on a schedule over 8 s (187.5 a second) to `/v1/items/0` .. `/v1/items/96`:
//!
//! - **Open loop**: each request its own task, started on schedule whatever became of the
//!   ones before (many independent callers); first through the stack with outage gates off
//!   and no waiting for the retry budget (`OutageRule::OFF`, `max_budget_wait(Duration::ZERO)`),
//!   then through the defaults.
//! - **Worker pools** (closed loops): 32, 2 and 500 workers take the requests in turn, each
//!   sent at its time or as soon as a worker is free, and each worker waits for its answer;
//!   with GETs, and with 32 workers sending POSTs without an `Idempotency-Key`.
//!
//! All ask `/other` every 50 ms on the side. Columns: *amplification*: arrivals at the server
//! on the template per request; *arrivals during the outages*, against the first attempts the
//! schedule starts in them (the offered load); *failed*: requests whose caller got an error;
//! *finished in*: from the first start to the last answer; */other worst*: the slowest request
//! to the unrelated path; *back after*: from the end of each outage to the first success;
//! *served*: the template's arrivals in the 250 ms that end 1 s after that success, against
//! the offered rate; *POSTs sent twice*.

#[path = "../tests/it/support/limited.rs"]
mod limited;
#[path = "../tests/it/support/outage.rs"]
mod outage;

use axum::{Router, extract::Request as AxumRequest};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use outage::{Figures, Mix, Outages, Plan, Recovery, open_loop, paced_closed_loop};
use std::time::Duration;
use tower::ServiceBuilder;
use tower_api_retry::{ApiContractLayer, ErrorContract, OutageRule, RetryLayer, ServiceBuilderExt};

async fn serve(outages: std::sync::Arc<Outages>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().unwrap();
    let app = Router::new().fallback(move |req: AxumRequest| {
        let outages = outages.clone();
        async move { outages.respond(req.method(), req.uri()) }
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

fn client() -> limited::Client {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    limited::outcome(ServiceBuilder::new().api_contract().service(http))
}

/// The same stack without outage gates and without waiting for the retry budget: a retry
/// layer and a rate-limit gate that know nothing of outages.
fn without_outage_gates() -> limited::Client {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = ApiContractLayer::new()
        .retry(RetryLayer::new().max_budget_wait(Duration::ZERO))
        .contract(ErrorContract::new().outages(OutageRule::OFF));
    limited::outcome(ServiceBuilder::new().layer(layer).service(http))
}

/// One run of `client` against a fresh server down during `windows`: an open loop, or a
/// pool of `workers`. Prints the figures.
async fn run(
    what: &str,
    windows: &[(Duration, Duration)],
    plan: Plan,
    workers: Option<usize>,
    client: limited::Client,
) {
    let outages = Outages::new(windows);
    let plan = Plan {
        base: serve(outages.clone()).await,
        ..plan
    };
    outages.begin();
    let run = match workers {
        Some(workers) => paced_closed_loop(client, &plan, workers).await,
        None => open_loop(client, &plan).await,
    };
    let f = Figures::of(&outages, &run, plan.over);
    let r = Recovery::of(&outages, &plan);
    let back: Vec<String> = r
        .gaps
        .iter()
        .map(|g| format!("{:.2} s", g.as_secs_f64()))
        .collect();
    let served: Vec<String> = r
        .served
        .iter()
        .map(|s| format!("{:.0} %", s * 100.0))
        .collect();
    println!(
        "{what}: {}; back after {}; served {}; POSTs sent twice {}",
        f.line(),
        back.join(", "),
        served.join(", "),
        Figures::posts_sent_twice(&outages),
    );
    Figures::trace(&outages);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mut requests = 1_500;
    while let Some(arg) = args.next() {
        if arg == "--requests" {
            requests = args.next().and_then(|n| n.parse().ok()).unwrap_or(requests);
        }
    }
    let s = Duration::from_secs;
    let windows = [(s(1), s(3)), (s(5), s(6))];
    let gets = Plan::gets(requests, s(8), "");
    let posts = Plan {
        mix: Mix::Posts,
        ..gets.clone()
    };
    let open = format!("open loop, {requests} GETs over 8 s");
    run(
        &format!("{open}, without outage gates nor budget waits"),
        &windows,
        gets.clone(),
        None,
        without_outage_gates(),
    )
    .await;
    run(
        &format!("{open}, api_contract()"),
        &windows,
        gets.clone(),
        None,
        client(),
    )
    .await;
    for (workers, plan, what) in [
        (32, &gets, "GETs"),
        (32, &posts, "POSTs"),
        (2, &gets, "GETs"),
        (500, &gets, "GETs"),
    ] {
        let what = format!("{workers} workers, {requests} {what} over 8 s, api_contract()");
        run(&what, &windows, plan.clone(), Some(workers), client()).await;
    }
}
