//! Against a real nginx: `limit_req` keyed by client address (20 requests/s, burst 5,
//! `nodelay`), rejections answered `429` + `Retry-After: 1` with the contract's JSON body.
//!
//! Each test starts its own nginx (Debian's `nginx-light`) on a free loopback port, with its
//! own configuration, logs and temporary files in a fresh directory, in the foreground
//! (`daemon off; master_process off;`), and stops it when done. Without nginx the tests print
//! how to install it and pass, except under `CI=true` where they fail
//! (`support::external`).
//!
//! Verdicts come from nginx's own access log (`$msec`, `$request_time`, `$status`, the
//! `Retry-After` it sent, and the client's stamps: see `support::limited`). Throughput and
//! waits are printed, never asserted: the machine is shared.

use crate::support::{
    external,
    limited::{
        Arrival, Figures, Load, RECEIVED, REJECTED, SEQ, Stamps, TOO_MANY, drive, in_window,
        outcome,
    },
};
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::ServiceBuilderExt;

/// A running nginx, stopped (and its directory removed) on drop.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh directory under the system's temporary directory.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tower-api-retry-nginx-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("www")).unwrap();
    dir
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// The configuration: everything nginx writes lives in `dir`.
///
/// `return` runs before `limit_req` in nginx's phases, so the limited location serves a file
/// (`try_files`) instead. A rejection goes to `@limited`, which adds `Retry-After` and the body.
fn config(dir: &Path, port: u16, rate: &str, burst: u32) -> String {
    let d = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/json;
    keepalive_requests 100000;
    log_format stamped '$msec $request_time $status $request_uri $http_{seq} $http_{rejected} $http_{received} $sent_http_retry_after';
    access_log {d}/access.log stamped;
    limit_req_zone $binary_remote_addr zone=per_client:1m rate={rate};
    limit_req_status 429;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        error_page 429 = @limited;
        location / {{
            limit_req zone=per_client burst={burst} nodelay;
            try_files /ok.json =404;
        }}
        location @limited {{
            add_header Retry-After 1 always;
            return 429 '{TOO_MANY}';
        }}
    }}
}}
"#,
        seq = SEQ.replace('-', "_"),
        rejected = REJECTED.replace('-', "_"),
        received = RECEIVED.replace('-', "_"),
    )
}

