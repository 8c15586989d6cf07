//! What a careful caller does with an error ([`Disposition`]), and the built-in table that
//! decides it from the code and the HTTP status: the table of the default
//! [`ErrorContract`](crate::ErrorContract).

use crate::code::ErrorCode;
use http::StatusCode;
use std::fmt;

/// What a careful caller does with an error, as the documented contracts prescribe.
///
/// ```
/// use http::StatusCode;
/// use tower_api_retry::{Disposition, ErrorCode, ErrorContract};
///
/// let contract = ErrorContract::new();
/// assert_eq!(contract.disposition(Some(StatusCode::SERVICE_UNAVAILABLE), &ErrorCode::RefreshInProgress), Disposition::Retry);
/// assert_eq!(contract.disposition(Some(StatusCode::UNAUTHORIZED), &ErrorCode::AgentBlocked), Disposition::NeedsHuman);
/// assert!(Disposition::RateLimited.is_retryable());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Disposition {
    /// Transient: retry with exponential backoff and jitter (5xx, `UNAVAILABLE`,
    /// `DEADLINE_EXCEEDED`, `INTERNAL`, `UNKNOWN`, `ABORTED`, `REFRESH_IN_PROGRESS`, transport
    /// failures, an unknown code on a status that is no error, as an MCP error in a 200).
    Retry,
    /// A rate limit (429, `RESOURCE_EXHAUSTED`, also for an exhausted spend envelope): stop
    /// sending on the affected path, back off, honour `Retry-After`, then retry.
    RateLimited,
    /// The request is wrong: fix it before sending it again (400, 404, 409, `INVALID_ARGUMENT`,
    /// `NOT_FOUND`, `ALREADY_EXISTS`, `FAILED_PRECONDITION`, `CANCELLED`, `OUT_OF_RANGE`,
    /// `UNIMPLEMENTED`, `agent_connected`).
    FixRequest,
    /// The credentials are missing, invalid, revoked or expired: get new ones (401, 407,
    /// `UNAUTHENTICATED`, `INVALID_API_KEY`, `KEY_REVOKED`, `KEY_AUTO_DISABLED`, `KEY_EXPIRED`,
    /// both `AGENT_DISCONNECTED_*`).
    Reauthenticate,
    /// The caller lacks permission (403, `PERMISSION_DENIED`, `AGENT_KEY_CONFLICT`).
    Forbidden,
    /// Only a person can fix this; never retried automatically (`AGENT_BLOCKED`,
    /// `SUBSCRIPTION_CANCELED`, `NO_ACTIVE_USER`, `KEY_ROTATION_FAILED`, `TRUST_REQUIRED`,
    /// `DATA_LOSS`).
    NeedsHuman,
    /// The error would be [`Retry`](Self::Retry) or [`RateLimited`](Self::RateLimited), but the
    /// server forbade retrying it: a negative or unparsable `grpc-retry-pushback-ms` (gRPC's
    /// retry design, A6), or `x-should-retry: false` / `Stripe-Should-Retry: false`. Report
    /// the error. The built-in table never returns it: only the server's word does.
    DoNotRetry,
}

impl Disposition {
    /// `true` for [`Disposition::Retry`] and [`Disposition::RateLimited`]: the only two a
    /// client may retry without changing the request.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Disposition::Retry | Disposition::RateLimited)
    }

    /// A short stable name (`"retry"`, `"rate_limited"`, ...) for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Disposition::Retry => "retry",
            Disposition::RateLimited => "rate_limited",
            Disposition::FixRequest => "fix_request",
            Disposition::Reauthenticate => "reauthenticate",
            Disposition::Forbidden => "forbidden",
            Disposition::NeedsHuman => "needs_human",
            Disposition::DoNotRetry => "do_not_retry",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Classifies an error by its code, falling back to its HTTP status for codes this crate does
