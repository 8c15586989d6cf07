//! Which requests share a gate: [`Key`] and the key function.

use foldhash::fast::FixedState;
use http::{Extensions, HeaderMap, Method, Request, Uri};
use std::{
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    sync::Arc,
};

/// What a group of requests that share one rate-limit gate have in common.
///
/// A 64-bit hash with a fixed seed, the same in every process (a fleet names a path by it);
/// a collision only makes a request wait when it did not have to. The default key is
/// [`Key::from_uri`]; for gRPC the path is the method.
///
/// ```
/// use http::Uri;
/// use tower_api_retry::rate_limit::Key;
///
/// let a = Key::from_uri(&Uri::from_static("https://api.example.com/v1/tasks?token=x"));
/// let b = Key::from_uri(&Uri::from_static("https://api.example.com/v1/tasks?page=2"));
/// let c = Key::from_uri(&Uri::from_static("https://api.example.com/v1/nodes"));
/// assert_eq!(a, b); // the query is not part of the key
/// assert_ne!(a, c);
/// // Ids share their route's key.
/// let one = Key::from_uri(&Uri::from_static("https://api.example.com/v1/actors/agt_1/release"));
/// let two = Key::from_uri(&Uri::from_static("https://api.example.com/v1/actors/agt_2/release"));
/// assert_eq!(one, two);
/// assert_eq!(Key::of("tenant-7"), Key::of("tenant-7"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub(super) u64);

/// The key hasher: foldhash with a fixed seed, the same in every process.
static STATE: FixedState = FixedState::with_seed(0x7461_7069_2d72_7479);

impl Key {
    /// The bit of a 64-bit filter this key falls on (keys are hashes: any six bits do).
    #[inline]
    pub(crate) const fn filter_bit(self) -> u64 {
        1 << (self.0 & 63)
    }

    /// The key of anything hashable: a host, a tenant header, a `(method, path)` pair, ...
    pub fn of<T: Hash + ?Sized>(value: &T) -> Key {
        Key(STATE.hash_one(value))
    }

    /// The default key: scheme, authority and the path's [template](PathTemplate) of `uri`,
    /// without the query.
    #[inline]
    pub fn from_uri(uri: &Uri) -> Key {
        template_key(origin_hasher(uri), uri)
    }

    /// [`Key::from_uri`] and [`Key::from_origin`] at once, the scheme and authority hashed
    /// once for both.
    #[inline]
    pub(crate) fn from_uri_and_origin(uri: &Uri) -> (Key, Key) {
        let h = origin_hasher(uri);
        let mut origin = h.clone();
        origin.write_u8(ORIGIN_END);
        (template_key(h, uri), Key(origin.finish()))
    }

    /// Scheme, authority and the exact path of `uri`, without the query: every id its own
    /// key. For a [`key_fn`](super::RateLimitBackoffLayer::key_fn) when an API limits each
    /// resource on its own.
    #[inline]
    pub fn from_uri_exact(uri: &Uri) -> Key {
        let mut h = origin_hasher(uri);
        uri.path().hash(&mut h);
        Key(h.finish())
    }

    /// Scheme and authority of `uri`: one key for every path of a server. A quota a server
    /// announces in headers applies here unless the contract narrows it.
    #[inline]
    pub fn from_origin(uri: &Uri) -> Key {
        let mut h = origin_hasher(uri);
        h.write_u8(ORIGIN_END);
        Key(h.finish())
    }
}

/// What ends the hash of an origin's key (path bytes are ASCII: it never ends a path's).
const ORIGIN_END: u8 = 0xfd;

/// The key of `uri`'s path template, hashed on from `h`, which has seen its origin.
#[inline]
fn template_key(mut h: foldhash::fast::FoldHasher<'static>, uri: &Uri) -> Key {
    for segment in uri.path().as_bytes().split(|&b| b == b'/') {
        if is_id(segment) {
            // Path bytes are ASCII, so these two markers never occur in a segment.
            h.write_u8(0xfe);
        } else {
            h.write(segment);
            h.write_u8(0xff);
        }
    }
    Key(h.finish())
}

/// A hasher that has seen the scheme and authority of `uri`.
#[inline]
fn origin_hasher(uri: &Uri) -> foldhash::fast::FoldHasher<'static> {
    let mut h = STATE.build_hasher();
    // The common schemes as one byte, any other by name. `str` hashing ends each piece
    // with a marker, so piece boundaries matter: `ab` + `/x` is not `a` + `b/x`.
    match uri.scheme_str() {
        None => h.write_u8(0),
        Some("http") => h.write_u8(1),
        Some("https") => h.write_u8(2),
        Some(other) => {
            h.write_u8(3);
            other.hash(&mut h);
        }
    }
    uri.authority().map_or("", |a| a.as_str()).hash(&mut h);
    h
}

