//! The quota a server announces in its response headers, [`Quota`]: how many requests are
//! left in the current window and when it resets, read from any response, so a client can
//! stop before the `429`. [`RateLimitHeaders`] on the [`ErrorContract`](crate::ErrorContract)
//! chooses the header families; [`QuotaScope`] says where the quota applies.
//!
//! | family | headers | reset given as |
//! | --- | --- | --- |
//! | [`IETF`](RateLimitHeaders::IETF) (default) | `RateLimit-Policy: "default";q=100;w=60`, `RateLimit: "default";r=50;t=30` | seconds (`t`) |
//! | [`IETF`](RateLimitHeaders::IETF), earlier drafts | `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`; `RateLimit: limit=100, remaining=25, reset=60`; `RateLimit-Policy: 100;w=60` | seconds, or epoch seconds (below) |
//! | [`X_RATELIMIT`](RateLimitHeaders::X_RATELIMIT) (default) | `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` | seconds, or Unix epoch seconds (GitHub) |
//! | [`OPENAI`](RateLimitHeaders::OPENAI) (opt-in) | `x-ratelimit-{limit,remaining,reset}-requests`, `…-tokens` | a duration: `1s`, `6m0s`, `250ms`, `1h2m3.5s` |
//! | [`ANTHROPIC`](RateLimitHeaders::ANTHROPIC) (opt-in) | `anthropic-ratelimit-requests-{limit,remaining,reset}`, and the `tokens`, `input-tokens`, `output-tokens` families | an RFC 3339 timestamp |
//!
//! The draft's fields are Structured Fields (RFC 9651): an invalid field is ignored whole. A
//! quota counted in tokens or another unit counts only when it is exhausted. A reset of at
//! least 10⁹ is Unix epoch seconds (GitHub), measured from the response's `Date` when there
//! is one. When readings disagree, the one with the fewest remaining requests wins, then the
//! one that resets last; every reset is at most one year, and malformed values are ignored.
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use http::HeaderMap;
//! use tower_api_retry::{Quota, RateLimitHeaders};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("ratelimit-policy", r#""default";q=100;w=60"#.parse().unwrap());
//! headers.insert("ratelimit", r#""default";r=50;t=30"#.parse().unwrap());
//! headers.insert("x-ratelimit-remaining", "7".parse().unwrap());
//! headers.insert("x-ratelimit-reset", "12".parse().unwrap());
//!
//! let quota = Quota::read(&headers, RateLimitHeaders::DEFAULT, SystemTime::now()).unwrap();
//! // Two families: the one with fewer requests left wins.
//! assert_eq!(quota.remaining, Some(7));
//! assert_eq!(quota.reset, Some(Duration::from_secs(12)));
//!
//! // Nothing announced: nothing read.
//! assert_eq!(Quota::read(&HeaderMap::new(), RateLimitHeaders::DEFAULT, SystemTime::now()), None);
//! ```

use crate::retry_after::{MAX_HINT, fraction_nanos};
use http::{HeaderMap, HeaderName, HeaderValue};
use sfv::{BareItemFromInput, KeyRef, Parser, visitor};
use std::{
    borrow::Cow,
    convert::Infallible,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// A reset value at or above this (in seconds) is a Unix epoch time, below it a delay.
const EPOCH_RESET_FROM: u64 = 1_000_000_000;

/// The most lines of one repeated structured field (`RateLimit`, `RateLimit-Policy`) read.
pub(crate) const MAX_FIELD_LINES: usize = 16;

/// The most items of one structured field that count, over all its lines (the rest of its
/// lines are still parsed, to validate the field).
const MAX_ITEMS: usize = 8;

/// What one response announced about the caller's quota, all the header families it carried
/// merged (see the [module docs](self)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// Requests left in the current window.
    pub remaining: Option<u64>,
    /// Requests per window (the quota).
    pub limit: Option<u64>,
    /// The window's length, when announced (the draft's `w`).
    pub window: Option<Duration>,
    /// The time until the window resets, from the response; at most
    /// one year.
    pub reset: Option<Duration>,
}

