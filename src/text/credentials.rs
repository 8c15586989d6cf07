//! The credentials a request carried, so that no error built from its response shows them:
//! [`Credentials`]. Marker-based redaction ([`redact`](super::redact)) finds a secret by what
//! surrounds it (`Bearer`, `token=`); a key echoed bare is found only by knowing what was sent.
//!
//! Only fingerprints are kept: the length and a 64-bit polynomial hash of each spelling,
//! computed from the header bytes in place and stored inline for up to three, so a success
//! costs no allocation and the future holds no secret. Texts are searched, with a rolling hash
//! of the same polynomial, only when an error is built. A foreign window that shares a 64-bit
//! hash would be redacted too, which costs a word of a message and nothing else.

use http::{
    HeaderMap, HeaderName, Request, Uri,
    header::{AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION},
};
use std::{borrow::Cow, fmt, sync::Arc};

use super::redact::REDACTED;

/// Values shorter than this, in characters, are not remembered: a short value could blank
/// out ordinary words.
pub(crate) const MIN_CHARS: usize = 8;

/// The shortest decoded spelling of a remembered value that is remembered too (see
/// `Credentials::push_decoded`).
const MIN_DECODED: usize = 4;

/// Query parameters whose values are credentials (names compared ignoring ASCII case).
const QUERY_NAMES: [&str; 5] = ["token", "access_token", "api_key", "apikey", "key"];

/// How many fingerprints are stored inline, without allocating.
const INLINE: usize = 3;

/// The low bits of a hash that an inline fingerprint uses for the length instead.
const LEN_BITS: u32 = 16;
const LEN_MASK: u64 = (1 << LEN_BITS) - 1;

/// The multiplier of the polynomial hash: odd, with well-mixed bits.
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;

/// `BASE^0 ..= BASE^8`, for hashing eight bytes per step.
const POW: [u64; 9] = {
    let mut p = [1u64; 9];
    let mut i = 1;
    while i < 9 {
        p[i] = p[i - 1].wrapping_mul(BASE);
        i += 1;
    }
    p
};

// Byte classes, to know which other spellings of a value can differ from it.
/// `%`: a percent-encoded value also has a decoded spelling.
const PCT: u8 = 1;
/// `+`: a form-encoded value also has a spelling with spaces.
const PLUS: u8 = 2;
/// `"`, `\` or a control character: JSON escapes it.
const JSON: u8 = 4;
/// `/`: some JSON encoders escape it as `\/`.
const SLASH: u8 = 8;
/// Anything but the URI's unreserved characters: percent-encoding changes it.
const RESERVED: u8 = 16;
/// Not ASCII: the value may not be UTF-8, and would then be shown lossily.
const HIGH: u8 = 32;

/// The URI's unreserved characters: `A-Z a-z 0-9 - . _ ~`.
const fn is_unreserved(b: u8) -> bool {
    let lower = b | 0x20;
    (lower.wrapping_sub(b'a') < 26)
        | (b.wrapping_sub(b'0') < 10)
        | (b == b'-')
        | (b == b'.')
        | (b == b'_')
        | (b == b'~')
}

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if !is_unreserved(c) {
            class |= RESERVED;
        }
        if c == b'%' {
            class |= PCT;
        }
        if c == b'+' {
            class |= PLUS;
        }
        if c == b'"' || c == b'\\' || c < 0x20 {
            class |= JSON;
        }
        if c == b'/' {
            class |= SLASH;
        }
        if c >= 0x80 {
            class |= HIGH;
        }
        t[b] = class;
        b += 1;
    }
    t
};

/// Fingerprints beyond the inline ones.
#[derive(Clone, Default)]
struct Spill(Vec<Print>);

/// The fingerprint of one spelling of one credential: its length, and the top 48 bits of its
/// hash (so that it packs into one `u64` inline when the length fits in the other 16).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Print {
    hash: u64,
    len: u32,
}

impl Print {
    /// The print of a polynomial hash: mixed first, so that the top bits it keeps depend on
    /// every byte (the last byte of a polynomial hash only reaches its low bits).
    fn new(hash: u64, len: u32) -> Print {
        Print {
            hash: mix(hash) & !LEN_MASK,
            len,
        }
    }

    /// The packed form, when the length fits (never 0: a print is at least 8 bytes long).
    fn packed(self) -> Option<u64> {
        (u64::from(self.len) <= LEN_MASK).then_some(self.hash | u64::from(self.len))
    }

    fn unpack(packed: u64) -> Print {
        Print {
            hash: packed & !LEN_MASK,
            len: (packed & LEN_MASK) as u32,
        }
    }
}

/// A bijective mix of all 64 bits into all 64 bits (the `splitmix64` finalizer).
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The polynomial hash of a byte stream (`Σ bᵢ·BASE^(n-1-i)`), its length in bytes and in
/// characters, and the classes of its bytes.
#[derive(Clone, Copy, Default)]
struct Hasher {
    hash: u64,
    len: usize,
    chars: usize,
    classes: u8,
}

