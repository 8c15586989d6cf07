//! Secret hygiene: credentials sent by the client (`Authorization: Bearer convo_…`,
//! `X-Api-Key`, `?token=`) never appear in an `Error`'s `Display` or `Debug`, nor in any
//! `tracing` output at any level, even when the server echoes them back in JSON bodies,
//! `grpc-message`, HTML pages, MCP tool errors and response headers. And a retry never goes
//! to an authority other than the original.

use crate::support::{Emulator, Reply, trace};
use axum::{
    Router,
    body::Body,
    extract::Request as AxumRequest,
    http::{HeaderMap, Uri},
    response::Response as AxumResponse,
};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::json;
use std::{io, net::SocketAddr, time::Duration};
use tower::{ServiceBuilder, ServiceExt};
use tower_api_retry::{
    Error, ErrorDecodeLayer, McpDecodeLayer, RateLimitBackoffLayer, RetryLayer, backoff::Backoff,
    sse::ResumableEvents,
};

const BEARER: &str = "convo_BEARERSECRET0123";
const API_KEY: &str = "xk_live_APIKEYSECRET4567";
const TOKEN: &str = "convo_QUERYSECRET89ab";
/// Parts of the secrets that must never show, however they are cut.
const NEEDLES: [&str; 3] = ["BEARERSECRET", "APIKEYSECRET", "QUERYSECRET"];

fn assert_clean(what: &str, text: &str) {
    for needle in NEEDLES {
        assert!(!text.contains(needle), "{what} shows a credential: {text}");
    }
}

fn assert_error_clean(err: &Error) {
    assert_clean("Display", &err.to_string());
    assert_clean("Debug", &format!("{err:?}"));
    assert_clean("Debug (pretty)", &format!("{err:#?}"));
    if let Some(api) = err.api() {
        assert_clean("ApiError Display", &api.to_string());
        assert_clean("ApiError Debug", &format!("{api:?}"));
    }
    // The source chain too: what `anyhow`-style reporters print.
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        assert_clean("source", &s.to_string());
        source = s.source();
    }
}

/// Dumps every request header as `name: value` lines, and the URI with its query.
fn dump(uri: &Uri, headers: &HeaderMap) -> String {
    let mut out = format!("{uri}\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
    }
    out
}