/// not know. `status` is `None` when no response was received (a transport failure).
pub(crate) fn classify(status: Option<StatusCode>, code: &ErrorCode) -> Disposition {
    use Disposition::*;
    match code {
        ErrorCode::Unavailable
        | ErrorCode::DeadlineExceeded
        | ErrorCode::Internal
        | ErrorCode::Unknown
        | ErrorCode::Aborted
        | ErrorCode::RefreshInProgress => Retry,
        ErrorCode::ResourceExhausted => RateLimited,
        ErrorCode::InvalidArgument
        | ErrorCode::NotFound
        | ErrorCode::AlreadyExists
        | ErrorCode::FailedPrecondition
        | ErrorCode::Cancelled
        | ErrorCode::OutOfRange
        | ErrorCode::Unimplemented
        | ErrorCode::AgentConnected => FixRequest,
        ErrorCode::Unauthenticated
        | ErrorCode::InvalidApiKey
        | ErrorCode::KeyRevoked
        | ErrorCode::KeyAutoDisabled
        | ErrorCode::KeyExpired
        | ErrorCode::AgentDisconnectedCodingTool
        | ErrorCode::AgentDisconnectedAutomated => Reauthenticate,
        ErrorCode::PermissionDenied | ErrorCode::AgentKeyConflict => Forbidden,
        ErrorCode::AgentBlocked
        | ErrorCode::SubscriptionCanceled
        | ErrorCode::NoActiveUser
        | ErrorCode::KeyRotationFailed
        | ErrorCode::TrustRequired
        | ErrorCode::DataLoss => NeedsHuman,
        ErrorCode::Other(_) => classify_status(status),
    }
}

