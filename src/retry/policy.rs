//! The retry decision: what may be sent again, when, and without duplicating a side effect.

use super::{NotReplayable, RetryLayer};
use crate::{error::Error, reason::NotRetried};
use http::{HeaderMap, HeaderName, Method};
use std::time::Duration;

/// The `Idempotency-Key` request header: a request that carries one may be retried whatever
/// its method, since the server deduplicates it.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// What the request looked like, for the side-effect rule.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestFacts {
    /// The method is idempotent (RFC 9110 §9.2.2), or the request has an `Idempotency-Key`.
    pub(crate) idempotent: bool,
    /// The request is gRPC (`content-type: application/grpc…`).
    pub(crate) grpc: bool,
}

impl RequestFacts {
    pub(crate) fn of(method: &Method, headers: &HeaderMap) -> RequestFacts {
        let idempotent = matches!(
            *method,
            Method::GET
                | Method::HEAD
                | Method::OPTIONS
                | Method::PUT
                | Method::DELETE
                | Method::TRACE
        ) || headers.contains_key(IDEMPOTENCY_KEY);
        RequestFacts {
            idempotent,
            grpc: crate::grpc::is_grpc(headers),
        }
    }
}

/// Everything one retry decision reads, gathered by the response future.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Facts<'a> {
    /// The failed attempt's error.
    pub(crate) err: &'a Error,
    /// How many attempts were made, the failed one included.
    pub(crate) attempts: u32,
    /// The layer's `max_retries`, or the request's own.
    pub(crate) max_retries: u32,
    /// The method, and whether it is safe to send twice.
    pub(crate) method: &'a Method,
    pub(crate) request: RequestFacts,
    /// The request declared itself safe to send twice (`RetryOverride::idempotent`).
    pub(crate) declared_idempotent: bool,
    /// The server last answered this request with a bare `RESOURCE_EXHAUSTED`.
    pub(crate) exhausted_before: bool,
    /// The call's deadline, as it stands now.
    pub(crate) deadline: Option<Left>,
    /// The backoff before this retry, random jitter included.
    pub(crate) backoff: Duration,
}

/// A call's deadline at the moment of a decision.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Left {
    /// Time left until the deadline.
    pub(crate) left: Duration,
    /// The whole allowance, for messages.
    pub(crate) limit: Duration,
    /// A gRPC call: it ends at its deadline with `DEADLINE_EXCEEDED`.
    pub(crate) grpc: bool,
}

/// Why an error is returned without a further attempt.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// Nothing to say: the error is not retryable.
    Quiet,
    Note(NotRetried),
    /// The call's deadline leaves no room for another attempt.
    Deadline(NotRetried),
    /// A gRPC call's deadline leaves no room for another attempt: the call ends at its
    /// deadline with `DEADLINE_EXCEEDED`, as gRPC's own clients end it.
    AtDeadline,
}

