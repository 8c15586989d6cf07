//! Unit and property tests of `ApiError::decode`: one test per body shape and header the
//! decoder understands, with the pages' own examples, then properties on arbitrary and hostile
//! input. The layer itself is tested against a real server in `tests/it/decode.rs`.

use super::*;
use crate::{
    classify::Disposition,
    error::BodyShape,
    error::Error,
    retry_after::MAX_HINT,
    text::safe::{EXCERPT_CHARS, MAX_TEXT_CHARS},
};
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

/// Arbitrary bytes, text and JSON in every documented shape: the invariants every decoded
/// error keeps (no credential shown, bounded texts, bounded hints).
mod arbitrary_input {
    use crate::{
        error::ApiError,
        error::Error,
        retry_after::MAX_HINT,
        text::{
            Credentials,
            redact::redact,
            safe::{EXCERPT_CHARS, MAX_TEXT_CHARS},
        },
    };
    use http::{HeaderMap, HeaderValue, StatusCode};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const SECRET: &str = "SECRETQ7x9";

    /// A string the decoder treats specially, or a credential to be hidden.
    fn interesting_str() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "agent_connected",
                "INVALID_API_KEY",
                "RESOURCE_EXHAUSTED",
                "Space is not active",
                "2.0",
                "",
                "<html><title>x</title>",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z0-9 _<>&;:=\"'\u{0}-\u{1f}é✓]{0,40}",
            secret_text(),
        ]
    }

    /// Text that plants the unique secret after a credential marker.
    fn secret_text() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec![
                "Bearer ",
                "bearer\t",
                "Authorization: Bearer convo_",
                "?token=",
                "X-Api-Key: ",
                "x-api-key:",
                "convo_",
                "\"token\": \"",
                "Bearer\u{0}",
                "BEARER  ",
            ]),
            "[a-z ]{0,20}",
            "[A-Za-z0-9_.-]{0,10}",
        )
            .prop_map(|(marker, before, tail)| format!("{before}{marker}{SECRET}{tail} and more"))
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "detail",
                "error",
                "code",
                "message",
                "fix",
                "details",
                "data",
                "jsonrpc",
                "id",
                "agent_id",
                "token",
                "X-Api-Key",
            ])
            .prop_map(str::to_owned),
            "[a-zA-Z_]{1,8}",
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            (-40000i64..0).prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            interesting_str().prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key(), inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    fn any_status() -> impl Strategy<Value = StatusCode> {
        (100u16..1000).prop_map(|n| StatusCode::from_u16(n).unwrap())
    }

    fn any_headers() -> impl Strategy<Value = HeaderMap> {
        let value = prop_oneof![
            "[ -~]{0,30}",
            "-?[0-9]{1,25}",
            Just("Sun, 06 Nov 1994 08:49:37 GMT".to_owned()),
            secret_text(),
        ];
        let name = prop::sample::select(vec![
            "retry-after",
            "grpc-status",
            "grpc-message",
            "grpc-retry-pushback-ms",
            "content-type",
            "retry-after-ms",
            "x-should-retry",
            "stripe-should-retry",
        ]);
        prop::collection::vec((name, value), 0..5).prop_map(|pairs| {
            let mut map = HeaderMap::new();
            for (k, v) in pairs {
                if let Ok(v) = HeaderValue::from_str(&v) {
                    map.append(k, v);
                }
            }
            map
        })
    }

    /// The output invariants every decoded error keeps.
    fn check(err: &ApiError) -> Result<(), TestCaseError> {
        let texts = [
            Some(err.message().to_owned()),
            err.fix().map(str::to_owned),
            err.details().map(Value::to_string),
            Some(format!("{err:?}")),
            Some(Error::from(err.clone()).to_string()),
            Some(format!("{:?}", Error::from(err.clone()))),
        ];
        for text in texts.iter().flatten() {
            prop_assert!(!text.contains(SECRET), "secret leaked: {text}");
        }
        prop_assert!(!err.message().is_empty());
        prop_assert!(err.message().chars().count() <= MAX_TEXT_CHARS + 1);
        prop_assert!(
            err.fix()
                .is_none_or(|f| f.chars().count() <= MAX_TEXT_CHARS + 1)
        );
        // No marker followed by a secret is left: redacting again changes nothing.
        prop_assert!(
            matches!(redact(err.message()), std::borrow::Cow::Borrowed(_)),
            "{}",
            err.message()
        );
        prop_assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
        Ok(())
    }

    proptest! {
        #![proptest_config(crate::props::config(256))]

        #[test]
        fn decode_arbitrary_bytes(status in any_status(), headers in any_headers(), body in prop::collection::vec(any::<u8>(), 0..512)) {
            check(&ApiError::decode(status, &headers, &body))?;
        }

        #[test]
        fn decode_arbitrary_text_with_planted_secrets(status in any_status(), body in secret_text()) {
            let err = ApiError::decode(status, &HeaderMap::new(), body.as_bytes());
            check(&err)?;
            prop_assert!(err.message().chars().count() <= EXCERPT_CHARS + 1);
        }

        #[test]
        fn decode_arbitrary_json(status in any_status(), headers in any_headers(), value in json_value()) {
            let body = serde_json::to_vec(&value).unwrap();
            check(&ApiError::decode(status, &headers, &body))?;
        }

        #[test]
        fn decode_arbitrary_json_in_every_shape(
            status in any_status(),
            code in json_value(),
            message in json_value(),
            fix in json_value(),
            details in json_value(),
            which in 0..5usize,
        ) {
            let inner = json!({"code": code, "message": message, "fix": fix, "details": details});
            let body = match which {
                0 => json!({"detail": message}),
                1 => json!({"error": code, "message": message, "agent_id": details}),
                2 => inner,
                3 => json!({"error": inner}),
                _ => json!({"jsonrpc": "2.0", "id": 1, "error": inner}),
            };
            let err = ApiError::decode(status, &HeaderMap::new(), &serde_json::to_vec(&body).unwrap());
            check(&err)?;
            // A code string is kept verbatim unless it had to be made safe.
            if let (2..=4, Value::String(c)) = (which, &code) {
                let safe = matches!(crate::text::safe::safe_text(c, 128, &Credentials::new()), std::borrow::Cow::Borrowed(_));
                if safe && !c.trim().is_empty() {
                    prop_assert_eq!(err.code().as_str(), c.as_str());
                }
            }
        }
    }
}