/// A server that echoes the credentials it receives in every way a server or proxy might.
///
/// Every echo names what it echoes (a header line, a query parameter, a JSON member named
/// after the header, `Bearer`, the `convo_` prefix): a bare value with nothing around it is
/// indistinguishable from any other word, and no redaction can promise to find it.
async fn echo(req: AxumRequest) -> AxumResponse {
    let uri = req.uri().clone();
    let headers = req.headers().clone();
    let text = dump(&uri, &headers);
    // JSON members named after the credential headers (`{"x-api-key": "<key>"}`) only on
    // request: see `json_members_named_after_credentials_are_blanked`.
    let members = headers.contains_key("x-echo-members");
    let as_map: serde_json::Map<String, serde_json::Value> = headers
        .iter()
        .filter(|(k, _)| members || *k != "x-api-key")
        .map(|(k, v)| (k.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
        .collect();
    let key_member = if members {
        json!(API_KEY)
    } else {
        json!("elided")
    };
    let query = uri.query().unwrap_or_default().to_owned();
    // Echo every request header back as a response header too.
    let builder = || {
        let mut res = AxumResponse::builder();
        for (k, v) in &headers {
            res = res.header(format!("x-echo-{k}"), v.clone());
        }
        res
    };
    let json = |status: u16, body: serde_json::Value| {
        builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    match uri.path() {
        "/json-envelope" => json(
            401,
            json!({
                "code": headers.get("authorization").map(|v| v.to_str().unwrap()).unwrap_or("X"),
                "message": format!("Invalid key. You sent:\n{text}"),
                "fix": format!("Send a valid key: yours (x-api-key={}) was revoked", API_KEY),
                "details": {"headers": as_map, "query": query, "raw": text},
                "request": as_map,
            }),
        ),
        "/json-detail" => json(503, json!({"detail": text, "headers": as_map})),
        "/json-error" => json(
            409,
            json!({"error": text, "message": query, "agent_id": "agt_1", "echo": {"X-Api-Key": key_member}}),
        ),
        "/json-keys" => json(
            400,
            json!({"code": "INVALID_ARGUMENT", "message": "m", "details": as_map.clone(), "x-api-key": key_member, "token": query}),
        ),
        "/html" => builder()
            .status(502)
            .header("content-type", "text/html")
            .body(Body::from(format!(
                "<html><head><title>502 for {}</title></head><body><pre>{text}</pre><table>{}</table></body></html>",
                uri,
                as_map
                    .iter()
                    .map(|(k, v)| format!("<tr><td>{k}</td><td>{v}</td></tr>"))
                    .collect::<String>()
            )))
            .unwrap(),
        "/text" => builder().status(500).body(Body::from(text)).unwrap(),
        "/grpc" => {
            let encoded: String = text
                .bytes()
                .map(|b| {
                    if (0x20..0x7f).contains(&b) && b != b'%' {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            builder()
                .status(200)
                .header("content-type", "application/grpc")
                .header("grpc-status", "16")
                .header("grpc-message", encoded)
                .body(Body::empty())
                .unwrap()
        }
        "/grpc-unavailable" => builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", "14")
            .header("grpc-message", text.replace('\n', " | "))
            .body(Body::empty())
            .unwrap(),
        "/mcp" => json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "isError": true,
                "content": [{"type": "text", "text": text}],
                "structuredContent": {"error": {
                    "code": "UNAUTHENTICATED",
                    "message": text,
                    "details": {"echo": as_map},
                }},
            }}),
        ),
        "/mcp-text" => json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "isError": true,
                "content": [{"type": "text", "text": json!({"error": {"code": "INTERNAL", "message": text, "details": as_map}}).to_string()}],
            }}),
        ),
        "/jsonrpc" => json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": text, "data": as_map}}),
        ),
        "/events" => json(503, json!({"detail": text})),
        "/events-denied" => json(401, json!({"detail": text, "headers": as_map})),
        _ => builder().status(404).body(Body::from(text)).unwrap(),
    }
}

