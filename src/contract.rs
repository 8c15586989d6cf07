//! An API's error contract as one value, [`ErrorContract`]: the built-in table of both
//! pages, the codes an API declares on top of it, when transient rejections are an outage, and
//! which headers announce a quota.
//!
//! The contract of the layer that decodes an answer ([`ErrorDecodeLayer`](crate::ErrorDecodeLayer),
//! [`McpDecodeLayer`](crate::McpDecodeLayer), or [`ResumableEvents`](crate::ResumableEvents) for
//! what it decodes itself) judges it once; the [`Verdict`](crate::Verdict) travels on the error,
//! and every layer above reads it. [`ApiContractLayer::contract`] hands one contract to the
//! whole stack.
//!
//! A declared code is looked up by its text, exactly as the server spells it, whichever body
//! shape carried it; it may override a code this crate knows.
//!
//! | declared disposition | the request is | the path's gate |
//! | --- | --- | --- |
//! | [`Disposition::RateLimited`] | retried after `Retry-After` (even a `POST`: a rate limit is a refusal at the door); a gRPC `RESOURCE_EXHAUSTED` naming no wait, once | closes (not for the same request's second `RESOURCE_EXHAUSTED` naming no wait: [its own](crate::rate_limit#one-requests-own-resource_exhausted)) |
//! | [`Disposition::Retry`] | retried with backoff (a `POST` only with an `Idempotency-Key`) | stays open, unless it is an [outage signal](OutageSignals) and the [`OutageRule`] says the path is out |
//! | anything else | returned at once | stays open |
//!
//! A `429` closes the gate whatever code its body carries. The server's own word
//! (`x-should-retry`, `Stripe-Should-Retry`) overrides the table for one response: see
//! [`ApiError::server_should_retry`](crate::ApiError::server_should_retry).
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tower::{service_fn, ServiceBuilder, ServiceExt};
//! use tower_api_retry::{ApiContractLayer, Disposition, ErrorContract, ServiceBuilderExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let contract = ErrorContract::new()
//!     .code("QUOTA_EXCEEDED", Disposition::RateLimited)
//!     .code("TEMPORARILY_UNAVAILABLE", Disposition::Retry)
//!     .code("ACCOUNT_LOCKED", Disposition::NeedsHuman);
//!
//! // An API that answers a locked account with a 503.
//! let api = service_fn(|_req: Request<Full<Bytes>>| async {
//!     let body = r#"{"error": {"code": "ACCOUNT_LOCKED", "message": "call support"}}"#;
//!     Ok::<_, std::io::Error>(Response::builder().status(503).body(Full::new(Bytes::from(body))).unwrap())
//! });
//! let client = ServiceBuilder::new()
//!     .layer(ApiContractLayer::new().contract(contract))
//!     .service(api);
//!
//! let err = client.oneshot(Request::get("/v1/me").body(Full::default()).unwrap()).await.unwrap_err();
//! assert_eq!(err.disposition(), Disposition::NeedsHuman);
//! assert_eq!(err.attempts(), 1); // a 503, but the code says a human must act: not retried
//! # }
//! ```
//!
//! [`ApiContractLayer::contract`]: crate::ApiContractLayer::contract

use crate::{
    classify,
    classify::Disposition,
    code::ErrorCode,
    quota::{QuotaScope, RateLimitHeaders},
};
use http::StatusCode;
use std::{collections::HashMap, fmt, sync::Arc};

type Declared = HashMap<Box<str>, Disposition, foldhash::fast::FixedState>;

/// The answers every layer gives about a failure: the built-in table, plus the codes an API
/// declares. See the [module docs](self). Cheap to clone.
#[derive(Clone, PartialEq)]
pub struct ErrorContract {
    declared: Option<Arc<Declared>>,
    pub(crate) rate_limit_headers: RateLimitHeaders,
    pub(crate) quota_scope: QuotaScope,
    pub(crate) outages: OutageRule,
}

