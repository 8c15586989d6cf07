//! One declared code changes what every layer does: decoding, retrying, the rate-limit gate,
//! the tower-http classifier, server-sent events and MCP tool errors.

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
};
use tower::{Layer, ServiceBuilder, ServiceExt, service_fn, util::BoxCloneService};
use tower_api_retry::{
    ApiContractLayer, Disposition, ErrorContract, ErrorDecodeLayer, McpDecodeLayer,
    RateLimitBackoffLayer, ResumableEvents,
};

type Body = Full<Bytes>;

/// The codes of an API that is not the one this crate's table describes.
fn contract() -> ErrorContract {
    ErrorContract::new()
        .code("QUOTA_EXCEEDED", Disposition::RateLimited)
        .code("TEMPORARILY_UNAVAILABLE", Disposition::Retry)
        .code("ACCOUNT_LOCKED", Disposition::NeedsHuman)
}

fn error(status: u16, code: &str, headers: &[(&str, &str)]) -> Response<Body> {
    let mut res = Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (name, value) in headers {
        res = res.header(*name, *value);
    }
    let body = format!(r#"{{"error": {{"code": "{code}", "message": "answered {code}"}}}}"#);
    res.body(Full::new(Bytes::from(body))).unwrap()
}

fn ok(content_type: &str, body: &'static str) -> Response<Body> {
    Response::builder()
        .header("content-type", content_type)
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// A server that answers from a script (then `200 OK`), recording the paths it was sent.
#[derive(Clone, Default)]
struct Script {
    answers: Arc<Mutex<VecDeque<Response<Body>>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Script {
    fn new(answers: impl IntoIterator<Item = Response<Body>>) -> Script {
        let script = Script::default();
        script.answers.lock().unwrap().extend(answers);
        script
    }

    fn service(&self) -> BoxCloneService<Request<Body>, Response<Body>, Infallible> {
        let script = self.clone();
        BoxCloneService::new(service_fn(move |req: Request<Body>| {
            let script = script.clone();
            async move {
                script
                    .seen
                    .lock()
                    .unwrap()
                    .push(req.uri().path().to_owned());
                let next = script.answers.lock().unwrap().pop_front();
                Ok::<_, Infallible>(next.unwrap_or_else(|| ok("text/plain", "fine")))
            }
        }))
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::default()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_declared_code_changes_what_every_layer_does() {
    // Decode: a 400 QUOTA_EXCEEDED is a rate limit, not a request to fix.
    let script = Script::new([error(400, "QUOTA_EXCEEDED", &[])]);
    let decode = ErrorDecodeLayer::new()
        .contract(contract())
        .layer(script.service());
    let err = decode.oneshot(get("/v1/reports")).await.unwrap_err();
    assert_eq!(err.code().as_str(), "QUOTA_EXCEEDED");
    assert_eq!(err.disposition(), Disposition::RateLimited);
    let script = Script::new([error(400, "QUOTA_EXCEEDED", &[])]);
    let builtin = ErrorDecodeLayer::new().layer(script.service());
    let err = builtin.oneshot(get("/v1/reports")).await.unwrap_err();
    assert_eq!(
        err.disposition(),
        Disposition::FixRequest,
        "unknown code: by status"
    );

    // Retry: a POST answered QUOTA_EXCEEDED was turned away unprocessed, and is sent again
    // after its Retry-After.
    let stack = || ApiContractLayer::new().contract(contract());
    let script = Script::new([error(400, "QUOTA_EXCEEDED", &[("retry-after", "2")])]);
    let client = ServiceBuilder::new()
        .layer(stack())
        .service(script.service());
    let post = Request::builder()
        .method(Method::POST)
        .uri("/v1/orders")
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = client.oneshot(post).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.seen(), ["/v1/orders", "/v1/orders"]);
    // ...and ACCOUNT_LOCKED on a 503 is for a human: sent once.
    let script = Script::new([error(503, "ACCOUNT_LOCKED", &[])]);
    let client = ServiceBuilder::new()
        .layer(stack())
        .service(script.service());
    let err = client.oneshot(get("/v1/me")).await.unwrap_err();
    assert_eq!(err.disposition(), Disposition::NeedsHuman);
    assert_eq!((err.attempts(), script.seen().len()), (1, 1));
    // ...while TEMPORARILY_UNAVAILABLE on a 400 is retried.
    let script = Script::new([error(400, "TEMPORARILY_UNAVAILABLE", &[])]);
    let client = ServiceBuilder::new()
        .layer(stack())
        .service(script.service());
    client.oneshot(get("/v1/me")).await.unwrap();
    assert_eq!(script.seen().len(), 2);

    // Gate: after QUOTA_EXCEEDED the same path is held, another flows. The gate reads the
    // verdict of the layer that decoded the answer.
    let script = Script::new([error(400, "QUOTA_EXCEEDED", &[("retry-after", "60")])]);
    let gated = RateLimitBackoffLayer::new().fail_fast().layer(
        ErrorDecodeLayer::new()
            .contract(contract())
            .layer(script.service()),
    );
    let err = gated.clone().oneshot(get("/v1/reports")).await.unwrap_err();
    assert!(!err.is_gate_closed());
    let held = gated.clone().oneshot(get("/v1/reports")).await.unwrap_err();
    assert!(held.is_gate_closed() && !held.request_sent(), "{held}");
    gated.clone().oneshot(get("/v1/other")).await.unwrap();
    assert_eq!(script.seen(), ["/v1/reports", "/v1/other"]);
    // The built-in contract leaves the path open on an unknown code at a 400.
    let script = Script::new([error(400, "QUOTA_EXCEEDED", &[("retry-after", "60")])]);
    let open = RateLimitBackoffLayer::new()
        .fail_fast()
        .layer(ErrorDecodeLayer::new().layer(script.service()));
    open.clone().oneshot(get("/v1/reports")).await.unwrap_err();
    open.clone().oneshot(get("/v1/reports")).await.unwrap();

    // Server-sent events: a connection answered TEMPORARILY_UNAVAILABLE is made again.
    let script = Script::new([
        error(400, "TEMPORARILY_UNAVAILABLE", &[]),
        ok("text/event-stream", "id: 1\ndata: hello\n\n"),
    ]);
    let events = ResumableEvents::new(
        ErrorDecodeLayer::new()
            .contract(contract())
            .layer(script.service()),
        Request::get("/v1/events").body(()).unwrap(),
    );
    let mut events = std::pin::pin!(events);
    let first = events.next().await.unwrap().unwrap();
    assert_eq!(first.data, "hello");
    assert_eq!(script.seen(), ["/v1/events", "/v1/events"]);
    let script = Script::new([error(400, "TEMPORARILY_UNAVAILABLE", &[])]);
    let events = ResumableEvents::new(
        ErrorDecodeLayer::new().layer(script.service()),
        Request::get("/v1/events").body(()).unwrap(),
    );
    let mut events = std::pin::pin!(events);
    let err = events.next().await.unwrap().unwrap_err();
    assert_eq!(
        err.disposition(),
        Disposition::FixRequest,
        "built-in: ends the stream"
    );

    // MCP: a tool error QUOTA_EXCEEDED inside a 200 is a rate limit.
    let tool_error = r#"{"jsonrpc": "2.0", "id": 1, "result": {"isError": true, "content": [],
        "structuredContent": {"error": {"code": "QUOTA_EXCEEDED", "message": "over"}}}}"#;
    let script = Script::new([ok("application/json", tool_error)]);
    let mcp =
        McpDecodeLayer::from(ErrorDecodeLayer::new().contract(contract())).layer(script.service());
    let err = mcp.oneshot(get("/mcp")).await.unwrap_err();
    assert_eq!(err.code().as_str(), "QUOTA_EXCEEDED");
    assert_eq!(err.disposition(), Disposition::RateLimited);
}

#[cfg(feature = "tower-http")]
#[tokio::test(start_paused = true)]
async fn the_tower_http_classifier_reads_the_same_contract() {
    use tower_api_retry::integrations::tower_http::{ContractClassifier, FailureClass};

    let seen = Arc::new(Mutex::new(Vec::new()));
    let classify = |contract: ErrorContract, seen: Arc<Mutex<Vec<FailureClass>>>| {
        let script = Script::new([error(400, "QUOTA_EXCEEDED", &[])]);
        ServiceBuilder::new()
            .layer(
                ContractClassifier::trace_layer(contract.clone()).on_failure(
                    move |class: FailureClass, _: std::time::Duration, _: &tracing::Span| {
                        seen.lock().unwrap().push(class);
                    },
                ),
            )
            // The classifier reads the verdict of the layer that decoded the error.
            .layer(ErrorDecodeLayer::new().contract(contract))
            .service(script.service())
    };
    classify(contract(), seen.clone())
        .oneshot(get("/v1/reports"))
        .await
        .err()
        .expect("a decoded error");
    classify(ErrorContract::new(), seen.clone())
        .oneshot(get("/v1/reports"))
        .await
        .err()
        .expect("a decoded error");
    let seen = seen.lock().unwrap();
    let dispositions: Vec<_> = seen.iter().map(FailureClass::disposition).collect();
    assert_eq!(
        dispositions,
        [Disposition::RateLimited, Disposition::FixRequest]
    );
    assert_eq!(seen[0].code().as_str(), "QUOTA_EXCEEDED");
}