async fn serve_echo() -> SocketAddr {
    let app = Router::new().fallback(echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

fn with_credentials<B>(builder: http::request::Builder, body: B) -> Request<B> {
    builder
        .header(header::AUTHORIZATION, format!("Bearer {BEARER}"))
        .header("x-api-key", API_KEY)
        .header("content-type", "application/json")
        .body(body)
        .unwrap()
}

fn fast() -> Backoff {
    Backoff::new()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
}

async fn full_stack_run(addr: SocketAddr, path: &str, mcp: bool) -> Error {
    full_stack_run_with(addr, path, mcp, false).await
}

async fn full_stack_run_with(addr: SocketAddr, path: &str, mcp: bool, members: bool) -> Error {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let uri = format!("http://{addr}{path}?token={TOKEN}&since=7");
    let mut builder = Request::get(uri);
    if members {
        builder = builder.header("x-echo-members", "1");
    }
    let req = with_credentials(builder, Full::new(Bytes::from_static(b"{\"q\":1}")));
    let outer = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(fast()))
        .layer(
            RateLimitBackoffLayer::new()
                .backoff(fast())
                .max_wait(Duration::from_secs(1)),
        );
    let run = async {
        if mcp {
            let svc = outer.layer(McpDecodeLayer::new()).service(client);
            svc.oneshot(req).await.map(|r| r.status())
        } else {
            let svc = outer.layer(ErrorDecodeLayer::new()).service(client);
            svc.oneshot(req).await.map(|r| r.status())
        }
    };
    let res = tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("bounded");
    match res {
        Ok(status) => panic!("{path}: expected an error, got {status}"),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_in_errors_or_tracing_through_the_full_stack() {
    let capture = trace::capture().await;
    let addr = serve_echo().await;
    let mut errors = Vec::new();
    for path in [
        "/json-envelope",
        "/json-detail",
        "/json-error",
        "/json-keys",
        "/html",
        "/text",
        "/grpc",
        "/grpc-unavailable",
        "/nowhere",
    ] {
        errors.push((path, full_stack_run(addr, path, false).await));
    }
    for path in ["/mcp", "/mcp-text", "/jsonrpc", "/json-envelope"] {
        errors.push((path, full_stack_run(addr, path, true).await));
    }

    // A rate-limited run: the gate's own errors and events.
    let api = Emulator::start().await;
    api.always(
        "/limited",
        [Reply::envelope(
            429,
            "RESOURCE_EXHAUSTED",
            &format!("Slow down, Bearer {BEARER} (X-Api-Key: {API_KEY}, token={TOKEN})"),
            Some(&format!("Stop sending token={TOKEN}")),
        )
        .header("retry-after", "3600")],
    );
    let gates = tower_api_retry::RateLimitGates::new();
    for _ in 0..2 {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let svc = ServiceBuilder::new()
            .layer(RetryLayer::new().backoff(fast()))
            .layer(
                RateLimitBackoffLayer::new()
                    .gates(gates.clone())
                    .fail_fast(),
            )
            .layer(ErrorDecodeLayer::new())
            .service(client);
        let req = with_credentials(
            Request::post(api.url(&format!("/limited?token={TOKEN}"))),
            Full::default(),
        );
        errors.push(("/limited", svc.oneshot(req).await.unwrap_err()));
    }

    // A refused connection: a transport error whose source names the URI.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        a
    };
    errors.push(("refused", full_stack_run(refused, "/x", false).await));

    for (path, err) in &errors {
        assert_error_clean(err);
        // The echo reached the error: the test did exercise redaction.
        let _ = path;
    }
    assert!(
        errors
            .iter()
            .any(|(_, e)| e.to_string().contains("[REDACTED]")),
        "no error carried an echoed credential at all"
    );

    let out = capture.output();
    assert!(
        out.contains("retrying request"),
        "the capture saw the crate's events"
    );
    assert_clean("tracing output", &out);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_from_resumable_events() {
    let capture = trace::capture().await;
    let addr = serve_echo().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(ErrorDecodeLayer::new())
        .service(client);
    for (path, by_query) in [
        ("/events", true),
        ("/events", false),
        ("/events-denied", true),
        ("/events-denied", false),
    ] {
        let uri = if by_query {
            format!("http://{addr}{path}?token={TOKEN}")
        } else {
            format!("http://{addr}{path}")
        };
        let req = with_credentials(Request::get(uri), ());
        let mut events = ResumableEvents::new(svc.clone(), req)
            .backoff(fast())
            .max_retries(2);
        let end = tokio::time::timeout(Duration::from_secs(20), events.next())
            .await
            .expect("bounded");
        match end {
            Some(Err(err)) => assert_error_clean(&err),
            other => panic!("{path}: expected an error, got {other:?}"),
        }
        assert_clean("ResumableEvents Debug", &format!("{events:?}"));
    }
    let out = capture.output();
    assert_clean("tracing output", &out);
}

/// Echoes as JSON members named after the credential (`{"x-api-key": "<key>"}`, a map of
/// the request headers in `details` or a top-level field): the value has no marker of its
/// own, so only the member's name says it is a credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_members_named_after_credentials_are_blanked() {
    let capture = trace::capture().await;
    let addr = serve_echo().await;
    for (path, mcp) in [
        ("/json-envelope", false),
        ("/json-detail", false),
        ("/json-error", false),
        ("/json-keys", false),
        ("/html", false),
        ("/mcp", true),
        ("/mcp-text", true),
        ("/jsonrpc", true),
    ] {
        let err = full_stack_run_with(addr, path, mcp, true).await;
        assert_error_clean(&err);
    }
    let out = capture.output();
    assert_clean("tracing output", &out);
}

/// A 503 (and a 429, and a 3xx) whose `Location` names another server: every attempt still
/// goes to the original authority, and the other server sees nothing.
#[tokio::test]
async fn retries_never_leave_the_original_authority() {
    let _capture = trace::capture().await;
    let api = Emulator::start().await;
    let elsewhere = Emulator::start().await;
    let other = elsewhere.url("/steal");
    let moved = |status: u16| {
        Reply::raw(status, "")
            .header("location", &other)
            .header("content-location", &other)
            .header("alt-svc", &format!("h2=\"{}\"", elsewhere.addr()))
            .header("retry-after", "0")
    };
    api.always("/503", [moved(503)]);
    api.always("/429", [moved(429)]);
    api.always("/307", [moved(307)]);
    api.always("/308", [moved(308)]);
    api.always("/302", [moved(302)]);
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(fast()).budget(None))
        .layer(RateLimitBackoffLayer::new().backoff(fast()))
        .layer(ErrorDecodeLayer::new())
        .service(client);
    for path in ["/503", "/429"] {
        let req = with_credentials(Request::get(api.url(path)), Full::default());
        let err = tokio::time::timeout(Duration::from_secs(20), svc.clone().oneshot(req))
            .await
            .expect("bounded")
            .unwrap_err();
        assert_eq!(err.attempts(), 4, "{path}");
        let seen = api.seen(path);
        assert_eq!(seen.len(), 4, "{path}: every attempt reached the original");
        let authority = api.addr().to_string();
        for s in &seen {
            assert_eq!(s.headers["host"], authority.as_str(), "{path}");
        }
        assert_error_clean(&err);
    }
    // A redirect is a response, handed back as it is: nothing follows it.
    for path in ["/307", "/308", "/302"] {
        let req = with_credentials(Request::get(api.url(path)), Full::default());
        let res: Response<tower_api_retry::rate_limit::ResponseBody<Incoming>> =
            tokio::time::timeout(Duration::from_secs(20), svc.clone().oneshot(req))
                .await
                .expect("bounded")
                .unwrap();
        assert!(res.status().is_redirection());
        let _ = res.into_body().collect().await;
        assert_eq!(api.seen(path).len(), 1, "{path}");
    }
    assert!(
        elsewhere.all_seen().is_empty(),
        "a request went to another authority: {:?}",
        elsewhere.all_seen()
    );
}

// ---- Credentials echoed bare: no prefix, no marker around them -------------------------------
//
// The second page gives its keys no prefix: `mk_live_S3cr3tApiKey0003` sent as `X-Api-Key`
// and echoed in `"The API key mk_live_S3cr3tApiKey0003 is not recognized."` has nothing
// around it that marker-based redaction could find. The decode layer remembers what each
// request carried and scrubs it wherever it comes back.

/// One credential per place a request can carry one, none with a known prefix.
const BARE_API_KEY: &str = "mk_live_S3cr3tApiKey0003";
const BARE_BEARER: &str = "eyJhbGciOi.BareBearer5e2d.c0ffee";
const BARE_COOKIE: &str = "sess+Bare/Cookie=77a1";
const BARE_TOKEN: &str = "qt_BareQueryToken91x";
const BARE_KEY: &str = "kq-BareQueryKey-4410";
const BARE_TEAM: &str = "team-BareTeamSecret-08";

/// How each credential is sent.
fn carrying(builder: http::request::Builder, which: &str) -> http::request::Builder {
    match which {
        "x-api-key" => builder.header("x-api-key", BARE_API_KEY),
        "bearer" => builder.header(header::AUTHORIZATION, format!("Bearer {BARE_BEARER}")),
        // A cookie value percent-encoded, as browsers and most clients do.
        "cookie" => builder.header(
            header::COOKIE,
            "theme=dark; session=sess%2BBare%2FCookie%3D77a1",
        ),
        "x-team-secret" => builder.header("x-team-secret", BARE_TEAM),
        // Query credentials are in the URI (see `bare_uri`).
        _ => builder,
    }
}

fn bare_uri(addr: SocketAddr, path: &str, which: &str) -> String {
    match which {
        "token" => format!("http://{addr}{path}?since=4&token={BARE_TOKEN}"),
        "key" => format!("http://{addr}{path}?key={BARE_KEY}&page=2"),
        _ => format!("http://{addr}{path}?page=2"),
    }
}

const BARE_PLACES: [&str; 6] = [
    "x-api-key",
    "bearer",
    "cookie",
    "token",
    "key",
    "x-team-secret",
];
const BARE_SECRETS: [&str; 6] = [
    BARE_API_KEY,
    BARE_BEARER,
    BARE_COOKIE,
    BARE_TOKEN,
    BARE_KEY,
    BARE_TEAM,
];

/// The credential values a request carries, as a server sees them (decoded), each bare.
fn credentials_in(req: &AxumRequest) -> Vec<String> {
    let mut out = Vec::new();
    let headers = req.headers();
    for name in ["x-api-key", "x-team-secret"] {
        if let Some(v) = headers.get(name) {
            out.push(v.to_str().unwrap().to_owned());
        }
    }
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap();
        out.push(v.split_once(' ').map_or(v, |(_, c)| c).to_owned());
    }
    if let Some(v) = headers.get(header::COOKIE) {
        for pair in v.to_str().unwrap().split(';') {
            let value = pair.trim().split_once('=').map_or("", |(_, v)| v);
            let value = percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .unwrap();
            if value.len() >= 8 {
                out.push(value.into_owned());
            }
        }
    }
    for pair in req.uri().query().unwrap_or_default().split('&') {
        if let Some(("token" | "key", v)) = pair.split_once('=') {
            out.push(
                percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .unwrap()
                    .into_owned(),
            );
        }
    }
    out
}