/// Which header families [`Quota::read`] reads. `Copy`, usable in `const`, combined with `|`.
///
/// [`DEFAULT`](Self::DEFAULT) is the draft standard and `X-RateLimit-*`; the vendor families
/// are opt-in, since their names are only meaningful from their vendor.
///
/// ```
/// use tower_api_retry::RateLimitHeaders;
///
/// let llm = RateLimitHeaders::DEFAULT | RateLimitHeaders::OPENAI | RateLimitHeaders::ANTHROPIC;
/// assert!(llm.contains(RateLimitHeaders::IETF | RateLimitHeaders::OPENAI));
/// assert!(!RateLimitHeaders::DEFAULT.contains(RateLimitHeaders::OPENAI));
/// assert_eq!(format!("{:?}", RateLimitHeaders::DEFAULT), "RateLimitHeaders(IETF | X_RATELIMIT)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateLimitHeaders(u8);

impl RateLimitHeaders {
    /// draft-ietf-httpapi-ratelimit-headers: `RateLimit` and `RateLimit-Policy`, and the
    /// earlier drafts' `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`.
    pub const IETF: Self = RateLimitHeaders(1);
    /// `X-RateLimit-Limit`, `X-RateLimit-Remaining`, `X-RateLimit-Reset` (GitHub and many
    /// others).
    pub const X_RATELIMIT: Self = RateLimitHeaders(1 << 1);
    /// OpenAI's `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`.
    pub const OPENAI: Self = RateLimitHeaders(1 << 2);
    /// Anthropic's `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-…`.
    pub const ANTHROPIC: Self = RateLimitHeaders(1 << 3);
    /// Read nothing: [`Quota::read`] answers `None` at once.
    pub const NONE: Self = RateLimitHeaders(0);
    /// [`IETF`](Self::IETF) and [`X_RATELIMIT`](Self::X_RATELIMIT).
    pub const DEFAULT: Self = RateLimitHeaders(Self::IETF.0 | Self::X_RATELIMIT.0);
    /// Every family.
    pub(crate) const ALL: Self = RateLimitHeaders(0b1111);

    /// `true` for [`NONE`](Self::NONE).
    pub(crate) const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The families as bits.
    pub(crate) const fn bits(self) -> u8 {
        self.0
    }
}

crate::text::flag_set!(
    RateLimitHeaders[IETF, X_RATELIMIT, OPENAI, ANTHROPIC],
    "family",
    "families",
    "RateLimitHeaders(IETF | X_RATELIMIT)"
);

/// Where a quota announced in response headers applies: by default the whole authority
/// (GitHub's quota covers every path of the API for the caller). A `429` that announces no
/// quota always closes the path's own gate.
///
/// ```
/// use tower_api_retry::{ErrorContract, QuotaScope};
///
/// let contract = ErrorContract::new().quota_scope(QuotaScope::Path);
/// assert_ne!(contract, ErrorContract::new()); // the default is `Authority`
/// assert_eq!(ErrorContract::new().quota_scope(QuotaScope::Authority), ErrorContract::new());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QuotaScope {
    /// Every path of the authority shares the announced quota, and rate limits on several
    /// paths at once hold the whole authority (the default).
    #[default]
    Authority,
    /// The announced quota applies to the path (its template) that carried it, and every
    /// rate limit stays on its own path.
    Path,
}

impl Quota {
    /// The share of this quota that one of `n` processes spending it may send: its counts
    /// divided by `n` (a limit of at least 1).
    pub(crate) fn shared_by(&self, n: u32) -> Quota {
        let n = u64::from(n.max(1));
        Quota {
            remaining: self.remaining.map(|r| r / n),
            limit: self.limit.map(|l| (l / n).max(1)),
            ..*self
        }
    }

    /// Reads the quota that `headers` announce in the families `conventions` names, resets
    /// taken relative to `now` (or the response's `Date`, for a reset given as a time).
    /// `None` when the headers carry no recognised, valid rate-limit field.
    pub fn read(
        headers: &HeaderMap,
        conventions: RateLimitHeaders,
        now: SystemTime,
    ) -> Option<Quota> {
        if conventions.is_empty() || headers.is_empty() {
            return None;
        }
        // The common case, no such header: the distinct names only, each by its first bytes.
        if !headers
            .keys()
            .any(|name| place(name.as_str(), conventions).is_some())
        {
            return None;
        }
        let mut found = Found::default();
        for name in headers.keys() {
            found.see(headers, name, conventions);
        }
        // The server's clock, as its `Date` says: whole seconds, rounded down, so a reset
        // measured from it is never shorter than the server's, whatever the two clocks say.
        let now = headers
            .get(http::header::DATE)
            .and_then(|date| httpdate::parse_http_date(date.to_str().ok()?).ok())
            .unwrap_or(now);
        found.read(headers, now)
    }