impl Hasher {
    /// Hashes a slice, eight bytes per step (the same hash as [`push`](Self::push) byte by
    /// byte: `h·B⁸ + b₀·B⁷ + … + b₇`, whose eight products are independent).
    #[inline(always)]
    fn of_slice(bytes: &[u8]) -> Hasher {
        let mut hash = 0u64;
        let mut classes = 0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut sum = 0u64;
            for (k, &b) in c.iter().enumerate() {
                sum = sum.wrapping_add(u64::from(b).wrapping_mul(POW[7 - k]));
                classes |= CLASS[b as usize];
            }
            hash = hash.wrapping_mul(POW[8]).wrapping_add(sum);
        }
        for &b in chunks.remainder() {
            hash = hash.wrapping_mul(BASE).wrapping_add(u64::from(b));
            classes |= CLASS[b as usize];
        }
        let chars = if classes & HIGH == 0 {
            bytes.len()
        } else {
            bytes.iter().filter(|&&b| b & 0xC0 != 0x80).count()
        };
        Hasher {
            hash,
            len: bytes.len(),
            chars,
            classes,
        }
    }

    fn of_iter(bytes: impl Iterator<Item = u8>) -> Hasher {
        let mut h = Hasher::default();
        for b in bytes {
            h.hash = h.hash.wrapping_mul(BASE).wrapping_add(u64::from(b));
            h.len += 1;
            h.chars += usize::from(b & 0xC0 != 0x80);
            h.classes |= CLASS[b as usize];
        }
        h
    }

    /// The fingerprint, when the value is long enough to be remembered.
    fn print(&self) -> Option<Print> {
        if self.chars < MIN_CHARS {
            return None;
        }
        Some(Print::new(self.hash, u32::try_from(self.len).ok()?))
    }
}

/// The credentials a request carried, remembered so that they can be removed from any text
/// built from its response.
///
/// [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) builds one for every request it sends, from:
///
/// - `Authorization` and `Proxy-Authorization`: the credentials after the scheme (`Bearer`,
///   `Basic`, any other), or the whole value when it has no scheme;
/// - `X-Api-Key`: the whole value;
/// - `Cookie`: each cookie's value;
/// - the query parameters `token`, `access_token`, `api_key`, `apikey` and `key`;
/// - any header named with [`ErrorDecodeLayer::sensitive_header`](crate::ErrorDecodeLayer::sensitive_header):
///   the whole value, and what follows a scheme if it has one.
///
/// Every exact occurrence of those values in the error built from the response is replaced by
/// `[REDACTED]`, also when echoed percent-encoded or -decoded, JSON-escaped or as HTML
/// character references. Values shorter than 8 characters are not remembered: they could
/// blank out ordinary words. Only fingerprints are kept, never a copy of a secret.
///
/// Clients that read bodies themselves use it with [`ApiError::decode_with`](crate::ApiError::decode_with):
///
/// ```
/// use http::{HeaderMap, Request, StatusCode};
/// use tower_api_retry::{ApiError, decode::Credentials};
///
/// let request = Request::get("/api/me").header("x-api-key", "mk_live_S3cr3tApiKey0003").body(()).unwrap();
/// let credentials = Credentials::of(&request);
///
/// let body = br#"{"code":"INVALID_API_KEY","message":"The API key mk_live_S3cr3tApiKey0003 is not recognized."}"#;
/// let err = ApiError::decode_with(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body, &credentials);
/// assert_eq!(err.message(), "The API key [REDACTED] is not recognized.");
///
/// // Or any text of your own:
/// assert_eq!(credentials.scrub("sent mk_live_S3cr3tApiKey0003"), "sent [REDACTED]");
/// ```
#[derive(Clone, Default)]
pub struct Credentials {
    /// Packed fingerprints ([`Print::packed`]); 0 is a free slot.
    inline: [u64; INLINE],
    /// The rest, and those too long to pack (rare), behind one thin pointer.
    more: Option<Box<Spill>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Fingerprints say nothing useful, and nothing secret: only how many there are.
        f.debug_struct("Credentials")
            .field("remembered", &self.prints().count())
            .finish()
    }
}

impl Credentials {
    /// No credentials: nothing is scrubbed.
    pub const fn new() -> Credentials {
        Credentials {
            inline: [0; INLINE],
            more: None,
        }
    }

    /// The credentials `request` carries in the usual places (see the [type docs](Self)).
    pub fn of<B>(request: &Request<B>) -> Credentials {
        Credentials::carried(request.headers(), request.uri(), &[])
    }

    /// Also remembers `value`, a credential sent some other way (a header of your own, a
    /// body field), if it is at least 8 characters long.
    ///
    /// ```
    /// use tower_api_retry::decode::Credentials;
    ///
    /// let credentials = Credentials::new().secret("team-secret-42");
    /// assert_eq!(credentials.scrub("no team-secret-42 here"), "no [REDACTED] here");
    /// ```
    pub fn secret(mut self, value: impl AsRef<[u8]>) -> Credentials {
        self.header_value(value.as_ref());
        self
    }

    /// `true` when nothing is remembered.
    pub(crate) fn is_empty(&self) -> bool {
        // Slots fill in order.
        self.inline[0] == 0 && self.more.is_none()
    }