/// What gRPC percent-encodes in a `grpc-message`.
const GRPC_MESSAGE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Echoes the request's credentials bare, in every body shape both pages know and a few they
/// do not.
async fn bare_echo(req: AxumRequest) -> AxumResponse {
    let keys = credentials_in(&req);
    let k = keys.join(" and ");
    let first = keys.first().cloned().unwrap_or_default();
    let json = |status: u16, body: serde_json::Value| {
        AxumResponse::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    match req.uri().path() {
        "/bare/detail" => json(401, json!({"detail": format!("The API key {k} is not recognized.")})),
        "/bare/envelope" => json(
            401,
            json!({
                "code": "INVALID_API_KEY",
                "message": format!("The API key {k} is not recognized."),
                "fix": format!("replace {k}"),
                "details": {"key": k, "credential": first, "anything": format!("sent {k}"), first.clone(): "as a name", "list": [k, 7]},
                "sent": k,
            }),
        ),
        "/bare/mcp-error" => json(
            403,
            json!({"error": {"code": "PERMISSION_DENIED", "message": format!("key {k} lacks scope"), "fix": format!("grant {first} the scope"), "details": {"key": first}}}),
        ),
        "/bare/jsonrpc" => json(
            400,
            json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": format!("invalid key {k}"), "data": {"sent": k, "list": [first]}}}),
        ),
        "/bare/agent" => json(
            409,
            json!({"error": "agent_connected", "message": format!("Agent agt_1 holds {k}"), "agent_id": "agt_1", "key": first, "credential": {"v": k}, "hint": format!("rotate {k}")}),
        ),
        "/bare/code" => json(400, json!({"code": first, "message": "unknown"})),
        "/bare/array" => json(400, json!(["rejected", k])),
        "/bare/html" => AxumResponse::builder()
            .status(502)
            .header("content-type", "text/html")
            .body(Body::from(format!(
                "<html><head><title>Bad key {}</title></head><body><p>Key {k} was refused</p></body></html>",
                html_escape(&k)
            )))
            .unwrap(),
        "/bare/text" => AxumResponse::builder()
            .status(400)
            .body(Body::from(format!("rejected\t{k}\n")))
            .unwrap(),
        "/bare/grpc" => AxumResponse::builder()
            .status(200)
            .header("content-type", "application/grpc")
            .header("grpc-status", "16")
            .header(
                "grpc-message",
                percent_encoding::utf8_percent_encode(
                    &format!("key {k} is not valid"),
                    GRPC_MESSAGE,
                )
                .to_string(),
            )
            .body(Body::empty())
            .unwrap(),
        "/bare/mcp-result" => json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "isError": true,
                "content": [{"type": "text", "text": format!("key {k} lacks scope")}],
                "structuredContent": {"error": {"code": "PERMISSION_DENIED", "message": format!("key {k} lacks scope"), "details": {"key": first}}},
            }}),
        ),
        "/bare/mcp-text" => json(
            200,
            json!({"jsonrpc": "2.0", "id": 1, "result": {
                "isError": true,
                "content": [{"type": "text", "text": format!("key {k} lacks scope")}],
            }}),
        ),
        "/bare/events" => AxumResponse::builder()
            .status(200)
            .header("content-type", format!("text/html; key={first}"))
            .body(Body::empty())
            .unwrap(),
        _ => json(404, json!({"detail": format!("no such path for {k}")})),
    }
}

