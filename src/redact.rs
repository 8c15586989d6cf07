//! Removal of credentials from any text the crate shows: error messages, `Debug`, logs.
//!
//! The pages put credentials in three places: `Authorization: Bearer convo_<key>`,
//! `X-Api-Key: <key>` and `?token=convo_<key>`. A server, a proxy or a transport error may echo
//! any of them back (as a header line, a query string or a JSON member), so every string that
//! reaches an [`Error`](crate::Error) passes through [`redact`] first, and every JSON member
//! whose *name* looks like a credential is blanked by [`redact_value`].

use std::borrow::Cow;

/// What a removed credential is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// The longest message or fix an [`ApiError`](crate::ApiError) keeps, in chars.
pub(crate) const MAX_TEXT_CHARS: usize = 1024;

/// What must follow a marker for the next word to be a secret.
#[derive(Clone, Copy)]
enum Sep {
    /// At least one space or tab (`Bearer <secret>`).
    Space,
    /// `=` or `:`, optionally quoted and spaced (`token=<s>`, `X-Api-Key: <s>`,
    /// `"token": "<s>"`).
    Assign,
    /// Nothing: the marker is the secret's own prefix (`convo_<s>`).
    None,
}

/// Markers (lower case, matched case-insensitively) after which the next word is a secret.
const MARKERS: &[(&str, Sep)] = &[
    ("bearer", Sep::Space),
    ("x-api-key", Sep::Assign),
    ("api_key", Sep::Assign),
    ("api-key", Sep::Assign),
    ("apikey", Sep::Assign),
    ("token", Sep::Assign),
    ("password", Sep::Assign),
    ("secret", Sep::Assign),
    ("convo_", Sep::None),
];

/// JSON member names (lower case substrings) whose string values are credentials.
const SECRET_KEYS: &[&str] = &[
    "authorization",
    "api_key",
    "api-key",
    "apikey",
    "token",
    "password",
    "secret",
    "cookie",
];

/// Replaces every credential in `text` with `[REDACTED]`, borrowing when there is none.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = (0..bytes.len()).find(|&i| secret_at(bytes, i).is_some()) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut i = first;
    while i < bytes.len() {
        if let Some((start, end)) = secret_at(bytes, i) {
            out.push_str(&text[i..start]);
            out.push_str(REDACTED);
            i = end;
            continue;
        }
        // Copy one whole UTF-8 character (markers are ASCII, so `i` stays on a boundary).
        let ch = text[i..].chars().next().expect("i is on a char boundary");
        out.push(ch);
        i += ch.len_utf8();
    }
    Cow::Owned(out)
}

/// If a marker starts at `i` and a secret follows it, the secret's byte range.
fn secret_at(bytes: &[u8], i: usize) -> Option<(usize, usize)> {
    let lead = bytes[i].to_ascii_lowercase();
    if !matches!(lead, b'b' | b'x' | b'a' | b't' | b'p' | b's' | b'c') {
        return None;
    }
    for &(marker, sep) in MARKERS {
        let m = marker.as_bytes();
        if m[0] != lead || bytes.len() - i < m.len() || !bytes[i..i + m.len()].eq_ignore_ascii_case(m) {
            continue;
        }
        let mut j = i + m.len();
        match sep {
            Sep::None => {}
            Sep::Space => {
                let k = skip_blanks(bytes, j);
                if k == j {
                    continue;
                }
                j = k;
            }
            Sep::Assign => {
                j = skip_quote(bytes, skip_blanks(bytes, skip_quote(bytes, j)));
                if !matches!(bytes.get(j), Some(b'=' | b':')) {
                    continue;
                }
                j = skip_quote(bytes, skip_blanks(bytes, j + 1));
            }
        }
        let end = j + bytes[j..].iter().take_while(|&&b| is_secret_byte(b)).count();
        if end > j {
            return Some((j, end));
        }
    }
    None
}

fn skip_blanks(bytes: &[u8], mut j: usize) -> usize {
    while matches!(bytes.get(j), Some(b' ' | b'\t')) {
        j += 1;
    }
    j
}

fn skip_quote(bytes: &[u8], j: usize) -> usize {
    match bytes.get(j) {
        Some(b'"' | b'\'') => j + 1,
        _ => j,
    }
}

fn is_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%')
}

/// `true` when a JSON member or header name says its value is a credential.
pub(crate) fn is_secret_key(name: &str) -> bool {
    SECRET_KEYS.iter().any(|k| {
        name.as_bytes()
            .windows(k.len())
            .any(|w| w.eq_ignore_ascii_case(k.as_bytes()))
    })
}

/// Redacts every string inside a JSON value, in place, and blanks the string value of every
/// member whose name is a credential's (`"token"`, `"x-api-key"`, `"authorization"`, ...).
pub(crate) fn redact_value(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_value),
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                redact_member(k, v);
            }
        }
        _ => {}
    }
}

/// [`redact_value`] for the value of a member named `name`.
pub(crate) fn redact_member(name: &str, value: &mut serde_json::Value) {
    if value.is_string() && is_secret_key(name) {
        *value = serde_json::Value::String(REDACTED.to_owned());
    } else {
        redact_value(value);
    }
}

/// Text fit for display: credentials redacted, control characters (but `\n`) as spaces, at
/// most `max_chars` characters (then `…`). Borrows when nothing needs changing.
pub(crate) fn safe_text(text: &str, max_chars: usize) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n';
    let long = text.len() > max_chars && text.chars().nth(max_chars).is_some();
    let text = redact(text);
    if !long && !text.contains(bad) {
        return text;
    }
    let mut out: String = text
        .chars()
        .take(max_chars)
        .map(|c| if bad(c) { ' ' } else { c })
        .collect();
    if text.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    // Truncation may have cut a secret short, never exposed one: it is redacted as a whole
    // before the cut.
    Cow::Owned(out)
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

    #[test]
    fn separators_quotes_and_spacing() {
        let cases = [
            (r#"{"token": "abc123"}"#, r#"{"token": "[REDACTED]"}"#),
            ("X-Api-Key:abc123", "X-Api-Key:[REDACTED]"),
            ("Bearer \t abc123", "Bearer \t [REDACTED]"),
            ("access_token=abc123&x=1", "access_token=[REDACTED]&x=1"),
            ("password: 'abc123'", "password: '[REDACTED]'"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        // Words that merely look like markers stay.
        for clean in ["The API key you sent is not recognized.", "bearer", "tokens", "a token"] {
            assert!(matches!(redact(clean), Cow::Borrowed(_)), "{clean}");
        }
    }

    #[test]
    fn credential_members_are_blanked_by_name() {
        let mut v = serde_json::json!({"X-Api-Key": "mk_live_1", "nested": {"refreshToken": "r1"}, "n": 5, "token_count": 3});
        redact_value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"X-Api-Key": "[REDACTED]", "nested": {"refreshToken": "[REDACTED]"}, "n": 5, "token_count": 3})
        );
    }

    #[test]
    fn safe_text_bounds_and_cleans() {
        assert!(matches!(safe_text("Space is not active", 10_000), Cow::Borrowed(_)));
        assert_eq!(safe_text("a\u{1b}[2Jb\nc", 100), "a [2Jb\nc");
        assert_eq!(safe_text("abcdef", 3), "abc…");
        assert_eq!(safe_text("ünï", 3), "ünï");
        assert_eq!(safe_text("token=abcdefgh", 8), "token=[R…");
    }
}