impl ErrorContract {
    /// The built-in table, with no declared codes; quotas read from the
    /// [default](RateLimitHeaders::DEFAULT) header families and applied to the whole
    /// [authority](QuotaScope::Authority); outages per [`OutageRule::DEFAULT`].
    ///
    /// The table goes by the code, and for a code this crate does not know by the HTTP status:
    /// no response and 5xx are transient, 429 is a rate limit, 401/407 need credentials, 403
    /// is forbidden, any other 4xx needs a fixed request. [`Disposition`] lists the codes of
    /// each answer.
    pub const fn new() -> Self {
        ErrorContract {
            declared: None,
            rate_limit_headers: RateLimitHeaders::DEFAULT,
            quota_scope: QuotaScope::Authority,
            outages: OutageRule::DEFAULT,
        }
    }

    /// Which transient rejections are taken for an outage of their path, and how many of
    /// them it takes before the path's gate closes: [`OutageRule::DEFAULT`] unless set. See
    /// [outages](crate::rate_limit#outages).
    ///
    /// ```
    /// use tower_api_retry::{ErrorContract, contract::{OutageRule, OutageSignals}};
    ///
    /// // Also take a run of 500s for an outage; close after 3 failures in a row.
    /// let contract = ErrorContract::new().outages(
    ///     OutageRule::DEFAULT
    ///         .signals(OutageSignals::DEFAULT | OutageSignals::INTERNAL)
    ///         .consecutive(3),
    /// );
    /// // Never close a path for an outage (only rate limits close it).
    /// let off = ErrorContract::new().outages(OutageRule::OFF);
    /// # let _ = off;
    /// ```
    pub const fn outages(mut self, rule: OutageRule) -> Self {
        self.outages = rule;
        self
    }

    /// The outage signal an answer with `status` and `code` is, if any (see
    /// [`OutageSignals`]). Neither a rate limit nor a code declared anything but
    /// [`Disposition::Retry`] is one.
    pub(crate) fn outage_signal(
        &self,
        status: Option<StatusCode>,
        code: &ErrorCode,
    ) -> Option<OutageSignals> {
        if self.disposition(status, code) != Disposition::Retry
            || code == &ErrorCode::RefreshInProgress
        {
            return None;
        }
        let signal = match status.map(|s| s.as_u16()) {
            Some(502) => OutageSignals::BAD_GATEWAY,
            Some(503) => OutageSignals::UNAVAILABLE,
            Some(504) => OutageSignals::GATEWAY_TIMEOUT,
            _ => match code {
                ErrorCode::Unavailable => OutageSignals::UNAVAILABLE,
                ErrorCode::DeadlineExceeded => OutageSignals::DEADLINE_EXCEEDED,
                ErrorCode::Internal | ErrorCode::Unknown => OutageSignals::INTERNAL,
                ErrorCode::Other(_) if status.is_some_and(|s| s.is_server_error()) => {
                    OutageSignals::INTERNAL
                }
                _ => return None,
            },
        };
        self.outages.signals.contains(signal).then_some(signal)
    }

    /// Which header families announce the API's quota (see [`Quota`](crate::Quota)):
    /// [`RateLimitHeaders::DEFAULT`] unless set. [`RateLimitHeaders::NONE`] reads none.
    ///
    /// ```
    /// use tower_api_retry::{ErrorContract, QuotaScope, RateLimitHeaders};
    ///
    /// // An LLM API: read OpenAI's headers too, and keep each quota to its own path.
    /// let contract = ErrorContract::new()
    ///     .rate_limit_headers(RateLimitHeaders::DEFAULT | RateLimitHeaders::OPENAI)
    ///     .quota_scope(QuotaScope::Path);
    /// # let _ = contract;
    /// ```
    pub const fn rate_limit_headers(mut self, conventions: RateLimitHeaders) -> Self {
        self.rate_limit_headers = conventions;
        self
    }

    /// Where a quota announced in response headers applies: [`QuotaScope::Authority`]
    /// unless set.
    pub const fn quota_scope(mut self, scope: QuotaScope) -> Self {
        self.quota_scope = scope;
        self
    }