    /// The more conservative of two readings: fewer remaining, then the later reset.
    fn tighter(self, other: Quota) -> Quota {
        use std::cmp::Reverse;
        let key = |q: &Quota| {
            (
                q.remaining.is_none(),
                q.remaining,
                Reverse(q.reset),
                q.limit.unwrap_or(u64::MAX),
            )
        };
        if key(&other) < key(&self) {
            other
        } else {
            self
        }
    }

    /// The reading of a quota counted in `requests`, or else in another unit (tokens, bytes),
    /// of which only exhaustion says something about requests.
    fn counting(self, requests: bool) -> Quota {
        match (requests, self.remaining) {
            (true, _) => self,
            (false, Some(0)) => Quota {
                remaining: Some(0),
                reset: self.reset,
                ..Quota::default()
            },
            (false, _) => Quota::default(),
        }
    }
}

/// One family of three headers, `{prefix}{limit,remaining,reset}{suffix}`.
struct Family {
    /// The choice that reads it.
    set: RateLimitHeaders,
    prefix: &'static str,
    suffix: &'static str,
    limit: fn(&HeaderValue) -> Option<u64>,
    reset: fn(&HeaderValue, SystemTime) -> Option<Duration>,
    /// It counts requests; one that counts tokens or bytes counts only when exhausted.
    requests: bool,
}

/// The header families of three headers, in the order they are read: adding a family is
/// adding a line. (The draft's structured fields, `RateLimit` and `RateLimit-Policy`, are
/// read with [`IETF`](RateLimitHeaders::IETF) too.)
#[rustfmt::skip]
const FAMILIES: [Family; 8] = {
    use RateLimitHeaders as H;
    const fn f(set: H, prefix: &'static str, suffix: &'static str, requests: bool) -> Family {
        Family { set, prefix, suffix, limit: parse_count, reset: parse_reset_seconds, requests }
    }
    let go: fn(&HeaderValue, SystemTime) -> Option<Duration> = |v, _| parse_go_duration(v);
    [
        Family { limit: parse_sf_limit, ..f(H::IETF, "ratelimit-", "", true) },
        f(H::X_RATELIMIT, "x-ratelimit-", "", true),
        Family { reset: go, ..f(H::OPENAI, "x-ratelimit-", "-requests", true) },
        Family { reset: go, ..f(H::OPENAI, "x-ratelimit-", "-tokens", false) },
        Family { reset: parse_rfc3339_reset, ..f(H::ANTHROPIC, "anthropic-ratelimit-requests-", "", true) },
        Family { reset: parse_rfc3339_reset, ..f(H::ANTHROPIC, "anthropic-ratelimit-tokens-", "", false) },
        Family { reset: parse_rfc3339_reset, ..f(H::ANTHROPIC, "anthropic-ratelimit-input-tokens-", "", false) },
        Family { reset: parse_rfc3339_reset, ..f(H::ANTHROPIC, "anthropic-ratelimit-output-tokens-", "", false) },
    ]
};

/// For each choice of families, the first bytes of their header names: every other header
/// is passed over by its first byte.
const FIRST_BYTES: [u128; ALL + 1] = {
    let mut masks = [0u128; ALL + 1];
    let mut set = 0;
    while set <= ALL {
        let mut i = 0;
        while i < FAMILIES.len() {
            if FAMILIES[i].set.bits() & set as u8 != 0 {
                masks[set] |= 1 << FAMILIES[i].prefix.as_bytes()[0];
            }
            i += 1;
        }
        set += 1;
    }
    masks
};

/// Every family chosen.
const ALL: usize = RateLimitHeaders::ALL.bits() as usize;

