//! Removal of credentials from any text the crate shows: error messages, `Debug`, logs.
//!
//! The pages put credentials in three places: `Authorization: Bearer convo_<key>`,
//! `X-Api-Key: <key>` and `?token=convo_<key>`. A server, a proxy or a transport error may echo
//! any of them back (as a header line, a query string or a JSON member), so every string that
//! reaches an [`Error`](crate::Error) passes through two filters: the exact values the request
//! carried ([`Credentials`], when the request is known) and then [`redact`], which finds a
//! secret by the marker before it; and every JSON member whose *name* looks like a credential
//! is blanked by [`redact_value`].

use super::Credentials;
use std::borrow::Cow;

/// What a removed credential is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Markers (lower case, matched case-insensitively) whose next word, after a separator, is a
/// secret: `<marker>=<secret>`, `<marker>: <secret>`, `"<marker>": "<secret>"`.
const ASSIGN_MARKERS: &[&str] = &[
    "token",
    "x-api-key",
    "api_key",
    "api-key",
    "apikey",
    "password",
    "secret",
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
///
/// A secret is the word (see `is_secret_byte`) after `Bearer` and white space, after
/// `convo_`, or after one of the assignment markers (`token`, `x-api-key`, `api_key`, ...)
/// followed by `=` or `:` (optionally quoted and spaced, as in JSON). The scan looks for the
/// bytes that end a marker (`'_'`, `'='`, `':'`, and white space after `bearer` or `basic`)
/// with `memchr`, and only then looks back for the marker, so clean text costs a vectorised
/// pass or two over its bytes.
pub(crate) fn redact(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let Some(first) = next_secret(bytes, 0) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + REDACTED.len());
    let mut copied = 0;
    let mut next = Some(first);
    while let Some((start, end)) = next {
        // Secrets are ASCII and start after an ASCII byte: both ends are char boundaries.
        out.push_str(&text[copied..start]);
        out.push_str(REDACTED);
        copied = end;
        next = next_secret(bytes, end);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Where a credential that runs to the very end of `text` starts, if one does: cutting a
/// redacted text may leave a marker followed by a fragment that reads as one (`"token": \`
/// cut from `"token": \"[REDACTED]`), and the cut then goes before it.
pub(crate) fn dangling(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some((start, end)) = next_secret(bytes, from) {
        if end == bytes.len() {
            return Some(start);
        }
        from = end;
    }
    None
}

/// Bytes that can end a marker and its separator: white space, controls, `\\` (JSON escapes),
/// UTF-8 lead bytes (non-ASCII white space), `_` (`convo_`), `=` and `:`.
static ANCHOR: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = b <= 0x20 || b == 0x7f || b >= 0xc0 || matches!(b as u8, b'\\' | b'_' | b'=' | b':');
        b += 1;
    }
    t
};

/// The byte range of the first secret at or after `from`.
///
/// A secret can only start after a `_`, `=` or `:`, or after the white space that follows
/// `bearer` or `basic`: `memchr` finds those candidates (most text has few), and each is
/// judged as [`secret_after`] says.
fn next_secret(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    if bytes.len().saturating_sub(from) < SHORT {
        return next_secret_byte_by_byte(bytes, from);
    }
    let separator = |at: usize| memchr::memchr3(b'_', b'=', b':', bytes.get(at..)?).map(|i| at + i);
    let mut sep = separator(from);
    let mut word = after_scheme(bytes, from);
    loop {
        let k = match (sep, word) {
            (None, None) => return None,
            (Some(k), None) | (None, Some(k)) => k,
            (Some(s), Some(w)) => s.min(w),
        };
        if let Some(found) = secret_after(bytes, k) {
            return Some(found);
        }
        if sep == Some(k) {
            sep = separator(k + 1);
        }
        if word == Some(k) {
            word = after_scheme(bytes, k + 1);
        }
    }
}

/// Below this many bytes, a plain scan costs less than setting up `memchr`'s vector search.
const SHORT: usize = 48;

/// [`next_secret`] for short text: every [`ANCHOR`] byte in turn.
fn next_secret_byte_by_byte(bytes: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut k = from;
    loop {
        k += bytes.get(k..)?.iter().position(|&b| ANCHOR[b as usize])?;
        if let Some(found) = secret_after(bytes, k) {
            return Some(found);
        }
        k += 1;
    }
}