    /// `text` with every exact occurrence of a remembered credential replaced by
    /// `[REDACTED]`; borrowed when there is none. Overlapping occurrences become one marker.
    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.scrub_until(text, text.len())
    }

    /// `true` when a remembered credential occurs in `bytes` (read as lossy UTF-8).
    pub(crate) fn occurs_in(&self, bytes: &[u8]) -> bool {
        !self.is_empty() && !self.find(&String::from_utf8_lossy(bytes)).is_empty()
    }

    /// [`scrub`](Self::scrub) of the first `cut` bytes of `text` (down to a char boundary).
    /// An occurrence that straddles the cut is replaced whole, and nothing after it is kept:
    /// cutting never leaves the first half of a credential behind.
    pub(crate) fn scrub_until<'a>(&self, text: &'a str, cut: usize) -> Cow<'a, str> {
        let mut cut = cut.min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let spans = if self.is_empty() {
            Vec::new()
        } else {
            self.find(text)
        };
        let mut out = String::new();
        let mut copied = 0;
        for (start, end) in spans.into_iter().take_while(|&(start, _)| start < cut) {
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = end;
        }
        if copied == 0 {
            return Cow::Borrowed(&text[..cut]);
        }
        if copied < cut {
            out.push_str(&text[copied..cut]);
        }
        Cow::Owned(out)
    }

    /// [`scrub`](Self::scrub) of an owned string, reusing it when nothing changes.
    pub(crate) fn scrub_string(&self, text: String) -> String {
        match self.scrub(&text) {
            Cow::Owned(s) => s,
            Cow::Borrowed(_) => text,
        }
    }

    /// The length in bytes of the longest text found as a remembered spelling (0 when
    /// none): three times the longest, since every byte of an echo may be percent-escaped.
    pub(crate) fn longest(&self) -> usize {
        3 * self.prints().map(|p| p.len as usize).max().unwrap_or(0)
    }

    /// The credentials in `headers` and `uri`'s query, plus the headers named in `extra`.
    /// Runs for every request, without allocating for up to three fingerprints.
    pub(crate) fn carried(headers: &HeaderMap, uri: &Uri, extra: &[HeaderName]) -> Credentials {
        let mut c = Credentials::new();
        if !headers.is_empty() {
            for (name, value) in headers {
                let value = value.as_bytes();
                if name == AUTHORIZATION || name == PROXY_AUTHORIZATION {
                    c.authorization(value);
                } else if name == COOKIE {
                    c.cookies(value);
                } else if name.as_str() == "x-api-key" {
                    c.header_value(value.trim_ascii());
                } else if extra.contains(name) {
                    c.named(value);
                }
            }
        }
        if let Some(query) = uri.query() {
            c.query(query);
        }
        c
    }

    fn prints(&self) -> impl Iterator<Item = Print> + '_ {
        self.inline
            .iter()
            .filter(|&&p| p != 0)
            .map(|&p| Print::unpack(p))
            .chain(self.more.iter().flat_map(|more| more.0.iter().copied()))
    }

    #[inline(always)]
    fn push(&mut self, print: Print) {
        if let Some(packed) = print.packed() {
            for slot in &mut self.inline {
                if *slot == packed {
                    return;
                }
                if *slot == 0 {
                    *slot = packed;
                    return;
                }
            }
        }
        let more = &mut self.more.get_or_insert_with(Default::default).0;
        if !more.contains(&print) {
            more.push(print);
        }
    }

    /// Remembers the decoded spelling of a value long enough to be remembered: searched only
    /// in decoded text (see `find`), it is kept when it has at least [`MIN_DECODED`] bytes,
    /// even below [`MIN_CHARS`] (a `%00` in a credential decodes to one byte).
    #[inline(always)]
    fn push_decoded(&mut self, h: &Hasher) {
        if h.len >= MIN_DECODED
            && let Ok(len) = u32::try_from(h.len)
        {
            self.push(Print::new(h.hash, len));
        }
    }

    /// Remembers one hashed spelling; `false` when it is too short.
    fn push_hasher(&mut self, h: &Hasher) -> bool {
        h.print().map(|p| self.push(p)).is_some()
    }

    /// `<scheme> <credentials>`: the credentials, or the whole value when it has no scheme
    /// (or when what follows the first blank is too short to be remembered).
    fn authorization(&mut self, value: &[u8]) {
        let value = value.trim_ascii();
        if let Some(blank) = value.iter().position(|&b| b == b' ' || b == b'\t')
            && self.header_value(value[blank..].trim_ascii())
        {
            return;
        }
        self.header_value(value);
    }

    /// A header a user named: the whole value, and what follows a scheme if it has one
    /// (`Token <credential>`).
    fn named(&mut self, value: &[u8]) {
        let value = value.trim_ascii();
        self.header_value(value);
        if let Some(blank) = value.iter().position(|&b| b == b' ' || b == b'\t') {
            self.header_value(value[blank..].trim_ascii());
        }
    }

    /// `name=value; name2=value2`: each value (quotes removed), as sent and percent-decoded.
    fn cookies(&mut self, value: &[u8]) {
        for pair in value.split(|&b| b == b';') {
            let pair = pair.trim_ascii();
            let value = match pair.iter().position(|&b| b == b'=') {
                Some(eq) => &pair[eq + 1..],
                None => pair,
            };
            let value = match value.trim_ascii() {
                [b'"', inner @ .., b'"'] => inner,
                v => v,
            };
            self.encoded_value(value);
        }
    }

    /// The values of the credential parameters of a query string, in one pass.
    fn query(&mut self, query: &str) {
        let q = query.as_bytes();
        let mut pair = 0; // where the current `name=value` starts
        let mut i = 0;
        while i < q.len() {
            match q[i] {
                b'&' => pair = i + 1,
                // Every name ends in `n` (`token`) or `y` (`key`): most parameters stop here.
                b'=' if i > pair && matches!(q[i - 1] | 0x20, b'n' | b'y') => {
                    let name = &q[pair..i];
                    if QUERY_NAMES
                        .iter()
                        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
                    {
                        let end = q[i + 1..]
                            .iter()
                            .position(|&b| b == b'&')
                            .map_or(q.len(), |p| i + 1 + p);
                        self.encoded_value(&q[i + 1..end]);
                        pair = end + 1;
                        i = end;
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// A value as sent in a header: itself, its percent-encoding, its JSON escapes, and its
    /// lossy UTF-8 form when it is not UTF-8. `false` when it is too short to be remembered.
    fn header_value(&mut self, value: &[u8]) -> bool {
        let h = Hasher::of_slice(value);
        if !self.push_hasher(&h) {
            return false;
        }
        self.json_spellings(value.iter().copied(), h.classes);
        if h.classes & RESERVED != 0 {
            let encoded = percent_encoding::percent_encode(value, super::NOT_UNRESERVED);
            self.push_hasher(&Hasher::of_iter(encoded.flat_map(str::bytes)));
        }
        if h.classes & PCT != 0 {
            // Text with escapes is searched decoded (see `find`), and a value's own escapes
            // decode there too.
            self.push_decoded(&Hasher::of_iter(percent_decode(value, false)));
        }
        if h.classes & HIGH != 0 && std::str::from_utf8(value).is_err() {
            let lossy = value.utf8_chunks().flat_map(|chunk| {
                let bad: &[u8] = if chunk.invalid().is_empty() {
                    b""
                } else {
                    "\u{FFFD}".as_bytes()
                };
                chunk.valid().bytes().chain(bad.iter().copied())
            });
            self.push_hasher(&Hasher::of_iter(lossy));
        }
        true
    }

    /// A value as sent in a query or a cookie: itself and, when it has escapes, its
    /// percent-decoded spellings (with `+` kept, and as a space), each with its JSON escapes.
    fn encoded_value(&mut self, value: &[u8]) {
        let h = Hasher::of_slice(value);
        self.push_hasher(&h);
        self.json_spellings(value.iter().copied(), h.classes);
        if h.classes & (PCT | PLUS) == 0 {
            return;
        }
        for plus_is_space in [false, true] {
            if plus_is_space && h.classes & PLUS == 0 {
                break;
            }
            let decoded = || percent_decode(value, plus_is_space);
            let d = Hasher::of_iter(decoded());
            if self.push_hasher(&d) {
                self.json_spellings(decoded(), d.classes);
            }
            if d.classes & PCT != 0 {
                // The decoded value has escapes of its own: they decode in a searched text
                // too (see `find`). Rare enough to allocate for.
                let once: Vec<u8> = decoded().collect();
                self.push_decoded(&Hasher::of_iter(percent_decode(&once, false)));
            }
        }
    }

    /// The JSON-escaped spellings of a value whose bytes have `classes`: as `serde_json` writes
    /// it, and with `/` escaped too.
    #[inline]
    fn json_spellings(&mut self, value: impl Iterator<Item = u8> + Clone, classes: u8) {
        if classes & (JSON | SLASH) == 0 {
            return;
        }
        if classes & JSON != 0 {
            self.push_hasher(&Hasher::of_iter(json_escape(value.clone(), false)));
        }
        if classes & SLASH != 0 {
            self.push_hasher(&Hasher::of_iter(json_escape(value, true)));
        }
    }

    /// The byte ranges of every occurrence of a remembered spelling in `text`, overlapping
    /// ones merged, in order. Text with percent escapes is also searched decoded, so an echo
    /// escaped in either case, or with needless escapes of any character, is found too.
    fn find(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut spans = Vec::new();
        self.search(bytes, |start, end| {
            if text.is_char_boundary(start) && text.is_char_boundary(end) {
                spans.push((start, end));
            }
        });
        if memchr::memchr(b'%', bytes).is_some() {
            // Each decoded byte, with the range of the text it came from.
            let mut decoded = Vec::with_capacity(bytes.len());
            let mut from = Vec::with_capacity(bytes.len());
            let mut i = 0;
            while i < bytes.len() {
                let escape = (bytes[i] == b'%')
                    .then(|| Some((hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?)))
                    .flatten();
                match escape {
                    Some((hi, lo)) => {
                        decoded.push(hi << 4 | lo);
                        from.push((i, i + 3));
                        i += 3;
                    }
                    None => {
                        decoded.push(bytes[i]);
                        from.push((i, i + 1));
                        i += 1;
                    }
                }
            }
            if decoded.len() < bytes.len() {
                self.search(&decoded, |start, end| {
                    let (s, e) = (from[start].0, from[end - 1].1);
                    if text.is_char_boundary(s) && text.is_char_boundary(e) {
                        spans.push((s, e));
                    }
                });
            }
        }
        spans.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            match merged.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => merged.push((s, e)),
            }
        }
        merged
    }

    /// Calls `found(start, end)` for every window of `bytes` whose fingerprint is remembered.
    fn search(&self, bytes: &[u8], mut found: impl FnMut(usize, usize)) {
        let mut lens: Vec<usize> = self.prints().map(|p| p.len as usize).collect();
        lens.sort_unstable();
        lens.dedup();
        for len in lens {
            if len == 0 || len > bytes.len() {
                continue;
            }
            let Ok(len32) = u32::try_from(len) else {
                continue;
            };
            let wanted: Vec<u64> = self
                .prints()
                .filter(|p| p.len == len32)
                .map(|p| p.hash)
                .collect();
            // BASE^(len-1): the weight of the byte that leaves the window.
            let mut top = 1u64;
            for _ in 1..len {
                top = top.wrapping_mul(BASE);
            }
            let mut h = Hasher::of_slice(&bytes[..len]).hash;
            let mut start = 0;
            loop {
                if wanted.contains(&(mix(h) & !LEN_MASK)) {
                    found(start, start + len);
                }
                let Some(&next) = bytes.get(start + len) else {
                    break;
                };
                h = h
                    .wrapping_sub(u64::from(bytes[start]).wrapping_mul(top))
                    .wrapping_mul(BASE)
                    .wrapping_add(u64::from(next));
                start += 1;
            }
        }
    }
}

/// The value of a hex digit, either case.
fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Percent-decodes (an invalid escape stays as it is), and with `plus_is_space` also reads
/// `+` as a space (`application/x-www-form-urlencoded`).
fn percent_decode(bytes: &[u8], plus_is_space: bool) -> impl Iterator<Item = u8> + Clone + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *bytes.get(i)?;
        i += 1;
        if b == b'+' && plus_is_space {
            return Some(b' ');
        }
        if b == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i).copied().and_then(hex),
                bytes.get(i + 1).copied().and_then(hex),
            )
        {
            i += 2;
            return Some(hi << 4 | lo);
        }
        Some(b)
    })
}