/// `true` for a path segment that names one resource rather than a kind of resource. The
/// rule, in order:
///
/// 1. all ASCII digits: `42`, `2024`;
/// 2. a UUID: `8-4-4-4-12` hex digits, either case;
/// 3. 16 or more hex digits: object ids, digests;
/// 4. a prefixed id: 1 to 16 lowercase ASCII letters, `_`, then ASCII letters and digits
///    with at least one digit: `agt_01HZX3K`, `node_42`, `cus_9s7Kx` (but not
///    `agent_connected`, `usage_stats`);
/// 5. a long token: 20 or more ASCII letters, digits, `-` and `_`, with at least one digit:
///    ULIDs, base62 and base64url ids (but not `rotate-key`).
///
/// Everything else is kept as it is, `v1` and `rotate-key` among them.
pub(crate) fn is_id(segment: &[u8]) -> bool {
    let len = segment.len();
    if len == 0 {
        return false;
    }
    // One table look-up a byte: which classes every byte is in, and which any byte is in.
    let (mut all, mut any) = (DIGIT | HEX | TOKEN, 0);
    for &b in segment {
        let class = CLASSES[usize::from(b)];
        all &= class;
        any |= class;
    }
    if all & DIGIT != 0 || (len >= 16 && all & HEX != 0) {
        return true;
    }
    if len == 36 && is_uuid(segment) {
        return true;
    }
    if any & DIGIT == 0 || all & TOKEN == 0 {
        return false;
    }
    if len >= 20 {
        return true;
    }
    match segment.iter().position(|&b| b == b'_') {
        Some(p @ 1..=16) => {
            segment[..p].iter().all(u8::is_ascii_lowercase)
                && p + 1 < len
                && segment[p + 1..].iter().all(u8::is_ascii_alphanumeric)
        }
        _ => false,
    }
}

/// An ASCII digit.
const DIGIT: u8 = 1;
/// An ASCII hex digit, either case.
const HEX: u8 = 2;
/// A byte of a long token: an ASCII letter or digit, `-` or `_`.
const TOKEN: u8 = 4;

/// The classes of every byte.
static CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        let mut class = 0;
        if c.is_ascii_digit() {
            class |= DIGIT;
        }
        if c.is_ascii_hexdigit() {
            class |= HEX;
        }
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            class |= TOKEN;
        }
        table[b] = class;
        b += 1;
    }
    table
};

fn is_uuid(s: &[u8]) -> bool {
    s.iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

/// The template of a path: each id-like segment shown as `{id}`. What the default key
/// groups by, and safe to show in logs and metrics.
///
/// ```
/// use tower_api_retry::rate_limit::PathTemplate;
///
/// let t = PathTemplate::new("/api/actors/agt_01HZX3K9Q/rotate-key");
/// assert_eq!(t.to_string(), "/api/actors/{id}/rotate-key");
/// assert_eq!(
///     PathTemplate::new("/api/spaces/6f1c2d3e-0a1b-4c2d-9e8f-0123456789ab/events").to_string(),
///     "/api/spaces/{id}/events",
/// );
/// assert_eq!(PathTemplate::new("/v1/nodes/node_42").to_string(), "/v1/nodes/{id}");
/// assert_eq!(PathTemplate::new("/api/agent_connected").to_string(), "/api/agent_connected");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathTemplate<'a>(&'a str);

impl<'a> PathTemplate<'a> {
    /// The template of `path` (a URI path, without the query).
    pub fn new(path: &'a str) -> PathTemplate<'a> {
        PathTemplate(path)
    }
}

impl fmt::Display for PathTemplate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.0.split('/').enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            if is_id(segment.as_bytes()) {
                f.write_str("{id}")?;
            } else {
                f.write_str(segment)?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({:016x})", self.0)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The head of a request, as a key function sees it.
#[derive(Clone, Copy, Debug)]
pub struct RequestHead<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    extensions: &'a Extensions,
}

impl<'a> RequestHead<'a> {
    /// The head of `request`.
    pub fn new<B>(request: &'a Request<B>) -> RequestHead<'a> {
        RequestHead {
            method: request.method(),
            uri: request.uri(),
            headers: request.headers(),
            extensions: request.extensions(),
        }
    }

    /// The request method.
    pub fn method(&self) -> &'a Method {
        self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &'a Uri {
        self.uri
    }

    /// The request headers.
    pub fn headers(&self) -> &'a HeaderMap {
        self.headers
    }

    /// The request extensions.
    pub fn extensions(&self) -> &'a Extensions {
        self.extensions
    }
}