/// The first index at or after `from` of an [`ANCHOR`] byte right after `bearer` or `basic`
/// (ignoring ASCII case): where `Bearer <secret>` and `Basic <secret>` may start.
fn after_scheme(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from.saturating_sub("bearer".len());
    loop {
        i += memchr::memchr2(b'b', b'B', bytes.get(i..)?)?;
        for word in ["bearer", "basic"] {
            let k = i + word.len();
            if k >= from
                && k < bytes.len()
                && ANCHOR[bytes[k] as usize]
                && bytes[i..k].eq_ignore_ascii_case(word.as_bytes())
            {
                return Some(k);
            }
        }
        i += 1;
    }
}

/// The secret after the [`ANCHOR`] byte at `k`, if one starts there.
fn secret_after(bytes: &[u8], k: usize) -> Option<(usize, usize)> {
    let start = match bytes[k] {
        b'_' => ends_with_marker(&bytes[..k], "convo").then_some(k + 1),
        b'=' | b':' => {
            let before = trim_quote(trim_blanks(&bytes[..k]));
            ASSIGN_MARKERS
                .iter()
                .any(|m| ends_with_marker(before, m))
                .then(|| skip_quote(bytes, skip_blanks(bytes, k + 1)))
        }
        // White space or an escape after `bearer` (the cheap test first).
        _ if k > 0
            && bytes[k - 1].eq_ignore_ascii_case(&b'r')
            && ends_with_marker(&bytes[..k], "bearer")
            && blank_len(bytes, k) > 0 =>
        {
            Some(skip_blanks(bytes, k))
        }
        // `Authorization: Basic <credentials>` (only after the header name: "basic" alone
        // is an ordinary word).
        _ if k > 0
            && bytes[k - 1].eq_ignore_ascii_case(&b'c')
            && ends_with_marker(&bytes[..k], "basic")
            && blank_len(bytes, k) > 0
            && after_authorization(&bytes[..k - "basic".len()]) =>
        {
            Some(skip_blanks(bytes, k))
        }
        _ => None,
    }?;
    let end = start
        + bytes[start..]
            .iter()
            .take_while(|&&b| is_secret_byte(b))
            .count();
    (end > start).then_some((start, end))
}

/// `true` when `before` ends with `authorization:` (blanks and a quote allowed around the colon).
fn after_authorization(before: &[u8]) -> bool {
    match trim_blanks(trim_quote(trim_blanks(before))) {
        [rest @ .., b':'] => ends_with_marker(trim_quote(trim_blanks(rest)), "authorization"),
        _ => false,
    }
}

fn ends_with_marker(before: &[u8], marker: &str) -> bool {
    before.len() >= marker.len()
        && before[before.len() - marker.len()..].eq_ignore_ascii_case(marker.as_bytes())
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Trims one quote, or one JSON-escaped quote (`\"`, in a raw body).
fn trim_quote(s: &[u8]) -> &[u8] {
    match s {
        [rest @ .., b'\\', b'"'] => rest,
        [rest @ .., b'"' | b'\''] => rest,
        _ => s,
    }
}

/// Skips white space, including the JSON escapes of white space and control characters
/// (`\t`, `\n`, `\u0000`, ...): a raw JSON body is excerpted without being unescaped.
fn skip_blanks(bytes: &[u8], mut j: usize) -> usize {
    loop {
        match blank_len(bytes, j) {
            0 => return j,
            n => j += n,
        }
    }
}

/// The length of the blank at `j`: white space or a control character (ASCII or not), a
/// `\t`-style escape (2), a `\u00XX` escape of a control character or space (6); 0 for
/// anything else. `j` is on a char boundary.
fn blank_len(bytes: &[u8], j: usize) -> usize {
    match &bytes[j.min(bytes.len())..] {
        [b, ..] if *b <= b' ' || *b == 0x7f => 1,
        [b, ..] if *b >= 0xc0 => {
            let head = &bytes[j..bytes.len().min(j + 4)];
            let valid = match std::str::from_utf8(head) {
                Ok(s) => s,
                Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
            };
            match valid.chars().next() {
                Some(c) if c.is_whitespace() || c.is_control() => c.len_utf8(),
                _ => 0,
            }
        }
        [b'\\', b't' | b'n' | b'r' | b'f' | b'b', ..] => 2,
        [b'\\', b'u', b'0', b'0', hi @ (b'0' | b'1' | b'2'), lo, ..]
            if lo.is_ascii_hexdigit() && (*hi != b'2' || *lo == b'0') =>
        {
            6
        }
        _ => 0,
    }
}

/// Skips one quote, or one JSON-escaped quote (`\"`, in a raw body).
fn skip_quote(bytes: &[u8], j: usize) -> usize {
    match &bytes[j.min(bytes.len())..] {
        [b'\\', b'"', ..] => j + 2,
        [b'"' | b'\'', ..] => j + 1,
        _ => j,
    }
}

/// The bytes a credential is made of: URL-safe and base64 characters, plus `\` (a raw JSON
/// body may escape a `/` inside a key as `\/`).
fn is_secret_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'_' | b'-' | b'.' | b'~' | b'+' | b'/' | b'=' | b'%' | b'\\'
        )
}

