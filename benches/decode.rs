//! Typed decoding of every documented error shape, next to a plain
//! `serde_json::from_slice::<serde_json::Value>` of the same bytes (the baseline), in the same
//! run. Each shape is one criterion group with the two functions side by side; the target is
//! typed decode ≤ 0.5 × the `Value` parse.
//!
//! ```sh
//! cargo bench --bench decode -- --warm-up-time 1 --measurement-time 3
//! ```

#![allow(missing_docs)] // criterion's macros generate undocumented functions

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, StatusCode};
use std::hint::black_box;
use tower_api_retry::ApiError;

const SHAPES: &[(&str, u16, &str)] = &[
    ("detail", 409, r#"{"detail": "Space is not active"}"#),
    (
        "structured_409",
        409,
        r#"{"error": "agent_connected", "message": "Agent agt_01HZX3 is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.", "agent_id": "agt_01HZX3"}"#,
    ),
    (
        "envelope",
        401,
        r#"{"code": "INVALID_API_KEY", "message": "The API key you sent is not recognized.", "fix": "Generate a new key in Settings → API Keys and update your config.", "details": {"keyPrefix": "mk_live"}}"#,
    ),
    (
        "mcp",
        403,
        r#"{"error": {"code": "PERMISSION_DENIED", "message": "Your key lacks the scope for this action.", "fix": "Use a key with the right scope; keep writes inside your task's subtree.", "details": {"nodeId": "node_42", "fieldName": "parentId"}}}"#,
    ),
    (
        "jsonrpc",
        400,
        r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Input validation error: 'title' is required", "data": {"fieldName": "title"}}}"#,
    ),
    (
        "junk_html",
        502,
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n",
    ),
];

fn decode(c: &mut Criterion) {
    let headers = HeaderMap::new();
    for &(name, status, body) in SHAPES {
        let status = StatusCode::from_u16(status).unwrap();
        let bytes = body.as_bytes();
        let mut group = c.benchmark_group(name);
        group.bench_function("ApiError::decode", |b| {
            b.iter(|| ApiError::decode(black_box(status), black_box(&headers), black_box(bytes)))
        });
        group.bench_function("serde_json::Value", |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes)))
        });
        group.finish();
    }
}

criterion_group!(benches, decode);
criterion_main!(benches);