/// Input chosen to break the decoder: deep nesting and huge numbers in every position of every
/// shape, any depth, invalid UTF-8 inside strings, objects of repeated members, and
/// `grpc-status` / `grpc-message` on arbitrary bytes with planted credentials however
/// percent-encoded. No panic, the caps hold, and no credential survives.
mod hostile_input {
    use crate::{code::ErrorCode, error::ApiError, retry_after::MAX_HINT};
    use http::{HeaderMap, HeaderValue, StatusCode};
    use proptest::prelude::*;

    /// What every decoded error must satisfy, whatever the input.
    fn sane(err: &ApiError, body_len: usize) {
        // The code survives a round trip through its text.
        assert_eq!(ErrorCode::parse(err.code().as_str()), *err.code());
        // Rendering never panics, and a message is never larger than what it came from (each
        // invalid byte may become a 3-byte U+FFFD; plus the status's reason phrase).
        let shown = err.to_string();
        assert!(!shown.is_empty());
        assert!(
            err.message().len() <= 3 * body_len + 64,
            "message of {} bytes from a body of {body_len}",
            err.message().len()
        );
        assert!(err.retry_after().is_none_or(|d| d <= MAX_HINT));
        let _ = err.disposition();
        let _ = format!("{err:?}");
    }

    fn decode(status: u16, body: &[u8]) -> ApiError {
        let status = StatusCode::from_u16(status).unwrap();
        let err = ApiError::decode(status, &HeaderMap::new(), body);
        sane(&err, body.len());
        err
    }