/// JSON string escapes as `serde_json` writes them (`\"`, `\\`, `\n`, `\u001f`, ...), and
/// `\/` for `/` when `slash`.
fn json_escape(
    bytes: impl Iterator<Item = u8> + Clone,
    slash: bool,
) -> impl Iterator<Item = u8> + Clone {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    bytes.flat_map(move |b| {
        let (out, n): ([u8; 6], usize) = match b {
            b'"' => ([b'\\', b'"', 0, 0, 0, 0], 2),
            b'\\' => ([b'\\', b'\\', 0, 0, 0, 0], 2),
            b'/' if slash => ([b'\\', b'/', 0, 0, 0, 0], 2),
            b'\n' => ([b'\\', b'n', 0, 0, 0, 0], 2),
            b'\r' => ([b'\\', b'r', 0, 0, 0, 0], 2),
            b'\t' => ([b'\\', b't', 0, 0, 0, 0], 2),
            0x08 => ([b'\\', b'b', 0, 0, 0, 0], 2),
            0x0c => ([b'\\', b'f', 0, 0, 0, 0], 2),
            c if c < 0x20 => (
                [
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 15)],
                ],
                6,
            ),
            c => ([c, 0, 0, 0, 0, 0], 1),
        };
        out.into_iter().take(n)
    })
}

