//! `ErrorDecodeLayer::mcp()` against a real axum MCP-style endpoint, through a real
//! hyper-util client.

use axum::{Json, Router, body::Body, http::header, response::IntoResponse, routing::post};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};
use std::time::Duration;
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_retry::{BodyShape, Disposition, ErrorCode, ErrorDecodeLayer};

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
    layer: tower_api_retry::decode::McpDecodeLayer,
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
    let err = call(ErrorDecodeLayer::mcp(), &url, "structured_error")
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
    let err = call(ErrorDecodeLayer::mcp(), &url, "text_error")
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
    let err = call(ErrorDecodeLayer::mcp(), &url, "rate_limited")
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
    let err = call(ErrorDecodeLayer::mcp(), &url, "invalid_params")
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
    let err = call(ErrorDecodeLayer::mcp(), &url, "plain_is_error")
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Unknown);
    assert_eq!(err.message(), "something broke");
    assert_eq!(err.api().unwrap().shape(), BodyShape::Mcp);
}

#[tokio::test]
async fn ordinary_result_passes_byte_identical() {
    let url = serve().await;
    let (parts, body) = call(ErrorDecodeLayer::mcp(), &url, "ordinary")
        .await
        .unwrap();
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, ordinary_result().as_bytes());
}

#[tokio::test]
async fn oversized_success_bodies_arrive_intact() {
    let url = serve().await;
    let layer = ErrorDecodeLayer::mcp().max_body_bytes(1024);
    for tool in ["oversized_streamed", "oversized_announced"] {
        let (_, body) = call(layer.clone(), &url, tool).await.unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["result"]["content"][0]["text"], big_text(), "{tool}");
    }
}

#[tokio::test]
async fn non_json_success_is_untouched() {
    let url = serve().await;
    let (parts, body) = call(ErrorDecodeLayer::mcp(), &url, "not_json")
        .await
        .unwrap();
    assert_eq!(parts.headers[header::CONTENT_TYPE], "text/plain");
    assert!(body.starts_with(br#"{"result":{"isError":true"#));
}

#[tokio::test]
async fn http_errors_are_decoded_as_in_the_plain_mode() {
    let url = serve().await;
    let err = call(ErrorDecodeLayer::mcp(), &url, "no_such_tool")
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
