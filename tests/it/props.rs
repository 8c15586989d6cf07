//! Hostile input, as property tests: what the decoder, the hint parsers, `grpc-message`
//! decoding and the backoff do with input chosen to break them. No panic, no overflow, the
//! caps hold, and no credential survives.
//!
//! The decoder on arbitrary bytes and arbitrary JSON (and single examples of deep nesting and
//! duplicated keys) is covered by `src/decode/tests.rs`; the backoff's `delay_with` on any
//! settings by `backoff_waits` below; the SSE parser by `src/sse/parser.rs`. This file adds: deep
//! nesting and huge numbers in every position of every shape, any depth, invalid UTF-8 inside
//! strings, objects of repeated members, exact saturation of the hint parsers, HTTP-dates
//! across the whole range, `grpc-message` with planted credentials however percent-encoded,
//! and the backoff's nominal schedule.

use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use std::time::Duration;
use tower_api_retry::{
    ApiError, ErrorCode,
    backoff::{Backoff, Jitter},
};

/// The largest hint the crate reports: one year.
const MAX_HINT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

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
    #![proptest_config(ProptestConfig::with_cases(256))]

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

    /// Any depth, any kind of nesting, closed or not.
    #[test]
    fn any_nesting_depth(depth in 0usize..150_000, kind in 0u8..3, cut in any::<bool>()) {
        let mut body = nested(depth, kind);
        if cut {
            body.truncate(body.len() / 2);
        }
        decode(400, &body);
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
        let wrapped = tower_api_retry::Error::from(err.clone());
        let shown = format!("{err} {err:?} {wrapped} {wrapped:?}");
        prop_assert!(!shown.contains(&secret), "{}", shown);
    }

    /// The backoff's schedule for any attempt count and any base or cap: never above the
    /// cap, never decreasing, never overflowing.
    #[test]
    fn backoff_nominal_for_any_attempt_and_base(
        base_ms in any::<u64>(),
        max_ms in any::<u64>(),
        retry in any::<u32>(),
        unit in 0.0f64..=1.0,
        prev_ms in any::<u64>(),
    ) {
        let b = Backoff::new()
            .base_delay(Duration::from_millis(base_ms))
            .max_delay(Duration::from_millis(max_ms));
        let max = Duration::from_millis(max_ms);
        let n = b.nominal(retry);
        prop_assert!(n <= max);
        prop_assert!(b.nominal(retry.saturating_add(1)) >= n);
        prop_assert!(b.nominal(u32::MAX) <= max);
        for jitter in [Jitter::None, Jitter::Proportional(0.2), Jitter::Proportional(f64::MAX), Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
            let b = b.jitter(jitter);
            prop_assert!(b.delay_with(retry, Some(Duration::from_millis(prev_ms)), unit) <= max);
            prop_assert!(b.delay(retry, None) <= max);
        }
    }
}

/// The backoff's waits on any settings (moved here from the retry tests).
mod backoff_waits {
    use std::time::Duration;
    use tower_api_retry::backoff::Jitter;

    proptest::proptest! {
        #[test]
        fn a_wait_never_overflows_or_exceeds_max_delay(
            retry in proptest::prelude::any::<u32>(),
            base_ns in proptest::prelude::any::<u64>(),
            base_s in proptest::prelude::any::<u64>(),
            max_s in proptest::prelude::any::<u64>(),
            prev_s in proptest::prelude::any::<u64>(),
            unit in proptest::prelude::any::<f64>(),
            strategy in 0..5u8,
        ) {
            let base = Duration::new(base_s, (base_ns % 1_000_000_000) as u32);
            let max = Duration::from_secs(max_s);
            let jitter = match strategy {
                0 => Jitter::None,
                1 => Jitter::Proportional(0.2),
                2 => Jitter::Full,
                3 => Jitter::Equal,
                _ => Jitter::Decorrelated,
            };
            let b = tower_api_retry::backoff::Backoff::new().base_delay(base).max_delay(max).jitter(jitter);
            for r in [retry, 0, u32::MAX] {
                let d = b.delay_with(r, Some(Duration::from_secs(prev_s)), unit);
                proptest::prop_assert!(d <= max);
                proptest::prop_assert!(b.delay(r, Some(Duration::MAX)) <= max);
            }
        }
    }
}