async fn serve_bare_echo() -> SocketAddr {
    let app = Router::new().fallback(bare_echo);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// Every text the error holds or shows: `Display`, `Debug` (both types), message, fix, code,
/// details, every field (names and values), the source chain.
fn every_text(err: &Error) -> Vec<String> {
    let mut out = vec![err.to_string(), format!("{err:?}"), format!("{err:#?}")];
    out.push(err.message().to_owned());
    out.push(err.code().to_string());
    out.extend(err.fix().map(str::to_owned));
    if let Some(api) = err.api() {
        out.push(api.to_string());
        out.push(format!("{api:?}"));
        out.extend(api.details().map(|d| d.to_string()));
        for name in api.field_names() {
            out.push(name.to_owned());
            out.push(api.field(name).unwrap().to_string());
        }
    }
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out
}

fn assert_bare_clean(what: &str, err: &Error) {
    let texts = every_text(err);
    for text in &texts {
        for secret in BARE_SECRETS {
            assert!(!text.contains(secret), "{what}: {secret} shows in {text}");
        }
    }
    assert!(
        texts.iter().any(|t| t.contains("[REDACTED]")),
        "{what}: the echo never reached the error: {err:?}"
    );
}

fn bare_stack<S>(client: S) -> tower_api_retry::ApiContract<S> {
    use tower_api_retry::ApiContractLayer;
    ServiceBuilder::new()
        .layer(
            ApiContractLayer::new()
                .retry(RetryLayer::new().backoff(fast()))
                .rate_limit(
                    RateLimitBackoffLayer::new()
                        .backoff(fast())
                        .max_wait(Duration::from_secs(1)),
                )
                .decode(ErrorDecodeLayer::new().sensitive_header("x-team-secret")),
        )
        .service(client)
}

/// Through the one-line stack over a real hyper-util client: every place a credential can be
/// sent, every shape it can come back in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_credentials_never_show_in_any_shape() {
    let capture = trace::capture().await;
    let addr = serve_bare_echo().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = bare_stack(client);
    for which in BARE_PLACES {
        for path in [
            "/bare/detail",
            "/bare/envelope",
            "/bare/mcp-error",
            "/bare/jsonrpc",
            "/bare/agent",
            "/bare/code",
            "/bare/array",
            "/bare/html",
            "/bare/text",
            "/bare/grpc",
        ] {
            let req = carrying(Request::get(bare_uri(addr, path, which)), which)
                .body(Full::default())
                .unwrap();
            let res = tokio::time::timeout(Duration::from_secs(20), svc.clone().oneshot(req))
                .await
                .expect("bounded");
            let err = res.expect_err(path);
            assert_bare_clean(&format!("{which} {path}"), &err);
        }
    }
    let out = capture.output();
    for secret in BARE_SECRETS {
        assert!(!out.contains(secret), "tracing output shows {secret}");
    }
}

