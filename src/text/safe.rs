//! Text fit for display: no credential, no control character, a bounded length.
//!
//! Every string an [`Error`](crate::Error) shows passes through [`safe_text`] (a message, a
//! fix, `grpc-message`) or [`excerpt`] (a body that is no documented shape: an HTML error
//! page, a proxy's text).

use super::{
    Credentials,
    redact::{dangling, redact},
};
use std::borrow::Cow;

/// The longest message or fix an [`ApiError`](crate::ApiError) keeps, in chars.
pub(crate) const MAX_TEXT_CHARS: usize = 1024;
/// The longest message excerpt taken from a body that is not a documented shape, in chars.
pub(crate) const EXCERPT_CHARS: usize = 200;
/// How many bytes of a body that is not a documented shape the excerpt looks at.
const EXCERPT_HEAD: usize = 4 * 1024;

/// Text fit for display: the request's `credentials` scrubbed, control characters (but `\n`)
/// as spaces, credentials redacted, at most `max_chars` characters (then `…`). Borrows when
/// nothing needs changing.
///
/// The request's own credentials go first, while the text is still as the server sent it (a
/// credential may hold a tab). Control characters go next, so that `Bearer\u{0}<secret>`
/// cannot slip past redaction and become `Bearer <secret>` afterwards; truncation comes last,
/// so a secret is redacted as a whole before any cut.
pub(crate) fn safe_text<'a>(
    text: &'a str,
    max_chars: usize,
    credentials: &Credentials,
) -> Cow<'a, str> {
    let scrubbed = credentials.scrub(text);
    match scrubbed {
        Cow::Borrowed(text) => safe_clean_text(text, max_chars),
        Cow::Owned(text) => Cow::Owned(safe_clean_text(&text, max_chars).into_owned()),
    }
}

/// [`safe_text`] once the request's credentials are scrubbed.
fn safe_clean_text(text: &str, max_chars: usize) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n';
    // Control characters are C0 and DEL (one byte) or C1 (0xC2 0x80..=0x9F): check bytes first.
    // A fold without early exit, so that it vectorises.
    let maybe_bad = text.bytes().fold(false, |acc, b| {
        acc | ((b < 0x20) & (b != b'\n')) | (b == 0x7f) | (b == 0xc2)
    });
    let cleaned: Cow<'_, str> = if maybe_bad && text.contains(bad) {
        Cow::Owned(text.chars().map(|c| if bad(c) { ' ' } else { c }).collect())
    } else {
        Cow::Borrowed(text)
    };
    let redacted = match cleaned {
        Cow::Borrowed(t) => redact(t),
        Cow::Owned(t) => Cow::Owned(redact(&t).into_owned()),
    };
    if redacted.len() <= max_chars {
        return redacted;
    }
    match cut_at(&redacted, max_chars) {
        None => redacted,
        Some(cut) => Cow::Owned(format!("{}…", &redacted[..cut])),
    }
}

/// Where `text` is cut to keep `max_chars` characters (`None`: it fits), moved back so that
/// the cut leaves no fragment that would read as a credential after a marker.
fn cut_at(text: &str, max_chars: usize) -> Option<usize> {
    let (mut cut, _) = text.char_indices().nth(max_chars)?;
    while let Some(start) = dangling(&text[..cut]) {
        cut = start;
    }
    Some(cut)
}

/// [`safe_text`] of a string that may be owned, reusing it when nothing needs changing.
pub(crate) fn safe_string(
    text: Cow<'_, str>,
    max_chars: usize,
    credentials: &Credentials,
) -> String {
    let changed = match safe_text(&text, max_chars, credentials) {
        Cow::Owned(s) => Some(s),
        Cow::Borrowed(_) => None,
    };
    changed.unwrap_or_else(|| text.into_owned())
}