mod credentials {
    //! Property: a credential the request carried never shows in the error built from the
    //! response, whatever it looks like, wherever it was sent and however the server echoes it.
    //!
    //! A random credential (8–64 printable ASCII characters) is sent in one of the places the
    //! decode layer knows (`X-Api-Key`, `Authorization` with and without a scheme,
    //! `Proxy-Authorization`, a cookie, a query parameter, a header named on the layer), echoed by
    //! the server in one of many body shapes, and the error's `Display`, `Debug`, `message()`,
    //! `fix()`, code, `details()` and every `field()` are searched for it.
    //!
    //! Soundness: the crate prints fixed words of its own (`[REDACTED]`, code names, `Debug` field
    //! names, reason phrases) and the server's body has fixed words too. A credential that occurs
    //! in those is not an echo: every case is first run with the echo replaced by a neutral
    //! string, and a credential found in that output is skipped. And an occurrence that overlaps a
    //! `[REDACTED]` marker is the marker's own letters next to other text, not the credential:
    //! only occurrences clear of every marker count.

    use bytes::Bytes;
    use futures_util::FutureExt;
    use http::{HeaderValue, Request, Response};
    use http_body_util::Full;
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    use proptest::prelude::*;
    use serde_json::{Value, json};
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt, service_fn};
    use tower_api_retry::{Error, ErrorDecodeLayer, McpDecodeLayer};

    /// Where the credential is sent.
    const PLACES: usize = 11;

    fn request(place: usize, secret: &str) -> Request<Full<Bytes>> {
        let enc = utf8_percent_encode(secret, NON_ALPHANUMERIC).to_string();
        let query = ["token", "access_token", "api_key", "apikey", "key"];
        let uri = match place {
            5..=9 => format!("http://api.test/api/me?page=2&{}={enc}", query[place - 5]),
            _ => "http://api.test/api/me?page=2".to_owned(),
        };
        let value = |v: String| HeaderValue::from_str(&v).expect("printable ASCII");
        let mut req = Request::get(uri);
        req = match place {
            0 => req.header("x-api-key", value(secret.to_owned())),
            1 => req.header("authorization", value(format!("Bearer {secret}"))),
            2 => req.header("authorization", value(secret.to_owned())),
            3 => req.header("proxy-authorization", value(format!("Basic {secret}"))),
            4 => req.header("cookie", value(format!("theme=dark; session={enc}"))),
            10 => req.header("x-team-secret", value(secret.to_owned())),
            _ => req,
        };
        req.body(Full::default()).unwrap()
    }

    /// How many body shapes the server echoes in.
    const SHAPES: usize = 16;

    fn html_escape(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&#x27;")
    }

    /// The server's answer with `e` echoed, and whether it needs the MCP decoder. `pad` moves the
    /// echo around the cuts the crate makes (a 1024-character message, a 200-character excerpt).
    fn response(shape: usize, e: &str, pad: usize) -> (Response<Full<Bytes>>, bool) {
        let json_res = |status: u16, body: Value| {
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.to_string())))
                .unwrap()
        };
        let raw = |status: u16, ct: &str, body: String| {
            Response::builder()
                .status(status)
                .header("content-type", ct)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let filler = "x".repeat(pad);
        let res = match shape {
            0 => json_res(
                401,
                json!({"detail": format!("The API key {e} is not recognized.")}),
            ),
            1 => json_res(
                401,
                json!({"code": "INVALID_API_KEY", "message": format!("The API key {e} is not recognized."),
                       "fix": format!("replace {e}"),
                       "details": {"key": e, "credential": e, "anything": format!("<{e}>"), e: 1, "list": [e, e]}}),
            ),
            2 => json_res(
                403,
                json!({"error": {"code": "PERMISSION_DENIED", "message": format!("key {e} lacks scope"),
                                 "fix": format!("grant {e}"), "details": {"k": [e]}, "extra": e}}),
            ),
            3 => json_res(
                400,
                json!({"jsonrpc": "2.0", "id": 1, "error": {"code": -32602, "message": "invalid params",
                       "data": {"sent": e, "why": format!("{e} is unknown")}}}),
            ),
            4 => json_res(
                409,
                json!({"error": "agent_connected", "message": format!("Agent holds {e}"), "agent_id": "agt_1",
                       "key": e, "credential": {"v": e}, "hint": format!("rotate {e}"), e: e}),
            ),
            5 => json_res(400, json!({"code": e, "message": "unknown code"})),
            6 => json_res(
                400,
                json!({"code": "INVALID_ARGUMENT", "message": format!("{filler}{e}"), "fix": format!("{filler}{e}")}),
            ),
            7 => json_res(400, json!(["rejected", e, {"k": e}])),
            8 => raw(
                502,
                "text/html",
                format!(
                    "<html><head><title>Bad key {}</title></head><body>{filler}<p>Key {} refused</p></body></html>",
                    html_escape(e),
                    html_escape(e)
                ),
            ),
            9 => raw(
                502,
                "text/html",
                format!("<html><body><pre>{e}</pre></body></html>"),
            ),
            10 => raw(400, "text/plain", format!("{filler} rejected {e}\n")),
            11 => {
                let msg =
                    utf8_percent_encode(&format!("{filler}key {e} is not valid"), GRPC).to_string();
                Response::builder()
                    .status(200)
                    .header("content-type", "application/grpc")
                    .header("grpc-status", "16")
                    .header("grpc-message", msg)
                    .body(Full::default())
                    .unwrap()
            }
            // A JSON body cut short (the layer reads 300 bytes of it).
            12 => json_res(
                400,
                json!({"code": "INVALID_ARGUMENT", "message": format!("{filler}{e} {e}")}),
            ),
            13 => {
                return (
                    json_res(
                        200,
                        json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": true,
                            "structuredContent": {"error": {"code": "UNAUTHENTICATED", "message": format!("key {e}"),
                                                            "details": {"key": e}}}}}),
                    ),
                    true,
                );
            }
            14 => {
                return (
                    json_res(
                        200,
                        json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": true,
                            "content": [{"type": "text", "text": format!("key {e} lacks scope")}]}}),
                    ),
                    true,
                );
            }
            _ => {
                return (
                    json_res(
                        200,
                        json!({"jsonrpc": "2.0", "id": 1, "result": {"isError": true,
                            "content": [{"type": "text", "text": json!({"error": {"code": "INTERNAL", "message": e, "details": {"x": e}}}).to_string()}]}}),
                    ),
                    true,
                );
            }
        };
        (res, false)
    }

    const GRPC: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%');

    /// Sends `secret` in `place` through the decode layer to a server that echoes `echo`.
    fn run(place: usize, secret: &str, shape: usize, echo: &str, pad: usize) -> Error {
        let (res, mcp) = response(shape, echo, pad);
        let res = std::sync::Mutex::new(Some(res));
        let server = service_fn(move |_req: Request<Full<Bytes>>| {
            let res = res.lock().unwrap().take().unwrap();
            async move { Ok::<_, Infallible>(res) }
        });
        let req = request(place, secret);
        let max = if shape == 12 { 300 } else { 64 * 1024 };
        let done = if mcp {
            McpDecodeLayer::from(
                ErrorDecodeLayer::new()
                    .read_timeout(None)
                    .max_body_bytes(max)
                    .sensitive_header("x-team-secret"),
            )
            .layer(server)
            .oneshot(req)
            .now_or_never()
            .expect("ready")
            .map(|r| r.status())
        } else {
            ErrorDecodeLayer::new()
                .read_timeout(None)
                .max_body_bytes(max)
                .sensitive_header("x-team-secret")
                .layer(server)
                .oneshot(req)
                .now_or_never()
                .expect("ready")
                .map(|r| r.status())
        };
        done.expect_err("an error")
    }

    /// Every string inside a JSON value (member names too), and its text.
    fn value_texts(v: &Value, out: &mut Vec<String>) {
        out.push(v.to_string());
        match v {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|i| value_texts(i, out)),
            Value::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    value_texts(v, out);
                }
            }
            _ => {}
        }
    }

    /// Everything the error shows: `Display`, `Debug`, message, fix, code, details, every field.
    fn shown(err: &Error) -> Vec<String> {
        let mut out = vec![
            err.to_string(),
            format!("{err:?}"),
            format!("{err:#?}"),
            err.message().to_owned(),
            err.code().to_string(),
        ];
        out.extend(err.fix().map(str::to_owned));
        if let Some(api) = err.api() {
            out.push(api.to_string());
            out.push(format!("{api:?}"));
            if let Some(d) = api.details() {
                value_texts(d, &mut out);
            }
            for name in api.field_names() {
                out.push(name.to_owned());
                value_texts(api.field(name).unwrap(), &mut out);
            }
        }
        out
    }

    /// The byte ranges where `needle` occurs in `text`, overlapping ones included.
    fn occurrences(text: &str, needle: &str) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(at) = text.get(from..).and_then(|t| t.find(needle)) {
            out.push((from + at, from + at + needle.len()));
            from += at + needle.chars().next().map_or(1, char::len_utf8);
        }
        out
    }

    /// `true` when `needle` occurs in `text` clear of every `[REDACTED]` marker.
    fn leaks(text: &str, needle: &str) -> bool {
        let markers = occurrences(text, "[REDACTED]");
        occurrences(text, needle)
            .into_iter()
            .any(|(s, e)| !markers.iter().any(|&(ms, me)| s < me && ms < e))
    }

    /// Sends `secret` in `place`, echoed as `echo` in `shape`: none of `needles` shows in the
    /// error. What shows without the echo first: a credential the crate or the server's fixed
    /// text spells out anyway is skipped.
    fn never_shows(
        place: usize,
        secret: &str,
        shape: usize,
        echo: &str,
        pad: usize,
        needles: &[&str],
    ) -> Result<(), TestCaseError> {
        let neutral_char = ('a'..='z')
            .chain('A'..='Z')
            .find(|c| !secret.contains(*c))
            .unwrap_or('#');
        let neutral: String = std::iter::repeat_n(neutral_char, echo.len()).collect();
        let baseline = shown(&run(place, secret, shape, &neutral, pad));
        prop_assume!(
            !baseline
                .iter()
                .any(|t| needles.iter().any(|n| t.contains(n)))
        );
        let err = run(place, secret, shape, echo, pad);
        for text in shown(&err) {
            for needle in needles {
                prop_assert!(
                    !leaks(&text, needle),
                    "place {place}, shape {shape}: {needle:?} shows in {text:?}"
                );
            }
        }
        Ok(())
    }

    /// A credential: printable ASCII, 8 to 64 characters, not starting or ending with a space
    /// (a header value's surrounding spaces are not part of it).
    fn credential() -> impl Strategy<Value = String> {
        "[!-~][ -~]{6,62}[!-~]"
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

        #[test]
        fn a_carried_credential_never_shows(
            secret in credential(),
            place in 0..PLACES,
            shape in 0..SHAPES,
            echo_raw in any::<bool>(),
            pad in 0usize..1100,
        ) {
            // Query and cookie values travel percent-encoded: the server may echo either form.
            let encoded = utf8_percent_encode(&secret, NON_ALPHANUMERIC).to_string();
            let echo = if echo_raw && matches!(place, 4..=9) { encoded.clone() } else { secret.clone() };
            // The cuts are at 200 and 1024 characters: pad around them.
            let pad = match pad % 3 { 0 => pad % 40, 1 => 150 + pad % 100, _ => 940 + pad % 120 };

            let debug_form = format!("{secret:?}");
            let debug_form = &debug_form[1..debug_form.len() - 1];
            let mut needles = vec![secret.as_str(), debug_form];
            if echo_raw && encoded.len() >= 8 {
                needles.push(&encoded);
            }
            never_shows(place, &secret, shape, &echo, pad, &needles)?;
        }
    }

    /// `secret` percent-encoded with the bytes `mask` picks escaped, in upper- or lower-case
    /// hex: escapes no encoder needs, as a server may echo them. `%` itself is always escaped
    /// (a literal `%` beside escapes is no encoding: it would decode as an escape).
    fn escaped(secret: &str, mask: &[bool], lower: bool) -> String {
        let mut out = String::new();
        for (i, b) in secret.bytes().enumerate() {
            if b == b'%' || mask.get(i).copied().unwrap_or(false) {
                let hex = format!("%{b:02X}");
                out.push_str(&if lower { hex.to_lowercase() } else { hex });
            } else {
                out.push(b as char);
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn a_credential_escaped_any_way_never_shows(
            secret in credential(),
            place in 0..PLACES,
            shape in 0..SHAPES,
            mask in proptest::collection::vec(any::<bool>(), 64),
            lower in any::<bool>(),
            pad in 0usize..1100,
        ) {
            let echo = escaped(&secret, &mask, lower);
            let pad = match pad % 3 { 0 => pad % 40, 1 => 150 + pad % 100, _ => 940 + pad % 120 };
            never_shows(place, &secret, shape, &echo, pad, &[secret.as_str(), echo.as_str()])?;
        }
    }

    #[test]
    fn the_property_catches_a_leak() {
        // Without the request's credentials, an echo with no marker around it shows: the check
        // above is not vacuous.
        let (res, _) = response(0, "mk_live_S3cr3tApiKey0003", 0);
        let server = service_fn(move |_req: Request<Full<Bytes>>| {
            std::future::ready(Ok::<_, Infallible>(res.clone()))
        });
        let err = ErrorDecodeLayer::new()
            .read_timeout(None)
            .layer(server)
            .oneshot(Request::new(Full::default()))
            .now_or_never()
            .unwrap()
            .unwrap_err();
        assert!(
            shown(&err)
                .iter()
                .any(|t| leaks(t, "mk_live_S3cr3tApiKey0003"))
        );
        assert!(!leaks("[REDACTED] x", "ACTED] x"), "overlaps a marker");
        assert!(
            leaks("[REDACTED]ACTED] x", "ACTED] x"),
            "clear of the marker"
        );
    }
}