impl Nginx {
    /// Starts nginx limiting every path to `rate` (`20r/s`, `1r/m`) with `burst`, or `None` when
    /// nginx is not installed (see `support::external`).
    fn start(rate: &str, burst: u32) -> Option<Nginx> {
        let program = external::nginx()?;
        let dir = fresh_dir();
        std::fs::write(dir.join("www/ok.json"), "{\"ok\":true}\n").unwrap();
        let port = free_port();
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(&dir, port, rate, burst)).unwrap();
        let child = Command::new(program)
            .arg("-p")
            .arg(&dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut nginx = Nginx { child, dir, addr };
        // Wait for the port: an external process gives no other signal that it is ready.
        let give_up = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < give_up,
                "nginx did not listen: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(nginx)
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// Every request nginx logged, times from its first arrival.
    /// Every request of the access log, once it holds at least `n`: nginx writes a
    /// request's line after its response has left, so the last lines may lag the client.
    fn arrivals_at_least(&self, n: usize) -> Vec<Arrival> {
        let started = Instant::now();
        loop {
            let log = self.arrivals();
            if log.len() >= n || started.elapsed() > Duration::from_secs(10) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn arrivals(&self) -> Vec<Arrival> {
        let log = std::fs::read_to_string(self.dir.join("access.log")).unwrap();
        let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split(' ').collect()).collect();
        let secs = |s: &str| s.parse::<f64>().unwrap();
        let num = |s: &str| s.parse::<u64>().ok();
        let t0 = lines
            .iter()
            .map(|f| secs(f[0]) - secs(f[1]))
            .fold(f64::INFINITY, f64::min);
        let since = |t: f64| Duration::from_secs_f64((t - t0).max(0.0));
        lines
            .iter()
            .map(|f| {
                assert_eq!(f.len(), 8, "unexpected log line: {f:?}");
                Arrival {
                    at: since(secs(f[0]) - secs(f[1])),
                    answered: since(secs(f[0])),
                    path: f[3].to_owned(),
                    status: f[2].parse().unwrap(),
                    retry_after: num(f[7]).map(Duration::from_secs),
                    seq: num(f[4]),
                    rejected_before: num(f[5]),
                    received_before: num(f[6]),
                    worker: None,
                    sent: None,
                    window: None,
                }
            })
            .collect()
    }
}

/// `$msec` and `$request_time` have millisecond resolution: a request this close to a
/// window's end is not counted inside it.
const LOG_RESOLUTION: Duration = Duration::from_millis(2);

#[tokio::test]
async fn nginx_rejects_over_its_burst_with_retry_after_and_the_contract_body() {
    // 1 request a minute, burst 5: six pass, then every one is rejected.
    let Some(nginx) = Nginx::start("1r/m", 5) else {
        return;
    };
    let stamps = Stamps::new();
    let client = ServiceBuilder::new()
        .layer(stamps.layer())
        .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let mut statuses = Vec::new();
    for n in 1..=8 {
        let req = Request::get(nginx.url(&format!("/api/actors/{n}/events")))
            .body(Full::default())
            .unwrap();
        let res = client.clone().oneshot(req).await.unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        if parts.status == 429 {
            assert_eq!(parts.headers["retry-after"], "1");
            assert_eq!(body, TOO_MANY);
        } else {
            assert!(!parts.headers.contains_key("retry-after"));
        }
        statuses.push(parts.status.as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 429, 429]);

    // nginx's log has every request, with the client's stamps and the Retry-After it sent.
    let log = nginx.arrivals_at_least(8);
    assert_eq!(log.len(), 8);
    for (i, a) in log.iter().enumerate() {
        assert_eq!(a.seq, Some(i as u64));
        assert_eq!(a.received_before, Some(i as u64));
        assert_eq!(a.status, statuses[i]);
        assert_eq!(a.path, format!("/api/actors/{}/events", i + 1));
        let expected = (a.status == 429).then(|| Duration::from_secs(1));
        assert_eq!(a.retry_after, expected);
    }
    let rejected: Vec<u64> = log
        .iter()
        .filter(|a| a.status == 429)
        .filter_map(|a| a.seq)
        .collect();
    assert_eq!(stamps.rejected(), rejected);
}

/// The default stack against nginx's `limit_req` over `paths`: the run, the stamps and
/// nginx's own log.
async fn limit_req_run(
    paths: impl Fn(&Nginx) -> Vec<String>,
    requests: usize,
) -> Option<(Figures, Vec<Arrival>, Stamps)> {
    let nginx = Nginx::start("20r/s", 5)?;
    let stamps = Stamps::new();
    let client = outcome(
        ServiceBuilder::new()
            .api_contract()
            .layer(stamps.layer())
            .service(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>()),
    );
    let load = Load {
        workers: 16,
        requests,
        paths: paths(&nginx),
        other: None,
    };
    let run = drive(client, &load).await;
    let arrivals = nginx.arrivals_at_least(stamps.sent() as usize);
    let f = Figures::of(&arrivals, &stamps, &run, 20.0, |_| true, LOG_RESOLUTION);
    Some((f, arrivals, stamps))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_limit_req_is_kept_across_ids_with_nothing_sent_inside_a_window() {
    // One template, 70 ids: nginx counts them all against one client address.
    let Some((f, _, _)) = limit_req_run(
        |nginx| {
            (1..=70)
                .map(|n| nginx.url(&format!("/api/actors/agt_{n}/events")))
                .collect()
        },
        300,
    )
    .await
    else {
        return;
    };
    println!(
        "nginx limit_req 20 r/s burst 5, default stack, 16 workers, 300 GETs over 70 ids of one template: {}",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_limit_req_over_two_templates_widens_to_the_server() {
    // Two templates, 35 ids each. nginx limits the client address, so a 429 on one template
    // holds the other too; the stack learns it from the evidence: rejections on both.
    let Some((f, arrivals, stamps)) = limit_req_run(
        |nginx| {
            (1..=35)
                .flat_map(|n| {
                    [
                        nginx.url(&format!("/api/actors/agt_{n}/events")),
                        nginx.url(&format!("/api/spaces/{n}/tasks")),
                    ]
                })
                .collect()
        },
        100,
    )
    .await
    else {
        return;
    };
    // The evidence is in once the client has received 429s on both templates: the index of
    // the first 429 of the second template in the order the client received them.
    let template = |path: &str| path.split('/').nth(2).map(str::to_owned);
    let by_seq: std::collections::HashMap<u64, &Arrival> =
        arrivals.iter().filter_map(|a| Some((a.seq?, a))).collect();
    let rejected = stamps.rejected();
    let mut seen = std::collections::HashSet::new();
    let evidence = rejected
        .iter()
        .position(|seq| {
            let t = by_seq.get(seq).and_then(|a| template(&a.path));
            seen.insert(t);
            seen.len() == 2
        })
        .map(|i| i as u64 + 1);
    let after: Vec<Arrival> = arrivals
        .iter()
        .filter(|a| evidence.is_some_and(|e| a.rejected_before.unwrap_or(0) >= e))
        .cloned()
        .collect();
    let late = in_window(&after, &rejected, |_| true, LOG_RESOLUTION);
    println!(
        "nginx limit_req over two templates, 100 GETs: {}; evidence after the client's {:?}th 429, in-window arrivals after it: {}",
        f.line(),
        evidence,
        late.len()
    );
    assert!(evidence.is_some(), "429s on both templates: {}", f.line());
    assert_eq!(
        late.len(),
        0,
        "sent inside a window after the evidence: {late:?}"
    );
    assert_eq!(f.failed, 0, "failed requests: {}", f.line());
}