/// The names of the headers a layer was told carry credentials, besides the usual ones.
/// Cloning it (as tower clones services) copies a pointer, and nothing when it is empty.
#[derive(Clone, Debug, Default)]
pub(crate) struct SensitiveHeaders(Option<Arc<[HeaderName]>>);

impl SensitiveHeaders {
    pub(crate) const fn new() -> SensitiveHeaders {
        SensitiveHeaders(None)
    }

    /// The list with `name` added; the list as it is when `name` is not a header name.
    pub(crate) fn with(self, name: impl TryInto<HeaderName>) -> SensitiveHeaders {
        let Ok(name) = name.try_into() else {
            return self;
        };
        let mut names: Vec<HeaderName> = self.as_slice().to_vec();
        if !names.contains(&name) {
            names.push(name);
        }
        SensitiveHeaders(Some(names.into()))
    }

    pub(crate) fn as_slice(&self) -> &[HeaderName] {
        self.0.as_deref().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(headers: &[(&str, &str)], uri: &str) -> Credentials {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Credentials::of(&req.body(()).unwrap())
    }

    #[test]
    fn small_enough_to_live_in_every_future() {
        // Three packed fingerprints and a pointer: what every response future carries.
        assert_eq!(
            std::mem::size_of::<Credentials>(),
            4 * std::mem::size_of::<u64>()
        );
    }

    #[test]
    fn slice_and_byte_hashes_agree() {
        for len in 0..40 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            let a = Hasher::of_slice(&bytes);
            let b = Hasher::of_iter(bytes.iter().copied());
            assert_eq!(
                (a.hash, a.len, a.chars, a.classes),
                (b.hash, b.len, b.chars, b.classes)
            );
        }
    }

