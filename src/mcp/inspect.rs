//! The MCP error inside a successful JSON-RPC response, if there is one (pure).

use crate::{
    decode::Credentials,
    error::{ApiError, BodyShape},
};
use http::{HeaderMap, StatusCode, header::CONTENT_TYPE};
use serde::Deserialize;
use serde_json::Value;

/// `true` for `application/json` and any `*/*+json` media type.
pub(super) fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence
            .get(essence.len().saturating_sub(5)..)
            .is_some_and(|s| s.eq_ignore_ascii_case("+json"))
}

/// The first look at a JSON-RPC message: is it an error at all? Everything else is skipped.
#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    result: Option<ProbeResult>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ProbeResult {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

/// The parts of an error result the decoder reads.
#[derive(Deserialize)]
struct ErrorResult {
    result: ErrorResultInner,
}

#[derive(Deserialize)]
struct ErrorResultInner {
    #[serde(rename = "structuredContent", default)]
    structured: Option<Value>,
    #[serde(default)]
    content: Option<Value>,
}

/// The MCP error in a successful response body, if it holds one.
///
/// `None` for anything that is not a JSON-RPC error response or a tool result with
/// `isError: true`. Pure; used by [`McpDecode`](super::McpDecode).
pub(crate) fn inspect(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &Credentials,
) -> Option<ApiError> {
    let decode = |body: &[u8]| ApiError::decode_with(status, headers, body, credentials);
    let probe: Probe = serde_json::from_slice(body).ok()?;
    if probe.error.as_ref().is_some_and(Value::is_object) {
        // A JSON-RPC error object: `ApiError::decode` knows the envelope. (`"error": false` or
        // `null` in a result is not an error.)
        return Some(decode(body));
    }
    if probe.result?.is_error != Some(true) {
        return None;
    }
    let result = serde_json::from_slice::<ErrorResult>(body)
        .ok()
        .map(|r| r.result);
    let (structured, content) = match result {
        Some(r) => (r.structured, r.content),
        None => (None, None),
    };
    if let Some(structured) = structured.filter(Value::is_object) {
        let bytes = serde_json::to_vec(&structured).unwrap_or_default();
        let api = decode(&bytes);
        if api.shape() != BodyShape::Unrecognized {
            return Some(api);
        }
    }
    let texts: Vec<&str> = content
        .as_ref()
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter(|i| i.get("type").and_then(Value::as_str) == Some("text"))
                .filter_map(|i| i.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    for text in &texts {
        let api = decode(text.as_bytes());
        if api.shape() != BodyShape::Unrecognized {
            return Some(api);
        }
    }
    // `isError` with no documented payload: an error all the same, coded by the status
    // (UNKNOWN for a 200), with the first text as its message.
    let api = decode(texts.first().unwrap_or(&"").as_bytes());
    Some(api.in_shape(BodyShape::Mcp))
}