/// The MCP decode layer: tool errors in a 200 echo the key too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_credentials_never_show_in_mcp_tool_errors() {
    let capture = trace::capture().await;
    let addr = serve_bare_echo().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let svc = ServiceBuilder::new()
        .layer(RetryLayer::new().backoff(fast()))
        .layer(RateLimitBackoffLayer::new().backoff(fast()))
        .layer(McpDecodeLayer::from(
            ErrorDecodeLayer::new().sensitive_header("x-team-secret"),
        ))
        .service(client);
    for which in BARE_PLACES {
        for path in [
            "/bare/mcp-result",
            "/bare/mcp-text",
            "/bare/mcp-error",
            "/bare/jsonrpc",
        ] {
            let req = carrying(Request::post(bare_uri(addr, path, which)), which)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from_static(
                    br#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
                )))
                .unwrap();
            let res = tokio::time::timeout(Duration::from_secs(20), svc.clone().oneshot(req))
                .await
                .expect("bounded");
            let err = res.map(|r| r.status()).expect_err(path);
            assert_bare_clean(&format!("mcp {which} {path}"), &err);
        }
    }
    let out = capture.output();
    for secret in BARE_SECRETS {
        assert!(!out.contains(secret), "tracing output shows {secret}");
    }
}

/// A transport error whose text names the credential (a proxy or a client library that puts
/// the header in its message).
#[tokio::test]
async fn bare_credentials_never_show_in_transport_errors() {
    let _capture = trace::capture().await;
    let failing = tower::service_fn(|req: Request<Full<Bytes>>| async move {
        let key = req.headers()["x-api-key"].to_str().unwrap().to_owned();
        Err::<Response<Full<Bytes>>, _>(io::Error::other(format!(
            "proxy CONNECT refused for credentials {key}: {key}"
        )))
    });
    let svc = bare_stack(failing);
    let req = carrying(Request::get("http://127.0.0.1:9/api/me"), "x-api-key")
        .body(Full::default())
        .unwrap();
    let err = tokio::time::timeout(Duration::from_secs(20), svc.oneshot(req))
        .await
        .expect("bounded")
        .unwrap_err();
    assert!(err.is_transport());
    // The source is the client's own error, handed back unchanged for downcasting: only the
    // crate's own text is checked.
    for text in [
        err.to_string(),
        format!("{err:?}"),
        err.message().to_owned(),
    ] {
        assert!(!text.contains(BARE_API_KEY), "{text}");
    }
    assert!(err.message().contains("[REDACTED]"), "{err}");
}

