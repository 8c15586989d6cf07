//! Cost of MCP mode and of SSE parsing, each against a baseline measured in the same run.
//!
//! ```sh
//! cargo bench --bench streams -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! - `mcp/*`: one call answered with a 1 KiB JSON tool result, body collected by the
//!   caller: no layer (`bare`), the plain [`ErrorDecodeLayer`] and its MCP mode (`mcp`,
//!   which buffers and scans the JSON), and the MCP mode with a `text/plain` result
//!   (`mcp_not_json`, passed through unread).
//! - `sse/*`: 1,000 events (~75 KB) in 4 KiB chunks: collecting the raw body
//!   (`collect_body`) against parsing it with `ResumableEvents` (`resumable_events`).

#![allow(missing_docs)] // criterion_group! generates an undocumented fn

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::StreamExt;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use std::{convert::Infallible, hint::black_box};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{ErrorDecodeLayer, McpDecodeLayer, ResumableEvents};

type Req = Request<Full<Bytes>>;

fn tool_result() -> Bytes {
    let text = "x".repeat(900);
    Bytes::from(format!(
        r#"{{"jsonrpc":"2.0","id":1,"result":{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}}}"#
    ))
}

fn server(
    content_type: &'static str,
) -> impl Service<Req, Response = Response<Full<Bytes>>, Error = Infallible, Future: Send> + Clone {
    let body = tool_result();
    tower::service_fn(move |_req: Req| {
        let body = body.clone();
        async move {
            Ok::<_, Infallible>(
                Response::builder()
                    .header("content-type", content_type)
                    .body(Full::new(body))
                    .unwrap(),
            )
        }
    })
}

async fn call<S, B>(svc: S) -> usize
where
    S: Service<Req, Response = Response<B>>,
    S::Error: std::fmt::Debug,
    B: http_body::Body,
    B::Error: std::fmt::Debug,
{
    let res = svc.oneshot(Request::new(Full::default())).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes().len()
}

fn mcp(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("mcp");
    let json = "application/json";
    group.bench_function("bare", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(call(server(json)).await) })
    });
    group.bench_function("plain", |b| {
        b.to_async(&rt).iter(|| async {
            let svc = ServiceBuilder::new()
                .layer(ErrorDecodeLayer::new())
                .service(server(json));
            black_box(call(svc).await)
        })
    });
    group.bench_function("mcp", |b| {
        b.to_async(&rt).iter(|| async {
            let svc = ServiceBuilder::new()
                .layer(McpDecodeLayer::new())
                .service(server(json));
            black_box(call(svc).await)
        })
    });
    group.bench_function("mcp_not_json", |b| {
        b.to_async(&rt).iter(|| async {
            let svc = ServiceBuilder::new()
                .layer(McpDecodeLayer::new())
                .service(server("text/plain"));
            black_box(call(svc).await)
        })
    });
    group.finish();
}

type SseBody =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

fn sse_body(chunks: &[Bytes]) -> SseBody {
    let frames: Vec<_> = chunks.iter().cloned().map(|c| Ok(Frame::data(c))).collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

fn sse(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut text = Vec::new();
    for i in 0..1000 {
        text.extend_from_slice(
            format!("id: {i}\nevent: update\ndata: {{\"n\":{i},\"payload\":\"some text here\"}}\ndata: more\n\n")
                .as_bytes(),
        );
    }
    let chunks: Vec<Bytes> = text.chunks(4096).map(Bytes::copy_from_slice).collect();
    let mut group = c.benchmark_group("sse");
    group.bench_function("collect_body", |b| {
        b.to_async(&rt).iter(|| async {
            let body = sse_body(&chunks);
            black_box(BodyExt::collect(body).await.unwrap().to_bytes().len())
        })
    });
    group.bench_function("resumable_events", |b| {
        b.to_async(&rt).iter(|| async {
            let chunks = chunks.clone();
            let svc = tower::service_fn(move |_req: Request<Empty<Bytes>>| {
                let body = sse_body(&chunks);
                async move { Ok::<_, Infallible>(Response::new(body)) }
            });
            let template = Request::get("http://h/events").body(()).unwrap();
            let events = ResumableEvents::new(svc, template).take(1000);
            black_box(events.count().await)
        })
    });
    group.finish();
}

criterion_group!(benches, mcp, sse);
criterion_main!(benches);