/// The first values of limit, remaining, reset.
type Triple<'a> = [Option<&'a HeaderValue>; 3];

/// The recognised header names of one response.
#[derive(Default)]
struct Found<'a> {
    ratelimit: Option<&'a HeaderName>,
    policy: Option<&'a HeaderName>,
    /// One per entry of [`FAMILIES`].
    families: [Triple<'a>; FAMILIES.len()],
}

/// Where a header of the families in `conventions` goes: `Ok` the draft's `RateLimit` (0) or
/// `RateLimit-Policy` (1), `Err` a family's field.
fn place(name: &str, conventions: RateLimitHeaders) -> Option<Result<usize, (usize, usize)>> {
    let first = *name.as_bytes().first()?;
    if first >= 128 || FIRST_BYTES[usize::from(conventions.bits()) & ALL] >> first & 1 == 0 {
        return None;
    }
    if conventions.contains(RateLimitHeaders::IETF) {
        match name {
            "ratelimit" => return Some(Ok(0)),
            "ratelimit-policy" => return Some(Ok(1)),
            _ => {}
        }
    }
    FAMILIES.iter().enumerate().find_map(|(i, f)| {
        let field = name.strip_prefix(f.prefix)?.strip_suffix(f.suffix)?;
        let at = ["limit", "remaining", "reset"]
            .iter()
            .position(|n| *n == field)?;
        conventions.contains(f.set).then_some(Err((i, at)))
    })
}

impl<'a> Found<'a> {
    /// Notes `name` (a structured field, read whole later) or its first value (a family's
    /// field) if it is one of the families in `conventions`.
    fn see(&mut self, headers: &'a HeaderMap, name: &'a HeaderName, conventions: RateLimitHeaders) {
        match place(name.as_str(), conventions) {
            Some(Ok(0)) => self.ratelimit = Some(name),
            Some(Ok(_)) => self.policy = Some(name),
            Some(Err((family, at))) => self.families[family][at] = headers.get(name),
            None => {}
        }
    }

    fn read(&self, headers: &'a HeaderMap, now: SystemTime) -> Option<Quota> {
        let mut best: Option<Quota> = None;
        let mut take = |reading: Quota| {
            if reading != Quota::default() {
                best = Some(best.map_or(reading, |best| best.tighter(reading)));
            }
        };
        if self.ratelimit.is_some() || self.policy.is_some() {
            ietf(headers, self.policy, self.ratelimit, &mut take);
        }
        for (f, [limit, remaining, reset]) in FAMILIES.iter().zip(&self.families) {
            if limit.is_some() || remaining.is_some() || reset.is_some() {
                let reading = Quota {
                    limit: limit.and_then(f.limit),
                    remaining: remaining.and_then(parse_count),
                    window: None,
                    reset: reset.and_then(|v| (f.reset)(v, now)),
                };
                take(reading.counting(f.requests));
            }
        }
        best
    }
}

// ---- The draft's structured fields ------------------------------------------------------------

/// One item of `RateLimit-Policy` or `RateLimit`.
#[derive(Clone, Debug)]
struct Entry<'de> {
    /// The policy's name; `None` for an earlier draft's policy given as a bare quota.
    name: Option<Cow<'de, str>>,
    q: Option<u64>,
    r: Option<u64>,
    t: Option<u64>,
    w: Option<u64>,
    /// The quota unit is requests (the default).
    requests: bool,
    /// Not an item of the expected shape: ignored.
    skip: bool,
}

impl Entry<'_> {
    const EMPTY: Entry<'static> = Entry {
        name: None,
        q: None,
        r: None,
        t: None,
        w: None,
        requests: true,
        skip: false,
    };
}

/// The items of one field, over all its lines, at most [`MAX_ITEMS`].
struct Entries<'de> {
    items: [Entry<'de>; MAX_ITEMS],
    len: usize,
}

