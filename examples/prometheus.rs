//! The crate's metrics in Prometheus's text format, after a short scripted exchange with an
//! API on loopback.
//!
//! ```sh
//! cargo run --example prometheus --features metrics
//! ```
//!
//! It installs `metrics-exporter-prometheus`'s recorder as the global recorder (no HTTP
//! listener: a real service would serve `handle.render()` on its `/metrics` endpoint, or let
//! the exporter's own listener do it), sends five requests through the documented stack over
//! a hyper-util client, and prints the scrape output. It takes about a second: one response
//! asks for `Retry-After: 1`.

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::Full;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use metrics_exporter_prometheus::PrometheusBuilder;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{ApiContractLayer, RetryLayer, RetryOverride, backoff::Backoff};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tower::BoxError> {
    // Histograms as buckets (the exporter's default renders summaries).
    let recorder = PrometheusBuilder::new()
        .set_buckets(&[0.005, 0.1, 1.0])?
        .build_recorder();
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder)?;
    tower_api_retry::metrics::describe();

    let api = emulated_api().await?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let layer = ApiContractLayer::new()
        .retry(RetryLayer::new().backoff(Backoff::new().base_delay(Duration::from_millis(5))));
    let mut client = ServiceBuilder::new().layer(layer).service(client);

    let scenario: [(Method, &str, Option<RetryOverride>); 5] = [
        // 503, 503, 200: retried twice, then a success.
        (Method::GET, "/api/spaces/s1", None),
        // 400: fix the request, sent once.
        (Method::POST, "/api/spaces/s1/events", None),
        // 429 with Retry-After: 1 closes the path's gate; the retry is its probe and opens it.
        (Method::GET, "/api/spaces/s1/search", None),
        // 503 to a POST: the server may have acted on it, so it is not sent again.
        (Method::POST, "/api/spaces/s1/messages", None),
        // A proxy's HTML 502, twice: undecodable; this request allows one retry only.
        (
            Method::GET,
            "/api/proxy",
            Some(RetryOverride::new().max_retries(1)),
        ),
    ];
    for (method, path, over) in scenario {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("{api}{path}"))
            .header("authorization", "Bearer sk_live_EXAMPLE_SECRET")
            .body(Full::default())?;
        if let Some(over) = over {
            request.extensions_mut().insert(over);
        }
        match client.ready().await?.call(request).await {
            Ok(res) => eprintln!("{method} {path}: {}", res.status()),
            Err(err) => eprintln!(
                "{method} {path}: {err} ({}, {} attempts{})",
                err.disposition(),
                err.attempts(),
                err.not_retried()
                    .map(|why| format!(", {}", why.as_str()))
                    .unwrap_or_default()
            ),
        }
    }

    println!("{}", handle.render());
    Ok(())
}

/// An API on loopback that answers each path from a script, then 200.
async fn emulated_api() -> std::io::Result<String> {
    type Script = Vec<(u16, &'static str, &'static str)>;
    let json = "application/json";
    let html = "text/html";
    let scripts: HashMap<&'static str, Script> = HashMap::from([
        (
            "/api/spaces/s1",
            vec![
                (503, json, r#"{"detail": "try again"}"#),
                (503, json, r#"{"detail": "try again"}"#),
            ],
        ),
        (
            "/api/spaces/s1/events",
            vec![(400, json, r#"{"detail": "kind is required"}"#)],
        ),
        (
            "/api/spaces/s1/search",
            vec![(429, json, r#"{"detail": "slow down"}"#)],
        ),
        (
            "/api/spaces/s1/messages",
            vec![(503, json, r#"{"detail": "try again"}"#)],
        ),
        (
            "/api/proxy",
            vec![(502, html, "<html><title>502 Bad Gateway</title></html>"); 2],
        ),
    ]);
    let scripts = Arc::new(Mutex::new(scripts));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let scripts = scripts.clone();
        async move {
            let next = scripts
                .lock()
                .unwrap()
                .get_mut(uri.path())
                .and_then(|script| (!script.is_empty()).then(|| script.remove(0)));
            let (status, content_type, body) = next.unwrap_or((200, json, "{}"));
            let mut response = axum::http::Response::builder()
                .status(status)
                .header("content-type", content_type);
            if status == 429 {
                response = response.header("retry-after", "1");
            }
            response.body(axum::body::Body::from(body)).unwrap()
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}