    /// Declares what the code `code` means, spelled exactly as the server spells it. A code
    /// this crate knows (`"UNAVAILABLE"`) may be declared too: the declaration wins. Declaring
    /// the same code twice keeps the last.
    pub fn code(mut self, code: impl AsRef<str>, disposition: Disposition) -> Self {
        let declared = self
            .declared
            .get_or_insert_with(|| Arc::new(Declared::default()));
        Arc::make_mut(declared).insert(code.as_ref().into(), disposition);
        self
    }

    /// What `code` was declared to mean, if it was.
    pub(crate) fn declared(&self, code: &ErrorCode) -> Option<Disposition> {
        self.declared.as_ref()?.get(code.as_str()).copied()
    }

    /// The disposition of an error with `code`, carried by `status` (`None`: no response):
    /// the declared code first, then the built-in table (see [`ErrorContract::new`]).
    pub fn disposition(&self, status: Option<StatusCode>, code: &ErrorCode) -> Disposition {
        self.declared(code)
            .unwrap_or_else(|| classify(status, code))
    }
}

impl Default for ErrorContract {
    fn default() -> Self {
        ErrorContract::new()
    }
}

impl fmt::Debug for ErrorContract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.declared {
            None => f.write_str("ErrorContract(builtin)")?,
            Some(declared) => {
                let mut codes: Vec<_> = declared.iter().map(|(c, d)| (c, d.as_str())).collect();
                codes.sort_unstable();
                f.write_str("ErrorContract ")?;
                f.debug_map().entries(codes).finish()?;
            }
        }
        if self.rate_limit_headers != RateLimitHeaders::DEFAULT {
            write!(f, " {:?}", self.rate_limit_headers)?;
        }
        if self.quota_scope != QuotaScope::Authority {
            write!(f, " quota_scope: {:?}", self.quota_scope)?;
        }
        if self.outages != OutageRule::DEFAULT {
            write!(f, " {:?}", self.outages)?;
        }
        Ok(())
    }
}

/// Which transient rejections are taken for an outage of their path. `Copy`, usable in
/// `const`, combined with `|`, tested with [`contains`](Self::contains).
///
/// | signal | the answer | default |
/// | --- | --- | --- |
/// | [`UNAVAILABLE`](Self::UNAVAILABLE) | `503`, or the code `UNAVAILABLE` (gRPC's 14) from the server | yes |
/// | [`BAD_GATEWAY`](Self::BAD_GATEWAY) | `502`: the proxy in front found no healthy server | yes |
/// | [`GATEWAY_TIMEOUT`](Self::GATEWAY_TIMEOUT) | `504`: the proxy in front waited for the server in vain | yes |
/// | [`DEADLINE_EXCEEDED`](Self::DEADLINE_EXCEEDED) | the code `DEADLINE_EXCEEDED` answered by the server (not a timeout of this client, which is no answer at all) | yes |
/// | [`REFUSED`](Self::REFUSED) | the connection was refused, or the address unreachable: nothing listens | yes |
/// | [`INTERNAL`](Self::INTERNAL) | `500` and other 5xx, `INTERNAL`, `UNKNOWN` | no: a server error is often about one request (its input), not the path |
///
/// A rate limit is not a signal: it closes its path at once. Only an answer the contract
/// retries ([`Disposition::Retry`]) is a signal. A connection reset or a timeout of this
/// client is not one either: the request may be the cause.
///
/// ```
/// use tower_api_retry::contract::OutageSignals;
///
/// let all = OutageSignals::DEFAULT | OutageSignals::INTERNAL;
/// assert!(all.contains(OutageSignals::UNAVAILABLE | OutageSignals::INTERNAL));
/// assert!(!OutageSignals::DEFAULT.contains(OutageSignals::INTERNAL));
/// assert_eq!(format!("{:?}", OutageSignals::REFUSED), "OutageSignals(REFUSED)");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct OutageSignals(u8);

