//! Typed reasons: why a request was not retried ([`NotRetried`]), why a body cannot be sent
//! again ([`NotReplayable`]), and what this crate itself found wrong ([`LocalFailure`]).

use crate::code::ErrorCode;
use http::Method;
use std::{fmt, time::Duration};

/// Why a request was not sent again although its error was retryable, as
/// [`Error::not_retried`](crate::Error::not_retried) reports it. `Display` is the text of
/// [`Error::note`](crate::Error::note); [`as_str`](Self::as_str) is a stable label for logs
/// and metrics.
///
/// ```
/// use tower_api_retry::NotRetried;
///
/// let why = NotRetried::MaxRetries { max: 3 };
/// assert_eq!(why.as_str(), "max_retries");
/// assert_eq!(
///     why.to_string(),
///     "not retried: max_retries (3) reached; the failure is final: surface it, and try again later"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotRetried {
    /// The server forbade retrying (a negative or unparsable `grpc-retry-pushback-ms`).
    ServerForbids,
    /// The server answered `x-should-retry: false` (or `Stripe-Should-Retry: false`) to an
    /// error the contract would have retried.
    ShouldNotRetry,
    /// A gRPC server answered `RESOURCE_EXHAUSTED` naming no wait to this request twice in a
    /// row: most likely a message over its size limit, which fails the same way every time.
    ExhaustedAgain,
    /// [`RetryLayer::max_retries`](crate::RetryLayer::max_retries) was reached.
    MaxRetries {
        /// The configured cap.
        max: u32,
    },
    /// The method is not idempotent and the server may have processed the request.
    NotIdempotent {
        /// The request's method.
        method: Method,
    },
    /// The server asked to wait longer than `max_retry_after`.
    RetryAfterTooLong {
        /// What the server asked for.
        asked: Duration,
        /// The configured most.
        max: Duration,
    },
    /// A rate-limit gate held for an outage stays closed past what is left of the request's
    /// retry schedule (waiting at such a gate spends the schedule).
    GateOutlastsSchedule {
        /// The wait the next attempt needed.
        wait: Duration,
        /// What was left of the schedule.
        left: Duration,
    },
    /// The request body cannot be sent again.
    BodyNotReplayable(NotReplayable),
    /// The call's deadline had passed when the error came back.
    DeadlinePassed {
        /// The call's whole allowance.
        limit: Duration,
    },
    /// Waiting before the next attempt would overrun the call's deadline.
    DeadlineOverrun {
        /// The wait the next attempt needed.
        wait: Duration,
        /// The call's whole allowance.
        limit: Duration,
        /// What was left of it.
        left: Duration,
    },
    /// The call's deadline passed before the next attempt could start.
    DeadlineBeforeAttempt {
        /// The call's whole allowance.
        limit: Duration,
        /// The attempt that could not start.
        attempt: u32,
    },
    /// The call's deadline passed while an attempt was in flight.
    DeadlineDuringAttempt {
        /// The call's whole allowance.
        limit: Duration,
        /// The attempt cut off.
        attempt: u32,
    },
    /// The retry budget is spent and would not refill within
    /// [`max_budget_wait`](crate::RetryLayer::max_budget_wait) (or ever: a budget without a
    /// floor), or failures held the retry back until the end of the request's schedule (see
    /// [`RetryBudget`](crate::retry::RetryBudget)).
    BudgetExhausted,
    /// An event stream reached its retry cap without receiving a new event.
    StreamRetriesExhausted,
    /// An event stream's server asked to wait longer than `max_retry_after`.
    StreamRetryAfterTooLong {
        /// What the server asked for.
        asked: Duration,
        /// The configured most.
        max: Duration,
    },
}

impl NotRetried {
    /// A stable label, for logs and metrics.
    pub const fn as_str(&self) -> &'static str {
        match self {
            NotRetried::ServerForbids => "server_forbids",
            NotRetried::ShouldNotRetry => "should_not_retry",
            NotRetried::ExhaustedAgain => "exhausted_again",
            NotRetried::MaxRetries { .. } => "max_retries",
            NotRetried::NotIdempotent { .. } => "not_idempotent",
            NotRetried::RetryAfterTooLong { .. } => "retry_after_too_long",
            NotRetried::GateOutlastsSchedule { .. } => "gate_outlasts_schedule",
            NotRetried::BodyNotReplayable(_) => "body_not_replayable",
            NotRetried::DeadlinePassed { .. }
            | NotRetried::DeadlineOverrun { .. }
            | NotRetried::DeadlineBeforeAttempt { .. }
            | NotRetried::DeadlineDuringAttempt { .. } => "deadline",
            NotRetried::BudgetExhausted => "budget_exhausted",
            NotRetried::StreamRetriesExhausted => "stream_retries_exhausted",
            NotRetried::StreamRetryAfterTooLong { .. } => "stream_retry_after_too_long",
        }
    }
}