/// The retry decision: send the request again after the returned wait, or return the error.
///
/// Pure but for its two effects, which it is handed: `replay` makes the body's copy for the
/// next attempt, and `budget` (absent without a retry budget) takes a retry from the budget,
/// waiting for it at most the bound it is given (`Ok`: the wait; `Err`: the wait it would
/// need, if any).
pub(crate) fn decide(
    facts: &Facts<'_>,
    config: &RetryLayer,
    replay: impl FnOnce() -> Result<(), NotReplayable>,
    budget: Option<impl FnOnce(Duration) -> Result<Duration, Option<Duration>>>,
) -> Result<Duration, Refusal> {
    let err = facts.err;
    let verdict = err.verdict();
    if !verdict.disposition().is_retryable() {
        let Some(api) = err.api() else {
            return Err(Refusal::Quiet);
        };
        if api.server_forbids_retry() && api.server_should_retry() != Some(false) {
            return Err(Refusal::Note(NotRetried::ServerForbids));
        }
        // `x-should-retry: false` on an error the contract would have retried.
        if api.server_should_retry() == Some(false) && verdict.class.is_retryable() {
            return Err(Refusal::Note(NotRetried::ShouldNotRetry));
        }
        return Err(Refusal::Quiet);
    }
    // A gRPC `RESOURCE_EXHAUSTED` naming no wait, to a request the server last answered the
    // same way: the request itself is refused (a message over the server's size limit), and
    // a third try would fail the same way.
    if verdict.is_bare_exhaustion() && facts.exhausted_before {
        return Err(Refusal::Note(NotRetried::ExhaustedAgain));
    }
    if let Some(deadline) = facts.deadline
        && deadline.left.is_zero()
    {
        return Err(Refusal::Deadline(NotRetried::DeadlinePassed {
            limit: deadline.limit,
        }));
    }
    let retries = facts.attempts.saturating_sub(1);
    if retries >= facts.max_retries {
        return Err(Refusal::Note(NotRetried::MaxRetries {
            max: facts.max_retries,
        }));
    }
    if !facts.request.idempotent
        && !facts.declared_idempotent
        && !config.retry_non_idempotent
        && !verdict.unprocessed(config.retry_grpc_unavailable && facts.request.grpc)
    {
        return Err(Refusal::Note(NotRetried::NotIdempotent {
            method: facts.method.clone(),
        }));
    }
    let hint = err.retry_after();
    if let Some(hint) = hint.filter(|h| *h > config.max_retry_after) {
        return Err(Refusal::Note(NotRetried::RetryAfterTooLong {
            asked: hint,
            max: config.max_retry_after,
        }));
    }
    replay().map_err(|why| Refusal::Note(NotRetried::BodyNotReplayable(why)))?;
    let wait = facts.backoff.max(hint.unwrap_or(Duration::ZERO));
    if let Some(deadline) = facts.deadline
        && wait >= deadline.left
    {
        // A wait that ends at the deadline leaves no time for the attempt after it.
        return Err(overrun(deadline, wait));
    }
    let Some(budget) = budget else {
        return Ok(wait);
    };
    // A spent budget is waited for, alongside the backoff, within the layer's bound and
    // before the deadline.
    let mut bound = config.max_budget_wait;
    if let Some(deadline) = facts.deadline {
        bound = bound.min(deadline.left.saturating_sub(Duration::from_nanos(1)));
    }
    match budget(bound) {
        Ok(ready) => Ok(wait.max(ready)),
        Err(needed) => match (facts.deadline, needed) {
            (Some(deadline), Some(needed)) if needed <= config.max_budget_wait => {
                Err(overrun(deadline, needed))
            }
            _ => Err(Refusal::Note(NotRetried::BudgetExhausted)),
        },
    }
}