/// Classifies by HTTP status alone (`None`: no response).
pub(crate) fn classify_status(status: Option<StatusCode>) -> Disposition {
    use Disposition::*;
    let Some(status) = status else { return Retry };
    match status.as_u16() {
        429 => RateLimited,
        401 | 407 => Reauthenticate,
        403 => Forbidden,
        400..=499 => FixRequest,
        // 5xx, and an unknown code on a non-error status: see `classify`.
        _ => Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Disposition::*;

    fn s(n: u16) -> Option<StatusCode> {
        Some(StatusCode::from_u16(n).unwrap())
    }

    /// Every row of the MCP / envelope code table (page 004), with the page's advice.
    #[test]
    fn rpc_code_table() {
        let rows: &[(&str, Disposition, &str)] = &[
            (
                "INVALID_ARGUMENT",
                FixRequest,
                "correct the input, and retry",
            ),
            ("NOT_FOUND", FixRequest, "check the id"),
            ("ALREADY_EXISTS", FixRequest, "update or link it instead"),
            (
                "PERMISSION_DENIED",
                Forbidden,
                "use a key with the right scope",
            ),
            ("UNAUTHENTICATED", Reauthenticate, "send a valid X-Api-Key"),
            (
                "RESOURCE_EXHAUSTED",
                RateLimited,
                "back off and retry later",
            ),
            (
                "FAILED_PRECONDITION",
                FixRequest,
                "resolve the precondition, then retry",
            ),
            (
                "UNAVAILABLE",
                Retry,
                "retry with exponential backoff and jitter",
            ),
            ("DEADLINE_EXCEEDED", Retry, "retry"),
            ("INTERNAL", Retry, "retry with backoff"),
            ("UNKNOWN", Retry, "retry with backoff"),
        ];
        for (code, want, advice) in rows {
            // The code decides whatever status carried it (MCP errors arrive in an HTTP 200).
            for status in [None, s(200), s(400), s(500)] {
                assert_eq!(
                    classify(status, &ErrorCode::parse(code)),
                    *want,
                    "{code} ({advice}) at {status:?}"
                );
            }
        }
    }

    /// Every row of the authentication & subscription table (page 004), at its documented status.
    #[test]
    fn auth_and_subscription_table() {
        let rows: &[(&str, u16, Disposition)] = &[
            ("INVALID_API_KEY", 401, Reauthenticate),
            ("KEY_REVOKED", 401, Reauthenticate),
            ("KEY_AUTO_DISABLED", 401, Reauthenticate),
            ("KEY_EXPIRED", 401, Reauthenticate),
            ("AGENT_DISCONNECTED_CODING_TOOL", 401, Reauthenticate),
            // Decision: "repairs itself automatically" = new credentials, not a blind retry.
            ("AGENT_DISCONNECTED_AUTOMATED", 401, Reauthenticate),
            ("AGENT_BLOCKED", 401, NeedsHuman),
            ("SUBSCRIPTION_CANCELED", 409, NeedsHuman),
            ("NO_ACTIVE_USER", 409, NeedsHuman),
            ("KEY_ROTATION_FAILED", 422, NeedsHuman),
            ("REFRESH_IN_PROGRESS", 503, Retry),
            // Connect-time codes named by the page.
            ("AGENT_KEY_CONFLICT", 403, Forbidden),
            ("TRUST_REQUIRED", 403, NeedsHuman),
        ];
        for (code, status, want) in rows {
            assert_eq!(
                classify(s(*status), &ErrorCode::parse(code)),
                *want,
                "{code} at {status}"
            );
        }
    }

    /// Every row of the HTTP status table (page 000), for bodies without a code.
    #[test]
    fn http_status_table() {
        let rows: &[(u16, Disposition)] = &[
            (400, FixRequest),
            (401, Reauthenticate),
            (403, Forbidden),
            (404, FixRequest),
            (409, FixRequest),
            (422, FixRequest),
            (429, RateLimited),
            (500, Retry),
            (501, Retry),
            (502, Retry),
            (503, Retry),
            (504, Retry),
        ];
        for (status, want) in rows {
            let status = s(*status);
            assert_eq!(classify_status(status), *want, "{status:?}");
            // An unknown code falls back to the status ...
            assert_eq!(
                classify(status, &ErrorCode::parse("NEW_CODE")),
                *want,
                "{status:?}"
            );
            // ... and the code derived from the status agrees with the status.
            let derived = ErrorCode::from_status(status.unwrap());
            assert_eq!(
                classify(status, &derived),
                *want,
                "{status:?} derived {derived}"
            );
        }
        // Every 4xx is not retried, every 5xx is: the first page's retry guidance.
        for n in 400..=599u16 {
            let status = StatusCode::from_u16(n).unwrap();
            let d = classify(Some(status), &ErrorCode::from_status(status));
            assert_eq!(d.is_retryable(), n >= 500 || n == 429, "{n}");
        }
    }

    #[test]
    fn structured_409_and_grpc_extras() {
        assert_eq!(classify(s(409), &ErrorCode::AgentConnected), FixRequest);
        assert_eq!(classify(s(200), &ErrorCode::Aborted), Retry);
        assert_eq!(classify(s(200), &ErrorCode::Cancelled), FixRequest);
        assert_eq!(classify(s(200), &ErrorCode::OutOfRange), FixRequest);
        assert_eq!(classify(s(200), &ErrorCode::Unimplemented), FixRequest);
        assert_eq!(classify(s(200), &ErrorCode::DataLoss), NeedsHuman);
    }

    #[test]
    fn no_response_is_transient() {
        assert_eq!(classify_status(None), Retry);
        assert_eq!(classify(None, &ErrorCode::parse("WHATEVER")), Retry);
        // Unknown code on a success status (an MCP error in a 200): treated as UNKNOWN.
        assert_eq!(classify(s(200), &ErrorCode::parse("WHATEVER")), Retry);
    }

    #[test]
    fn the_code_wins_over_the_status() {
        assert_eq!(classify(s(400), &ErrorCode::Unavailable), Retry);
        assert_eq!(classify(s(503), &ErrorCode::AgentBlocked), NeedsHuman);
        assert_eq!(classify(s(429), &ErrorCode::InvalidArgument), FixRequest);
    }
}
