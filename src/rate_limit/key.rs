//! Which requests share a gate: [`Key`] and the key function.

use http::{Extensions, HeaderMap, Method, Request, Uri};
use std::{
    fmt,
    hash::{Hash, Hasher},
    sync::{Arc, OnceLock},
};

/// What a group of requests that share one rate-limit gate have in common.
///
/// A key is a 64-bit keyed hash of whatever identifies the group, so computing one never
/// allocates and a gate map never stores request data. The default key ([`Key::from_uri`]) is
/// the scheme, authority and path of the request URI, without the query; for gRPC the path is
/// the method (`/package.Service/Method`).
///
/// The hash is seeded once per process, so keys are stable within a process (two stacks
/// sharing a [`RateLimitGates`](super::RateLimitGates) agree on them) and differ between
/// processes. Two different groups whose hashes collide share a gate; with 64 bits that is
/// about one chance in 10¹² for 10,000 closed keys, and its only effect is that a request
/// waits when it did not have to.
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
/// assert_eq!(Key::of("tenant-7"), Key::of("tenant-7"));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(u64);

impl Key {
    /// The key of anything hashable: a host, a tenant header, a `(method, path)` pair, ...
    pub fn of<T: Hash + ?Sized>(value: &T) -> Key {
        let mut h = KeyHasher(seed());
        value.hash(&mut h);
        Key(h.finish())
    }

    /// The default key: scheme, authority and path of `uri`, without the query.
    #[inline]
    pub fn from_uri(uri: &Uri) -> Key {
        let scheme = match uri.scheme_str() {
            None => 0,
            Some("http") => 1,
            Some("https") => 2,
            Some(other) => mix(3, other.as_bytes()),
        };
        let mut h = seed() ^ scheme;
        h = mix(h, uri.authority().map_or("", |a| a.as_str()).as_bytes());
        h = mix(h, uri.path().as_bytes());
        Key(finish(h))
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

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| rand::random::<u64>() | 1)
}

/// A small, fast, seeded hasher (foldhash's folded multiply): a key is hashed on every
/// request, so it must cost a few nanoseconds, not SipHash's dozens.
struct KeyHasher(u64);

const K1: u64 = 0x243f_6a88_85a3_08d3;
const K2: u64 = 0x1319_8a2e_0370_7344;
const K3: u64 = 0xa409_3822_299f_31d0;

#[inline(always)]
fn folded(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

#[inline(always)]
fn read8(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline(always)]
fn read4(b: &[u8], at: usize) -> u64 {
    let mut w = [0; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// Mixes `bytes` (and their length, so piece boundaries matter) into `h`.
#[inline]
fn mix(mut h: u64, mut bytes: &[u8]) -> u64 {
    h = h.wrapping_add(bytes.len() as u64).rotate_left(23);
    while bytes.len() > 16 {
        h = folded(read8(bytes, 0) ^ h, read8(bytes, 8) ^ K1);
        bytes = &bytes[16..];
    }
    let n = bytes.len();
    let (a, b) = if n >= 8 {
        (read8(bytes, 0), read8(bytes, n - 8))
    } else if n >= 4 {
        (read4(bytes, 0), read4(bytes, n - 4))
    } else if n > 0 {
        (
            u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8,
            u64::from(bytes[n - 1]),
        )
    } else {
        (0, 0)
    };
    folded(a ^ h, b ^ K2)
}

#[inline]
fn finish(h: u64) -> u64 {
    folded(h, K3) ^ h.rotate_left(29)
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = mix(self.0, bytes);
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.0 = folded(self.0 ^ n, K1);
    }

    #[inline]
    fn finish(&self) -> u64 {
        finish(self.0)
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
    fn many_keys_do_not_collide() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..100_000 {
            let uri: Uri = format!("http://127.0.0.1:8080/p/{i}").parse().unwrap();
            assert!(seen.insert(Key::from_uri(&uri)));
        }
    }
}
