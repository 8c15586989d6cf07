//! Which requests share a gate: [`Key`] and the key function.
//!
//! A key is hashed on every request, so it uses foldhash (a few nanoseconds, not SipHash's
//! dozens), seeded once per process. A key is therefore a name *within one process*: its value
//! differs between processes and may change with a foldhash release. A gate store shared by
//! several processes cannot use it as a name; it needs a digest of the same request parts that
//! is stable across processes and versions, computed where the key is computed (the key
//! function below), next to it rather than from it.

use foldhash::fast::RandomState;
use http::{Extensions, HeaderMap, Method, Request, Uri};
use std::{
    fmt,
    hash::{BuildHasher, Hash, Hasher},
    sync::{Arc, LazyLock},
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

/// The process's key hasher: foldhash, randomly seeded once.
static STATE: LazyLock<RandomState> = LazyLock::new(RandomState::default);

impl Key {
    /// The key of anything hashable: a host, a tenant header, a `(method, path)` pair, ...
    pub fn of<T: Hash + ?Sized>(value: &T) -> Key {
        Key(STATE.hash_one(value))
    }

    /// The default key: scheme, authority and path of `uri`, without the query.
    #[inline]
    pub fn from_uri(uri: &Uri) -> Key {
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
        uri.path().hash(&mut h);
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
            assert!(seen.insert(Key::from_uri(&uri)));
        }
    }
}