impl OutageSignals {
    /// `503`, or `UNAVAILABLE` from the server.
    pub const UNAVAILABLE: Self = OutageSignals(1);
    /// `502`.
    pub const BAD_GATEWAY: Self = OutageSignals(1 << 1);
    /// `504`.
    pub const GATEWAY_TIMEOUT: Self = OutageSignals(1 << 2);
    /// `DEADLINE_EXCEEDED` answered by the server.
    pub const DEADLINE_EXCEEDED: Self = OutageSignals(1 << 3);
    /// A refused connection (or an unreachable address): the request never left.
    pub const REFUSED: Self = OutageSignals(1 << 4);
    /// `500` and other 5xx, `INTERNAL`, `UNKNOWN` (opt-in).
    pub const INTERNAL: Self = OutageSignals(1 << 5);
    /// None: no answer is taken for an outage.
    pub const NONE: Self = OutageSignals(0);
    /// Every signal but [`INTERNAL`](Self::INTERNAL).
    pub const DEFAULT: Self = OutageSignals(
        Self::UNAVAILABLE.0
            | Self::BAD_GATEWAY.0
            | Self::GATEWAY_TIMEOUT.0
            | Self::DEADLINE_EXCEEDED.0
            | Self::REFUSED.0,
    );
}

crate::text::flag_set!(
    OutageSignals[
        UNAVAILABLE,
        BAD_GATEWAY,
        GATEWAY_TIMEOUT,
        DEADLINE_EXCEEDED,
        REFUSED,
        INTERNAL,
    ],
    "signal",
    "signals",
    "OutageSignals(UNAVAILABLE | REFUSED)"
);

/// When a path's transient rejections are an outage, which closes its gate: the
/// [signals](OutageSignals) that count, and the threshold (a circuit breaker's "consecutive
/// failures, or a failure ratio in a window").
///
/// The default, [`OutageRule::DEFAULT`], closes a path after **10 consecutive** signals, or
/// when at least **20 answers** of the last second (about: two buckets of a second, the older
/// one fading) include **80 %** or more of signals. The bar is high because a server that
/// fails a share of requests still serves the rest; the retry layer deals with those one by
/// one.
///
/// ```
/// use tower_api_retry::contract::OutageRule;
///
/// let strict = OutageRule::DEFAULT.consecutive(3).ratio(20, 30);
/// # let _ = strict;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OutageRule {
    pub(crate) signals: OutageSignals,
    pub(crate) consecutive: u32,
    pub(crate) min_answers: u32,
    pub(crate) percent: u8,
}

impl OutageRule {
    /// [`OutageSignals::DEFAULT`]; 10 consecutive signals, or ≥ 80 % of ≥ 20 answers in
    /// the last second.
    pub const DEFAULT: Self = OutageRule {
        signals: OutageSignals::DEFAULT,
        consecutive: 10,
        min_answers: 20,
        percent: 80,
    };

    /// No signal counts: only rate limits close a path.
    pub const OFF: Self = OutageRule {
        signals: OutageSignals::NONE,
        ..Self::DEFAULT
    };

    /// The signals that count.
    pub const fn signals(mut self, signals: OutageSignals) -> Self {
        self.signals = signals;
        self
    }

    /// How many signals in a row, with no other answer between them, close the path (0 or 1:
    /// the first signal does).
    pub const fn consecutive(mut self, n: u32) -> Self {
        self.consecutive = n;
        self
    }

    /// The failure ratio that closes the path: at least `min_answers` answers in the last
    /// second, `percent` % or more of them signals (`percent` is capped at 100).
    pub const fn ratio(mut self, min_answers: u32, percent: u8) -> Self {
        self.min_answers = min_answers;
        self.percent = if percent > 100 { 100 } else { percent };
        self
    }

    /// `true` when `consecutive` signals in a row, or `failures` signals among `answers`
    /// answers of the window (signals included), make an outage.
    pub(crate) fn trips(&self, consecutive: u32, answers: f64, failures: f64) -> bool {
        if consecutive >= self.consecutive.max(1) {
            return true;
        }
        answers >= f64::from(self.min_answers.max(1))
            && failures * 100.0 >= f64::from(self.percent) * answers
    }
}

impl Default for OutageRule {
    /// [`OutageRule::DEFAULT`].
    fn default() -> Self {
        OutageRule::DEFAULT
    }
}

