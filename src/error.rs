//! The typed error model: [`ApiError`] (what the server said) and [`Error`] (the one error
//! type of every service in this crate).

use crate::{
    classify::{Disposition, classify},
    code::ErrorCode,
    contract::ErrorContract,
    reason::{LocalFailure, NotRetried},
    retry_after::Hint,
    text::Credentials,
    text::safe::{MAX_TEXT_CHARS, safe_text},
    verdict::{Answer, Origin, Verdict, heed_server},
};
use http::StatusCode;
use serde_json::Value;
use std::{borrow::Cow, error::Error as StdError, fmt, time::Duration};

use tower::BoxError;

/// Which documented body shape an [`ApiError`] was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BodyShape {
    /// `{"detail": "..."}` (first page). The code is derived from the status.
    Detail,
    /// `{"error": "agent_connected", "message": "...", ...}` (first page's structured 409).
    Structured,
    /// `{"code": "...", "message": "...", "fix": "...", "details": {...}}` (second page).
    Envelope,
    /// `{"error": {"code": ..., "message": ...}}`: the MCP payload (second page).
    Mcp,
    /// A JSON-RPC 2.0 envelope `{"jsonrpc": "2.0", "id": .., "error": {...}}`.
    JsonRpc,
    /// A gRPC status in the response headers (`grpc-status`, `grpc-message`).
    Grpc,
    /// Anything else: empty, HTML from a proxy, truncated or malformed JSON. The code is
    /// derived from the status, the message is a short, safe excerpt of the body.
    Unrecognized,
}

/// What the server said: one error response, decoded.
///
/// Built by [`ErrorDecodeLayer`](crate::ErrorDecodeLayer) from every documented body shape
/// (see [`BodyShape`]), or by hand with [`ApiError::new`] for tests and custom services.
///
/// ```
/// use http::StatusCode;
/// use tower_api_retry::{ApiError, Disposition, ErrorCode};
///
/// let err = ApiError::decode(
///     StatusCode::CONFLICT,
///     &http::HeaderMap::new(),
///     br#"{"error": "agent_connected", "message": "Agent agt_1 is connected.", "agent_id": "agt_1"}"#,
/// );
/// assert_eq!(err.code(), &ErrorCode::AgentConnected);
/// assert_eq!(err.field("agent_id").and_then(|v| v.as_str()), Some("agt_1"));
/// assert_eq!(err.disposition(), Disposition::FixRequest);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    status: StatusCode,
    code: ErrorCode,
    message: Box<str>,
    fix: Option<Box<str>>,
    details: Option<Value>,
    fields: Vec<(Box<str>, Value)>,
    /// `Retry-After` and the server's other words on retrying.
    hint: Hint,
    numeric_code: Option<i64>,
    /// What a gRPC server sent besides its status (details, metadata); `None` for HTTP.
    grpc: Option<Box<crate::grpc::metadata::GrpcExtra>>,
    shape: BodyShape,
    /// The disposition an [`ErrorContract`](crate::ErrorContract) declared for the code.
    pub(crate) declared: Option<Disposition>,
}

/// What a decoder read from one response, its texts already made safe where they were read
/// (so a body is scanned once). [`ApiError::assemble`] turns it into the error.
pub(crate) struct Assembly {
    pub(crate) status: StatusCode,
    pub(crate) code: ErrorCode,
    pub(crate) shape: BodyShape,
    pub(crate) message: String,
    pub(crate) fix: Option<Box<str>>,
    pub(crate) details: Option<Value>,
    pub(crate) fields: Vec<(Box<str>, Value)>,
    pub(crate) hint: Hint,
    pub(crate) numeric_code: Option<i64>,
    pub(crate) grpc: Option<Box<crate::grpc::metadata::GrpcExtra>>,
}

impl Assembly {
    /// Nothing read yet but the status, the code and the shape.
    pub(crate) fn new(status: StatusCode, code: ErrorCode, shape: BodyShape) -> Assembly {
        Assembly {
            status,
            code,
            shape,
            message: String::new(),
            fix: None,
            details: None,
            fields: Vec::new(),
            hint: Hint::default(),
            numeric_code: None,
            grpc: None,
        }
    }
}

impl ApiError {
    /// An error with a status, a code and a message, as a custom service or a test builds
    /// one. Credentials in `message` are redacted, control characters replaced and its length
    /// bounded, as for a decoded message.
    pub fn new(status: StatusCode, code: ErrorCode, message: impl AsRef<str>) -> ApiError {
        let message = safe_text(message.as_ref(), MAX_TEXT_CHARS, &Credentials::new());
        ApiError::assemble(Assembly {
            message: message.into_owned(),
            ..Assembly::new(status, code, BodyShape::Envelope)
        })
    }

