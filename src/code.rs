//! The machine-readable error code a server puts in an error response.

use std::{borrow::Cow, convert::Infallible, fmt, str::FromStr};

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident => $text:literal, )*) => {
        /// A stable, machine-readable error code, spelled exactly as the server spells it.
        ///
        /// A variant for every code of both pages and every gRPC status, and
        /// [`ErrorCode::Other`], which keeps an unknown code verbatim. Parsing never fails and
        /// round-trips through [`Display`](fmt::Display):
        ///
        /// ```
        /// use tower_api_retry::ErrorCode;
        ///
        /// let code: ErrorCode = "KEY_REVOKED".parse().unwrap();
        /// assert_eq!(code, ErrorCode::KeyRevoked);
        /// assert_eq!(code.to_string(), "KEY_REVOKED");
        ///
        /// let new: ErrorCode = "SOMETHING_NEW".parse().unwrap();
        /// assert_eq!(new, ErrorCode::Other("SOMETHING_NEW".into()));
        /// assert_eq!(new.as_str(), "SOMETHING_NEW");
        /// ```
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
            /// A code this crate does not know, kept verbatim. It is classified by the
            /// response's HTTP status alone.
            Other(Cow<'static, str>),
        }

        impl ErrorCode {
            /// Every code this crate knows, in declaration order (not [`ErrorCode::Other`]).
            pub const KNOWN: &'static [ErrorCode] = &[ $( ErrorCode::$variant, )* ];

            /// The code exactly as the server spells it.
            pub fn as_str(&self) -> &str {
                match self {
                    $( ErrorCode::$variant => $text, )*
                    ErrorCode::Other(s) => s,
                }
            }

            /// A bounded label for metrics: the code's name, or `_OTHER` for a code this
            /// crate does not know (its text is the server's, and unbounded).
            pub(crate) const fn label(&self) -> &'static str {
                match self {
                    $( ErrorCode::$variant => $text, )*
                    ErrorCode::Other(_) => "_OTHER",
                }
            }

            /// Looks up a known code; `None` for anything else.
            pub(crate) fn known(s: &str) -> Option<ErrorCode> {
                match s {
                    $( $text => Some(ErrorCode::$variant), )*
                    _ => None,
                }
            }
        }
    };
}

