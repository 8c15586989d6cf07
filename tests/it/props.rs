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
//!
//! Properties of one piece of the crate live beside it, in `src/`; this module holds those
//! that take the layer from outside. Their regression seeds share the crate's one file,
//! `proptest-regressions.txt`.

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

/// `cases` cases, with the regression seeds in the crate's one file (`cargo test` runs tests
/// from the crate's root).
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions.txt"),
        )),
        ..ProptestConfig::default()
    }
}

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
    #![proptest_config(config(1024))]

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
    #![proptest_config(config(512))]

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
