//! Unit and property tests of `ApiError::decode`: one test per body shape and header the
//! decoder understands, with the pages' own examples. The layer itself is tested against a
//! real server in `tests/decode.rs`.

use super::*;
use crate::{BodyShape, Disposition, Error, retry_after::MAX_HINT, text::safe::MAX_TEXT_CHARS};
use http::HeaderValue;
use serde_json::json;
use std::time::{Duration, SystemTime};

fn status(n: u16) -> StatusCode {
    StatusCode::from_u16(n).unwrap()
}

fn decode(n: u16, body: &str) -> ApiError {
    ApiError::decode(status(n), &HeaderMap::new(), body.as_bytes())
}

fn with_headers(n: u16, headers: &[(&str, &str)], body: &[u8]) -> ApiError {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.append(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    ApiError::decode(status(n), &map, body)
}

// ---- 1. {"detail": "..."} with any status ----------------------------------------------------

#[test]
fn detail_space_not_active_409() {
    // Page 000, "Space not active".
    let err = decode(409, r#"{"detail": "Space is not active"}"#);
    assert_eq!(err.status(), StatusCode::CONFLICT);
    assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
    assert_eq!(err.message(), "Space is not active");
    assert_eq!(err.fix(), None);
    assert_eq!(err.shape(), BodyShape::Detail);
    assert_eq!(err.disposition(), Disposition::FixRequest);
    assert_eq!(err.retry_after(), None);
}

#[test]
fn detail_tenant_suspended_403() {
    // Page 000, "Tenant suspended" (spelled without spaces, as the page does).
    let err = decode(403, r#"{"detail":"Tenant is suspended"}"#);
    assert_eq!(err.code(), &ErrorCode::PermissionDenied);
    assert_eq!(err.message(), "Tenant is suspended");
    assert_eq!(err.disposition(), Disposition::Forbidden);
    assert!(!Error::from(err).is_retryable());
}

#[test]
fn detail_with_any_status_takes_its_code_from_the_one_status_mapping() {
    // Every status of page 000's table, and then every 4xx/5xx.
    let table = [
        (400, ErrorCode::InvalidArgument, Disposition::FixRequest),
        (401, ErrorCode::Unauthenticated, Disposition::Reauthenticate),
        (403, ErrorCode::PermissionDenied, Disposition::Forbidden),
        (404, ErrorCode::NotFound, Disposition::FixRequest),
        (409, ErrorCode::FailedPrecondition, Disposition::FixRequest),
        (429, ErrorCode::ResourceExhausted, Disposition::RateLimited),
        (500, ErrorCode::Internal, Disposition::Retry),
        (503, ErrorCode::Unavailable, Disposition::Retry),
    ];
    for (n, code, disposition) in table {
        let err = decode(n, r#"{"detail": "Human-readable error message"}"#);
        assert_eq!((err.code(), err.disposition()), (&code, disposition), "{n}");
        assert_eq!(err.message(), "Human-readable error message");
    }
    for n in 400..600 {
        let err = decode(n, r#"{"detail": "x"}"#);
        assert_eq!(err.code(), &ErrorCode::from_status(status(n)), "{n}");
        assert_eq!(err.shape(), BodyShape::Detail);
    }
}

#[test]
fn detail_as_a_validation_list_keeps_the_first_message_and_the_list() {
    let err = decode(
        422,
        r#"{"detail": [{"loc": ["body", "title"], "msg": "field required", "type": "value_error.missing"}]}"#,
    );
    assert_eq!(err.code(), &ErrorCode::InvalidArgument);
    assert_eq!(err.message(), "field required");
    assert_eq!(err.details().unwrap()[0]["loc"][1], "title");
}

// ---- 2. The structured 409 agent_connected ---------------------------------------------------

const AGENT_CONNECTED: &str = r#"{
  "error": "agent_connected",
  "message": "Agent agt_... is currently connected to another installation. Release it first or retry with X-Force-Rotate: true.",
  "agent_id": "agt_..."
}"#;

#[test]
fn structured_409_agent_connected() {
    let err = decode(409, AGENT_CONNECTED);
    assert_eq!(err.code(), &ErrorCode::AgentConnected);
    assert_eq!(err.code().as_str(), "agent_connected");
    assert_eq!(err.shape(), BodyShape::Structured);
    assert_eq!(
        err.message(),
        "Agent agt_... is currently connected to another installation. Release it first or retry with X-Force-Rotate: true."
    );
    assert_eq!(err.field("agent_id"), Some(&json!("agt_...")));
    assert_eq!(
        err.field("error"),
        None,
        "the code is not repeated as a field"
    );
    assert_eq!(err.disposition(), Disposition::FixRequest);
    assert!(
        !Error::from(err.clone()).is_retryable(),
        "never forced on its own"
    );

    // The remedies of the page, visible on the error.
    let remedy = err.agent_connected().expect("agent_connected remedy");
    assert_eq!(remedy.agent_id(), Some("agt_..."));
    assert_eq!(
        remedy.release_path().as_deref(),
        Some("/api/actors/agt_.../release")
    );
    let mut rotate = http::Request::post("/api/actors/agt_.../rotate-key")
        .body(())
        .unwrap();
    assert!(
        !rotate
            .headers()
            .contains_key(crate::builtin::X_FORCE_ROTATE)
    );
    remedy.force_rotate(&mut rotate);
    assert_eq!(rotate.headers()["x-force-rotate"], "true");

    // Any other error has no such remedy.
    assert!(
        decode(409, r#"{"detail": "Space is not active"}"#)
            .agent_connected()
            .is_none()
    );
}

#[test]
fn release_path_escapes_only_what_a_path_segment_needs() {
    let err = decode(
        409,
        r#"{"error":"agent_connected","message":"m","agent_id":"agt_1/../x y"}"#,
    );
    let remedy = err.agent_connected().unwrap();
    assert_eq!(
        remedy.release_path().as_deref(),
        Some("/api/actors/agt_1%2F..%2Fx%20y/release")
    );
    let no_id = decode(409, r#"{"error":"agent_connected","message":"m"}"#);
    assert_eq!(no_id.agent_connected().unwrap().release_path(), None);
}

// ---- 3. The envelope {code, message, fix, details} --------------------------------------------

#[test]
fn envelope_invalid_api_key() {
    // Page 004, "The Error Envelope".
    let err = decode(
        401,
        r#"{
"code": "INVALID_API_KEY",
"message": "The API key you sent is not recognized.",
"fix": "Generate a new key in Settings → API Keys and update your config."
}"#,
    );
    assert_eq!(err.code(), &ErrorCode::InvalidApiKey);
    assert_eq!(err.message(), "The API key you sent is not recognized.");
    assert_eq!(
        err.fix(),
        Some("Generate a new key in Settings → API Keys and update your config.")
    );
    assert_eq!(err.details(), None);
    assert_eq!(err.shape(), BodyShape::Envelope);
    assert_eq!(err.disposition(), Disposition::Reauthenticate);
    let shown = Error::from(err).to_string();
    assert_eq!(
        shown,
        "INVALID_API_KEY: The API key you sent is not recognized. (fix: Generate a new key in Settings → API Keys and update your config.)"
    );
}

#[test]
fn envelope_details_and_other_fields() {
    let err = decode(
        400,
        r#"{"code": "INVALID_ARGUMENT", "message": "title is required", "fix": "Send a title", "details": {"fieldName": "title", "nodeId": "n_1"}, "requestId": "req_9"}"#,
    );
    assert_eq!(err.code(), &ErrorCode::InvalidArgument);
    assert_eq!(
        err.details(),
        Some(&json!({"fieldName": "title", "nodeId": "n_1"}))
    );
    assert_eq!(err.field("requestId"), Some(&json!("req_9")));
    assert_eq!(err.field_names().collect::<Vec<_>>(), ["requestId"]);
}

#[test]
fn envelope_every_code_of_both_tables_at_its_status() {
    // Page 004: the RPC table (any status) and the auth & subscription table (its status).
    use Disposition::*;
    let rows: &[(&str, u16, Disposition)] = &[
        ("INVALID_ARGUMENT", 400, FixRequest),
        ("NOT_FOUND", 404, FixRequest),
        ("ALREADY_EXISTS", 409, FixRequest),
        ("PERMISSION_DENIED", 403, Forbidden),
        ("UNAUTHENTICATED", 401, Reauthenticate),
        ("RESOURCE_EXHAUSTED", 429, RateLimited),
        ("FAILED_PRECONDITION", 409, FixRequest),
        ("UNAVAILABLE", 503, Retry),
        ("DEADLINE_EXCEEDED", 504, Retry),
        ("INTERNAL", 500, Retry),
        ("UNKNOWN", 500, Retry),
        ("INVALID_API_KEY", 401, Reauthenticate),
        ("KEY_REVOKED", 401, Reauthenticate),
        ("KEY_AUTO_DISABLED", 401, Reauthenticate),
        ("KEY_EXPIRED", 401, Reauthenticate),
        ("AGENT_DISCONNECTED_CODING_TOOL", 401, Reauthenticate),
        ("AGENT_DISCONNECTED_AUTOMATED", 401, Reauthenticate),
        ("AGENT_BLOCKED", 401, NeedsHuman),
        ("SUBSCRIPTION_CANCELED", 409, NeedsHuman),
        ("NO_ACTIVE_USER", 409, NeedsHuman),
        ("KEY_ROTATION_FAILED", 422, NeedsHuman),
        ("REFRESH_IN_PROGRESS", 503, Retry),
        ("AGENT_KEY_CONFLICT", 403, Forbidden),
        ("TRUST_REQUIRED", 403, NeedsHuman),
    ];
    for &(code, n, disposition) in rows {
        let body = format!(r#"{{"code": "{code}", "message": "m"}}"#);
        let err = decode(n, &body);
        assert_eq!(err.code().as_str(), code);
        assert!(
            !matches!(err.code(), ErrorCode::Other(_)),
            "{code} is known"
        );
        assert_eq!(err.disposition(), disposition, "{code} at {n}");
        let err = Error::from(err);
        assert_eq!(err.is_retryable(), disposition.is_retryable(), "{code}");
    }
}

#[test]
fn refresh_in_progress_carries_retry_after() {
    let err = with_headers(
        503,
        &[("retry-after", "2")],
        br#"{"code":"REFRESH_IN_PROGRESS","message":"Another credential refresh is already running"}"#,
    );
    assert_eq!(err.code(), &ErrorCode::RefreshInProgress);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
    let err = Error::from(err);
    assert!(err.is_retryable());
    assert_eq!(err.retry_after(), Some(Duration::from_secs(2)));
}

#[test]
fn unknown_code_is_kept_verbatim_and_classified_by_status() {
    let err = decode(503, r#"{"code": "BRAND_NEW", "message": "m"}"#);
    assert_eq!(err.code(), &ErrorCode::Other("BRAND_NEW".into()));
    assert_eq!(err.disposition(), Disposition::Retry);
    let err = decode(400, r#"{"code": "BRAND_NEW", "message": "m"}"#);
    assert_eq!(err.disposition(), Disposition::FixRequest);
}

// ---- 4. MCP {"error": {...}}, also inside JSON-RPC ---------------------------------------------

#[test]
fn mcp_error_payload() {
    // Page 004, "MCP Error Codes" (the page's `/* ... */` comment is not JSON, so the details
    // hold the context it names).
    let err = decode(
        403,
        r#"{
"error": {
"code": "PERMISSION_DENIED",
"message": "Human-readable description",
"fix": "Optional — actionable next step for the caller",
"details": { "nodeId": "node_1", "fieldName": "parentId" }
}
}"#,
    );
    assert_eq!(err.code(), &ErrorCode::PermissionDenied);
    assert_eq!(err.message(), "Human-readable description");
    assert_eq!(
        err.fix(),
        Some("Optional — actionable next step for the caller")
    );
    assert_eq!(err.details().unwrap()["nodeId"], "node_1");
    assert_eq!(err.shape(), BodyShape::Mcp);
    assert_eq!(err.disposition(), Disposition::Forbidden);
}

#[test]
fn mcp_rate_limit_and_exhausted_budget_are_resource_exhausted() {
    for message in ["Too many requests", "Budget exhausted"] {
        let body =
            format!(r#"{{"error": {{"code": "RESOURCE_EXHAUSTED", "message": "{message}"}}}}"#);
        let err = decode(200, &body);
        assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
        assert_eq!(err.disposition(), Disposition::RateLimited);
    }
}

#[test]
fn jsonrpc_envelope_with_minus_32602() {
    let err = decode(
        200,
        r#"{"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "Input validation error: title is required", "data": {"fieldName": "title"}}}"#,
    );
    assert_eq!(err.code(), &ErrorCode::InvalidArgument);
    assert_eq!(err.code().as_str(), "INVALID_ARGUMENT");
    assert_eq!(err.numeric_code(), Some(-32602));
    assert_eq!(err.shape(), BodyShape::JsonRpc);
    assert_eq!(err.message(), "Input validation error: title is required");
    assert_eq!(err.details(), Some(&json!({"fieldName": "title"})));
    assert_eq!(err.disposition(), Disposition::FixRequest);
    assert!(!Error::from(err).is_retryable());
}

#[test]
fn jsonrpc_envelope_with_a_string_code_and_other_numbers() {
    let err = decode(
        200,
        r#"{"jsonrpc":"2.0","id":"a","error":{"code":"NOT_FOUND","message":"no such node"}}"#,
    );
    assert_eq!(
        (err.code(), err.shape()),
        (&ErrorCode::NotFound, BodyShape::JsonRpc)
    );
    assert_eq!(err.numeric_code(), None);
    let internal = decode(
        200,
        r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}"#,
    );
    assert_eq!(internal.code(), &ErrorCode::Internal);
    assert_eq!(internal.numeric_code(), Some(-32603));
    // A numeric code without the envelope is still kept.
    let bare = decode(400, r#"{"error":{"code":-32602,"message":"bad"}}"#);
    assert_eq!(
        (bare.code(), bare.numeric_code()),
        (&ErrorCode::InvalidArgument, Some(-32602))
    );
}

// ---- 5. Anything else ---------------------------------------------------------------------

#[test]
fn junk_empty_body() {
    for n in [400, 401, 404, 429, 500, 502, 503, 504] {
        let err = decode(n, "");
        assert_eq!(err.code(), &ErrorCode::from_status(status(n)));
        assert_eq!(err.shape(), BodyShape::Unrecognized);
        assert_eq!(err.message(), status(n).canonical_reason().unwrap());
    }
}

#[test]
fn junk_proxy_html() {
    let err = decode(
        502,
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>",
    );
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert_eq!(err.message(), "502 Bad Gateway");
    assert_eq!(err.disposition(), Disposition::Retry);
    // Without a title: the text, tags stripped, white space collapsed.
    let err = decode(
        503,
        "<html><body>\n<h1>Service   Unavailable</h1>\n<p>Try later</p></body></html>",
    );
    assert_eq!(err.message(), "Service Unavailable Try later");
}

#[test]
fn junk_long_text_is_a_short_excerpt() {
    let body = "x".repeat(100_000);
    let err = decode(500, &body);
    assert_eq!(err.message().chars().count(), EXCERPT_CHARS + 1);
    assert!(err.message().ends_with('…'));
    // Non-ASCII around the 1 KiB mark where the `<title>` is looked for.
    let body = format!("{}<title>t</title>", "é".repeat(700));
    let _ = decode(500, &body);
}

#[test]
fn junk_truncated_json() {
    let err = decode(409, r#"{"detail": "Space is not act"#);
    assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
    assert_eq!(err.shape(), BodyShape::Unrecognized);
    assert_eq!(err.message(), r#"{"detail": "Space is not act"#);
    let err = decode(401, r#"{"code": "INVALID_API_KEY", "mess"#);
    assert_eq!(
        err.code(),
        &ErrorCode::Unauthenticated,
        "a cut body is not trusted"
    );
}

#[test]
fn junk_deeply_nested_json() {
    for (open, close) in [
        ("[", "]"),
        (r#"{"a":"#, "}"),
        (r#"{"error":"#, "}"),
        (r#"{"details":"#, "}"),
    ] {
        let body = format!("{}1{}", open.repeat(100_000), close.repeat(100_000));
        let err = decode(500, &body);
        assert_eq!(err.code(), &ErrorCode::Internal);
        assert!(err.message().chars().count() <= EXCERPT_CHARS + 1);
    }
    // Nesting within serde_json's limit is accepted and kept in `details`.
    let body = format!(
        r#"{{"code":"INTERNAL","message":"m","details":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    assert_eq!(decode(500, &body).shape(), BodyShape::Envelope);
}

#[test]
fn junk_wrong_types() {
    let cases: &[(&str, ErrorCode)] = &[
        (r#"{"detail": 42}"#, ErrorCode::FailedPrecondition),
        (r#"{"detail": null}"#, ErrorCode::FailedPrecondition),
        (
            r#"{"code": true, "message": "m"}"#,
            ErrorCode::FailedPrecondition,
        ),
        (
            r#"{"code": 1.5, "message": "m"}"#,
            ErrorCode::FailedPrecondition,
        ),
        (
            r#"{"code": "ALREADY_EXISTS", "message": {"text": "m"}}"#,
            ErrorCode::AlreadyExists,
        ),
        (
            r#"{"code": "ALREADY_EXISTS", "fix": ["a", "b"]}"#,
            ErrorCode::AlreadyExists,
        ),
        (r#"{"error": 5}"#, ErrorCode::FailedPrecondition),
        (r#"{"error": ""}"#, ErrorCode::FailedPrecondition),
        (
            r#"{"code": " ", "message": "m"}"#,
            ErrorCode::FailedPrecondition,
        ),
        (r#"{"error": [1, 2]}"#, ErrorCode::FailedPrecondition),
        (
            r#"{"error": {"code": null, "message": 7}}"#,
            ErrorCode::FailedPrecondition,
        ),
        (
            r#"{"error": {"code": {"x": 1}}}"#,
            ErrorCode::FailedPrecondition,
        ),
        (
            r#"["code", "INVALID_API_KEY"]"#,
            ErrorCode::FailedPrecondition,
        ),
        (r#""INVALID_API_KEY""#, ErrorCode::FailedPrecondition),
        ("null", ErrorCode::FailedPrecondition),
        ("{}", ErrorCode::FailedPrecondition),
    ];
    for (body, code) in cases {
        let err = decode(409, body);
        assert_eq!(err.code(), code, "{body}");
        assert!(!err.message().is_empty(), "{body}");
        assert_eq!(err.disposition(), Disposition::FixRequest, "{body}");
    }
    let err = decode(
        409,
        r#"{"code": "ALREADY_EXISTS", "message": {"text": "m"}}"#,
    );
    assert_eq!(err.message(), r#"{"text":"m"}"#);
}

#[test]
fn junk_invalid_utf8() {
    let err = ApiError::decode(
        status(500),
        &HeaderMap::new(),
        b"\xff\xfe\x00bad \xc3\x28 gateway",
    );
    assert_eq!(err.code(), &ErrorCode::Internal);
    assert_eq!(err.message(), "\u{fffd}\u{fffd} bad \u{fffd}( gateway");
    let err = ApiError::decode(status(400), &HeaderMap::new(), b"{\"detail\": \"a\xff\"}");
    assert_eq!(
        (err.code(), err.shape()),
        (&ErrorCode::InvalidArgument, BodyShape::Unrecognized)
    );
}

#[test]
fn junk_duplicated_keys_last_wins_like_a_value() {
    let err = decode(
        401,
        r#"{"code": "KEY_EXPIRED", "code": "KEY_REVOKED", "message": "a", "message": "b", "x": 1, "x": 2}"#,
    );
    assert_eq!(err.code(), &ErrorCode::KeyRevoked);
    assert_eq!(err.message(), "b");
    assert_eq!(err.field("x"), Some(&json!(2)));
    assert_eq!(err.field_names().count(), 1);
}

#[test]
fn control_characters_and_long_messages_are_made_safe() {
    let long = "m".repeat(10_000);
    let err = decode(400, &format!(r#"{{"detail": "{long}"}}"#));
    assert_eq!(err.message().chars().count(), MAX_TEXT_CHARS + 1);
    let err = decode(400, r#"{"detail": "line\u001b[2J one\r\nline two"}"#);
    assert_eq!(err.message(), "line [2J one \nline two");
}

// ---- 6. gRPC trailers-only ---------------------------------------------------------------

#[test]
fn grpc_trailers_only_in_an_http_200() {
    let h = |s: &str, m: &str| {
        let mut map = HeaderMap::new();
        map.insert("grpc-status", HeaderValue::from_str(s).unwrap());
        if !m.is_empty() {
            map.insert("grpc-message", HeaderValue::from_str(m).unwrap());
        }
        map
    };
    assert!(is_error(StatusCode::OK, &h("14", "")));
    assert!(!is_error(StatusCode::OK, &h("0", "")));
    assert!(!is_error(StatusCode::OK, &HeaderMap::new()));

    let err = ApiError::decode(
        StatusCode::OK,
        &h("14", "backend%20is%20restarting%3A%20try%20again"),
        b"",
    );
    assert_eq!(err.status(), StatusCode::OK);
    assert_eq!(err.code(), &ErrorCode::Unavailable);
    assert_eq!(err.message(), "backend is restarting: try again");
    assert_eq!(err.numeric_code(), Some(14));
    assert_eq!(err.shape(), BodyShape::Grpc);
    assert_eq!(err.disposition(), Disposition::Retry);

    let unicode = ApiError::decode(StatusCode::OK, &h("3", "caf%C3%A9%20%E2%9C%93"), b"");
    assert_eq!(
        (unicode.code(), unicode.message()),
        (&ErrorCode::InvalidArgument, "café ✓")
    );

    for n in 1..=16 {
        let err = ApiError::decode(StatusCode::OK, &h(&n.to_string(), ""), b"");
        assert_eq!(Some(err.code()), ErrorCode::from_grpc(n).as_ref(), "{n}");
        assert_eq!(err.message(), err.code().as_str(), "no message: the code");
    }

    let out_of_range = ApiError::decode(StatusCode::OK, &h("99", "x"), b"");
    assert_eq!(
        (out_of_range.code(), out_of_range.numeric_code()),
        (&ErrorCode::Unknown, Some(99))
    );
    let garbage = ApiError::decode(StatusCode::OK, &h("abc", "%ZZ%"), b"");
    assert_eq!(
        (garbage.code(), garbage.numeric_code()),
        (&ErrorCode::Unknown, None)
    );
    assert_eq!(garbage.message(), "%ZZ%");
    assert_eq!(garbage.disposition(), Disposition::Retry);
    let bad_utf8 = ApiError::decode(StatusCode::OK, &h("13", "%FF%FE"), b"");
    assert_eq!(bad_utf8.message(), "\u{fffd}\u{fffd}");
}

#[test]
fn grpc_status_wins_over_the_body() {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from_static("5"));
    let err = ApiError::decode(StatusCode::OK, &map, br#"{"detail": "ignored"}"#);
    assert_eq!(err.code(), &ErrorCode::NotFound);
    // grpc-status 0 on an HTTP error: the body decides.
    map.insert("grpc-status", HeaderValue::from_static("0"));
    let err = ApiError::decode(status(404), &map, br#"{"detail": "no such node"}"#);
    assert_eq!(
        (err.code(), err.message()),
        (&ErrorCode::NotFound, "no such node")
    );
}

// ---- 7. Retry-After and grpc-retry-pushback-ms -------------------------------------------

#[test]
fn retry_after_delay_seconds() {
    let err = with_headers(429, &[("retry-after", "30")], b"");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(err.disposition(), Disposition::RateLimited);
    let err = with_headers(429, &[("retry-after", "0")], b"");
    assert_eq!(err.retry_after(), Some(Duration::ZERO));
}

#[test]
fn retry_after_http_dates() {
    let past = with_headers(
        503,
        &[("retry-after", "Sun, 06 Nov 1994 08:49:37 GMT")],
        b"",
    );
    assert_eq!(past.retry_after(), Some(Duration::ZERO));
    let rfc850 = with_headers(
        503,
        &[("retry-after", "Sunday, 06-Nov-94 08:49:37 GMT")],
        b"",
    );
    assert_eq!(rfc850.retry_after(), Some(Duration::ZERO));
    let future = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    let err = with_headers(503, &[("retry-after", &future)], b"");
    let got = err.retry_after().unwrap();
    assert!(
        got > Duration::from_secs(3500) && got <= Duration::from_secs(3600),
        "{got:?}"
    );
    let far = with_headers(
        503,
        &[("retry-after", "Fri, 31 Dec 9999 23:59:59 GMT")],
        b"",
    );
    assert_eq!(far.retry_after(), Some(MAX_HINT));
}

#[test]
fn retry_after_huge_saturates_and_invalid_is_none() {
    for huge in [
        "99999999999999999999999999",
        "18446744073709551616",
        "31536001",
    ] {
        let err = with_headers(429, &[("retry-after", huge)], b"");
        assert_eq!(err.retry_after(), Some(MAX_HINT), "{huge}");
    }
    for bad in [
        "-1",
        "-0",
        "1.5",
        "0.5",
        "+3",
        "1e3",
        "soon",
        "3 seconds",
        "",
        "Mon, 32 Foo 2000 99:99:99 GMT",
    ] {
        let err = with_headers(429, &[("retry-after", bad)], b"");
        assert_eq!(err.retry_after(), None, "{bad:?}");
        assert_eq!(err.disposition(), Disposition::RateLimited);
    }
    let mut map = HeaderMap::new();
    map.insert("retry-after", HeaderValue::from_bytes(b"\xff9").unwrap());
    assert_eq!(ApiError::decode(status(429), &map, b"").retry_after(), None);
}

#[test]
fn retry_after_repeated_headers_read_the_first() {
    let err = with_headers(503, &[("retry-after", "5"), ("retry-after", "500")], b"");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(5)));
    let err = with_headers(503, &[("retry-after", "junk"), ("retry-after", "5")], b"");
    assert_eq!(
        err.retry_after(),
        None,
        "an invalid first value is not skipped"
    );
}

#[test]
fn grpc_retry_pushback() {
    let err = with_headers(
        200,
        &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "1500")],
        b"",
    );
    assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
    assert_eq!(err.retry_after(), Some(Duration::from_millis(1500)));
    assert!(!err.server_forbids_retry());
    assert!(Error::from(err).is_retryable());

    let err = with_headers(
        200,
        &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "-1")],
        b"",
    );
    assert_eq!(err.retry_after(), None);
    assert!(err.server_forbids_retry());
    assert_eq!(err.disposition(), Disposition::DoNotRetry);
    let err = Error::from(err);
    assert_eq!(err.disposition(), Disposition::DoNotRetry);
    assert!(!err.is_retryable(), "negative pushback forbids a retry");

    // Unparsable is a refusal too (gRPC's retry design, A6).
    let err = with_headers(
        200,
        &[("grpc-status", "14"), ("grpc-retry-pushback-ms", "1.5")],
        b"",
    );
    assert_eq!(
        (err.retry_after(), err.server_forbids_retry()),
        (None, true)
    );
    assert_eq!(err.disposition(), Disposition::DoNotRetry);
    // A refusal does not hide a request that needs fixing.
    let err = with_headers(
        200,
        &[("grpc-status", "3"), ("grpc-retry-pushback-ms", "-1")],
        b"",
    );
    assert_eq!(err.disposition(), Disposition::FixRequest);
    let err = with_headers(
        200,
        &[
            ("grpc-status", "14"),
            ("grpc-retry-pushback-ms", "99999999999999999999999"),
        ],
        b"",
    );
    assert_eq!(err.retry_after(), Some(MAX_HINT));
    // Retry-After wins when both are present.
    let err = with_headers(
        503,
        &[("retry-after", "2"), ("grpc-retry-pushback-ms", "-1")],
        b"",
    );
    assert_eq!(
        (err.retry_after(), err.server_forbids_retry()),
        (Some(Duration::from_secs(2)), false)
    );
}

// ---- Credentials and Display ---------------------------------------------------------------

const SECRET: &str = "SECRETQ7x9";

#[test]
fn credentials_echoed_by_a_server_never_show() {
    let bodies = [
        format!(r#"{{"detail": "Invalid header Authorization: Bearer convo_{SECRET}"}}"#),
        format!(
            r#"{{"code": "INVALID_API_KEY", "message": "X-Api-Key: {SECRET} is not recognized", "fix": "Replace token={SECRET}"}}"#
        ),
        format!(
            r#"{{"error": {{"code": "UNAUTHENTICATED", "message": "m", "details": {{"x-api-key": "{SECRET}", "url": "/events?token=convo_{SECRET}"}}}}}}"#
        ),
        format!(
            r#"{{"error": "agent_connected", "message": "m", "agent_id": "agt_1", "token": "{SECRET}"}}"#
        ),
        format!("<html><title>401 GET /api/events?token=convo_{SECRET}</title></html>"),
        format!(r#"{{"unrecognised": true, "apiKey": "{SECRET}"}}"#),
        format!(r#"{{"detail": "Bearer\u0000{SECRET}"}}"#),
    ];
    for body in &bodies {
        let api = decode(401, body);
        let err = Error::from(api.clone());
        for text in [
            err.to_string(),
            format!("{err:?}"),
            format!("{err:#?}"),
            format!("{api:?}"),
            api.to_string(),
        ] {
            assert!(!text.contains(SECRET), "{body} leaked: {text}");
        }
    }
    let mut map = HeaderMap::new();
    map.insert("grpc-status", HeaderValue::from_static("16"));
    map.insert(
        "grpc-message",
        HeaderValue::from_str(&format!("bad%20credentials%3A%20Bearer%20convo_{SECRET}")).unwrap(),
    );
    let err = Error::from(ApiError::decode(StatusCode::OK, &map, b""));
    assert_eq!(err.code(), &ErrorCode::Unauthenticated);
    assert!(!format!("{err} {err:?}").contains(SECRET));
    assert!(err.message().starts_with("bad credentials: Bearer "));
}

#[test]
fn display_shows_code_message_and_fix() {
    let err = Error::from(decode(
        409,
        r#"{"code":"SUBSCRIPTION_CANCELED","message":"No active subscription for the requested agent","fix":"Re-subscribe to the agent"}"#,
    ));
    let shown = err.to_string();
    assert!(shown.contains("SUBSCRIPTION_CANCELED"), "{shown}");
    assert!(
        shown.contains("No active subscription for the requested agent"),
        "{shown}"
    );
    assert!(shown.contains("Re-subscribe to the agent"), "{shown}");
    assert_eq!(err.disposition(), Disposition::NeedsHuman);
    assert_eq!(err.attempts(), 1);
}