/// The gRPC status number for a code: its own, or for a code of this crate with none, the one
/// its class maps to.
#[cfg_attr(not(feature = "tonic"), allow(dead_code))]
pub(crate) fn grpc_number_for(code: &ErrorCode, class: Disposition) -> i32 {
    if let Some(n) = code.grpc_number() {
        return n;
    }
    match class {
        Disposition::Retry => 14,          // UNAVAILABLE
        Disposition::RateLimited => 8,     // RESOURCE_EXHAUSTED
        Disposition::Reauthenticate => 16, // UNAUTHENTICATED
        Disposition::Forbidden => 7,       // PERMISSION_DENIED
        _ => 9,                            // FAILED_PRECONDITION
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn s(n: u16) -> Option<StatusCode> {
        Some(StatusCode::from_u16(n).unwrap())
    }

    fn statuses() -> impl Iterator<Item = Option<StatusCode>> {
        std::iter::once(None).chain([200, 400, 401, 403, 404, 409, 429, 500, 503].map(s))
    }

    #[test]
    fn the_builtin_contract_is_the_table() {
        let contract = ErrorContract::new();
        let codes = ErrorCode::KNOWN
            .iter()
            .cloned()
            .chain([ErrorCode::parse("SOMETHING_NEW")]);
        for code in codes {
            for status in statuses() {
                assert_eq!(
                    contract.disposition(status, &code),
                    classify(status, &code),
                    "{code} at {status:?}"
                );
            }
        }
    }

    #[test]
    fn declared_codes_win_and_the_rest_keep_the_table() {
        let contract = ErrorContract::new()
            .code("QUOTA_EXCEEDED", Disposition::RateLimited)
            .code("TEMPORARILY_UNAVAILABLE", Disposition::Retry)
            .code("ACCOUNT_LOCKED", Disposition::NeedsHuman)
            .code("UNAVAILABLE", Disposition::DoNotRetry);
        let quota = ErrorCode::Other("QUOTA_EXCEEDED".into());
        assert_eq!(
            contract.disposition(s(400), &quota),
            Disposition::RateLimited
        );
        let locked = ErrorCode::parse("ACCOUNT_LOCKED");
        assert_eq!(
            contract.disposition(s(503), &locked),
            Disposition::NeedsHuman
        );
        let temp = ErrorCode::parse("TEMPORARILY_UNAVAILABLE");
        assert_eq!(contract.disposition(s(400), &temp), Disposition::Retry);
        assert_eq!(
            contract.disposition(s(503), &ErrorCode::Unavailable),
            Disposition::DoNotRetry
        );
        for code in ErrorCode::KNOWN
            .iter()
            .filter(|c| **c != ErrorCode::Unavailable)
        {
            for status in statuses() {
                assert_eq!(contract.disposition(status, code), classify(status, code));
            }
        }
        let dbg = format!("{contract:?}");
        assert!(
            dbg.contains("QUOTA_EXCEEDED") && dbg.contains("rate_limited"),
            "{dbg}"
        );
        assert_eq!(
            format!("{:?}", ErrorContract::new()),
            "ErrorContract(builtin)"
        );
    }

    #[test]
    fn an_error_is_judged_by_the_contract_of_the_layer_that_made_it() {
        let contract = ErrorContract::new().code("QUOTA_EXCEEDED", Disposition::RateLimited);
        let api = crate::error::ApiError::decode(
            StatusCode::BAD_REQUEST,
            &Default::default(),
            br#"{"error": {"code": "QUOTA_EXCEEDED", "message": "over"}}"#,
        );
        let err = Error::from_api(api.clone());
        assert_eq!(err.disposition(), Disposition::FixRequest);
        assert!(!err.verdict().closes_gate());
        let err = Error::from_api(api).judged(&contract);
        let verdict = err.verdict();
        assert_eq!(verdict.disposition(), Disposition::RateLimited);
        assert!(verdict.closes_gate() && verdict.proves_unprocessed());
        assert_eq!(err.disposition(), Disposition::RateLimited);
        assert_eq!(err.api().unwrap().disposition(), Disposition::RateLimited);
        assert!(err.verdict().declared);
    }

    #[test]
    fn outage_signals_table() {
        use OutageSignals as O;
        let c = ErrorContract::new();
        let all =
            ErrorContract::new().outages(OutageRule::DEFAULT.signals(O::DEFAULT | O::INTERNAL));
        let cases = [
            (s(503), ErrorCode::Unavailable, Some(O::UNAVAILABLE)),
            (s(502), ErrorCode::Unavailable, Some(O::BAD_GATEWAY)),
            (
                s(504),
                ErrorCode::DeadlineExceeded,
                Some(O::GATEWAY_TIMEOUT),
            ),
            (s(200), ErrorCode::Unavailable, Some(O::UNAVAILABLE)),
            (None, ErrorCode::Unavailable, Some(O::UNAVAILABLE)),
            (
                s(200),
                ErrorCode::DeadlineExceeded,
                Some(O::DEADLINE_EXCEEDED),
            ),
            (s(500), ErrorCode::Internal, Some(O::INTERNAL)),
            (s(200), ErrorCode::Unknown, Some(O::INTERNAL)),
            (s(501), ErrorCode::parse("NOT_READY"), Some(O::INTERNAL)),
            // Rate limits close on their own; a refresh in progress is one.
            (s(429), ErrorCode::ResourceExhausted, None),
            (s(503), ErrorCode::ResourceExhausted, None),
            (s(503), ErrorCode::RefreshInProgress, None),
            // Not transient.
            (s(400), ErrorCode::InvalidArgument, None),
            (s(503), ErrorCode::InvalidArgument, None),
            (s(200), ErrorCode::OutOfRange, None),
        ];
        for (status, code, want) in cases {
            assert_eq!(
                all.outage_signal(status, &code),
                want,
                "{code} at {status:?}"
            );
            let default = want.filter(|w| *w != O::INTERNAL);
            assert_eq!(
                c.outage_signal(status, &code),
                default,
                "{code} at {status:?}"
            );
        }
        // A declared code that needs a human is never a signal, whatever its status.
        let locked = ErrorContract::new().code("ACCOUNT_LOCKED", Disposition::NeedsHuman);
        assert_eq!(
            locked.outage_signal(s(503), &ErrorCode::parse("ACCOUNT_LOCKED")),
            None
        );
        // Off: nothing is.
        let off = ErrorContract::new().outages(OutageRule::OFF);
        assert_eq!(off.outage_signal(s(503), &ErrorCode::Unavailable), None);
        assert!(format!("{off:?}").contains("OutageRule"), "{off:?}");
    }

    #[test]
    fn transport_failures_and_outages() {
        use std::io;
        let c = ErrorContract::new();
        let signal = |err: Error, c: &ErrorContract| err.judged(c).verdict().outage_signal();
        let refused = || Error::transport(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(signal(refused(), &c), Some(OutageSignals::REFUSED));
        // Sent, then reset or timed out here: the request may be the cause.
        let reset = Error::transport(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(signal(reset, &c), None);
        let elapsed = Error::transport(tower::timeout::error::Elapsed::new());
        assert_eq!(signal(elapsed, &c), None);
        let gate = Error::gate_closed(std::time::Duration::from_secs(1));
        assert_eq!(signal(gate, &c), None);
        let no_refused =
            ErrorContract::new().outages(OutageRule::DEFAULT.signals(OutageSignals::UNAVAILABLE));
        assert_eq!(signal(refused(), &no_refused), None);
        let api = crate::error::ApiError::decode(
            StatusCode::SERVICE_UNAVAILABLE,
            &Default::default(),
            b"",
        );
        assert_eq!(
            signal(Error::from_api(api), &c),
            Some(OutageSignals::UNAVAILABLE)
        );
    }

    #[test]
    fn grpc_numbers_by_class() {
        assert_eq!(grpc_number_for(&ErrorCode::NotFound, Disposition::Retry), 5);
        let other = ErrorCode::parse("QUOTA_EXCEEDED");
        assert_eq!(grpc_number_for(&other, Disposition::RateLimited), 8);
        assert_eq!(grpc_number_for(&other, Disposition::Retry), 14);
        assert_eq!(
            grpc_number_for(&ErrorCode::InvalidApiKey, Disposition::Reauthenticate),
            16
        );
        assert_eq!(grpc_number_for(&other, Disposition::NeedsHuman), 9);
    }
}