    /// The one place an `ApiError` is made: every decoder (the JSON shapes, gRPC headers,
    /// MCP tool results, unrecognised bodies) and [`new`](Self::new) hand over what they read.
    pub(crate) fn assemble(parts: Assembly) -> ApiError {
        ApiError {
            status: parts.status,
            code: parts.code,
            message: parts.message.into_boxed_str(),
            fix: parts.fix,
            details: parts.details.filter(|d| !d.is_null()),
            fields: parts.fields,
            hint: parts.hint,
            numeric_code: parts.numeric_code,
            grpc: parts.grpc,
            shape: parts.shape,
            declared: None,
        }
    }

    /// The same error, read from another body shape (an MCP tool result's text).
    pub(crate) fn in_shape(mut self, shape: BodyShape) -> ApiError {
        self.shape = shape;
        self
    }

    /// What a gRPC server sent besides its status.
    #[cfg_attr(not(feature = "tonic"), allow(dead_code))]
    pub(crate) fn grpc_extra(&self) -> Option<&crate::grpc::metadata::GrpcExtra> {
        self.grpc.as_deref()
    }

    /// Sets the actionable next step.
    pub fn with_fix(mut self, fix: impl AsRef<str>) -> ApiError {
        self.fix = Some(safe_text(fix.as_ref(), MAX_TEXT_CHARS, &Credentials::new()).into());
        self
    }

    /// Sets the server's `Retry-After` hint.
    pub fn with_retry_after(mut self, retry_after: Duration) -> ApiError {
        self.hint.after = Some(retry_after.min(crate::retry_after::MAX_HINT));
        self
    }

    /// Sets the extra context (`details`).
    pub fn with_details(mut self, mut details: Value) -> ApiError {
        crate::text::redact::redact_value(&mut details, &Credentials::new());
        self.details = Some(details);
        self
    }

    /// HTTP status of the response (200 for gRPC trailers-only and MCP errors).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code: branch on this, never on [`message`](Self::message).
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// Human-readable text, for display only; credentials are redacted.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// An actionable next step, when the server gave one.
    pub fn fix(&self) -> Option<&str> {
        self.fix.as_deref()
    }

    /// Extra context (a `nodeId`, a field name, ...), when the server gave it.
    pub fn details(&self) -> Option<&Value> {
        self.details.as_ref()
    }