codes! {
    // --- The RPC-style codes of the MCP / envelope table ---
    /// A field failed validation, or required input was missing or malformed.
    InvalidArgument => "INVALID_ARGUMENT",
    /// The referenced entity does not exist or is not visible to the caller.
    NotFound => "NOT_FOUND",
    /// A uniqueness constraint was violated.
    AlreadyExists => "ALREADY_EXISTS",
    /// The key lacks the scope for this action.
    PermissionDenied => "PERMISSION_DENIED",
    /// Missing or invalid credentials.
    Unauthenticated => "UNAUTHENTICATED",
    /// A limit or budget was reached: too many requests, or an exhausted spend envelope.
    ResourceExhausted => "RESOURCE_EXHAUSTED",
    /// The action is not valid in the current state of the entity.
    FailedPrecondition => "FAILED_PRECONDITION",
    /// A transient failure: the service or a dependency was briefly unavailable.
    Unavailable => "UNAVAILABLE",
    /// The request took too long to complete.
    DeadlineExceeded => "DEADLINE_EXCEEDED",
    /// An unexpected server-side error.
    Internal => "INTERNAL",
    /// An unexpected server-side error.
    Unknown => "UNKNOWN",
    // --- The remaining gRPC status codes ---
    /// gRPC `CANCELLED` (1): the operation was cancelled, typically by the caller.
    Cancelled => "CANCELLED",
    /// gRPC `ABORTED` (10): a concurrency conflict such as a transaction abort.
    Aborted => "ABORTED",
    /// gRPC `OUT_OF_RANGE` (11): the operation was attempted past the valid range.
    OutOfRange => "OUT_OF_RANGE",
    /// gRPC `UNIMPLEMENTED` (12): the operation is not implemented or supported.
    Unimplemented => "UNIMPLEMENTED",
    /// gRPC `DATA_LOSS` (15): unrecoverable data loss or corruption.
    DataLoss => "DATA_LOSS",
    // --- Authentication & subscription codes ---
    /// 401: the key is not recognized.
    InvalidApiKey => "INVALID_API_KEY",
    /// 401: the key was rotated or revoked.
    KeyRevoked => "KEY_REVOKED",
    /// 401: the key was disabled automatically.
    KeyAutoDisabled => "KEY_AUTO_DISABLED",
    /// 401: the key passed its expiry date.
    KeyExpired => "KEY_EXPIRED",
    /// 401: a coding-tool agent lost its connection.
    AgentDisconnectedCodingTool => "AGENT_DISCONNECTED_CODING_TOOL",
    /// 401: an automated agent lost its connection.
    AgentDisconnectedAutomated => "AGENT_DISCONNECTED_AUTOMATED",
    /// 401: the agent is blocked on this team. Never auto-retried.
    AgentBlocked => "AGENT_BLOCKED",
    /// 409: no active subscription for the requested agent. Never auto-retried.
    SubscriptionCanceled => "SUBSCRIPTION_CANCELED",
    /// 409: the team has no active user to own the key. Needs a human.
    NoActiveUser => "NO_ACTIVE_USER",
    /// 422: the stored key could not be read and no replacement could be minted. Terminal.
    KeyRotationFailed => "KEY_ROTATION_FAILED",
    /// 503 + `Retry-After`: another credential refresh is already running.
    RefreshInProgress => "REFRESH_IN_PROGRESS",
    /// 403 at connect time: the agent's key conflicts with another.
    AgentKeyConflict => "AGENT_KEY_CONFLICT",
    /// 403 at connect time: the installation must be trusted first.
    TrustRequired => "TRUST_REQUIRED",
    // --- The structured 409 of the first page ---
    /// 409 `{"error": "agent_connected", ...}`: the agent is connected to another
    /// installation. Release it first, or retry with `X-Force-Rotate: true`
    /// (see [`ApiError::agent_connected`](crate::ApiError::agent_connected)).
    AgentConnected => "agent_connected",
}

impl ErrorCode {
    /// Parses a code, keeping an unknown one verbatim in [`ErrorCode::Other`] (except for a
    /// credential in it, which is redacted: a code comes from the server and is shown).
    pub fn parse(s: &str) -> ErrorCode {
        // A code comes from the server: one that echoes a credential must not show it.
        ErrorCode::known(s).unwrap_or_else(|| {
            ErrorCode::Other(Cow::Owned(crate::text::redact::redact(s).into_owned()))
        })
    }

    /// The code of a numeric gRPC status (`grpc-status`). `0` (OK) has no error code and
    /// gives `None`; numbers outside the gRPC table are [`ErrorCode::Unknown`], as the gRPC
    /// specification asks of clients.
    pub(crate) fn from_grpc(status: i32) -> Option<ErrorCode> {
        match status {
            0 => None,
            1..=16 => Some(GRPC[status as usize - 1].clone()),
            _ => Some(ErrorCode::Unknown),
        }
    }

    /// The numeric gRPC status for this code, where gRPC has one.
    pub(crate) fn grpc_number(&self) -> Option<i32> {
        GRPC.iter().position(|c| c == self).map(|i| i as i32 + 1)
    }