impl<'de> Entries<'de> {
    fn new() -> Self {
        Entries {
            items: [const { Entry::EMPTY }; MAX_ITEMS],
            len: 0,
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Entry<'de>> {
        self.items[..self.len].iter().filter(|e| !e.skip)
    }

    /// Parses every line of `name` (at most [`MAX_FIELD_LINES`]) as one List; with
    /// `dictionary`, a field that is no List may be the seventh draft's Dictionary
    /// (`limit=100, remaining=25, reset=60`). An invalid line invalidates the whole field.
    fn parse(headers: &'de HeaderMap, name: Option<&HeaderName>, dictionary: bool) -> Self {
        let mut entries = Entries::new();
        let lines = name.map(|name| headers.get_all(name).iter());
        for value in lines.into_iter().flatten().take(MAX_FIELD_LINES) {
            let bytes = value.as_bytes();
            let before = entries.len;
            if Parser::new(bytes)
                .parse_list_with_visitor(&mut entries)
                .is_ok()
            {
                continue;
            }
            entries.len = before;
            let mut old = Entry::EMPTY;
            if dictionary
                && Parser::new(bytes)
                    .parse_dictionary_with_visitor(&mut old)
                    .is_ok()
                && entries.len < MAX_ITEMS
            {
                entries.items[entries.len] = old;
                entries.len += 1;
                continue;
            }
            entries.len = 0;
            break;
        }
        entries
    }
}

impl<'de> visitor::ListVisitor<'de> for &mut Entries<'de> {
    type Out = ();
    type Error = Infallible;

    fn entry(&mut self) -> Result<impl visitor::EntryVisitor<'de>, Self::Error> {
        if self.len == MAX_ITEMS {
            return Ok(None);
        }
        self.len += 1;
        let entry = &mut self.items[self.len - 1];
        *entry = Entry::EMPTY;
        Ok(Some(entry))
    }

    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<'de> visitor::EntryVisitor<'de> for &mut Entry<'de> {
    type Error = Infallible;

    fn item(self) -> Result<impl visitor::ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl visitor::InnerListVisitor<'de>, Self::Error> {
        self.skip = true;
        Ok(visitor::Ignored)
    }
}

impl<'de> visitor::ItemVisitor<'de> for &mut Entry<'de> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        item: BareItemFromInput<'de>,
    ) -> Result<impl visitor::ParameterVisitor<'de, Out = ()>, Self::Error> {
        match item {
            BareItemFromInput::String(Cow::Borrowed(s)) => {
                self.name = Some(Cow::Borrowed(s.as_str()))
            }
            BareItemFromInput::String(Cow::Owned(s)) => {
                self.name = Some(Cow::Owned(String::from(s)))
            }
            BareItemFromInput::Token(t) => self.name = Some(Cow::Borrowed(t.as_str())),
            // An earlier draft's policy: `RateLimit-Policy: 100;w=60`.
            BareItemFromInput::Integer(_) => self.q = non_negative(&item),
            _ => self.skip = true,
        }
        Ok(self)
    }
}

impl<'de> visitor::ParameterVisitor<'de> for &mut Entry<'de> {
    type Out = ();
    type Error = Infallible;

    fn parameter(
        &mut self,
        key: &'de KeyRef,
        value: BareItemFromInput<'de>,
    ) -> Result<(), Self::Error> {
        // A repeated parameter: the last one counts (RFC 9651 §4.2.3.2).
        match key.as_str() {
            "q" if self.name.is_some() => self.q = non_negative(&value),
            "r" => self.r = non_negative(&value),
            "t" => self.t = non_negative(&value),
            // The window is a positive number of seconds.
            "w" => self.w = non_negative(&value).filter(|w| *w > 0),
            "qu" => {
                self.requests =
                    matches!(&value, BareItemFromInput::String(s) if s.as_str() == "requests")
            }
            _ => {}
        }
        Ok(())
    }

    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// One integer member of the seventh draft's `RateLimit: limit=100, remaining=25, reset=60`.
struct IntSlot<'a>(&'a mut Option<u64>);