    /// Any other top-level field of the error object, for example `agent_id`.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(k, _)| &**k == name)
            .map(|(_, v)| v)
    }

    /// Names of the other top-level fields, in the order the server sent them.
    pub fn field_names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(k, _)| &**k)
    }

    /// How long the server asked the client to wait (`retry-after-ms`, else `Retry-After`,
    /// else `grpc-retry-pushback-ms`), saturated at one year. An invalid hint is none; an
    /// HTTP-date in the past is zero.
    pub fn retry_after(&self) -> Option<Duration> {
        self.hint.after
    }

    /// `true` when the server forbade retrying: a gRPC server's negative or unparsable
    /// `grpc-retry-pushback-ms`, or `x-should-retry: false` / `Stripe-Should-Retry: false`. A
    /// retryable error then has the disposition [`DoNotRetry`](Disposition::DoNotRetry).
    pub fn server_forbids_retry(&self) -> bool {
        self.hint.do_not_retry || self.hint.should_retry == Some(false)
    }

    /// The server's word in `x-should-retry` or `Stripe-Should-Retry` (`false` when they
    /// disagree), if it sent one.
    ///
    /// `Some(false)` makes the disposition [`DoNotRetry`](Disposition::DoNotRetry).
    /// `Some(true)` makes the error retryable whatever its status, and proves the request was
    /// not processed, so even a `POST` is sent again. A negative gRPC pushback wins over `true`.
    pub fn server_should_retry(&self) -> Option<bool> {
        self.hint.should_retry
    }

    /// The numeric code the server sent, if any: a JSON-RPC error code such as `-32602`, or
    /// the `grpc-status` number (kept even when it is outside the gRPC table).
    pub fn numeric_code(&self) -> Option<i64> {
        self.numeric_code
    }

    /// The `grpc-status-details-bin` a gRPC server sent, base64-decoded: a serialized
    /// `google.rpc.Status`. `None` when absent, invalid or over 16 KiB with the metadata.
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, StatusCode};
    /// use tower_api_retry::ApiError;
    ///
    /// let mut trailers = HeaderMap::new();
    /// trailers.insert("grpc-status", HeaderValue::from_static("3"));
    /// trailers.insert("grpc-status-details-bin", HeaderValue::from_static("CAMSA2JhZA"));
    /// trailers.insert("x-debug-id", HeaderValue::from_static("dbg-42"));
    /// let err = ApiError::decode(StatusCode::OK, &trailers, b"");
    /// assert_eq!(err.grpc_details(), Some(&b"\x08\x03\x12\x03bad"[..]));
    /// assert_eq!(err.grpc_metadata().unwrap()["x-debug-id"], "dbg-42");
    /// ```
    pub fn grpc_details(&self) -> Option<&[u8]> {
        self.grpc.as_ref()?.details.as_deref()
    }

    /// The custom metadata a gRPC server sent with its error status (`x-debug-id`, ...), as
    /// tonic's `Status::metadata` would hold it; `None` for an HTTP error or when there was
    /// none. At most 32 entries and 16 KiB are kept, credentials redacted.
    pub fn grpc_metadata(&self) -> Option<&http::HeaderMap> {
        self.grpc.as_ref().map(|g| &g.metadata)
    }

    /// The body shape this error was decoded from.
    pub fn shape(&self) -> BodyShape {
        self.shape
    }

    /// What a careful caller does: the [contract](crate::ErrorContract)'s disposition, overridden
    /// by the server's own word ([`server_should_retry`](Self::server_should_retry),
    /// [`server_forbids_retry`](Self::server_forbids_retry)).
    ///
    /// ```
    /// use http::{HeaderMap, HeaderValue, StatusCode};
    /// use tower_api_retry::{ApiError, Disposition, ErrorContract};
    ///
    /// let mut trailers = HeaderMap::new();
    /// trailers.insert("grpc-status", HeaderValue::from_static("14")); // UNAVAILABLE
    /// trailers.insert("grpc-retry-pushback-ms", HeaderValue::from_static("-1"));
    /// let err = ApiError::decode(StatusCode::OK, &trailers, b"");
    /// assert_eq!(err.disposition(), Disposition::DoNotRetry);
    /// assert!(!err.disposition().is_retryable());
    /// // What kind of failure it was is still there:
    /// assert_eq!(ErrorContract::new().disposition(Some(err.status()), err.code()), Disposition::Retry);
    /// ```
    pub fn disposition(&self) -> Disposition {
        heed_server(
            self.class(),
            self.server_forbids_retry(),
            self.hint.should_retry,
        )
    }

    /// The disposition before a server's refusal to be retried: the declared one, or the
    /// built-in table's.
    pub(crate) fn class(&self) -> Disposition {
        self.declared
            .unwrap_or_else(|| classify(Some(self.status), &self.code))
    }

    /// Scrubs `credentials` from everything this error shows, after the fact (for errors
    /// built from text the crate wrote itself; decoding scrubs as it goes).
    pub(crate) fn scrub(&mut self, credentials: &Credentials) {
        if credentials.is_empty() {
            return;
        }
        if let Cow::Owned(m) = credentials.scrub(&self.message) {
            self.message = m.into();
        }
        if let Some(fix) = &self.fix
            && let Cow::Owned(f) = credentials.scrub(fix)
        {
            self.fix = Some(f.into());
        }
        if let ErrorCode::Other(code) = &self.code
            && let Cow::Owned(c) = credentials.scrub(code)
        {
            self.code = ErrorCode::Other(c.into());
        }
        if let Some(details) = &mut self.details {
            crate::text::redact::redact_value(details, credentials);
        }
        for (name, value) in &mut self.fields {
            if let Cow::Owned(n) = credentials.scrub(name) {
                *name = n.into();
            }
            crate::text::redact::redact_member(name, value, credentials);
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, " (fix: {fix})")?;
        }
        Ok(())
    }
}

impl StdError for ApiError {}

/// The error of every service in this crate.
///
/// It is either what the server said ([`api`](Self::api)), a transport failure of the inner
/// service ([`source`](StdError::source) reaches it, unchanged), a failure this crate detected,
/// or a request the rate-limit gate refused to send.
///
/// Neither `Display` nor `Debug` shows a credential; the text is not stable, so branch on
/// [`code`](Self::code) and [`disposition`](Self::disposition).
///
/// ```
/// use http::StatusCode;
/// use tower_api_retry::{ApiError, Disposition, Error, ErrorCode};
///
/// let err = Error::from(ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::KeyRevoked, "The key was revoked.")
///     .with_fix("Generate a fresh key in Settings → API Keys"));
/// assert_eq!(err.code().as_str(), "KEY_REVOKED");
/// assert_eq!(err.status(), Some(StatusCode::UNAUTHORIZED));
/// assert_eq!(err.disposition(), Disposition::Reauthenticate);
/// assert!(!err.is_retryable());
/// assert_eq!(err.to_string(), "KEY_REVOKED: The key was revoked. (fix: Generate a fresh key in Settings → API Keys)");
/// ```
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: Kind,
    attempts: u32,
    sent: bool,
    not_retried: Option<NotRetried>,
    /// `not_retried`, rendered once for [`Error::note`].
    note: Option<Box<str>>,
    /// A wait a layer learnt besides the response (an SSE `retry:` field).
    retry_after: Option<Duration>,
    /// The gRPC call's deadline ran out: the code is `DEADLINE_EXCEEDED`, whatever the last
    /// attempt answered.
    deadline_exceeded: bool,
    /// How long the request waited at a rate-limit gate before it was sent or refused.
    gate_wait: Duration,
    /// What the contract of the layer that decoded or made this error judged it to mean.
    verdict: Verdict,
    /// A view of this error that an integration puts in its chain of sources (with `tonic`,
    /// the equivalent `tonic::Status`, where tonic looks for it), built on first use.
    view: std::sync::OnceLock<BoxError>,
    /// The quota the error response announced in its headers.
    quota: Option<crate::quota::Quota>,
}