/// A short, printable, credential-free excerpt of arbitrary bytes: the `<title>` of an HTML
/// page or its text without tags, character references decoded, control characters as
/// spaces, white space collapsed, at most 200 characters.
///
/// `credentials` are scrubbed from the raw text first (before tags, references and white
/// space change how it is spelled), and again from the excerpt; truncation comes last.
pub(crate) fn excerpt(bytes: &[u8], credentials: &Credentials) -> String {
    // Look a little past the head, so that a credential straddling the cut is scrubbed whole
    // rather than cut in two.
    let window = &bytes[..bytes.len().min(EXCERPT_HEAD + credentials.longest())];
    // The common case, valid UTF-8, checked with the standard library's word-at-a-time
    // scan; only an invalid window is decoded lossily.
    let text = match std::str::from_utf8(window) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(window),
    };
    let text = credentials.scrub_until(&text, EXCERPT_HEAD);
    let text = html_title(&text).unwrap_or(&text);
    let mut out = String::with_capacity(text.len().min(EXCERPT_CHARS * 2));
    let mut in_tag = false;
    let mut pending_space = false;
    let mut rest = text;
    while let Some(ch) = rest.chars().next() {
        rest = &rest[ch.len_utf8()..];
        let ch = match ch {
            '<' => {
                in_tag = true;
                continue;
            }
            '>' if in_tag => {
                in_tag = false;
                pending_space = true;
                continue;
            }
            _ if in_tag => continue,
            '&' => match char_reference(rest) {
                Some((c, len)) => {
                    rest = &rest[len..];
                    c
                }
                None => '&',
            },
            c => c,
        };
        if ch.is_whitespace() || ch.is_control() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() {
            out.push(' ');
        }
        pending_space = false;
        out.push(ch);
    }
    let out = credentials.scrub_string(out);
    let out = match redact(&out) {
        Cow::Owned(r) => r,
        Cow::Borrowed(_) => out,
    };
    match cut_at(&out, EXCERPT_CHARS) {
        None => out,
        Some(cut) => format!("{}…", &out[..cut]),
    }
}

/// The character an HTML character reference after `&` stands for (`amp;`, `lt;`, `#39;`,
/// `#x27;`, ...), and its length; `None` when `after` does not start with one.
fn char_reference(after: &str) -> Option<(char, usize)> {
    let end = after.bytes().take(10).position(|b| b == b';')?;
    let name = &after[..end];
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => {
            let num = name.strip_prefix('#')?;
            let code = match num.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => num.parse().ok()?,
            };
            char::from_u32(code)?
        }
    };
    Some((c, end + 1))
}

fn html_title(text: &str) -> Option<&str> {
    let bytes = text.as_bytes();
    let head = &bytes[..bytes.len().min(1024)];
    let start = find_ignore_case(head, b"<title>")? + b"<title>".len();
    let end = start + find_ignore_case(&bytes[start..], b"</title>")?;
    // Both ends sit next to ASCII `>` / `<`, so they are char boundaries.
    text.get(start..end)
}

/// The first index of an ASCII `needle` in `haystack`, ignoring ASCII case.
/// `needle` starts with `<`, so only the `<`s are tried.
fn find_ignore_case(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + haystack.get(from..)?.iter().position(|&b| b == needle[0])?;
        if haystack
            .get(at..at + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(at);
        }
        from = at + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Credentials = Credentials::new();
    const SECRET: &str = "SECRETQ7x9";

    /// A cut at the length bound never leaves a marker followed by a fragment that `redact`
    /// would take for a credential (`\"token\": \` cut out of `\"token\": \"[REDACTED]`).
    #[test]
    fn an_excerpt_cut_inside_an_escaped_quote_after_a_marker_is_stable() {
        for pad in 150..=200 {
            let message = format!("{} \"token\": \"{SECRET} and more", "a".repeat(pad));
            let body = serde_json::to_vec(&serde_json::json!({ "m": message })).unwrap();
            let out = excerpt(&body, &NONE);
            assert!(!out.contains(SECRET), "{out}");
            assert!(out.chars().count() <= EXCERPT_CHARS + 1, "{out}");
            assert!(matches!(redact(&out), Cow::Borrowed(_)), "pad {pad}: {out}");
            let err = crate::error::ApiError::decode(
                http::StatusCode::CONTINUE,
                &http::HeaderMap::new(),
                &body,
            );
            let message = err.message();
            assert!(
                matches!(redact(message), Cow::Borrowed(_)),
                "pad {pad}: {message}"
            );
        }
    }

    #[test]
    fn a_text_cut_inside_an_escape_after_a_marker_is_stable() {
        for pad in 0..=40 {
            for sep in ["\\t", "\\\"", "\\u0020"] {
                let text = format!("{} token: {sep}{SECRET} and more", "a".repeat(pad));
                let out = safe_text(&text, 40, &NONE);
                assert!(!out.contains(SECRET), "{out}");
                assert!(out.chars().count() <= 41, "{out}");
                assert!(
                    matches!(redact(&out), Cow::Borrowed(_)),
                    "pad {pad} {sep}: {out}"
                );
            }
        }
    }
}