/// The seventh draft's `RateLimit: limit=100, remaining=25, reset=60`, read into `q`, `r`, `t`.
impl<'de> visitor::DictionaryVisitor<'de> for &mut Entry<'de> {
    type Out = ();
    type Error = Infallible;

    fn entry(&mut self, key: &'de KeyRef) -> Result<impl visitor::EntryVisitor<'de>, Self::Error> {
        let slot = match key.as_str() {
            "limit" => Some(IntSlot(&mut self.q)),
            "remaining" => Some(IntSlot(&mut self.r)),
            "reset" => Some(IntSlot(&mut self.t)),
            _ => None,
        };
        Ok(slot)
    }

    fn finish(self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl<'de> visitor::EntryVisitor<'de> for IntSlot<'_> {
    type Error = Infallible;

    fn item(self) -> Result<impl visitor::ItemVisitor<'de>, Self::Error> {
        Ok(self)
    }

    fn inner_list(self) -> Result<impl visitor::InnerListVisitor<'de>, Self::Error> {
        *self.0 = None;
        Ok(visitor::Ignored)
    }
}

impl<'de> visitor::ItemVisitor<'de> for IntSlot<'_> {
    type Out = ();
    type Error = Infallible;

    fn bare_item(
        self,
        item: BareItemFromInput<'de>,
    ) -> Result<impl visitor::ParameterVisitor<'de, Out = ()>, Self::Error> {
        *self.0 = non_negative(&item);
        Ok(visitor::Ignored)
    }
}

fn non_negative(item: &BareItemFromInput<'_>) -> Option<u64> {
    match item {
        BareItemFromInput::Integer(i) => u64::try_from(i64::from(*i)).ok(),
        _ => None,
    }
}

/// The draft's fields: each `RateLimit` item with the policy of its name, and each policy
/// without an item.
fn ietf(
    headers: &HeaderMap,
    policy: Option<&HeaderName>,
    ratelimit: Option<&HeaderName>,
    take: &mut impl FnMut(Quota),
) {
    let policies = Entries::parse(headers, policy, false);
    let limits = Entries::parse(headers, ratelimit, true);
    let secs = |s: Option<u64>| s.map(|s| Duration::from_secs(s).min(MAX_HINT));
    for item in limits.iter() {
        let policy = item
            .name
            .as_ref()
            .and_then(|name| policies.iter().find(|p| p.name.as_ref() == Some(name)));
        let reading = Quota {
            remaining: item.r,
            // The seventh draft's dictionary carries its own limit.
            limit: item.q.or(policy.and_then(|p| p.q)),
            window: secs(policy.and_then(|p| p.w)),
            reset: secs(item.t),
        };
        take(reading.counting(policy.is_none_or(|p| p.requests)));
    }
    for policy in policies.iter().filter(|p| p.requests) {
        let reported = policy.name.is_some() && limits.iter().any(|item| item.name == policy.name);
        if !reported {
            take(Quota {
                limit: policy.q,
                window: secs(policy.w),
                ..Quota::default()
            });
        }
    }
}

// ---- Values -----------------------------------------------------------------------------------

/// A count: `1*DIGIT`, surrounding white space allowed; a huge one saturates.
fn parse_count(value: &HeaderValue) -> Option<u64> {
    decimal(value.as_bytes().trim_ascii())
}

/// `1*DIGIT` as a number; a huge one saturates.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// An earlier draft's `RateLimit-Limit`: an Integer, or a List whose first member is one
/// (`100, 100;w=60`).
fn parse_sf_limit(value: &HeaderValue) -> Option<u64> {
    let mut list = Entries::new();
    Parser::new(value.as_bytes())
        .parse_list_with_visitor(&mut list)
        .ok()?;
    list.items[..list.len]
        .first()
        .filter(|e| e.name.is_none())?
        .q
}

/// A number's whole part, and its fraction after a `.`.
fn split_fraction(text: &[u8]) -> (&[u8], Option<&[u8]>) {
    match text.iter().position(|b| *b == b'.') {
        Some(dot) => (&text[..dot], Some(&text[dot + 1..])),
        None => (text, None),
    }
}

/// `X-RateLimit-Reset`: delta-seconds, or epoch seconds from [`EPOCH_RESET_FROM`] on; either
/// with a decimal fraction.
fn parse_reset_seconds(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let (whole, frac) = split_fraction(value.as_bytes().trim_ascii());
    let secs = decimal(whole)?;
    let nanos = frac.map_or(Some(0), fraction_nanos)?;
    if secs < EPOCH_RESET_FROM {
        return Some(Duration::new(secs, nanos).min(MAX_HINT));
    }
    Some(until(
        UNIX_EPOCH.checked_add(Duration::new(secs, nanos)),
        now,
    ))
}