enum Kind {
    Api(ApiError),
    Transport {
        code: ErrorCode,
        message: Box<str>,
        source: BoxError,
    },
    GateClosed {
        retry_after: Duration,
    },
    Local {
        failure: LocalFailure,
        status: StatusCode,
        message: Box<str>,
    },
}

impl Error {
    /// An error for what the server said (also `Error::from(api)`).
    pub(crate) fn from_api(api: ApiError) -> Error {
        Error::new(Kind::Api(api), true)
    }

    /// An error for a failure of the inner service (connect refused, reset, timeout, ...).
    ///
    /// A boxed [`Error`] is returned as it is. Anything else is classified transient:
    /// `DEADLINE_EXCEEDED` when the chain of sources holds a timeout, `UNAVAILABLE` otherwise;
    /// a refused connection is marked as never sent (see [`request_sent`](Self::request_sent)).
    pub fn transport(source: impl Into<BoxError>) -> Error {
        Error::transport_with(source, &Credentials::new(), &ErrorContract::new())
    }

    /// [`transport`](Self::transport) for a request that carried `credentials`, made by a
    /// layer with `contract`: the credentials are scrubbed from the message built from the
    /// chain of sources, and a failure made here is judged by `contract` (a boxed [`Error`]
    /// keeps the verdict it was made with).
    pub(crate) fn transport_with(
        source: impl Into<BoxError>,
        credentials: &Credentials,
        contract: &ErrorContract,
    ) -> Error {
        let source = source.into();
        let source = match source.downcast::<Error>() {
            Ok(err) => {
                let mut err = *err;
                err.scrub(credentials);
                return err;
            }
            Err(source) => source,
        };
        let mut message = String::new();
        let (mut timeout, mut refused) = (false, false);
        let mut link: Option<&(dyn StdError + 'static)> = Some(&*source);
        let mut depth = 0;
        while let Some(err) = link {
            if depth < 8 {
                if !message.is_empty() {
                    message.push_str(": ");
                }
                message.push_str(&err.to_string());
            }
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                use std::io::ErrorKind::*;
                timeout |= io.kind() == TimedOut;
                refused |= matches!(
                    io.kind(),
                    ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable
                );
            }
            timeout |= err.is::<tower::timeout::error::Elapsed>()
                || err.is::<tokio::time::error::Elapsed>();
            // A tonic `Channel` enforcing the request's `grpc-timeout`.
            #[cfg(feature = "tonic")]
            {
                timeout |= err.is::<tonic::TimeoutExpired>();
            }
            link = err.source();
            depth += 1;
        }
        let message = crate::text::safe::excerpt(message.as_bytes(), credentials);
        let code = match timeout {
            true => ErrorCode::DeadlineExceeded,
            false => ErrorCode::Unavailable,
        };
        let err = Error::new(
            Kind::Transport {
                code,
                message: message.into(),
                source,
            },
            !refused,
        );
        err.judged(contract)
    }

    /// [`transport`](Self::transport), for a client adapter that knows more than the chain of
    /// sources shows (its client's own error kinds): `code` replaces the code found in the
    /// chain, and `never_sent` marks the request as never sent whatever the chain says.
    #[cfg_attr(not(feature = "reqwest"), allow(dead_code))]
    pub(crate) fn transport_as(
        source: impl Into<BoxError>,
        code: Option<ErrorCode>,
        never_sent: bool,
    ) -> Error {
        let mut err = Error::transport(source);
        if let Kind::Transport { code: found, .. } = &mut err.inner.kind {
            if let Some(code) = code {
                *found = code;
            }
            if never_sent {
                err.inner.sent = false;
            }
            err.rejudge(&ErrorContract::new());
        }
        err
    }