    #[test]
    fn every_usual_place_is_remembered() {
        let key = "mk_live_S3cr3tApiKey0003";
        for (headers, uri) in [
            (vec![("x-api-key", key)], "/"),
            (vec![("authorization", &*format!("Bearer {key}"))], "/"),
            (
                vec![("authorization", &*format!("Custom-Scheme  {key}"))],
                "/",
            ),
            (vec![("authorization", key)], "/"),
            (vec![("proxy-authorization", &*format!("Basic {key}"))], "/"),
            (
                vec![("cookie", &*format!("a=1; session=\"{key}\"; b=2"))],
                "/",
            ),
            (vec![], &*format!("/x?since=4&token={key}")),
            (vec![], &*format!("/x?ACCESS_TOKEN={key}")),
            (vec![], &*format!("/x?api_key={key}&x=1")),
            (vec![], &*format!("/x?apikey={key}")),
            (vec![], &*format!("/x?key={key}")),
        ] {
            let c = of(&headers, uri);
            assert_eq!(
                c.scrub(&format!("The API key {key} is not recognized ({key})")),
                "The API key [REDACTED] is not recognized ([REDACTED])",
                "{headers:?} {uri}"
            );
        }
    }

    #[test]
    fn other_headers_and_parameters_are_not() {
        let c = of(
            &[
                ("x-request-id", "abcdefghijkl"),
                ("accept", "application/json"),
            ],
            "/x?page=abcdefghijkl&tokens=abcdefghijkl",
        );
        assert!(c.is_empty());
        assert_eq!(c.scrub("abcdefghijkl"), "abcdefghijkl");
    }

    #[test]
    fn query_parameters_are_read_by_name_only() {
        for (query, remembered) in [
            ("key=abcdefghij", true),
            ("a=1&&key=abcdefghij&b=2", true),
            ("a=1&Api_Key=abcdefghij", true),
            ("x=key=abcdefghij", false),
            ("monkey=abcdefghij", false),
            ("keys=abcdefghij&tokenx=abcdefghij", false),
            ("key", false),
            ("=abcdefghij", false),
        ] {
            let c = of(&[], &format!("/x?{query}"));
            assert_eq!(!c.is_empty(), remembered, "{query}");
        }
    }

    #[test]
    fn short_values_are_not_remembered() {
        let c = of(
            &[("x-api-key", "short12"), ("authorization", "Bearer abc")],
            "/?key=k",
        );
        // `Bearer abc` as a whole is 10 characters: the credential part is too short, so the
        // value is remembered whole.
        assert_eq!(c.scrub("short12 abc Bearer abc"), "short12 abc [REDACTED]");
    }

    #[test]
    fn other_spellings() {
        let c = of(&[], "/x?token=a%2Fb%2Bc%20d+e%22f");
        // As sent, percent-decoded (`+` kept and as a space), and JSON-escaped.
        for echo in [
            "a%2Fb%2Bc%20d+e%22f",
            "a/b+c d+e\"f",
            "a/b+c d e\"f",
            r#"a/b+c d+e\"f"#,
            r#"a\/b+c d+e\"f"#,
        ] {
            assert_eq!(c.scrub(&format!("<{echo}>")), "<[REDACTED]>", "{echo}");
        }
        let c = Credentials::new().secret("ab/cd+ef=gh");
        for echo in ["ab/cd+ef=gh", "ab%2Fcd%2Bef%3Dgh", r"ab\/cd+ef=gh"] {
            assert_eq!(c.scrub(echo), "[REDACTED]", "{echo}");
        }
        // Escaped in lower case, or where nothing needed it, in any mix.
        let c = of(
            &[
                ("authorization", "Bearer convo_S3cr3tBearerOverXy9"),
                ("x-api-key", "mk_live_S3cr3t/ApiKeyOver0003"),
            ],
            "/",
        );
        let shown = c.scrub("UNAUTHENTICATED: token convo%5FS3cr3tBearerOverXy9 key mk_live_S3cr3t%2fApiKeyOver0003");
        assert_eq!(shown, "UNAUTHENTICATED: token [REDACTED] key [REDACTED]");
        for echo in [
            "%63onvo_S3cr3tBearerOverXy9",
            "convo_S3cr3tBearerOverXy%39",
            "%63%6F%6e%76%6f%5f%53%33%63%72%33%74%42%65%61%72%65%72%4f%76%65%72%58%79%39",
            "mk_live_S3cr3t%2FApiKeyOver0003",
            "mk%5flive%5FS3cr3t%2fApiKeyOver%30003",
        ] {
            assert_eq!(c.scrub(&format!("<{echo}>")), "<[REDACTED]>", "{echo}");
        }
        // A value with escapes of its own: they decode in the echo too, however short they
        // make it.
        let c = of(&[("x-api-key", "A%00   a")], "/");
        assert_eq!(c.scrub("<A%00   %61>"), "<[REDACTED]>");
        let c = of(&[("x-api-key", "0A A0A0A AA 0 %a0!")], "/");
        assert_eq!(c.scrub("<0A A0A0A AA 0 %a0%21>"), "<[REDACTED]>");
        let c = of(&[("cookie", "s=0A%20A0A0A%20AA%200%20%25a0%21")], "/");
        assert_eq!(c.scrub("<0A A0A0A AA 0 %a0%21>"), "<[REDACTED]>");
        // A broken escape is text like any other.
        assert_eq!(c.scrub("%zz%4"), "%zz%4");
        // Not UTF-8: shown lossily, and remembered so.
        let c = Credentials::new().secret(b"abc\xffdefgh");
        assert_eq!(c.scrub("abc\u{FFFD}defgh!"), "[REDACTED]!");
    }

