//! Rate limits the way servers count them, on loopback (the gate's own mechanics are in `gate`): a server limiting the path template
//! `/limited/{n}` with one bucket, and the same server announcing a quota in each header
//! convention (`support::limited`). A stamp under the stack numbers every request with the
//! `429`s the client had received when it sent it, so "sent inside a window" is judged on
//! what the client knew, from the server's own log.
//!
//! Throughput and waits are printed, never asserted: the machine is shared.

use crate::support::limited::{
    Arrival, Convention, Figures, LimitedServer, Limits, Load, Stamps, TOO_MANY, drive, in_window,
    outcome, rejected_after_first, template_paths,
};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use std::time::Duration;
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::ServiceBuilderExt;

fn http() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

fn get(url: String) -> Request<Full<Bytes>> {
    Request::get(url).body(Full::default()).unwrap()
}

fn on_template(path: &str) -> bool {
    path.starts_with("/limited/")
}

/// A response's status, one header and body, through the stamped bare client.
async fn fetch(
    client: &tower::util::BoxCloneService<
        Request<Full<Bytes>>,
        http::Response<crate::support::limited::StampBody<hyper::body::Incoming>>,
        hyper_util::client::legacy::Error,
    >,
    url: String,
) -> (u16, http::HeaderMap, Bytes) {
    let res = client.clone().oneshot(get(url)).await.unwrap();
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status.as_u16(), parts.headers, body)
}

fn stamped_bare(
    stamps: &Stamps,
) -> tower::util::BoxCloneService<
    Request<Full<Bytes>>,
    http::Response<crate::support::limited::StampBody<hyper::body::Incoming>>,
    hyper_util::client::legacy::Error,
> {
    tower::util::BoxCloneService::new(ServiceBuilder::new().layer(stamps.layer()).service(http()))
}

// ---------------------------------------------------------------------------------------------
// The server and the stamp themselves.

#[tokio::test]
async fn the_server_limits_every_id_of_the_template_with_one_bucket() {
    // Five tokens and (practically) no refill: the sixth request on any id is rejected.
    let server = LimitedServer::start(Limits {
        rate: 0.001,
        burst: 5,
        ..Limits::default()
    })
    .await;
    let stamps = Stamps::new();
    let client = stamped_bare(&stamps);
    let mut statuses = Vec::new();
    for n in 1..=8 {
        let (status, headers, body) = fetch(&client, server.url(&format!("/limited/{n}"))).await;
        if status == 429 {
            assert_eq!(headers["retry-after"], "1");
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(body, TOO_MANY);
        }
        statuses.push(status);
        // The unrelated path is never limited.
        assert_eq!(fetch(&client, server.url("/other")).await.0, 200);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429]);

    // Every arrival is logged with the client's stamps; the stamp counted what came back.
    let log = server.arrivals();
    assert_eq!(log.len(), 16);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a.seq, Some(i as u64));
        assert_eq!(a.received_before, Some(i as u64));
        assert!(a.answered >= a.at);
    }
    let rejected: Vec<u64> = log
        .iter()
        .filter(|a| a.status == 429)
        .map(|a| a.seq.unwrap())
        .collect();
    assert_eq!(stamps.rejected(), rejected);
    assert_eq!(log[12].rejected_before, Some(1)); // /limited/7: after one 429
    assert_eq!(log[14].rejected_before, Some(2)); // /limited/8: after two
    assert_eq!(log[10].retry_after, Some(Duration::from_secs(1)));
    assert_eq!(log[11].retry_after, None); // /other
}