    /// A request the rate-limit gate refused to send: coded `RESOURCE_EXHAUSTED`, no status,
    /// never sent.
    pub(crate) fn gate_closed(retry_after: Duration) -> Error {
        Error::new(Kind::GateClosed { retry_after }, false)
    }

    /// A failure this crate detected in a response with `status`; the message is the
    /// failure's text followed by `detail` (already safe).
    pub(crate) fn local(failure: LocalFailure, status: StatusCode, detail: &str) -> Error {
        let message = format!("{failure}{detail}").into_boxed_str();
        Error::new(
            Kind::Local {
                failure,
                status,
                message,
            },
            true,
        )
    }

    fn new(kind: Kind, sent: bool) -> Error {
        let mut err = Error {
            inner: Box::new(Inner {
                kind,
                attempts: 1,
                sent,
                not_retried: None,
                note: None,
                retry_after: None,
                deadline_exceeded: false,
                gate_wait: Duration::ZERO,
                verdict: Verdict::PENDING,
                view: std::sync::OnceLock::new(),
                quota: None,
            }),
        };
        err.rejudge(&ErrorContract::new());
        err
    }

    /// Judges this error (again) by `contract`.
    fn rejudge(&mut self, contract: &ErrorContract) {
        self.inner.verdict = contract.judge(&self.answer());
        self.inner.view = std::sync::OnceLock::new();
    }

    /// This error, judged by `contract`: for a server's answer decoded, or a failure made, by
    /// a layer with that contract.
    pub(crate) fn judged(mut self, contract: &ErrorContract) -> Error {
        // Every error is made judged by the default contract.
        if *contract == ErrorContract::new() {
            return self;
        }
        if let Kind::Api(api) = &mut self.inner.kind
            && let Some(declared) = contract.declared(&api.code)
        {
            api.declared = Some(declared);
        }
        self.rejudge(contract);
        self
    }