/// The first bytes of the [`SECRET_KEYS`], in both cases.
static SECRET_KEY_START: [bool; 256] = {
    let mut t = [false; 256];
    let mut k = 0;
    while k < SECRET_KEYS.len() {
        let b = SECRET_KEYS[k].as_bytes()[0];
        t[b as usize] = true;
        t[b.to_ascii_uppercase() as usize] = true;
        k += 1;
    }
    t
};

/// `true` when a JSON member or header name says its value is a credential: it contains one
/// of the [`SECRET_KEYS`], ignoring ASCII case. Only the positions that start like one are
/// compared.
pub(crate) fn is_secret_key(name: &str) -> bool {
    let name = name.as_bytes();
    name.iter().enumerate().any(|(i, &b)| {
        SECRET_KEY_START[b as usize]
            && SECRET_KEYS.iter().any(|k| {
                name.get(i..i + k.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(k.as_bytes()))
            })
    })
}

/// Scrubs `credentials` from every string and member name inside a JSON value (and from a
/// number's digits), redacts every string, and blanks the value of every member whose name is
/// a credential's (`"token"`, `"x-api-key"`, `"authorization"`, ...). In place.
pub(crate) fn redact_value(value: &mut serde_json::Value, credentials: &Credentials) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(r) = credentials.scrub(s) {
                *s = r;
            }
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        Value::Number(n) if !credentials.is_empty() => {
            // A numeric secret echoed as a number.
            if let Cow::Owned(r) = credentials.scrub(&n.to_string()) {
                *value = Value::String(r);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| redact_value(item, credentials)),
        Value::Object(map) => {
            if !credentials.is_empty() {
                // A credential used as a member name (`{"<key>": "unknown"}`).
                let renamed: Vec<(String, String)> = map
                    .keys()
                    .filter_map(|k| match credentials.scrub(k) {
                        Cow::Owned(new) => Some((k.clone(), new)),
                        Cow::Borrowed(_) => None,
                    })
                    .collect();
                for (old, new) in renamed {
                    if let Some(v) = map.remove(&old) {
                        map.insert(new, v);
                    }
                }
            }
            for (k, v) in map.iter_mut() {
                redact_member(k, v, credentials);
            }
        }
        _ => {}
    }
}