type CustomKeyFn = dyn Fn(&RequestHead<'_>) -> Option<Key> + Send + Sync;

/// How a service picks the key of a request.
#[derive(Clone)]
pub(crate) enum KeyFn {
    /// [`Key::from_uri`].
    Uri,
    Custom(Arc<CustomKeyFn>),
}

impl KeyFn {
    #[inline]
    pub(crate) fn key<B>(&self, request: &Request<B>) -> Option<Key> {
        match self {
            KeyFn::Uri => Some(Key::from_uri(request.uri())),
            KeyFn::Custom(f) => f(&RequestHead::new(request)),
        }
    }

    /// The request's key and its origin's ([`Key::from_origin`]), for a quota announced
    /// for the whole server; `None` when the request is not gated.
    #[inline]
    pub(crate) fn key_and_origin<B>(&self, request: &Request<B>) -> Option<(Key, Key)> {
        match self {
            KeyFn::Uri => Some(Key::from_uri_and_origin(request.uri())),
            KeyFn::Custom(f) => {
                f(&RequestHead::new(request)).map(|k| (k, Key::from_origin(request.uri())))
            }
        }
    }
}

impl fmt::Debug for KeyFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyFn::Uri => f.write_str("scheme+authority+path"),
            KeyFn::Custom(_) => f.write_str("custom"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &'static str) -> Key {
        Key::from_uri(&Uri::from_static(s))
    }

    #[test]
    fn key_and_origin_at_once_are_the_two_keys() {
        for s in [
            "https://api.example.com/v1/actors/agt_1/release?x=1",
            "http://h:8080/",
            "/relative/42",
            "grpc+unix://sock/svc.Method",
        ] {
            let uri = Uri::from_static(s);
            assert_eq!(
                Key::from_uri_and_origin(&uri),
                (Key::from_uri(&uri), Key::from_origin(&uri)),
                "{s}"
            );
        }
    }

    #[test]
    fn default_key_is_scheme_authority_path() {
        assert_eq!(k("http://a.test/x?q=1"), k("http://a.test/x"));
        assert_ne!(k("http://a.test/x"), k("https://a.test/x"));
        assert_ne!(k("http://a.test/x"), k("http://b.test/x"));
        assert_ne!(k("http://a.test/x"), k("http://a.test/y"));
        assert_ne!(k("http://a.test:81/x"), k("http://a.test/x"));
        // Piece boundaries matter.
        assert_ne!(k("http://ab.test/x"), k("http://a.test/bx"));
        assert_eq!(
            k("http://h/helloworld.Greeter/SayHello"),
            k("http://h/helloworld.Greeter/SayHello")
        );
    }

    #[test]
    fn ids_share_their_routes_key() {
        // The routes of the contract pages, with ids of every kind the rule names.
        let same = [
            (
                "http://a.test/api/actors/agt_1/release",
                "http://a.test/api/actors/agt_2/release",
            ),
            (
                "http://a.test/api/actors/agt_01HZX3K9QF/rotate-key",
                "http://a.test/api/actors/node_42/rotate-key",
            ),
            (
                "http://a.test/api/spaces/17/events",
                "http://a.test/api/spaces/18/events",
            ),
            (
                "http://a.test/api/spaces/6f1c2d3e-0a1b-4c2d-9e8f-0123456789ab/events",
                "http://a.test/api/spaces/6F1C2D3E-0A1B-4C2D-9E8F-0123456789AB/events",
            ),
            (
                "http://a.test/objects/5f2b3c4d5e6f7a8b9c0d1e2f",
                "http://a.test/objects/deadbeefdeadbeef",
            ),
            (
                "http://a.test/runs/01HZX3K9QF7Y2M4N6P8R0T2V4W",
                "http://a.test/runs/01HZX3K9QF7Y2M4N6P8R0T2V4X",
            ),
            ("http://a.test/limited/17?x=1", "http://a.test/limited/18"),
        ];
        for (a, b) in same {
            assert_eq!(k(a), k(b), "{a} ~ {b}");
            assert_ne!(
                Key::from_uri_exact(&a.parse().unwrap()),
                Key::from_uri_exact(&b.parse().unwrap())
            );
        }
        let different = [
            ("http://a.test/api/spaces", "http://a.test/api/events"),
            (
                "http://a.test/api/actors/agt_1/release",
                "http://a.test/api/actors/agt_1/rotate-key",
            ),
            ("http://a.test/v1/tasks", "http://a.test/v2/tasks"),
            (
                "http://a.test/api/agent_connected",
                "http://a.test/api/usage_stats",
            ),
            // An id and no segment are different routes.
            ("http://a.test/api/spaces/17", "http://a.test/api/spaces/"),
            ("http://a.test/api/spaces/17", "http://a.test/api/spaces"),
            ("http://a.test/a/17/b", "http://a.test/a/b/17"),
            ("http://a.test/limited/17", "http://b.test/limited/17"),
        ];
        for (a, b) in different {
            assert_ne!(k(a), k(b), "{a} !~ {b}");
        }
    }

    #[test]
    fn the_id_rule() {
        for id in [
            "0",
            "42",
            "2024",
            "agt_1",
            "node_42",
            "agt_01HZX3K9QF",
            "cus_9s7Kx",
            "ch_3MmlLrLkdIwHu7ix",
            "6f1c2d3e-0a1b-4c2d-9e8f-0123456789ab",
            "0123456789abcdef",
            "DEADBEEFDEADBEEF",
            "01HZX3K9QF7Y2M4N6P8R0T2V4W",
            "my-long-article-title-2024",
        ] {
            assert!(is_id(id.as_bytes()), "{id} is an id");
        }
        for word in [
            "",
            "v1",
            "v2beta1",
            "api",
            "rotate-key",
            "agent_connected",
            "usage_stats",
            "x_",
            "_1",
            "Agt_1",
            "abcdefghijklmnopq_1",
            "deadbeef",
            "a-b-c-d-e-f-g-h-i-j-k",
            "2024-01-05",
            "helloworld.Greeter",
            "SayHello",
            "%40me",
        ] {
            assert!(!is_id(word.as_bytes()), "{word} is not an id");
        }
    }

    proptest::proptest! {
        /// The one-pass rule answers what counting each class over the segment answers.
        #[test]
        fn the_id_rule_in_one_pass_is_the_counting_rule(
            segment in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(b"0123456789abcdefABCDEFxyzXYZ-_./%".to_vec()),
                    proptest::num::u8::ANY,
                ],
                0..40,
            )
        ) {
            proptest::prop_assert_eq!(is_id(&segment), counting_rule(&segment));
        }
    }

    fn counting_rule(segment: &[u8]) -> bool {
        let len = segment.len();
        if len == 0 {
            return false;
        }
        let digits = segment.iter().filter(|b| b.is_ascii_digit()).count();
        let hex = segment.iter().filter(|b| b.is_ascii_hexdigit()).count();
        let token = segment
            .iter()
            .filter(|&&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            .count();
        if digits == len || (len >= 16 && hex == len) || (len == 36 && is_uuid(segment)) {
            return true;
        }
        if digits == 0 || token != len {
            return false;
        }
        if len >= 20 {
            return true;
        }
        match segment.iter().position(|&b| b == b'_') {
            Some(p @ 1..=16) => {
                segment[..p].iter().all(u8::is_ascii_lowercase)
                    && p + 1 < len
                    && segment[p + 1..].iter().all(u8::is_ascii_alphanumeric)
            }
            _ => false,
        }
    }

    #[test]
    fn template_display_matches_the_key() {
        let paths = [
            "/",
            "",
            "/api/actors/agt_1/release",
            "//x//17",
            "/limited/17/",
        ];
        let shown: Vec<String> = paths
            .iter()
            .map(|p| PathTemplate::new(p).to_string())
            .collect();
        assert_eq!(
            shown,
            [
                "/",
                "",
                "/api/actors/{id}/release",
                "//x//{id}",
                "/limited/{id}/"
            ]
        );
        assert_eq!(k("http://a.test/x/agt_1"), k("http://a.test/x/node_9"));
    }

    #[test]
    fn the_origin_key_is_every_path() {
        let a = Key::from_origin(&Uri::from_static("https://a.test/x/1"));
        assert_eq!(a, Key::from_origin(&Uri::from_static("https://a.test/y?z")));
        assert_ne!(a, Key::from_origin(&Uri::from_static("http://a.test/x/1")));
        assert_ne!(a, Key::from_origin(&Uri::from_static("https://b.test/x/1")));
        assert_ne!(a, k("https://a.test/"));
        assert_ne!(a, k("https://a.test"));
    }

    #[test]
    fn every_scheme_counts() {
        let keys = [
            k("/x"),
            k("http://a.test/x"),
            k("https://a.test/x"),
            k("ws://a.test/x"),
            k("wss://a.test/x"),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn of_is_stable_within_the_process() {
        assert_eq!(Key::of("tenant-7"), Key::of("tenant-7"));
        assert_eq!(Key::of(&("GET", "/a")), Key::of(&("GET", "/a")));
        assert_ne!(Key::of(&("GET", "/a")), Key::of(&("GE", "T/a")));
        // From another thread too: the seed is the process's.
        let other = std::thread::spawn(|| Key::of("tenant-7")).join().unwrap();
        assert_eq!(other, Key::of("tenant-7"));
    }

    #[test]
    fn many_keys_do_not_collide() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            let uri: Uri = format!("http://127.0.0.1:8080/p/{i}").parse().unwrap();
            assert!(seen.insert(Key::from_uri_exact(&uri)));
            // Routes that differ by a word, not an id.
            let route: Uri = format!("http://127.0.0.1:8080/p{i}x").parse().unwrap();
            assert!(seen.insert(Key::from_uri(&route)));
        }
    }
}