    /// `depth` openers of one kind, then the matching closers.
    fn nested(depth: usize, kind: u8) -> Vec<u8> {
        let (open, close): (&[u8], &[u8]) = match kind % 3 {
            0 => (b"[", b"]"),
            1 => (br#"{"a":"#, b"}"),
            _ => (br#"{"error":"#, b"}"),
        };
        let mut out = Vec::with_capacity(depth * (open.len() + close.len()) + 2);
        for _ in 0..depth {
            out.extend_from_slice(open);
        }
        out.extend_from_slice(b"1");
        for _ in 0..depth {
            out.extend_from_slice(close);
        }
        out
    }

    /// Puts `inner` in each position of each documented shape.
    fn in_every_position(inner: &[u8]) -> Vec<Vec<u8>> {
        let inner = String::from_utf8_lossy(inner);
        [
            format!("{inner}"),
            format!(r#"{{"code":{inner},"message":"m"}}"#),
            format!(r#"{{"code":"INTERNAL","message":{inner}}}"#),
            format!(r#"{{"code":"INTERNAL","message":"m","fix":{inner}}}"#),
            format!(r#"{{"code":"INTERNAL","message":"m","details":{inner}}}"#),
            format!(r#"{{"detail":{inner}}}"#),
            format!(r#"{{"error":{inner},"message":"m"}}"#),
            format!(r#"{{"error":{{"code":{inner},"message":"m","data":{inner}}}}}"#),
            format!(r#"{{"jsonrpc":"2.0","id":{inner},"error":{{"code":{inner},"message":"m"}}}}"#),
            format!(r#"{{"code":"UNAVAILABLE","message":"m","retry":{inner},"retryAfter":{inner},"retry_after":{inner}}}"#),
            format!(r#"{{"other":{inner},"agent_id":{inner}}}"#),
        ]
        .into_iter()
        .map(String::into_bytes)
        .collect()
    }

    #[test]
    fn json_nested_100_000_levels_deep_in_every_position() {
        for kind in 0..3 {
            let deep = nested(100_000, kind);
            for body in in_every_position(&deep) {
                for status in [400, 429, 500, 503] {
                    decode(status, &body);
                }
            }
            // Unclosed: the openers only.
            let open = &deep[..deep.len() / 2];
            for body in in_every_position(open) {
                decode(502, &body);
            }
        }
    }

    #[test]
    fn huge_and_odd_numbers_in_every_position() {
        let numbers = [
            "1e400",
            "-1e400",
            "1E+99999999999999999999",
            "1e-400",
            "18446744073709551617", // 2^64 + 1
            "-18446744073709551617",
            "9223372036854775808", // i64::MAX + 1
            "-9223372036854775809",
            "-0",
            "-0.0",
            "0e0",
            "-32602",
            "-32602.0",
            "-32602e0",
            "1.7976931348623157e308",
            "4.9e-324",
            "123456789012345678901234567890123456789012345678901234567890",
        ];
        for n in numbers {
            for body in in_every_position(n.as_bytes()) {
                for status in [400, 429, 500] {
                    decode(status, &body);
                }
            }
        }
        // A JSON-RPC code that does not fit an i64 keeps no numeric code and takes the status's.
        let err = decode(
            400,
            br#"{"jsonrpc":"2.0","error":{"code":-18446744073709551617,"message":"m"}}"#,
        );
        assert_eq!(err.numeric_code(), None);
    }

    #[test]
    fn duplicated_keys() {
        let err = decode(
            400,
            br#"{"code":"NOT_FOUND","code":"INVALID_ARGUMENT","message":"a","message":"b"}"#,
        );
        // Either value, or the status's: never a panic, never a mix.
        assert!(
            [
                ErrorCode::NotFound,
                ErrorCode::InvalidArgument,
                ErrorCode::FailedPrecondition
            ]
            .contains(err.code())
                || err.code() == &ErrorCode::from_status(StatusCode::BAD_REQUEST),
            "{:?}",
            err.code()
        );
    }

    fn key() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "code", "message", "fix", "details", "detail", "error", "data", "jsonrpc", "id",
            "agent_id", "isError",
        ])
    }

    fn json_value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_owned()),
            Just("true".to_owned()),
            Just(r#""NOT_FOUND""#.to_owned()),
            Just(r#""Bearer convo_PROPSECRET""#.to_owned()),
            Just("-32602".to_owned()),
            Just("1e400".to_owned()),
            Just(r#"{"code":"INTERNAL","message":"x"}"#.to_owned()),
            Just("[1,2,3]".to_owned()),
            "[a-zA-Z0-9 _]{0,12}".prop_map(|s| format!("{s:?}")),
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| n.to_string()),
        ]
    }

    proptest! {
        #![proptest_config(crate::props::config(256))]


        /// Objects with repeated and conflicting members, in any order.
        #[test]
        fn objects_with_duplicated_keys(
            members in prop::collection::vec((key(), json_value()), 0..12),
            status in 400u16..600,
        ) {
            let body = format!(
                "{{{}}}",
                members.iter().map(|(k, v)| format!("{k:?}:{v}")).collect::<Vec<_>>().join(",")
            );
            let err = decode(status, body.as_bytes());
            let shown = format!("{} {:?} {:?}", err, err, err.details());
            prop_assert!(!shown.contains("PROPSECRET"), "{}", shown);
        }

        /// Invalid UTF-8 inside JSON strings, in every string position.
        #[test]
        fn invalid_utf8_inside_strings(
            junk in prop::collection::vec(any::<u8>(), 0..64),
            status in 400u16..600,
        ) {
            let mut bodies = Vec::new();
            for template in [
                &br#"{"code":"@","message":"@","fix":"@"}"#[..],
                br#"{"detail":"@"}"#,
                br#"{"error":"@","message":"@","agent_id":"@"}"#,
                br#"{"error":{"code":"@","message":"@","details":{"@":"@"}}}"#,
            ] {
                let mut body = Vec::new();
                for &b in template {
                    if b == b'@' {
                        body.extend_from_slice(&junk);
                    } else {
                        body.push(b);
                    }
                }
                bodies.push(body);
            }
            for body in bodies {
                decode(status, &body);
            }
        }

        /// `grpc-status` and `grpc-message` on arbitrary bytes: no panic, a typed code, no
        /// credential in what is shown, however the message is percent-encoded.
        #[test]
        fn grpc_message_on_any_bytes(
            status in prop::collection::vec(any::<u8>(), 0..8),
            message in prop::collection::vec(any::<u8>(), 0..256),
            http_status in prop::sample::select(vec![200u16, 400, 500, 503]),
        ) {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&status) {
                headers.insert("grpc-status", v);
            } else {
                headers.insert("grpc-status", HeaderValue::from_static("13"));
            }
            if let Ok(v) = HeaderValue::from_bytes(&message) {
                headers.insert("grpc-message", v);
            }
            let err = ApiError::decode(StatusCode::from_u16(http_status).unwrap(), &headers, b"");
            sane(&err, 3 * 256);
        }

        #[test]
        fn grpc_message_never_shows_a_credential(
            before in prop::collection::vec(any::<u8>(), 0..64),
            after in prop::collection::vec(any::<u8>(), 0..64),
            secret in "[A-Za-z0-9]{6,24}",
            marker in prop::sample::select(vec![
                "Bearer convo_", "authorization: Bearer ", "?token=", "token=convo_",
                "X-Api-Key: ", "x-api-key=", "convo_",
            ]),
            encode_all in any::<bool>(),
            grpc_status in prop::sample::select(vec!["2", "13", "14", "16", "99", "abc", "-1"]),
        ) {
            let secret = format!("PROPSECRET{secret}");
            let mut raw = before.clone();
            raw.extend_from_slice(marker.as_bytes());
            raw.extend_from_slice(secret.as_bytes());
            raw.extend_from_slice(&after);
            // gRPC's percent-encoding: everything outside printable ASCII, and '%' itself.
            let encoded: String = raw
                .iter()
                .map(|&b| {
                    if encode_all || !(0x20..0x7f).contains(&b) || b == b'%' {
                        format!("%{b:02X}")
                    } else {
                        char::from(b).to_string()
                    }
                })
                .collect();
            let mut headers = HeaderMap::new();
            headers.insert("grpc-status", HeaderValue::from_static(grpc_status));
            headers.insert("grpc-message", HeaderValue::from_str(&encoded).unwrap());
            let err = ApiError::decode(StatusCode::OK, &headers, b"");
            let wrapped = crate::error::Error::from(err.clone());
            let shown = format!("{err} {err:?} {wrapped} {wrapped:?}");
            prop_assert!(!shown.contains(&secret), "{}", shown);
        }
    }

    proptest! {
        // Each case decodes up to a megabyte; `json_nested_100_000_levels_deep_in_every_position`
        // covers the deepest bodies in every position.
        #![proptest_config(crate::props::config(64))]

        /// Any depth, any kind of nesting, closed or not.
        #[test]
        fn any_nesting_depth(depth in 0usize..150_000, kind in 0u8..3, cut in any::<bool>()) {
            let mut body = nested(depth, kind);
            if cut {
                body.truncate(body.len() / 2);
            }
            decode(400, &body);
        }
    }
}