impl fmt::Display for NotRetried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotRetried::ServerForbids => f.write_str(
                "not retried: the server forbids retrying (negative or unparsable \
                 grpc-retry-pushback-ms)",
            ),
            NotRetried::ShouldNotRetry => f.write_str(
                "not retried: the server answered x-should-retry: false (or \
                 Stripe-Should-Retry: false)",
            ),
            NotRetried::ExhaustedAgain => f.write_str(
                "not retried: RESOURCE_EXHAUSTED without pushback again for the same request \
                 (the server refuses this request, such as a message over its size limit, \
                 not its rate)",
            ),
            NotRetried::MaxRetries { max } => write!(
                f,
                "not retried: max_retries ({max}) reached; the failure is final: surface it, and try again later"
            ),
            NotRetried::NotIdempotent { method } => write!(
                f,
                "not retried: {method} is not idempotent and the server may have processed it \
                 (send an Idempotency-Key header, or opt in with retry_non_idempotent)"
            ),
            NotRetried::RetryAfterTooLong { asked, max } => write!(
                f,
                "not retried: the server asked to wait {asked:?}, more than max_retry_after \
                 ({max:?})"
            ),
            NotRetried::BodyNotReplayable(why) => write!(f, "not retried: {why}"),
            NotRetried::DeadlinePassed { limit } => {
                write!(f, "not retried: the call's deadline ({limit:?}) has passed")
            }
            NotRetried::DeadlineOverrun { wait, limit, left } => write!(
                f,
                "not retried: waiting {wait:?} would overrun the call's deadline ({limit:?}, \
                 {left:?} left)"
            ),
            NotRetried::DeadlineBeforeAttempt { limit, attempt } => write!(
                f,
                "not retried: the call's deadline ({limit:?}) passed before attempt {attempt} \
                 could start"
            ),
            NotRetried::DeadlineDuringAttempt { limit, attempt } => write!(
                f,
                "the call's deadline ({limit:?}) passed during attempt {attempt}"
            ),
            NotRetried::BudgetExhausted => {
                f.write_str("not retried: the retry budget is exhausted")
            }
            NotRetried::GateOutlastsSchedule { wait, left } => write!(
                f,
                "not retried: the rate-limit gate stays closed for {wait:?}, past the {left:?} \
                 left of the retry schedule"
            ),
            NotRetried::StreamRetriesExhausted => {
                f.write_str("event stream: retry cap reached without a new event")
            }
            NotRetried::StreamRetryAfterTooLong { asked, max } => write!(
                f,
                "event stream: the server asked to wait {asked:?}, more than max_retry_after \
                 ({max:?})"
            ),
        }
    }
}

/// Why a request body cannot be sent again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReplayable {
    /// The body is larger than [`max_replay_bytes`](crate::RetryLayer::max_replay_bytes).
    TooLarge,
    /// The first attempt's response came back before its body had finished streaming.
    Incomplete,
    /// The body failed while the first attempt streamed it.
    Failed,
}

impl fmt::Display for NotReplayable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NotReplayable::TooLarge => {
                "the request body is larger than max_replay_bytes, so it was sent once and \
                 cannot be replayed"
            }
            NotReplayable::Incomplete => {
                "the request body had not finished streaming when the response arrived"
            }
            NotReplayable::Failed => "the request body failed while streaming",
        })
    }
}

impl std::error::Error for NotReplayable {}

/// A failure this crate detected itself, with no error from the server: see
/// [`Error::local_failure`](crate::Error::local_failure).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LocalFailure {
    /// An event stream's endpoint answered with another content type than
    /// `text/event-stream` (`FAILED_PRECONDITION`).
    NotAnEventStream,
    /// An event stream's endpoint redirected; redirects are not followed
    /// (`FAILED_PRECONDITION`).
    Redirected,
    /// A server-sent event line or event exceeded the limit (`OUT_OF_RANGE`).
    EventTooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
}

impl LocalFailure {
    /// A stable label, for logs and metrics.
    pub const fn as_str(&self) -> &'static str {
        match self {
            LocalFailure::NotAnEventStream => "not_an_event_stream",
            LocalFailure::Redirected => "redirected",
            LocalFailure::EventTooLarge { .. } => "event_too_large",
        }
    }

    /// The code an error of this failure carries.
    pub(crate) fn code(&self) -> &'static ErrorCode {
        match self {
            LocalFailure::NotAnEventStream | LocalFailure::Redirected => {
                &ErrorCode::FailedPrecondition
            }
            LocalFailure::EventTooLarge { .. } => &ErrorCode::OutOfRange,
        }
    }
}

impl fmt::Display for LocalFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LocalFailure::NotAnEventStream => f.write_str("expected a text/event-stream response"),
            LocalFailure::Redirected => {
                f.write_str("the event stream endpoint redirected; redirects are not followed")
            }
            LocalFailure::EventTooLarge { limit } => {
                write!(f, "a server-sent event line or event exceeds {limit} bytes")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_and_labels() {
        let body = NotRetried::BodyNotReplayable(NotReplayable::TooLarge);
        assert_eq!(body.as_str(), "body_not_replayable");
        assert!(
            body.to_string()
                .starts_with("not retried: the request body is larger")
        );
        let post = NotRetried::NotIdempotent {
            method: Method::POST,
        };
        assert!(post.to_string().contains("POST is not idempotent"));
        let during = NotRetried::DeadlineDuringAttempt {
            limit: Duration::from_secs(1),
            attempt: 2,
        };
        assert_eq!(during.as_str(), "deadline");
        assert_eq!(
            during.to_string(),
            "the call's deadline (1s) passed during attempt 2"
        );
        assert_eq!(NotRetried::ShouldNotRetry.as_str(), "should_not_retry");
        assert_eq!(NotRetried::ExhaustedAgain.as_str(), "exhausted_again");
        assert!(
            NotRetried::ExhaustedAgain
                .to_string()
                .starts_with("not retried: RESOURCE_EXHAUSTED without pushback again")
        );
        assert_eq!(
            NotRetried::ShouldNotRetry.to_string(),
            "not retried: the server answered x-should-retry: false (or Stripe-Should-Retry: false)"
        );
        assert_eq!(
            LocalFailure::EventTooLarge { limit: 8 }.to_string(),
            "a server-sent event line or event exceeds 8 bytes"
        );
    }
}