/// The time from `now` to `at`: zero when it is past, [`MAX_HINT`] when it is further than
/// that or not representable.
fn until(at: Option<SystemTime>, now: SystemTime) -> Duration {
    match at {
        Some(at) => at
            .duration_since(now)
            .unwrap_or(Duration::ZERO)
            .min(MAX_HINT),
        None => MAX_HINT,
    }
}

/// A Go duration as OpenAI sends it: `1s`, `6m0s`, `250ms`, `1h2m3.5s`, each number with an
/// optional fraction, units `h`, `m`, `s`, `ms`, `us`/`µs`, `ns`. Saturates at [`MAX_HINT`].
fn parse_go_duration(value: &HeaderValue) -> Option<Duration> {
    let mut rest = value.as_bytes().trim_ascii();
    if rest.is_empty() {
        return None;
    }
    if rest == b"0" {
        return Some(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .iter()
            .position(|b| !b.is_ascii_digit() && *b != b'.')
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .iter()
            .position(|b| b.is_ascii_digit() || *b == b'.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let nanos_per: u64 = match unit {
            b"h" => 3_600_000_000_000,
            b"m" => 60_000_000_000,
            b"s" => 1_000_000_000,
            b"ms" => 1_000_000,
            // `us`, and `µs` with the micro sign or the Greek letter mu.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ns" => 1,
            _ => return None,
        };
        let (whole, frac) = split_fraction(number);
        let whole = match whole.is_empty() && frac.is_some() {
            true => 0,
            false => decimal(whole)?,
        };
        // The fraction of the unit, in nanoseconds of the unit's length.
        let frac_nanos = u128::from(frac.map_or(Some(0), fraction_nanos)?) * u128::from(nanos_per)
            / 1_000_000_000;
        let nanos = u128::from(whole) * u128::from(nanos_per) + frac_nanos;
        let part = match u64::try_from(nanos / 1_000_000_000) {
            Ok(secs) if secs <= MAX_HINT.as_secs() => {
                Duration::new(secs, (nanos % 1_000_000_000) as u32)
            }
            _ => MAX_HINT,
        };
        total = total.saturating_add(part).min(MAX_HINT);
        rest = tail;
    }
    Some(total)
}

/// An RFC 3339 timestamp (`2025-08-21T12:40:59Z`, `…T12:40:59.5+02:00`), as the time from
/// `now`: zero when past, at most [`MAX_HINT`].
fn parse_rfc3339_reset(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let at = parse_rfc3339(value.as_bytes().trim_ascii())?;
    Some(until(at, now))
}

/// The time of an RFC 3339 date-time; a time before 1970 is the epoch, and `Some(None)` one
/// that `SystemTime` cannot hold (which [`until`] reads as far).
#[allow(clippy::option_option)]
fn parse_rfc3339(s: &[u8]) -> Option<Option<SystemTime>> {
    fn num(s: &[u8], range: std::ops::Range<usize>) -> Option<i64> {
        s.get(range)
            .and_then(decimal)
            .and_then(|n| i64::try_from(n).ok())
    }
    if s.len() < 20 || s[4] != b'-' || s[7] != b'-' || s[13] != b':' || s[16] != b':' {
        return None;
    }
    if !matches!(s[10], b'T' | b't' | b' ') {
        return None;
    }
    let (year, month, day) = (num(s, 0..4)?, num(s, 5..7)?, num(s, 8..10)?);
    let (hour, minute, second) = (num(s, 11..13)?, num(s, 14..16)?, num(s, 17..19)?);
    if !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let len = frac
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(frac.len());
        nanos = fraction_nanos(&frac[..len])?;
        rest = &frac[len..];
    }
    let offset = match rest {
        b"Z" | b"z" => 0,
        [sign @ (b'+' | b'-'), ..] if rest.len() == 6 && rest[3] == b':' => {
            let (h, m) = (num(rest, 1..3)?, num(rest, 4..6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let off = h * 3600 + m * 60;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset;
    Some(match u64::try_from(secs) {
        Ok(secs) => UNIX_EPOCH.checked_add(Duration::new(secs, nanos)),
        Err(_) => Some(UNIX_EPOCH),
    })
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
