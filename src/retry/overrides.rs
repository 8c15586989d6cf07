//! [`RetryOverride`]: the retry policy of one request, changed through its extensions.

use std::time::Duration;

/// Changes the retry policy for one request: insert it in the request's extensions and the
/// [`Retry`](super::Retry) service uses it, for that request only, instead of what its
/// [`RetryLayer`](super::RetryLayer) was built with. What it does not set stays as the layer
/// says. The [retry budget](super::RetryBudget) and the rate-limit gate still apply.
///
/// ```
/// use http::Request;
/// use tower_api_retry::RetryOverride;
///
/// // Sent once, whatever the layer says.
/// let mut request = Request::get("/api/status").body(()).unwrap();
/// request.extensions_mut().insert(RetryOverride::no_retries());
///
/// // This POST creates nothing twice: let it be retried once, like a GET.
/// let mut request = Request::post("/api/search").body(()).unwrap();
/// request.extensions_mut().insert(RetryOverride::new().max_retries(1).idempotent(true));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetryOverride {
    pub(crate) max_retries: Option<u32>,
    pub(crate) deadline: Option<Option<Duration>>,
    pub(crate) idempotent: bool,
}

impl RetryOverride {
    /// Changes nothing yet: the layer's policy.
    pub const fn new() -> Self {
        RetryOverride {
            max_retries: None,
            deadline: None,
            idempotent: false,
        }
    }

    /// Never retry this request: it is sent once and passes straight through.
    pub const fn no_retries() -> Self {
        RetryOverride::new().max_retries(0)
    }

    /// How many times this request may be sent again (instead of the layer's
    /// [`max_retries`](super::RetryLayer::max_retries)).
    pub const fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = Some(max_retries);
        self
    }

    /// This request's overall deadline, from when it enters the layer, instead of the layer's
    /// [`deadline`](super::RetryLayer::deadline); `None` for none. The rules are the layer's
    /// (see [deadlines](super#deadlines)); a gRPC call's own `grpc-timeout` still applies
    /// when it is earlier.
    pub fn deadline(mut self, deadline: impl Into<Option<Duration>>) -> Self {
        self.deadline = Some(deadline.into());
        self
    }

    /// Declares this request safe to send twice (`true`), whatever its method: a retryable
    /// error is retried as for a `GET` (see [side effects](super#side-effects)).
    pub const fn idempotent(mut self, yes: bool) -> Self {
        self.idempotent = yes;
        self
    }
}