    #[test]
    fn sensitive_headers_by_name() {
        let mut headers = HeaderMap::new();
        headers.insert("x-team-secret", "team-secret-42".parse().unwrap());
        let uri: Uri = "/".parse().unwrap();
        assert!(Credentials::carried(&headers, &uri, &[]).is_empty());
        let names = SensitiveHeaders::new().with(HeaderName::from_static("x-team-secret"));
        let c = Credentials::carried(&headers, &uri, names.as_slice());
        assert_eq!(c.scrub("team-secret-42"), "[REDACTED]");
        // With a scheme: the whole value and the credential after it.
        headers.insert("x-team-secret", "Token team-secret-42".parse().unwrap());
        let c = Credentials::carried(&headers, &uri, names.as_slice());
        assert_eq!(
            c.scrub("team-secret-42 / Token team-secret-42"),
            "[REDACTED] / [REDACTED]"
        );
    }

    #[test]
    fn overlapping_and_repeated_occurrences_become_one_marker_each() {
        let c = Credentials::new().secret("abababab").secret("babababa");
        assert_eq!(c.scrub("xabababababy abababab"), "x[REDACTED]y [REDACTED]");
        // Non-ASCII text around it.
        let c = Credentials::new().secret("clé-secrète-1");
        assert_eq!(c.scrub("ünï clé-secrète-1 ü"), "ünï [REDACTED] ü");
    }

    #[test]
    fn many_values_spill_and_are_all_found() {
        let cookie: String = (0..10)
            .map(|i| format!("c{i}=cookie-value-{i:02}; "))
            .collect();
        let c = of(&[("cookie", &cookie)], "/");
        assert_eq!(c.prints().count(), 10);
        assert!(c.more.is_some());
        for i in 0..10 {
            assert_eq!(c.scrub(&format!("cookie-value-{i:02}")), "[REDACTED]");
        }
        assert!(!format!("{c:?}").contains("cookie-value"));
    }

    #[test]
    fn nothing_remembered_borrows() {
        let c = Credentials::new();
        assert!(matches!(c.scrub("anything at all"), Cow::Borrowed(_)));
        let c = Credentials::new().secret("something-else");
        assert!(matches!(c.scrub("anything at all"), Cow::Borrowed(_)));
    }

    #[test]
    fn near_identical_values_have_distinct_fingerprints() {
        // The last byte of a polynomial hash only reaches its low bits: the fingerprint keeps
        // the high bits of a mixed hash, so values that differ anywhere stay apart.
        let mut seen = std::collections::HashSet::new();
        for i in 0..20_000u32 {
            for value in [
                format!("cookie-value-{i:05}"),
                format!("{i:05}-cookie-value"),
            ] {
                let p = Hasher::of_slice(value.as_bytes()).print().unwrap();
                assert!(seen.insert(p.packed().unwrap()), "{value}");
            }
        }
        let c = Credentials::new().secret("cookie-value-00001");
        assert_eq!(c.scrub("cookie-value-00002"), "cookie-value-00002");
    }

    // ---- What an error built with the request's credentials shows ----------------------------

    use crate::{code::ErrorCode, error::ApiError};
    use http::StatusCode;

    const KEY: &str = "mk_live_S3cr3tApiKey0003";

    fn with_key() -> Credentials {
        of(&[("x-api-key", KEY)], "/api/me")
    }

    /// Every text an `ApiError` holds or shows.
    fn shown(api: &ApiError) -> String {
        let mut out = format!("{api} {api:?} {} {}", api.message(), api.code());
        out.extend(api.fix());
        out.extend(api.details().map(|d| d.to_string()));
        for name in api.field_names() {
            out.push_str(name);
            out.push_str(&api.field(name).unwrap().to_string());
        }
        let err = crate::error::Error::from(api.clone());
        out.push_str(&format!("{err} {err:?}"));
        out
    }

    #[test]
    fn the_second_pages_key_echoed_in_message_and_fix() {
        let body = format!(
            r#"{{"code":"INVALID_API_KEY","message":"The API key {KEY} is not recognized.","fix":"replace {KEY}"}}"#
        );
        let api = ApiError::decode_with(
            StatusCode::UNAUTHORIZED,
            &HeaderMap::new(),
            body.as_bytes(),
            &with_key(),
        );
        assert_eq!(api.code(), &ErrorCode::InvalidApiKey);
        assert_eq!(api.message(), "The API key [REDACTED] is not recognized.");
        assert_eq!(api.fix(), Some("replace [REDACTED]"));
        assert!(!shown(&api).contains(KEY));
        // Without the request's credentials nothing marks it as one.
        let blind = ApiError::decode(StatusCode::UNAUTHORIZED, &HeaderMap::new(), body.as_bytes());
        assert!(blind.message().contains(KEY));
    }

    #[test]
    fn a_credential_that_spells_a_known_code_is_still_scrubbed() {
        let request = Request::get("/")
            .header("x-api-key", "PERMISSION_DENIED")
            .body(())
            .unwrap();
        let body = r#"{"code":"PERMISSION_DENIED","message":"m"}"#;
        let headers = HeaderMap::new();
        let api = ApiError::decode_with(
            StatusCode::FORBIDDEN,
            &headers,
            body.as_bytes(),
            &Credentials::of(&request),
        );
        assert_eq!(api.code().as_str(), "[REDACTED]");
        assert!(!shown(&api).contains("PERMISSION_DENIED"));
        // Without it, the code is the table's.
        let plain = ApiError::decode(StatusCode::FORBIDDEN, &headers, body.as_bytes());
        assert_eq!(plain.code(), &ErrorCode::PermissionDenied);
    }

