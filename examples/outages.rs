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
//! the one-line default stack, `ServiceBuilder::new().api_contract()`.
//!
//! - **Open loop**: 1,500 GETs over `/v1/items/0` .. `/v1/items/96`, started on schedule over
//!   8 s, each in its own task, whatever became of the ones before (many independent callers);
//!   first through the stack with outage gates off and no waiting for the retry budget
//!   (`OutageRule::OFF`, `max_budget_wait(Duration::ZERO)`: the defaults before either
//!   existed), then through the defaults.
//! - **Closed loop**: 32 workers send one GET after another for 8 s.
//!
//! Both ask `/other` every 50 ms on the side. Columns: *amplification*: arrivals at the
//! server on the template per request; *arrivals during the outages*, against the first
//! attempts the schedule starts in them (the offered load); *failed*: requests whose caller
//! got an error; *finished in*: from the first start to the last answer; */other worst*: the
//! slowest request to the unrelated path.

#[path = "../tests/it/support/limited.rs"]
mod limited;
#[path = "../tests/it/support/outage.rs"]
mod outage;

use axum::{Router, extract::Request as AxumRequest};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use outage::{Figures, Outages, Plan, closed_loop, open_loop};
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

/// The same stack without outage gates and without waiting for the retry budget: what the
/// defaults did before either existed.
fn without_outage_gates() -> limited::Client {
    let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = ApiContractLayer::new()
        .retry(RetryLayer::new().max_budget_wait(Duration::ZERO))
        .contract(ErrorContract::new().outages(OutageRule::OFF));
    limited::outcome(ServiceBuilder::new().api_contract_with(layer).service(http))
}

/// One open-loop run of `client` against a fresh server down during `windows`: the server's
/// log and the figures.
async fn run_open_loop(
    windows: &[(Duration, Duration)],
    requests: usize,
    over: Duration,
    client: limited::Client,
) -> (std::sync::Arc<Outages>, Figures) {
    let outages = Outages::new(windows);
    let base = serve(outages.clone()).await;
    let plan = Plan::gets(requests, over, &base);
    outages.begin();
    let run = open_loop(client, &plan).await;
    let figures = Figures::of(&outages, &run, over);
    (outages, figures)
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
    let over = s(8);

    let (_, before) = run_open_loop(&windows, requests, over, without_outage_gates()).await;
    println!(
        "open loop, {requests} GETs over 8 s, without outage gates nor budget waits: {}",
        before.line()
    );

    let (outages, open) = run_open_loop(&windows, requests, over, client()).await;
    println!(
        "open loop, {requests} GETs over 8 s, api_contract(): {}",
        open.line()
    );
    if std::env::var_os("OUTAGES_TRACE").is_some() {
        for (from, ok, down) in Figures::timeline(&outages) {
            println!("{from:>5.1}s ok {ok:>4} 503 {down}");
        }
    }

    let outages = Outages::new(&windows);
    let base = serve(outages.clone()).await;
    let plan = Plan::gets(0, over, &base);
    outages.begin();
    let run = closed_loop(client(), &plan, 32).await;
    let closed = Figures::of(&outages, &run, over);
    println!(
        "closed loop, 32 workers for 8 s: amplification {:.2}, arrivals during the outages {}, failed {} of {}, finished in {:.1} s, /other worst {:?}",
        closed.amplification,
        closed.outage_arrivals,
        closed.failed,
        closed.requests,
        closed.finish.as_secs_f64(),
        closed.other_worst,
    );
}