/// A wait that runs past the deadline.
fn overrun(deadline: Left, wait: Duration) -> Refusal {
    if deadline.grpc {
        return Refusal::AtDeadline;
    }
    Refusal::Deadline(NotRetried::DeadlineOverrun {
        wait,
        limit: deadline.limit,
        left: deadline.left,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;
    use http::{HeaderValue, StatusCode};

    const SEC: Duration = Duration::from_secs(1);

    fn answer(status: u16, headers: &[(&'static str, &'static str)]) -> Error {
        let mut h = HeaderMap::new();
        for (name, value) in headers {
            h.insert(*name, HeaderValue::from_static(value));
        }
        Error::from_api(ApiError::decode(
            StatusCode::from_u16(status).unwrap(),
            &h,
            b"",
        ))
    }

    /// One decision's inputs, as a table row changes them.
    #[derive(Clone, Copy)]
    struct Case {
        attempts: u32,
        post: bool,
        declared_idempotent: bool,
        exhausted_before: bool,
        left: Option<Duration>,
        grpc_deadline: bool,
        replayable: bool,
        /// The budget's answer: `None` for a layer without a budget.
        budget: Option<Result<Duration, Option<Duration>>>,
    }

    const CASE: Case = Case {
        attempts: 1,
        post: false,
        declared_idempotent: false,
        exhausted_before: false,
        left: None,
        grpc_deadline: false,
        replayable: true,
        budget: Some(Ok(Duration::ZERO)),
    };

    fn run(err: &Error, case: Case) -> Result<Duration, Refusal> {
        let config = RetryLayer::new();
        let method = if case.post { Method::POST } else { Method::GET };
        let facts = Facts {
            err,
            attempts: case.attempts,
            max_retries: 3,
            method: &method,
            request: RequestFacts::of(&method, &HeaderMap::new()),
            declared_idempotent: case.declared_idempotent,
            exhausted_before: case.exhausted_before,
            deadline: case.left.map(|left| Left {
                left,
                limit: 10 * SEC,
                grpc: case.grpc_deadline,
            }),
            backoff: SEC,
        };
        let replay = || {
            if case.replayable {
                Ok(())
            } else {
                Err(NotReplayable::TooLarge)
            }
        };
        let budget = case.budget.map(|answer| move |_bound: Duration| answer);
        decide(&facts, &config, replay, budget)
    }

    #[test]
    fn the_decision_table() {
        use NotRetried::*;
        let unavailable = answer(503, &[]);
        let limited = answer(429, &[("retry-after", "5")]);
        let too_long = answer(429, &[("retry-after", "120")]);
        let bad = answer(400, &[]);
        let forbidden = answer(503, &[("grpc-retry-pushback-ms", "-1")]);
        let should_not = answer(503, &[("x-should-retry", "false")]);
        let bare = answer(200, &[("grpc-status", "8")]);
        let note = |why| Err(Refusal::Note(why));
        let rows: Vec<(&str, &Error, Case, Result<Duration, Refusal>)> = vec![
            ("transient: the backoff", &unavailable, CASE, Ok(SEC)),
            ("a rate limit: its Retry-After", &limited, CASE, Ok(5 * SEC)),
            ("not retryable", &bad, CASE, Err(Refusal::Quiet)),
            ("the server forbids", &forbidden, CASE, note(ServerForbids)),
            (
                "x-should-retry: false",
                &should_not,
                CASE,
                note(ShouldNotRetry),
            ),
            (
                "the retry cap",
                &unavailable,
                Case {
                    attempts: 4,
                    ..CASE
                },
                note(MaxRetries { max: 3 }),
            ),
            (
                "a POST after a 503: maybe processed",
                &unavailable,
                Case { post: true, ..CASE },
                note(NotIdempotent {
                    method: Method::POST,
                }),
            ),
            (
                "a POST after a 429: refused at the door",
                &limited,
                Case { post: true, ..CASE },
                Ok(5 * SEC),
            ),
            (
                "a POST declared idempotent",
                &unavailable,
                Case {
                    post: true,
                    declared_idempotent: true,
                    ..CASE
                },
                Ok(SEC),
            ),
            (
                "a Retry-After over the bound",
                &too_long,
                CASE,
                note(RetryAfterTooLong {
                    asked: 120 * SEC,
                    max: 30 * SEC,
                }),
            ),
            (
                "a body that cannot be replayed",
                &unavailable,
                Case {
                    replayable: false,
                    ..CASE
                },
                note(BodyNotReplayable(NotReplayable::TooLarge)),
            ),
            (
                "the same bare RESOURCE_EXHAUSTED again",
                &bare,
                Case {
                    exhausted_before: true,
                    ..CASE
                },
                note(ExhaustedAgain),
            ),
            ("a first bare RESOURCE_EXHAUSTED", &bare, CASE, Ok(SEC)),
            (
                "the deadline passed",
                &unavailable,
                Case {
                    left: Some(Duration::ZERO),
                    ..CASE
                },
                Err(Refusal::Deadline(DeadlinePassed { limit: 10 * SEC })),
            ),
            (
                "a wait past the deadline",
                &limited,
                Case {
                    left: Some(2 * SEC),
                    ..CASE
                },
                Err(Refusal::Deadline(DeadlineOverrun {
                    wait: 5 * SEC,
                    limit: 10 * SEC,
                    left: 2 * SEC,
                })),
            ),
            (
                "a gRPC call ends at its deadline",
                &limited,
                Case {
                    left: Some(2 * SEC),
                    grpc_deadline: true,
                    ..CASE
                },
                Err(Refusal::AtDeadline),
            ),
            (
                "a spent budget waited for",
                &unavailable,
                Case {
                    budget: Some(Ok(3 * SEC)),
                    ..CASE
                },
                Ok(3 * SEC),
            ),
            (
                "an exhausted budget",
                &unavailable,
                Case {
                    budget: Some(Err(None)),
                    ..CASE
                },
                note(BudgetExhausted),
            ),
            (
                "a budget that would outlast the deadline",
                &unavailable,
                Case {
                    budget: Some(Err(Some(4 * SEC))),
                    left: Some(3 * SEC),
                    ..CASE
                },
                Err(Refusal::Deadline(DeadlineOverrun {
                    wait: 4 * SEC,
                    limit: 10 * SEC,
                    left: 3 * SEC,
                })),
            ),
            (
                "no budget at all",
                &unavailable,
                Case {
                    budget: None,
                    ..CASE
                },
                Ok(SEC),
            ),
        ];
        for (what, err, case, want) in rows {
            assert_eq!(run(err, case), want, "{what}");
        }
    }
}