    /// The code of a numeric JSON-RPC 2.0 error (`-32602` and friends): the protocol-level
    /// errors of the MCP interface. The number itself is kept by
    /// [`ApiError::numeric_code`](crate::ApiError::numeric_code).
    pub(crate) fn from_jsonrpc(code: i64) -> ErrorCode {
        match code {
            // Parse error, invalid request, invalid params: rejected before any work is done.
            -32700 | -32600 | -32602 => ErrorCode::InvalidArgument,
            -32601 => ErrorCode::Unimplemented,
            -32603 => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }

    /// The code a body that names none is given, derived from the HTTP status alone.
    ///
    /// Used for `{"detail": ...}` bodies and unrecognised ones; the derived code classifies
    /// exactly as the status does.
    ///
    /// | status | code |
    /// | --- | --- |
    /// | 401, 407 | `UNAUTHENTICATED` |
    /// | 403 | `PERMISSION_DENIED` |
    /// | 404, 410 | `NOT_FOUND` |
    /// | 409, 412, 428 | `FAILED_PRECONDITION` |
    /// | 429 | `RESOURCE_EXHAUSTED` |
    /// | other 4xx | `INVALID_ARGUMENT` |
    /// | 502, 503 | `UNAVAILABLE` |
    /// | 504 | `DEADLINE_EXCEEDED` |
    /// | other 5xx | `INTERNAL` |
    /// | anything else | `UNKNOWN` |
    pub fn from_status(status: http::StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 | 407 => ErrorCode::Unauthenticated,
            403 => ErrorCode::PermissionDenied,
            404 | 410 => ErrorCode::NotFound,
            409 | 412 | 428 => ErrorCode::FailedPrecondition,
            429 => ErrorCode::ResourceExhausted,
            400..=499 => ErrorCode::InvalidArgument,
            502 | 503 => ErrorCode::Unavailable,
            504 => ErrorCode::DeadlineExceeded,
            500..=599 => ErrorCode::Internal,
            _ => ErrorCode::Unknown,
        }
    }
}

/// The codes of gRPC's status numbers 1 to 16, in order.
static GRPC: [ErrorCode; 16] = [
    ErrorCode::Cancelled,
    ErrorCode::Unknown,
    ErrorCode::InvalidArgument,
    ErrorCode::DeadlineExceeded,
    ErrorCode::NotFound,
    ErrorCode::AlreadyExists,
    ErrorCode::PermissionDenied,
    ErrorCode::ResourceExhausted,
    ErrorCode::FailedPrecondition,
    ErrorCode::Aborted,
    ErrorCode::OutOfRange,
    ErrorCode::Unimplemented,
    ErrorCode::Internal,
    ErrorCode::Unavailable,
    ErrorCode::DataLoss,
    ErrorCode::Unauthenticated,
];

impl FromStr for ErrorCode {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(ErrorCode::parse(s))
    }
}

impl From<&str> for ErrorCode {
    fn from(s: &str) -> Self {
        ErrorCode::parse(s)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_code_round_trips() {
        for code in ErrorCode::KNOWN {
            let text = code.to_string();
            assert_eq!(&text.parse::<ErrorCode>().unwrap(), code);
            assert!(!matches!(ErrorCode::parse(&text), ErrorCode::Other(_)));
        }
        assert_eq!(ErrorCode::KNOWN.len(), 30);
    }

    #[test]
    fn unknown_codes_are_kept_verbatim() {
        let c = ErrorCode::parse("not_a_code");
        assert_eq!(c, ErrorCode::Other("not_a_code".into()));
        assert_eq!(c.as_str(), "not_a_code");
        // Codes are case-sensitive: the contract says the spelling never changes.
        assert!(matches!(
            ErrorCode::parse("key_revoked"),
            ErrorCode::Other(_)
        ));
    }

    #[test]
    fn grpc_numbers_round_trip() {
        for n in 1..=16 {
            let code = ErrorCode::from_grpc(n).unwrap();
            assert_eq!(code.grpc_number(), Some(n));
        }
        assert_eq!(ErrorCode::from_grpc(0), None);
        assert_eq!(ErrorCode::from_grpc(99), Some(ErrorCode::Unknown));
        assert_eq!(ErrorCode::from_grpc(-1), Some(ErrorCode::Unknown));
    }

    #[test]
    fn jsonrpc_numbers() {
        assert_eq!(ErrorCode::from_jsonrpc(-32602), ErrorCode::InvalidArgument);
        assert_eq!(ErrorCode::from_jsonrpc(-32601), ErrorCode::Unimplemented);
        assert_eq!(ErrorCode::from_jsonrpc(-32603), ErrorCode::Internal);
        assert_eq!(ErrorCode::from_jsonrpc(-32000), ErrorCode::Unknown);
    }
}