#[tokio::test]
async fn the_server_announces_its_quota_in_each_convention() {
    // A window of an hour, so the run does not straddle two (one chance in ~10⁵).
    for convention in Convention::ALL {
        let server = LimitedServer::start(Limits::announced(convention, 3, 3600)).await;
        let client = stamped_bare(&Stamps::new());
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        for (n, left) in [(1, 2), (2, 1), (3, 0), (4, 0)] {
            let (status, h, body) = fetch(&client, server.url(&format!("/limited/{n}"))).await;
            let reset = match convention {
                Convention::IetfDraft => {
                    assert_eq!(h["ratelimit-policy"], r#""default";q=3;w=3600"#);
                    let field = h["ratelimit"].to_str().unwrap();
                    let (r, t) = field
                        .strip_prefix(r#""default";r="#)
                        .and_then(|rest| rest.split_once(";t="))
                        .unwrap_or_else(|| panic!("{field}"));
                    assert_eq!(r, left.to_string());
                    let t: u64 = t.parse().unwrap();
                    assert!((1..=3600).contains(&t), "{t}");
                    t
                }
                Convention::XRateLimitDelta | Convention::XRateLimitEpoch => {
                    assert_eq!(h["x-ratelimit-limit"], "3");
                    assert_eq!(h["x-ratelimit-remaining"], left.to_string().as_str());
                    let reset: u64 = h["x-ratelimit-reset"].to_str().unwrap().parse().unwrap();
                    if convention == Convention::XRateLimitEpoch {
                        assert_eq!(reset % 3600, 0);
                        assert!(reset > now() && reset <= now() + 3600, "{reset}");
                        reset - now()
                    } else {
                        assert!((1..=3600).contains(&reset), "{reset}");
                        reset
                    }
                }
            };
            if n <= 3 {
                assert_eq!(status, 200, "{convention}");
            } else {
                assert_eq!(status, 429, "{convention}");
                assert_eq!(body, TOO_MANY);
                let retry_after: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
                assert!(retry_after.abs_diff(reset) <= 1, "{retry_after} vs {reset}");
            }
        }
        // The unrelated path announces nothing and is never limited.
        let (status, h, _) = fetch(&client, server.url("/other")).await;
        assert_eq!(status, 200);
        assert!(!h.contains_key("ratelimit") && !h.contains_key("x-ratelimit-remaining"));
    }
}

fn arrival(at_ms: u64, path: &str, status: u16, seq: u64, rejected_before: u64) -> Arrival {
    Arrival {
        at: Duration::from_millis(at_ms),
        answered: Duration::from_millis(at_ms + 1),
        path: path.into(),
        status,
        retry_after: (status == 429).then(|| Duration::from_secs(1)),
        seq: Some(seq),
        rejected_before: Some(rejected_before),
        received_before: Some(0),
        worker: None,
        sent: None,
        window: None,
    }
}

#[test]
fn in_window_counts_only_what_the_client_sent_knowing_of_the_429() {
    let log = [
        arrival(0, "/limited/1", 429, 0, 0), // window 1 ms .. 1001 ms
        // Sent before the client had the 429: not in violation, wherever it lands.
        arrival(10, "/limited/2", 200, 1, 0),
        // Sent after: in violation inside the window, on any id of the template ...
        arrival(500, "/limited/3", 200, 2, 1),
        arrival(900, "/limited/1", 429, 3, 1), // window 901 .. 1901, received second
        // ... but never on an unrelated path.
        arrival(950, "/other", 200, 4, 1),
        // After the first window, before the second: sent knowing only the first.
        arrival(1500, "/limited/4", 200, 5, 1),
        // The same, sent knowing of the second.
        arrival(1600, "/limited/5", 200, 6, 2),
        arrival(1901, "/limited/6", 200, 7, 2),
    ];
    let bad = in_window(&log, &[0, 3], on_template, Duration::ZERO);
    let seqs: Vec<u64> = bad.iter().map(|a| a.seq.unwrap()).collect();
    assert_eq!(seqs, [2, 3, 6]);
    // The resolution slack of a coarse log only forgives what is that close to a window's end.
    let bad = in_window(&log, &[0, 3], on_template, Duration::from_millis(302));
    let seqs: Vec<u64> = bad.iter().map(|a| a.seq.unwrap()).collect();
    assert_eq!(seqs, [2]);
}

// ---------------------------------------------------------------------------------------------
// The stack against them: the default one-line stack, no key function.

async fn default_stack_run(limits: Limits, workers: usize, requests: usize, ids: u32) -> Figures {
    let server = LimitedServer::start(limits).await;
    let stamps = Stamps::new();
    let client = outcome(
        ServiceBuilder::new()
            .api_contract()
            .layer(stamps.layer())
            .service(http()),
    );
    let load = Load {
        workers,
        requests,
        paths: template_paths(&server, ids),
        other: Some(server.url("/other")),
    };
    let run = drive(client, &load).await;
    Figures::of(
        &server.arrivals(),
        &stamps,
        &run,
        limits.served_rate(),
        on_template,
        Duration::ZERO,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_limit_holds_every_id_and_nothing_is_sent_inside_its_window() {
    // 200 requests/s, burst 20, 429 + Retry-After: 1 over all of /limited/{n}.
    let f = default_stack_run(Limits::default(), 32, 400, 100).await;
    println!(
        "template limit, default stack, 32 workers, 400 GETs over 100 ids: {}",
        f.line()
    );
    assert_eq!(
        f.in_window,
        0,
        "requests sent inside a window: {}",
        f.line()
    );
    assert_eq!(f.failed, 0, "failed requests: {}", f.line());
}

async fn announced(convention: Convention) {
    let f = default_stack_run(Limits::announced(convention, 50, 1), 16, 150, 8).await;
    println!(
        "{convention}, 50 per second, default stack, 16 workers, 150 GETs over 8 ids: {}",
        f.line()
    );
    assert_eq!(
        f.rejected_after_first,
        0,
        "429s after the quota was announced: {}",
        f.line()
    );
    assert_eq!(f.failed, 0, "failed requests: {}", f.line());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ietf_draft_quota_is_kept_without_a_429() {
    announced(Convention::IetfDraft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x_ratelimit_quota_with_a_delta_reset_is_kept_without_a_429() {
    announced(Convention::XRateLimitDelta).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_x_ratelimit_quota_with_an_epoch_reset_is_kept_without_a_429() {
    announced(Convention::XRateLimitEpoch).await;
}

#[test]
fn a_429_counts_against_the_client_only_in_a_window_it_could_foresee() {
    let counted = |status, received_before, window| Arrival {
        received_before: Some(received_before),
        window: Some(window),
        ..arrival(0, "/limited/1", status, 0, 0)
    };
    let log = [
        // Window 7 counted a request sent before any response: its 429 is not the client's.
        counted(200, 0, 7),
        counted(429, 3, 7),
        // Window 8 counted only requests sent knowing of the quota: its 429 is.
        counted(200, 5, 8),
        counted(429, 6, 8),
        // A 429 to a request sent before any response never counts.
        counted(429, 0, 9),
    ];
    assert_eq!(rejected_after_first(&log), 1);
}
