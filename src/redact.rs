//! Removal of credentials from any text the crate shows: error messages, `Debug`, logs.
//!
//! The pages put credentials in three places: `Authorization: Bearer convo_<key>`,
//! `X-Api-Key: <key>` and `?token=convo_<key>`. A server, a proxy or a transport error may echo
//! any of them back, so every string that reaches an [`Error`](crate::Error) passes through
//! [`redact`] first.

use std::borrow::Cow;

/// What a removed credential is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Markers after which the rest of the "word" is a secret (matched case-insensitively).
const MARKERS: &[&str] = &[
    "bearer ",
    "token=",
    "x-api-key: ",
    "x-api-key=",
    "api_key=",
    "apikey=",
    "convo_",
];

/// Replaces every credential in `text` with `[REDACTED]`, borrowing when there is none.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !MARKERS.iter().any(|m| lower.contains(m)) {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < bytes.len() {
        for m in MARKERS {
            if lower.as_bytes()[i..].starts_with(m.as_bytes()) {
                let start = i + m.len();
                let mut end = start;
                while end < bytes.len() && is_secret_byte(bytes[end]) {
                    end += 1;
                }
                out.push_str(&text[i..start]);
                if end > start {
                    out.push_str(REDACTED);
                }
                i = end;
                continue 'outer;
            }
        }
        // Copy one whole UTF-8 character.
        let ch = text[i..].chars().next().expect("i is on a char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    Cow::Owned(out)
}

fn is_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%')
}

/// Redacts every string inside a JSON value, in place.
pub(crate) fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_value),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_every_documented_credential() {
        let cases = [
            (
                "Authorization: Bearer convo_abc123",
                "Authorization: Bearer [REDACTED]",
            ),
            (
                "GET /api/events?token=convo_s3cr3t&since=4",
                "GET /api/events?token=[REDACTED]&since=4",
            ),
            ("x-api-key: mk_live_XYZ", "x-api-key: [REDACTED]"),
            (
                "key convo_ABC-def was revoked",
                "key convo_[REDACTED] was revoked",
            ),
            ("TOKEN=abc", "TOKEN=[REDACTED]"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want);
            assert!(!redact(input).contains("abc123"));
        }
    }

    #[test]
    fn leaves_clean_text_alone() {
        assert!(matches!(redact("Space is not active"), Cow::Borrowed(_)));
        assert_eq!(redact("ünïcödé bearer"), "ünïcödé bearer");
    }

    #[test]
    fn redacts_json_strings() {
        let mut v = serde_json::json!({"a": ["Bearer convo_x"], "b": {"c": "token=y"}});
        redact_value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"a": ["Bearer [REDACTED]"], "b": {"c": "token=[REDACTED]"}})
        );
    }
}
