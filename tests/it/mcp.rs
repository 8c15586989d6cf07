//! MCP mode against real servers through a real hyper-util client: `McpDecodeLayer::new()`
//! against an axum MCP-style endpoint, and the whole stack in one line
//! (`ApiContractLayer::mcp()`) against the emulated API.

use crate::support::{Emulator, Reply};
use axum::{Json, Router, body::Body, http::header, response::IntoResponse, routing::post};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{
    ApiContract, ApiContractLayer, Attempts, BodyShape, Disposition, Error, ErrorCode,
    ErrorDecodeLayer, McpDecodeLayer, RateLimitBackoffLayer, RateLimitGates, RetryLayer,
    backoff::Backoff, mcp::McpBody, rate_limit::ResponseBody,
};

/// A result big enough to pass the 1 KiB inspection limit used below.
fn big_text() -> String {
    "x".repeat(200 * 1024)
}

fn ordinary_result() -> String {
    // Odd spacing on purpose: the caller must get exactly these bytes back.
    r#"{"jsonrpc":"2.0", "id":1,"result":{"content":[{"type":"text","text":"hello"}],  "isError":false}}"#.to_owned()
}

async fn mcp(Json(req): Json<Value>) -> axum::response::Response {
    let id = req["id"].clone();
    let tool = req["params"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let json_response = |v: Value| Json(v).into_response();
    match tool.as_str() {
        "structured_error" => json_response(json!({
            "jsonrpc": "2.0", "id": id,
            "result": {
                "isError": true,
                "content": [{"type": "text", "text": "Permission denied"}],
                "structuredContent": {"error": {
                    "code": "PERMISSION_DENIED",
                    "message": "Write outside your subtree",
                    "fix": "Keep writes inside your task's subtree",
                    "details": {"nodeId": "n_42"}
                }}
            }
        })),
        "text_error" => json_response(json!({
            "jsonrpc": "2.0", "id": id,
            "result": {
                "isError": true,
                "content": [
                    {"type": "image", "data": "AAAA", "mimeType": "image/png"},
                    {"type": "text", "text": r#"{"error":{"code":"NOT_FOUND","message":"No node n_7","details":{"nodeId":"n_7"}}}"#}
                ]
            }
        })),
        "rate_limited" => (
            [(header::RETRY_AFTER, "7")],
            Json(json!({
                "jsonrpc": "2.0", "id": id,
                "result": {
                    "isError": true,
                    "structuredContent": {"error": {"code": "RESOURCE_EXHAUSTED", "message": "Too many requests"}}
                }
            })),
        )
            .into_response(),
        "invalid_params" => json_response(json!({
            "jsonrpc": "2.0", "id": id,
            "error": {"code": -32602, "message": "Input validation error: 'query' is required"}
        })),
        "plain_is_error" => json_response(json!({
            "jsonrpc": "2.0", "id": id,
            "result": {"isError": true, "content": [{"type": "text", "text": "something broke"}]}
        })),
        "ordinary" => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            ordinary_result(),
        )
            .into_response(),
        "oversized_streamed" => {
            let body = json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": big_text()}]}})
                .to_string();
            let chunks: Vec<Result<Bytes, std::io::Error>> = body
                .into_bytes()
                .chunks(700)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            (
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(futures_util::stream::iter(chunks)),
            )
                .into_response()
        }
        "oversized_announced" => (
            [(header::CONTENT_TYPE, "application/json")],
            json!({"jsonrpc": "2.0", "id": id, "result": {"content": [{"type": "text", "text": big_text()}]}})
                .to_string(),
        )
            .into_response(),
        "not_json" => (
            [(header::CONTENT_TYPE, "text/plain")],
            r#"{"result":{"isError":true,"structuredContent":{"error":{"code":"INTERNAL","message":"no"}}}}"#,
        )
            .into_response(),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn serve() -> String {
    let app = Router::new().route("/mcp", post(mcp));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/mcp")
}

fn call_tool(url: &str, name: &str) -> Request<Full<Bytes>> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}});
    Request::post(url)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

async fn call(
    layer: tower_api_retry::McpDecodeLayer,
    url: &str,
    tool: &str,
) -> Result<(http::response::Parts, Bytes), tower_api_retry::Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut svc = ServiceBuilder::new().layer(layer).service(client);
    let res = svc.ready().await?.call(call_tool(url, tool)).await?;
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    Ok((parts, bytes))
}

