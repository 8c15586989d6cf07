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
    pub fn from_uri(uri: &Uri) -> Key {
        let mut h = KeyHasher(seed());
        h.write(uri.scheme_str().unwrap_or("").as_bytes());
        h.write_u8(0xff);
        h.write(uri.authority().map_or("", |a| a.as_str()).as_bytes());
        h.write_u8(0xff);
        h.write(uri.path().as_bytes());
        Key(h.finish())
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

/// A small, fast, seeded hasher (FxHash's word step with a murmur3 finaliser): a key is
/// hashed on every request, so it must cost a few nanoseconds, not SipHash's dozens.
struct KeyHasher(u64);

const MUL: u64 = 0xf135_7aea_2e62_a9c5;

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(26) ^ word).wrapping_mul(MUL);
    }
}

impl Hasher for KeyHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        let mut word = [0; 8];
        word[..rest.len()].copy_from_slice(rest);
        // The length makes "ab" + "" differ from "a" + "b".
        self.add(u64::from_le_bytes(word) ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
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