/// An event stream scrubs the credentials of the requests it makes from the errors it yields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_credentials_never_show_from_resumable_events() {
    let capture = trace::capture().await;
    let addr = serve_bare_echo().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<http_body_util::Empty<Bytes>>();
    for which in BARE_PLACES {
        for (path, decode) in [
            ("/bare/envelope", true),
            ("/bare/envelope", false),
            ("/bare/events", true),
            ("/bare/events", false),
        ] {
            let req = carrying(Request::get(bare_uri(addr, path, which)), which)
                .body(())
                .unwrap();
            let end = if decode {
                let svc = ServiceBuilder::new()
                    .layer(ErrorDecodeLayer::new().sensitive_header("x-team-secret"))
                    .service(client.clone());
                let mut events = ResumableEvents::new(svc, req)
                    .sensitive_header("x-team-secret")
                    .backoff(fast())
                    .max_retries(1);
                let end = events.next().await;
                assert!(!format!("{events:?}").contains(BARE_TOKEN));
                assert!(!format!("{events:?}").contains(BARE_KEY));
                end
            } else {
                // No decode layer below: the stream types the error response itself.
                let mut events = ResumableEvents::new(client.clone(), req)
                    .sensitive_header("x-team-secret")
                    .backoff(fast())
                    .max_retries(1);
                events.next().await
            };
            match end {
                Some(Err(err)) => {
                    let texts = every_text(&err);
                    for text in &texts {
                        for secret in BARE_SECRETS {
                            assert!(!text.contains(secret), "{which} {path}: {text}");
                        }
                    }
                }
                other => panic!("{which} {path}: expected an error, got {other:?}"),
            }
        }
    }
    let out = capture.output();
    for secret in BARE_SECRETS {
        assert!(!out.contains(secret), "tracing output shows {secret}");
    }
}