#[tokio::test]
async fn structured_content_error_is_typed() {
    let url = serve().await;
    let err = call(McpDecodeLayer::new(), &url, "structured_error")
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::PermissionDenied);
    assert_eq!(err.status(), Some(StatusCode::OK));
    assert_eq!(err.disposition(), Disposition::Forbidden);
    assert_eq!(err.message(), "Write outside your subtree");
    assert_eq!(err.fix(), Some("Keep writes inside your task's subtree"));
    let api = err.api().unwrap();
    assert_eq!(api.shape(), BodyShape::Mcp);
    assert_eq!(api.details().unwrap()["nodeId"], "n_42");
}

#[tokio::test]
async fn text_content_error_is_typed() {
    let url = serve().await;
    let err = call(McpDecodeLayer::new(), &url, "text_error")
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::NotFound);
    assert_eq!(err.disposition(), Disposition::FixRequest);
    assert_eq!(err.message(), "No node n_7");
    assert_eq!(err.api().unwrap().details().unwrap()["nodeId"], "n_7");
}

#[tokio::test]
async fn resource_exhausted_is_rate_limited_with_its_retry_after() {
    let url = serve().await;
    let err = call(McpDecodeLayer::new(), &url, "rate_limited")
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
    assert_eq!(err.disposition(), Disposition::RateLimited);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
}

#[tokio::test]
async fn jsonrpc_invalid_params_keeps_its_number() {
    let url = serve().await;
    let err = call(McpDecodeLayer::new(), &url, "invalid_params")
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::InvalidArgument);
    assert_eq!(err.disposition(), Disposition::FixRequest);
    let api = err.api().unwrap();
    assert_eq!(api.numeric_code(), Some(-32602));
    assert_eq!(api.shape(), BodyShape::JsonRpc);
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn is_error_without_the_documented_payload_is_still_an_error() {
    let url = serve().await;
    let err = call(McpDecodeLayer::new(), &url, "plain_is_error")
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Unknown);
    assert_eq!(err.message(), "something broke");
    assert_eq!(err.api().unwrap().shape(), BodyShape::Mcp);
}

#[tokio::test]
async fn ordinary_result_passes_byte_identical() {
    let url = serve().await;
    let (parts, body) = call(McpDecodeLayer::new(), &url, "ordinary").await.unwrap();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, ordinary_result().as_bytes());
}

#[tokio::test]
async fn oversized_success_bodies_arrive_intact() {
    let url = serve().await;
    let layer = McpDecodeLayer::from(ErrorDecodeLayer::new().max_body_bytes(1024));
    for tool in ["oversized_streamed", "oversized_announced"] {
        let (_, body) = call(layer.clone(), &url, tool).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], big_text(), "{tool}");
    }
}

