//! Outages, in virtual time: a path that answers `503` for a while is held at its gate, not
//! hammered, and reopens with a ramp; a request-specific failure never stalls its path.
//!
//! The clock is tokio's paused clock and the server a `service_fn` that takes 1 ms per
//! request, so the figures are the stack's own behaviour, not the machine's.

use crate::support::{
    limited::outcome,
    outage::{Figures, Outages, Plan, closed_loop, open_loop},
};
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use std::{convert::Infallible, sync::Arc, time::Duration};
use tower::{ServiceBuilder, service_fn};
use tower_api_retry::ServiceBuilderExt;

const S: fn(u64) -> Duration = Duration::from_secs;

fn server(
    outages: Arc<Outages>,
) -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    service_fn(move |req: Request<Full<Bytes>>| {
        let outages = outages.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, Infallible>(outages.respond(req.uri().path()))
        }
    })
}

#[tokio::test(start_paused = true)]
async fn an_outage_is_held_not_hammered_and_nothing_is_lost() {
    // The measurement of the README at half its length: 750 GETs started on schedule over
    // 4 s, each its own task; the server answers 503 from 1 to 2 s and from 2.5 to 3 s.
    let outages = Outages::new(&[(S(1), S(2)), (Duration::from_millis(2500), S(3))]);
    let client = ServiceBuilder::new()
        .api_contract()
        .service(server(outages.clone()));
    let plan = Plan {
        requests: 750,
        over: S(4),
        base: "http://api.test".into(),
    };
    outages.begin();
    let run = open_loop(outcome(client), &plan).await;
    let f = Figures::of(&outages, &run, plan.over);
    println!("open loop: {}", f.line());
    assert_eq!(f.failed, 0, "{}", f.line());
    assert!(
        f.outage_arrivals * 4 <= f.offered_in_outages,
        "at most a quarter of the offered load reaches the server during the outages: {}",
        f.line()
    );
    assert!(f.amplification <= 1.15, "{}", f.line());
    // The unrelated path never waits for the one that is down (the server's 1 ms).
    assert!(f.other_worst < Duration::from_millis(10), "{}", f.line());
}

#[tokio::test(start_paused = true)]
async fn thirty_two_workers_lose_nothing_to_an_outage() {
    let outages = Outages::new(&[(S(1), S(2))]);
    let client = ServiceBuilder::new()
        .api_contract()
        .service(server(outages.clone()));
    let plan = Plan {
        requests: 0,
        over: S(3),
        base: "http://api.test".into(),
    };
    outages.begin();
    let run = closed_loop(outcome(client), &plan, 32).await;
    let f = Figures::of(&outages, &run, plan.over);
    println!(
        "closed loop: amplification {:.2}, failed {} of {}",
        f.amplification, f.failed, f.requests
    );
    assert_eq!(f.failed, 0, "{}", f.line());
    assert!(f.amplification <= 1.15, "{}", f.line());
}