/// [`redact_value`] for the value of a member named `name` (already scrubbed).
pub(crate) fn redact_member(name: &str, value: &mut serde_json::Value, credentials: &Credentials) {
    use serde_json::Value::{Array, Object, String};
    if matches!(value, String(_) | Array(_) | Object(_)) && is_secret_key(name) {
        // Whatever its shape: `{"X-Api-Key": ["…"]}` (a header echo), `{"token": {"value": …}}`.
        *value = String(REDACTED.to_owned());
    } else {
        redact_value(value, credentials);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::safe::safe_text;

    const NONE: Credentials = Credentials::new();

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

    proptest::proptest! {
        // Each case scans from every position of up to a few kilobytes: quadratic.
        #![proptest_config(crate::props::config(128))]
        #[test]
        fn the_memchr_scan_finds_what_the_byte_scan_finds(
            text in "(bearer|basic|BeArEr|Basic|convo|token|x-api-key|authorization|password                      |[ :=_\t\\\"'a-z0-9/+.-]|\u{a0}|é|\\u0000|\\t){0,40}"
        ) {
            // Long enough for the `memchr` scan from most starting points.
            let text = text.repeat(3);
            let bytes = text.as_bytes();
            for from in 0..=bytes.len() {
                proptest::prop_assert_eq!(
                    next_secret(bytes, from),
                    next_secret_byte_by_byte(bytes, from),
                    "from {}", from
                );
            }
        }
    }

    #[test]
    fn secret_member_names() {
        for name in [
            "X-Api-Key",
            "refreshToken",
            "AUTHORIZATION",
            "session_cookie",
            "pAsSwOrD",
        ] {
            assert!(is_secret_key(name), "{name}");
        }
        for name in ["keyPrefix", "tokens_used", "max_tokens", "", "é", "a"] {
            assert_eq!(
                is_secret_key(name),
                SECRET_KEYS
                    .iter()
                    .any(|k| name.to_ascii_lowercase().contains(k)),
                "{name}"
            );
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
        redact_value(&mut v, &Credentials::new());
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
            (r#"["Bearer\tabc123"]"#, r#"["Bearer\t[REDACTED]"]"#),
            (
                r#"["Bearer\u0000abc\/123"]"#,
                r#"["Bearer\u0000[REDACTED]"]"#,
            ),
            (
                r#"{"d": "\"token\": \"abc123\""}"#,
                r#"{"d": "\"token\": \"[REDACTED]""}"#,
            ),
            ("Bearer\u{0}abc123", "Bearer\u{0}[REDACTED]"),
            ("Bearer\u{a0}abc123", "Bearer\u{a0}[REDACTED]"),
            ("access_token=abc123&x=1", "access_token=[REDACTED]&x=1"),
            ("password: 'abc123'", "password: '[REDACTED]'"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input), want, "{input}");
        }
        // Words that merely look like markers stay.
        for clean in [
            "The API key you sent is not recognized.",
            "bearer",
            "tokens",
            "a token",
        ] {
            assert!(matches!(redact(clean), Cow::Borrowed(_)), "{clean}");
        }
    }

    #[test]
    fn credential_members_are_blanked_by_name() {
        let mut v = serde_json::json!({"X-Api-Key": "mk_live_1", "nested": {"refreshToken": "r1"}, "n": 5, "token_count": 3});
        redact_value(&mut v, &Credentials::new());
        assert_eq!(
            v,
            serde_json::json!({"X-Api-Key": "[REDACTED]", "nested": {"refreshToken": "[REDACTED]"}, "n": 5, "token_count": 3})
        );
    }

    #[test]
    fn safe_text_bounds_and_cleans() {
        assert!(matches!(
            safe_text("Space is not active", 10_000, &NONE),
            Cow::Borrowed(_)
        ));
        assert_eq!(safe_text("a\u{1b}[2Jb\nc", 100, &NONE), "a [2Jb\nc");
        assert_eq!(safe_text("abcdef", 3, &NONE), "abc…");
        assert_eq!(safe_text("ünï", 3, &NONE), "ünï");
        assert_eq!(safe_text("token=abcdefgh", 8, &NONE), "token=[R…");
        // A cut between the two bytes of `\"` leaves a `\` that would read as a credential
        // after its marker: the cut goes before it, and redacting again changes nothing.
        let text = r#"m "token": \"abcdefgh\" more"#;
        let cut = safe_text(text, 12, &NONE);
        assert_eq!(cut, r#"m "token": …"#);
        assert!(matches!(redact(&cut), Cow::Borrowed(_)), "{cut}");
    }

    #[test]
    fn basic_credentials_after_the_header_name() {
        let text = "rejected header Authorization: Basic dXNlcjpTRUNSRVQ= (bad)";
        assert_eq!(
            redact(text),
            "rejected header Authorization: Basic [REDACTED] (bad)"
        );
        assert_eq!(
            redact(r#"{"authorization": "Basic dXNlcjpTRUNSRVQ="}"#),
            r#"{"authorization": "Basic [REDACTED]"}"#
        );
        // "basic" alone is an ordinary word.
        assert_eq!(redact("the basic plan"), "the basic plan");
    }

    #[test]
    fn secret_members_are_blanked_whatever_their_shape() {
        let mut v = serde_json::json!({
            "headers": {"X-Api-Key": ["mk_live_SECRET"]},
            "token": {"value": "s3cr3tvalue"},
            "max_tokens": 12,
        });
        redact_value(&mut v, &Credentials::new());
        let text = v.to_string();
        assert!(
            !text.contains("SECRET") && !text.contains("s3cr3t"),
            "{text}"
        );
        assert_eq!(v["max_tokens"], 12, "numbers are not credentials");
    }
}