    /// What the contract is asked about this error.
    fn answer(&self) -> Answer<'_> {
        let from = match &self.inner.kind {
            _ if self.inner.deadline_exceeded => Origin::Here { gate_closed: false },
            Kind::Api(api) => Origin::Server {
                forbids: api.server_forbids_retry(),
                should_retry: api.server_should_retry(),
                grpc: api.shape() == BodyShape::Grpc,
                declared: api.declared,
            },
            Kind::Transport { .. } => Origin::Transport,
            Kind::GateClosed { .. } => Origin::Here { gate_closed: true },
            Kind::Local { .. } => Origin::Here { gate_closed: false },
        };
        Answer {
            code: self.code(),
            status: self.status(),
            builtin: self.builtin_class(),
            sent: self.request_sent(),
            names_wait: self.retry_after().is_some(),
            from,
        }
    }

    /// What this error means for a retry, for its path's gate and for safety, as the contract
    /// of the layer that decoded or made it judged it (see [`Verdict`]).
    pub fn verdict(&self) -> Verdict {
        self.inner.verdict
    }

    /// Scrubs `credentials` from everything this error shows, after the fact: for an error
    /// that a layer which knows the request receives from below.
    pub(crate) fn scrub(&mut self, credentials: &Credentials) {
        if credentials.is_empty() {
            return;
        }
        match &mut self.inner.kind {
            Kind::Api(api) => api.scrub(credentials),
            Kind::Transport { message, .. } | Kind::Local { message, .. } => {
                if let Cow::Owned(m) = credentials.scrub(message) {
                    *message = m.into();
                }
            }
            Kind::GateClosed { .. } => {}
        }
        // Built again from the scrubbed text when asked for.
        self.inner.view = std::sync::OnceLock::new();
    }

    /// Records how many attempts produced this error (used by the retry layer).
    pub(crate) fn set_attempts(&mut self, attempts: u32) {
        self.inner.attempts = attempts;
    }

    /// Records how long the request waited at a rate-limit gate.
    pub(crate) fn set_gate_wait(&mut self, wait: Duration) {
        self.inner.gate_wait = wait;
    }

    /// How long the request waited at a rate-limit gate (zero when it did not).
    pub(crate) fn gate_wait(&self) -> Duration {
        self.inner.gate_wait
    }

    /// Records the quota the error response announced.
    pub(crate) fn set_quota(&mut self, quota: Option<crate::quota::Quota>) {
        self.inner.quota = quota;
    }

    /// Records a wait the server asked for outside the error response itself.
    pub(crate) fn set_retry_after(&mut self, wait: Duration) {
        self.inner.retry_after = Some(wait.min(crate::retry_after::MAX_HINT));
    }

    /// Marks a gRPC call whose deadline ran out: its code becomes `DEADLINE_EXCEEDED`, while
    /// [`api`](Self::api) keeps the last answer.
    pub(crate) fn set_deadline_exceeded(&mut self) {
        self.inner.deadline_exceeded = true;
        self.rejudge(&ErrorContract::new());
    }

    /// `true` when the code was set to `DEADLINE_EXCEEDED` because the call's deadline ran out.
    #[cfg(feature = "tonic")]
    pub(crate) fn is_deadline_exceeded(&self) -> bool {
        self.inner.deadline_exceeded
    }

    /// The source of a transport failure, as the client reported it.
    pub(crate) fn transport_source(&self) -> Option<&(dyn StdError + 'static)> {
        match &self.inner.kind {
            Kind::Transport { source, .. } => Some(&**source),
            _ => None,
        }
    }

    /// The view an integration builds of this error, on first use (see `view`).
    #[cfg_attr(not(feature = "tonic"), allow(dead_code))]
    pub(crate) fn view(&self, build: impl FnOnce(&Error) -> BoxError) -> &(dyn StdError + 'static) {
        &**self.inner.view.get_or_init(|| build(self))
    }

    /// The disposition before a server's refusal to be retried.
    #[cfg_attr(not(feature = "tonic"), allow(dead_code))]
    pub(crate) fn class(&self) -> Disposition {
        self.inner.verdict.class
    }

    /// What the built-in table says of this error, before any declared code or the server's
    /// own word.
    pub(crate) fn builtin_class(&self) -> Disposition {
        if self.inner.deadline_exceeded {
            return classify(None, self.code());
        }
        match &self.inner.kind {
            Kind::Api(api) => api.class(),
            Kind::Transport { code, .. } => classify(None, code),
            Kind::GateClosed { .. } => Disposition::RateLimited,
            Kind::Local {
                failure, status, ..
            } => classify(Some(*status), failure.code()),
        }
    }

    /// Records why the error is returned although it was retryable.
    pub(crate) fn set_not_retried(&mut self, why: NotRetried) {
        self.inner.note = Some(why.to_string().into_boxed_str());
        self.inner.not_retried = Some(why);
    }

    /// The code: the server's, or `UNAVAILABLE` / `DEADLINE_EXCEEDED` for a transport
    /// failure, or `RESOURCE_EXHAUSTED` for a request a closed rate-limit gate held back. A gRPC
    /// call whose [deadline](crate::retry#deadlines) ran out is `DEADLINE_EXCEEDED`.
    pub fn code(&self) -> &ErrorCode {
        if self.inner.deadline_exceeded {
            return &ErrorCode::DeadlineExceeded;
        }
        match &self.inner.kind {
            Kind::Api(api) => api.code(),
            Kind::Transport { code, .. } => code,
            Kind::GateClosed { .. } => &ErrorCode::ResourceExhausted,
            Kind::Local { failure, .. } => failure.code(),
        }
    }

    /// The HTTP status, or `None` when no response was received.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.inner.kind {
            Kind::Local { status, .. } => Some(*status),
            _ => self.api().map(ApiError::status),
        }
    }

    /// What the server said, when it said something.
    pub fn api(&self) -> Option<&ApiError> {
        match &self.inner.kind {
            Kind::Api(api) => Some(api),
            _ => None,
        }
    }

    /// The human-readable message (redacted).
    pub fn message(&self) -> &str {
        match &self.inner.kind {
            Kind::Api(api) => api.message(),
            Kind::Transport { message, .. } => message,
            Kind::GateClosed { .. } => "rate limited: this path's gate is closed, request not sent",
            Kind::Local { message, .. } => message,
        }
    }

    /// The server's actionable next step, when it gave one.
    pub fn fix(&self) -> Option<&str> {
        self.api().and_then(ApiError::fix)
    }

    /// What a careful caller does with this error.
    pub fn disposition(&self) -> Disposition {
        self.inner.verdict.disposition
    }

    /// `true` when the disposition is [`Retry`](Disposition::Retry) or
    /// [`RateLimited`](Disposition::RateLimited).
    pub fn is_retryable(&self) -> bool {
        self.disposition().is_retryable()
    }

    /// How long to wait before trying again: the server's hint, or the time left on a closed
    /// rate-limit gate.
    pub fn retry_after(&self) -> Option<Duration> {
        let own = match &self.inner.kind {
            Kind::Api(api) => api.retry_after(),
            Kind::Transport { .. } | Kind::Local { .. } => None,
            Kind::GateClosed { retry_after } => Some(*retry_after),
        };
        self.inner.retry_after.max(own)
    }

    /// The quota the error response announced in its rate-limit headers (in the families its
    /// [contract](crate::ErrorContract::rate_limit_headers) names), if any: see [`Quota`](crate::Quota).
    pub fn quota(&self) -> Option<&crate::quota::Quota> {
        self.inner.quota.as_ref()
    }

    /// How many attempts produced this error: 1 unless a retry layer made more.
    pub fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// `false` when the request certainly never reached the server (a refused connection, or
    /// a closed rate-limit gate), so sending it again cannot duplicate a side effect.
    pub fn request_sent(&self) -> bool {
        self.inner.sent
    }

    /// `true` for a failure of the inner service rather than an error response (never for a
    /// [local failure](Self::is_local)).
    pub fn is_transport(&self) -> bool {
        matches!(self.inner.kind, Kind::Transport { .. })
    }

    /// `true` for a request held back by a closed rate-limit gate.
    pub fn is_gate_closed(&self) -> bool {
        matches!(self.inner.kind, Kind::GateClosed { .. })
    }

    /// The text of [`not_retried`](Self::not_retried).
    pub fn note(&self) -> Option<&str> {
        self.inner.note.as_deref()
    }

    /// Why the error was returned although it was retryable (the retry cap, a request that
    /// is not idempotent, the deadline, ...), typed. [`note`](Self::note) is its text.
    ///
    /// ```
    /// use http::StatusCode;
    /// use tower_api_retry::{ApiError, Error, ErrorCode};
    ///
    /// let err = Error::from(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, ErrorCode::Unavailable, "down"));
    /// assert!(err.not_retried().is_none() && err.note().is_none());
    /// ```
    pub fn not_retried(&self) -> Option<&NotRetried> {
        self.inner.not_retried.as_ref()
    }

    /// `true` for a failure this crate detected itself, with no error from the server (an
    /// event stream endpoint that is not one, a redirect, an oversized event): see
    /// [`local_failure`](Self::local_failure).
    pub fn is_local(&self) -> bool {
        matches!(self.inner.kind, Kind::Local { .. })
    }

    /// The failure this crate detected itself, if it was one.
    pub fn local_failure(&self) -> Option<&LocalFailure> {
        match &self.inner.kind {
            Kind::Local { failure, .. } => Some(failure),
            _ => None,
        }
    }
}