#[tokio::test]
async fn non_json_success_is_untouched() {
    let url = serve().await;
    let (parts, body) = call(McpDecodeLayer::new(), &url, "not_json").await.unwrap();
    assert_eq!(parts.headers[header::CONTENT_TYPE], "text/plain");
    assert!(body.starts_with(br#"{"result":{"isError":true"#));
}

#[tokio::test]
async fn http_errors_are_decoded_as_in_the_plain_mode() {
    let url = serve().await;
    let err = call(McpDecodeLayer::new(), &url, "no_such_tool")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert_eq!(err.code(), &ErrorCode::NotFound);
}

#[tokio::test]
async fn the_plain_mode_lets_mcp_errors_through() {
    let url = serve().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client);
    let res = svc
        .ready()
        .await
        .unwrap()
        .call(call_tool(&url, "rate_limited"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

// ------------------------------------------------- the one-line stack in MCP mode

/// The first wait of the retry schedule (the documented 1 s, shrunk; doubling as documented).
const BASE: Duration = Duration::from_millis(20);

type HyperClient = Client<HttpConnector, Full<Bytes>>;

fn hyper_client() -> HyperClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn send<S, B>(svc: &mut S, req: Request<Full<Bytes>>) -> Result<Response<B>, Error>
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>, Error = Error>,
{
    svc.ready().await?.call(req).await
}

/// A transient tool error (in an HTTP 200) is retried by the one-line stack; the caller gets
/// the server's own bytes, in an `McpBody`.
#[tokio::test]
async fn api_contract_mcp_retries_a_transient_tool_error_and_hands_back_the_servers_bytes() {
    let api = Emulator::start().await;
    let result = Reply::mcp_result("found 3 nodes");
    api.script(
        "/mcp",
        [
            Reply::mcp_error("UNAVAILABLE", "The search index is restarting"),
            result.clone(),
        ],
    );
    // Every MCP call is a POST: this client declares its tool calls safe to repeat.
    let layer = ApiContractLayer::mcp().retry(
        RetryLayer::new()
            .backoff(Backoff::new().base_delay(BASE))
            .retry_non_idempotent(true),
    );
    // The service type names the mode; its responses carry `McpBody<Incoming>`.
    let mut svc: ApiContract<HyperClient, McpDecodeLayer> =
        ServiceBuilder::new().layer(layer).service(hyper_client());
    let res: Response<ResponseBody<McpBody<Incoming>>> =
        send(&mut svc, call_tool(&api.url("/mcp"), "search"))
            .await
            .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(Attempts::of(&res), 2);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, result.body());

    let seen = api.seen("/mcp");
    assert_eq!(seen.len(), 2);
    // The same call both times, no sooner than the schedule's first wait.
    assert_eq!(seen[0].body_sum, seen[1].body_sum);
    assert!(seen[1].at - seen[0].at >= BASE);
}

/// A rate-limited tool call closes its path's gate: nothing more reaches the server on that
/// path until `Retry-After` has passed, while other paths flow.
#[tokio::test]
async fn api_contract_mcp_closes_the_gate_of_a_rate_limited_tool_path() {
    let api = Emulator::start().await;
    api.script(
        "/mcp",
        [Reply::mcp_error("RESOURCE_EXHAUSTED", "Too many requests").header("retry-after", "7")],
    );
    api.script("/mcp/other", [Reply::mcp_result("ok")]);
    let gates = RateLimitGates::new();
    let layer = ApiContractLayer::mcp()
        // Return a long server wait to the caller instead of waiting it out.
        .retry(RetryLayer::new().max_retry_after(Duration::from_secs(1)))
        // Refuse at once at a closed gate instead of holding the request there.
        .rate_limit(
            RateLimitBackoffLayer::new()
                .gates(gates.clone())
                .fail_fast(),
        );
    let mut svc = ServiceBuilder::new().layer(layer).service(hyper_client());

    let err = send(&mut svc, call_tool(&api.url("/mcp"), "search"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::OK));
    assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
    assert_eq!(err.disposition(), Disposition::RateLimited);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(err.attempts(), 1);
    assert!(err.request_sent());

    let held = send(&mut svc, call_tool(&api.url("/mcp"), "search"))
        .await
        .unwrap_err();
    assert!(held.is_gate_closed(), "{held}");
    assert!(!held.request_sent());
    assert_eq!(api.seen("/mcp").len(), 1);

    let other = send(&mut svc, call_tool(&api.url("/mcp/other"), "search"))
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    assert_eq!(gates.len(), 1);
}

/// A tool error that needs the request fixed is surfaced at once, even by a client that
/// opted into retrying its tool calls.
#[tokio::test]
async fn api_contract_mcp_surfaces_a_permanent_tool_error_once() {
    let api = Emulator::start().await;
    api.always(
        "/mcp",
        [Reply::mcp_error(
            "PERMISSION_DENIED",
            "The write is outside your allowed subtree",
        )],
    );
    let layer = ApiContractLayer::mcp().retry(RetryLayer::new().retry_non_idempotent(true));
    let err = ServiceBuilder::new()
        .layer(layer)
        .service(hyper_client())
        .oneshot(call_tool(&api.url("/mcp"), "write"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::PermissionDenied);
    assert_eq!(err.disposition(), Disposition::Forbidden);
    assert_eq!(err.message(), "The write is outside your allowed subtree");
    assert_eq!(err.api().unwrap().shape(), BodyShape::Mcp);
    assert_eq!(err.attempts(), 1);
    assert_eq!(api.seen("/mcp").len(), 1);
}

/// `decode(..)` configures the decoder of either mode: an MCP one on `mcp()`, a plain one (and
/// the client's own body type) on `new()`.
#[tokio::test]
async fn api_contract_decode_configures_either_mode() {
    let url = serve().await;
    let layer = ApiContractLayer::mcp().decode(ErrorDecodeLayer::new().max_body_bytes(1024));
    let mut svc = ServiceBuilder::new().layer(layer).service(hyper_client());
    let err = send(&mut svc, call_tool(&url, "structured_error"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::PermissionDenied);
    // Larger than the inspection limit: passed through whole.
    let res = send(&mut svc, call_tool(&url, "oversized_streamed"))
        .await
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["result"]["content"][0]["text"], big_text());

    let plain = ApiContractLayer::new().decode(ErrorDecodeLayer::new());
    let mut svc: ApiContract<HyperClient> =
        ServiceBuilder::new().layer(plain).service(hyper_client());
    let res: Response<ResponseBody<Incoming>> = send(&mut svc, call_tool(&url, "structured_error"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