    #[test]
    fn members_of_any_name_and_member_names() {
        let body = format!(
            r#"{{"code":"INVALID_ARGUMENT","message":"m","details":{{"key":"{KEY}","credential":"{KEY}","anything":["x {KEY}"],"{KEY}":1}},"sent":"{KEY}","{KEY}":true}}"#
        );
        let api = ApiError::decode_with(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body.as_bytes(),
            &with_key(),
        );
        let details = api.details().unwrap();
        assert_eq!(details["key"], "[REDACTED]");
        assert_eq!(details["credential"], "[REDACTED]");
        assert_eq!(details["anything"][0], "x [REDACTED]");
        assert_eq!(details["[REDACTED]"], 1);
        assert_eq!(api.field("sent").unwrap(), "[REDACTED]");
        assert_eq!(api.field("[REDACTED]").unwrap(), true);
        assert!(!shown(&api).contains(KEY));
    }

    #[test]
    fn a_numeric_credential_echoed_as_a_number() {
        let c = Credentials::new().secret("1234567890");
        let api = ApiError::decode_with(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            br#"{"detail": "bad", "details": {"pin": 1234567890, "n": 12}}"#,
            &c,
        );
        assert!(!shown(&api).contains("1234567890"));
    }

    #[test]
    fn html_with_character_references_and_a_credential_in_a_tag() {
        let c = Credentials::new().secret("k<y&'v\"al");
        let body =
            r#"<html><title>Can&#39;t &amp; won&apos;t: k&lt;y&amp;&#x27;v&quot;al</title></html>"#;
        let api = ApiError::decode_with(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            body.as_bytes(),
            &c,
        );
        assert_eq!(api.message(), "Can't & won't: [REDACTED]");
        // Unescaped, the `<` would start a tag and hide the rest: it is scrubbed first.
        let body = "<html><body>key k<y&'v\"al refused</body></html>";
        let api = ApiError::decode_with(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            body.as_bytes(),
            &c,
        );
        assert_eq!(api.message(), "key [REDACTED] refused");
    }

    #[test]
    fn no_cut_leaves_half_a_credential() {
        let c = with_key();
        // A message cut at 1024 characters, the credential across the cut.
        let pad = "x".repeat(1010);
        let body = format!(r#"{{"detail": "{pad}{KEY} and more"}}"#);
        let api = ApiError::decode_with(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            body.as_bytes(),
            &c,
        );
        assert!(
            api.message().starts_with(&format!("{pad}[RED")),
            "{}",
            api.message()
        );
        assert!(!api.message().contains("mk_live"));
        // An excerpt: the 4 KiB the excerpt looks at ends inside the credential, and there is
        // little visible text before it.
        let tags = "<b></b>".repeat(4090 / 7);
        let body = format!("{tags}{}{KEY} tail", " ".repeat(4090 - tags.len()));
        let api = ApiError::decode_with(
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            body.as_bytes(),
            &c,
        );
        assert_eq!(api.message(), "[REDACTED]");
        // A body the read limit cut inside the credential.
        let body = format!("rejected {KEY}");
        let cut = &body.as_bytes()[..body.len() - 5];
        let api = ApiError::decode_body(StatusCode::BAD_REQUEST, &HeaderMap::new(), cut, &c, false);
        assert!(!api.message().contains("mk_live"), "{}", api.message());
        // The same bytes, said to be the whole body, are not a credential.
        let api = ApiError::decode_body(StatusCode::BAD_REQUEST, &HeaderMap::new(), cut, &c, true);
        assert!(api.message().contains("mk_live"));
    }

    #[test]
    fn grpc_message_and_code() {
        let c = of(
            &[("authorization", &*format!("Bearer {KEY}"))],
            "/pkg.Svc/Call",
        );
        let mut headers = HeaderMap::new();
        headers.insert("grpc-status", "16".parse().unwrap());
        headers.insert(
            "grpc-message",
            format!("key%20{KEY}%20is%20not%20valid").parse().unwrap(),
        );
        let api = ApiError::decode_with(StatusCode::OK, &headers, b"", &c);
        assert_eq!(api.message(), "key [REDACTED] is not valid");
        let api = ApiError::decode_with(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            format!(r#"{{"code":"{KEY}","message":"m"}}"#).as_bytes(),
            &c,
        );
        assert_eq!(api.code().as_str(), "[REDACTED]");
    }

    #[test]
    fn transport_errors() {
        let c = with_key();
        let err = crate::error::Error::transport_with(
            std::io::Error::other(format!("proxy refused {KEY}")),
            &c,
            &crate::contract::ErrorContract::new(),
        );
        assert_eq!(err.message(), "proxy refused [REDACTED]");
        // An `Error` from below is scrubbed too.
        let inner = crate::error::Error::from(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidApiKey,
            format!("bad {KEY}"),
        ));
        let err =
            crate::error::Error::transport_with(inner, &c, &crate::contract::ErrorContract::new());
        assert_eq!(err.message(), "bad [REDACTED]");
        assert!(!format!("{err} {err:?}").contains(KEY));
    }
}