impl From<ApiError> for Error {
    fn from(api: ApiError) -> Self {
        Error::from_api(api)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code(), self.message())?;
        if let Some(fix) = self.fix() {
            write!(f, " (fix: {fix})")?;
        }
        if self.inner.attempts > 1 {
            write!(f, " after {} attempts", self.inner.attempts)?;
        }
        if let Some(note) = &self.inner.note {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the source's own `Debug`: it is not ours to vouch for. The message already
        // holds its redacted text.
        let mut d = f.debug_struct("Error");
        d.field("code", &self.code().as_str())
            .field("status", &self.status())
            .field("disposition", &self.disposition())
            .field("message", &self.message());
        if let Some(fix) = self.fix() {
            d.field("fix", &fix);
        }
        if let Some(ra) = self.retry_after() {
            d.field("retry_after", &ra);
        }
        d.field("attempts", &self.inner.attempts)
            .field("sent", &self.inner.sent);
        if let Some(note) = &self.inner.note {
            d.field("note", note);
        }
        d.finish()
    }
}

// `impl std::error::Error for Error` is in `crate::integrations`: its chain of sources depends
// on which integrations are compiled in.

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn error_is_send_sync_and_small() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}
        assert_send_sync::<Error>();
        assert_eq!(std::mem::size_of::<Error>(), std::mem::size_of::<usize>());
    }

    #[test]
    fn transport_errors_are_transient_and_reach_their_source() {
        let err = Error::transport(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert_eq!(err.code(), &ErrorCode::Unavailable);
        assert_eq!(err.status(), None);
        assert!(err.is_retryable() && err.is_transport() && err.request_sent());
        assert_eq!(err.attempts(), 1);
        let src = err.source().unwrap().downcast_ref::<io::Error>().unwrap();
        assert_eq!(src.kind(), io::ErrorKind::ConnectionReset);
    }

    #[test]
    fn refused_connections_were_never_sent_and_timeouts_are_deadlines() {
        let refused = Error::transport(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(!refused.request_sent());
        let timeout = Error::transport(tower::timeout::error::Elapsed::new());
        assert_eq!(timeout.code(), &ErrorCode::DeadlineExceeded);
        assert!(timeout.is_retryable());
    }

    #[test]
    fn a_boxed_error_is_not_wrapped_twice() {
        let inner = Error::from(ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            "gone",
        ));
        let boxed: BoxError = Box::new(inner);
        let err = Error::transport(boxed);
        assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    }

    #[test]
    fn credentials_never_show() {
        let err = Error::transport(io::Error::other(
            "GET /x?token=convo_SECRET failed: Bearer convo_SECRET",
        ));
        for text in [err.to_string(), format!("{err:?}"), format!("{err:#?}")] {
            assert!(!text.contains("SECRET"), "{text}");
        }
        let api = Error::from(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorCode::InvalidApiKey,
            "bad key convo_SECRET",
        ));
        assert!(!format!("{api} {api:?}").contains("SECRET"));
    }

    #[test]
    fn local_failures_are_their_own_kind() {
        let err = Error::local(
            LocalFailure::NotAnEventStream,
            StatusCode::OK,
            ", got text/html",
        );
        assert!(err.is_local() && err.api().is_none() && !err.is_transport());
        assert_eq!(err.local_failure(), Some(&LocalFailure::NotAnEventStream));
        assert_eq!(err.code(), &ErrorCode::FailedPrecondition);
        assert_eq!(err.status(), Some(StatusCode::OK));
        assert_eq!(err.disposition(), Disposition::FixRequest);
        assert_eq!(
            err.message(),
            "expected a text/event-stream response, got text/html"
        );
        let big = Error::local(LocalFailure::EventTooLarge { limit: 4 }, StatusCode::OK, "");
        assert_eq!(big.code(), &ErrorCode::OutOfRange);
    }

    #[test]
    fn the_reason_not_retried_is_typed_and_its_text_is_the_note() {
        let mut err = Error::transport(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(err.not_retried(), None);
        err.set_not_retried(NotRetried::MaxRetries { max: 3 });
        assert_eq!(err.not_retried(), Some(&NotRetried::MaxRetries { max: 3 }));
        assert_eq!(
            err.note(),
            Some(
                "not retried: max_retries (3) reached; the failure is final: surface it, and try again later"
            )
        );
        assert!(
            err.to_string()
                .ends_with("; not retried: max_retries (3) reached; the failure is final: surface it, and try again later")
        );
    }

    /// The server's verdict against the table, declared codes and a gRPC refusal.
    #[test]
    fn the_servers_word_overrules_the_table_for_one_response() {
        let decode = |status: u16, pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, http::HeaderValue::from_static(v));
            }
            Error::from(ApiError::decode(
                StatusCode::from_u16(status).unwrap(),
                &h,
                b"",
            ))
        };
        for status in [400, 401, 403, 404, 409, 422] {
            let err = decode(status, &[("x-should-retry", "true")]);
            assert_eq!(err.disposition(), Disposition::Retry, "{status}");
            assert!(err.verdict().proves_unprocessed());
            // The class is still what the status says: it decides the gate.
            assert!(!err.class().is_retryable());
        }
        for status in [429, 500, 503] {
            let err = decode(status, &[("stripe-should-retry", "false")]);
            assert_eq!(err.disposition(), Disposition::DoNotRetry, "{status}");
            assert_eq!(err.verdict().closes_gate(), status == 429);
        }
        // A declared code yields to the response's verdict too.
        let declared = ErrorContract::new().code("ACCOUNT_LOCKED", Disposition::NeedsHuman);
        let mut h = http::HeaderMap::new();
        h.insert("x-should-retry", http::HeaderValue::from_static("true"));
        let body = br#"{"code": "ACCOUNT_LOCKED", "message": "locked"}"#;
        let err = Error::from(ApiError::decode(StatusCode::CONFLICT, &h, body)).judged(&declared);
        assert_eq!(err.disposition(), Disposition::Retry);
        assert_eq!(err.class(), Disposition::NeedsHuman);
        // A refusal wins over a request to retry.
        let both = decode(
            503,
            &[("x-should-retry", "true"), ("stripe-should-retry", "false")],
        );
        assert_eq!(both.disposition(), Disposition::DoNotRetry);
        let grpc = decode(
            200,
            &[
                ("grpc-status", "14"),
                ("grpc-retry-pushback-ms", "-1"),
                ("x-should-retry", "true"),
            ],
        );
        assert_eq!(grpc.disposition(), Disposition::DoNotRetry);
        // No verdict: the table.
        assert_eq!(decode(409, &[]).disposition(), Disposition::FixRequest);
        assert_eq!(
            decode(409, &[("x-should-retry", "maybe")]).disposition(),
            Disposition::FixRequest
        );
    }

    #[test]
    fn gate_closed_errors() {
        let err = Error::gate_closed(Duration::from_secs(3));
        assert_eq!(err.code(), &ErrorCode::ResourceExhausted);
        assert_eq!(err.status(), None);
        assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(err.disposition(), Disposition::RateLimited);
        assert!(!err.request_sent() && err.is_gate_closed());
    }
}
