//! What one answer means, judged once: [`Verdict`].

use crate::{
    classify::Disposition, code::ErrorCode, contract::ErrorContract, contract::OutageSignals,
};
use http::StatusCode;

/// What the contract makes of one answer: whether the request is sent again (and after
/// what), what the answer does to its path's gate, and whether it proves the server did not
/// process the request. Judged once, by the [`ErrorContract`] of the layer that decodes the
/// answer or makes the failure (see [`contract`](crate::contract)); every layer above reads it.
///
/// ```
/// use http::{HeaderMap, StatusCode};
/// use tower_api_retry::{ApiError, Disposition, Error};
///
/// let body = br#"{"error": {"code": "RATE_LIMITED", "message": "slow down"}}"#;
/// let err = Error::from(ApiError::decode(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), body));
/// let verdict = err.verdict();
/// assert_eq!(verdict.disposition(), Disposition::RateLimited);
/// assert!(verdict.closes_gate() && verdict.proves_unprocessed());
/// assert_eq!(verdict.outage_signal(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// What a careful caller does, the server's own word heeded.
    pub(crate) disposition: Disposition,
    /// The contract's answer before the server's own word (`x-should-retry`, pushback).
    pub(crate) class: Disposition,
    pub(crate) gate: Gate,
    pub(crate) unprocessed: Unprocessed,
    /// The contract declared the error's code.
    pub(crate) declared: bool,
}

/// What an answer does to its path's gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Nothing.
    Stays,
    /// Closes it for the answer's hint. `bare`: a gRPC `RESOURCE_EXHAUSTED` that names no
    /// wait, which the same request's second such answer shows to be its own.
    Closes { bare: bool },
    /// Counts toward an outage of the path.
    Outage(OutageSignals),
}

/// What an answer proves about the request's effect on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unprocessed {
    /// Nothing: the server may have acted on it.
    Unknown,
    /// It had no effect: never sent, refused at the door, or the server asked for it again.
    Proven,
    /// A gRPC server's `UNAVAILABLE`, which gRPC's status-code guide defines as the code to
    /// retry: proof only for a retry layer that takes it for one.
    GrpcUnavailable,
}

impl Verdict {
    /// Replaced as soon as an error is made: what no answer means.
    pub(crate) const PENDING: Verdict = Verdict {
        disposition: Disposition::DoNotRetry,
        class: Disposition::DoNotRetry,
        gate: Gate::Stays,
        unprocessed: Unprocessed::Unknown,
        declared: false,
    };

    /// What a careful caller does with the error: [`Error::disposition`](crate::Error::disposition).
    pub fn disposition(&self) -> Disposition {
        self.disposition
    }

    /// `true` when the answer closes its path's rate-limit gate: a `429` whatever its code,
    /// a rate limit, or `REFRESH_IN_PROGRESS`.
    pub fn closes_gate(&self) -> bool {
        matches!(self.gate, Gate::Closes { .. })
    }

    /// The outage signal the answer is, if it is one (see [`OutageSignals`]).
    pub fn outage_signal(&self) -> Option<OutageSignals> {
        match self.gate {
            Gate::Outage(signal) => Some(signal),
            _ => None,
        }
    }

    /// `true` when the answer proves the server did not process the request: it was never
    /// sent, the server turned it away at the door (a rate limit, `REFRESH_IN_PROGRESS`), or
    /// it asked for the request again (`x-should-retry: true`). Such a request may be sent
    /// again even when it is not idempotent.
    pub fn proves_unprocessed(&self) -> bool {
        self.unprocessed == Unprocessed::Proven
    }

    /// [`proves_unprocessed`](Self::proves_unprocessed), or with `grpc_unavailable`, a gRPC
    /// server's `UNAVAILABLE`.
    pub(crate) fn unprocessed(&self, grpc_unavailable: bool) -> bool {
        match self.unprocessed {
            Unprocessed::Proven => true,
            Unprocessed::GrpcUnavailable => grpc_unavailable,
            Unprocessed::Unknown => false,
        }
    }

    /// A gRPC `RESOURCE_EXHAUSTED` that closes the gate and names no wait: what a rate limit
    /// that says nothing more answers, and also what a gRPC library answers of its own to a
    /// message over its size limit. The same request's next answer tells the two apart.
    pub(crate) fn is_bare_exhaustion(&self) -> bool {
        self.gate == Gate::Closes { bare: true }
    }
}

/// What the contract is asked about an error: the facts its verdict depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Answer<'a> {
    pub(crate) code: &'a ErrorCode,
    pub(crate) status: Option<StatusCode>,
    /// What the built-in table says, before any declared code or the server's own word.
    pub(crate) builtin: Disposition,
    /// The request may have reached the server.
    pub(crate) sent: bool,
    /// The answer names a wait (`Retry-After`, a gRPC pushback).
    pub(crate) names_wait: bool,
    pub(crate) from: Origin,
}

/// Who gave the answer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Origin {
    /// The server, in a response.
    Server {
        /// It forbade a retry (`x-should-retry: false`, a negative pushback).
        forbids: bool,
        /// `x-should-retry` / `Stripe-Should-Retry`, if sent.
        should_retry: Option<bool>,
        /// A gRPC status.
        grpc: bool,
        /// The disposition a contract declared when the answer was decoded.
        declared: Option<Disposition>,
    },
    /// The transport: the request failed before an answer.
    Transport,
    /// This crate: a closed gate, a deadline, a check of the response.
    Here { gate_closed: bool },
}

impl ErrorContract {
    /// The verdict on an answer: the one place where what an answer means is decided.
    pub(crate) fn judge(&self, answer: &Answer<'_>) -> Verdict {
        let code = answer.code;
        let (forbids, should_retry, grpc, decoded) = match answer.from {
            Origin::Server {
                forbids,
                should_retry,
                grpc,
                declared,
            } => (forbids, should_retry, grpc, declared),
            Origin::Transport | Origin::Here { .. } => (false, None, false, None),
        };
        // A failure this crate made is what the built-in table says; a server's answer or a
        // transport failure may be declared.
        let declared = match answer.from {
            Origin::Here { .. } => None,
            _ => self.declared(code).or(decoded),
        };
        let class = declared.unwrap_or(answer.builtin);
        let disposition = heed_server(class, forbids, should_retry);
        let at_the_door =
            class == Disposition::RateLimited || code == &ErrorCode::RefreshInProgress;
        let gate = if matches!(answer.from, Origin::Here { gate_closed: true }) {
            Gate::Stays
        } else if answer.status == Some(StatusCode::TOO_MANY_REQUESTS) || at_the_door {
            Gate::Closes {
                bare: code == &ErrorCode::ResourceExhausted && !answer.names_wait && grpc,
            }
        } else {
            match self.outage_of(answer, class, forbids, declared) {
                Some(signal) => Gate::Outage(signal),
                None => Gate::Stays,
            }
        };
        let unprocessed = if !answer.sent || at_the_door || should_retry == Some(true) {
            Unprocessed::Proven
        } else if grpc && code == &ErrorCode::Unavailable {
            Unprocessed::GrpcUnavailable
        } else {
            Unprocessed::Unknown
        };
        Verdict {
            disposition,
            class,
            gate,
            unprocessed,
            declared: declared.is_some(),
        }
    }

    /// The outage signal an answer is, if any: a server's transient answer, or a refused
    /// connection. A transport failure after the request may have left is none.
    fn outage_of(
        &self,
        answer: &Answer<'_>,
        class: Disposition,
        forbids: bool,
        declared: Option<Disposition>,
    ) -> Option<OutageSignals> {
        match answer.from {
            Origin::Transport => {
                let refused = !answer.sent
                    && class.is_retryable()
                    && self.outages.signals.contains(OutageSignals::REFUSED);
                refused.then_some(OutageSignals::REFUSED)
            }
            Origin::Here { .. } => None,
            Origin::Server { .. } => {
                if forbids || declared.is_some_and(|d| d != Disposition::Retry) {
                    return None;
                }
                self.outage_signal(answer.status, answer.code)
            }
        }
    }
}

/// A class as the server's word leaves it: a retryable class the server forbade retrying is
/// `DoNotRetry`; any other class the server asked to be retried (`x-should-retry: true`) is
/// `Retry`. A refusal wins over a request to retry.
pub(crate) fn heed_server(
    class: Disposition,
    forbids: bool,
    should_retry: Option<bool>,
) -> Disposition {
    if forbids {
        if class.is_retryable() {
            Disposition::DoNotRetry
        } else {
            class
        }
    } else if should_retry == Some(true) && !class.is_retryable() {
        Disposition::Retry
    } else {
        class
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{contract::OutageRule, error::ApiError, error::Error};
    use Disposition::*;
    use http::{HeaderMap, HeaderValue};

    /// What a verdict says, as one row: disposition, gate, proves unprocessed.
    type Row = (Disposition, Gate, bool);

    const STAYS: Gate = Gate::Stays;
    const CLOSES: Gate = Gate::Closes { bare: false };

    fn row(err: &Error) -> Row {
        let v = err.verdict();
        (v.disposition(), v.gate, v.proves_unprocessed())
    }

    fn answer(status: u16, body: &str, headers: &[(&'static str, &'static str)]) -> Error {
        let mut h = HeaderMap::new();
        for (name, value) in headers {
            h.insert(*name, HeaderValue::from_static(value));
        }
        let status = StatusCode::from_u16(status).unwrap();
        Error::from_api(ApiError::decode(status, &h, body.as_bytes()))
    }

    fn envelope(status: u16, code: &str) -> Error {
        answer(
            status,
            &format!(r#"{{"code": "{code}", "message": "m"}}"#),
            &[],
        )
    }

    /// Every row of both error pages, plus declared codes, to the verdict the contract gives.
    #[test]
    fn every_documented_answer_to_its_verdict() {
        let outage = |s| Gate::Outage(s);
        // The status page (`{"detail": ...}` bodies).
        let statuses: &[(u16, Row)] = &[
            (400, (FixRequest, STAYS, false)),
            (401, (Reauthenticate, STAYS, false)),
            (403, (Forbidden, STAYS, false)),
            (404, (FixRequest, STAYS, false)),
            (409, (FixRequest, STAYS, false)),
            (429, (RateLimited, CLOSES, true)),
            (500, (Retry, STAYS, false)),
            (502, (Retry, outage(OutageSignals::BAD_GATEWAY), false)),
            (503, (Retry, outage(OutageSignals::UNAVAILABLE), false)),
            (504, (Retry, outage(OutageSignals::GATEWAY_TIMEOUT), false)),
        ];
        for (status, want) in statuses {
            let err = answer(*status, r#"{"detail": "Space is not active"}"#, &[]);
            assert_eq!(row(&err), *want, "{status}");
        }
        // The code tables (the envelope, over HTTP; the status the page names, or 200 for
        // an MCP tool error's code).
        let codes: &[(&str, u16, Row)] = &[
            ("INVALID_ARGUMENT", 400, (FixRequest, STAYS, false)),
            ("NOT_FOUND", 404, (FixRequest, STAYS, false)),
            ("ALREADY_EXISTS", 409, (FixRequest, STAYS, false)),
            ("PERMISSION_DENIED", 403, (Forbidden, STAYS, false)),
            ("UNAUTHENTICATED", 401, (Reauthenticate, STAYS, false)),
            ("RESOURCE_EXHAUSTED", 429, (RateLimited, CLOSES, true)),
            ("RESOURCE_EXHAUSTED", 200, (RateLimited, CLOSES, true)),
            ("FAILED_PRECONDITION", 400, (FixRequest, STAYS, false)),
            (
                "UNAVAILABLE",
                200,
                (Retry, outage(OutageSignals::UNAVAILABLE), false),
            ),
            (
                "DEADLINE_EXCEEDED",
                200,
                (Retry, outage(OutageSignals::DEADLINE_EXCEEDED), false),
            ),
            ("INTERNAL", 500, (Retry, STAYS, false)),
            ("UNKNOWN", 500, (Retry, STAYS, false)),
            ("INVALID_API_KEY", 401, (Reauthenticate, STAYS, false)),
            ("KEY_REVOKED", 401, (Reauthenticate, STAYS, false)),
            ("KEY_AUTO_DISABLED", 401, (Reauthenticate, STAYS, false)),
            ("KEY_EXPIRED", 401, (Reauthenticate, STAYS, false)),
            (
                "AGENT_DISCONNECTED_CODING_TOOL",
                401,
                (Reauthenticate, STAYS, false),
            ),
            (
                "AGENT_DISCONNECTED_AUTOMATED",
                401,
                (Reauthenticate, STAYS, false),
            ),
            ("AGENT_BLOCKED", 401, (NeedsHuman, STAYS, false)),
            ("SUBSCRIPTION_CANCELED", 409, (NeedsHuman, STAYS, false)),
            ("NO_ACTIVE_USER", 409, (NeedsHuman, STAYS, false)),
            ("KEY_ROTATION_FAILED", 422, (NeedsHuman, STAYS, false)),
            ("REFRESH_IN_PROGRESS", 503, (Retry, CLOSES, true)),
            ("AGENT_KEY_CONFLICT", 403, (Forbidden, STAYS, false)),
            ("TRUST_REQUIRED", 403, (NeedsHuman, STAYS, false)),
        ];
        for (code, status, want) in codes {
            assert_eq!(row(&envelope(*status, code)), *want, "{code} at {status}");
        }
        // The 409 `agent_connected` conflict is a request to fix (release, or force).
        let conflict = r#"{"error": "agent_connected", "message": "m", "agent_id": "agt_1"}"#;
        assert_eq!(row(&answer(409, conflict, &[])), (FixRequest, STAYS, false));

        // Declared codes, judged by the contract of the layer that decodes them.
        let contract = ErrorContract::new()
            .code("QUOTA_EXCEEDED", RateLimited)
            .code("TEMPORARILY_UNAVAILABLE", Retry)
            .code("ACCOUNT_LOCKED", NeedsHuman)
            .code("UNAVAILABLE", DoNotRetry);
        let declared: &[(&str, u16, Row)] = &[
            ("QUOTA_EXCEEDED", 400, (RateLimited, CLOSES, true)),
            ("TEMPORARILY_UNAVAILABLE", 400, (Retry, STAYS, false)),
            (
                "TEMPORARILY_UNAVAILABLE",
                503,
                (Retry, outage(OutageSignals::UNAVAILABLE), false),
            ),
            ("ACCOUNT_LOCKED", 503, (NeedsHuman, STAYS, false)),
            // A 429 closes whatever its code says.
            ("ACCOUNT_LOCKED", 429, (NeedsHuman, CLOSES, false)),
            ("UNAVAILABLE", 503, (DoNotRetry, STAYS, false)),
        ];
        for (code, status, want) in declared {
            let err = envelope(*status, code).judged(&contract);
            assert_eq!(row(&err), *want, "declared {code} at {status}");
            assert!(err.verdict().declared, "{code}");
        }
        // The built-in contract knows none of them.
        assert_eq!(
            row(&envelope(400, "QUOTA_EXCEEDED")),
            (FixRequest, STAYS, false)
        );
    }

    /// The server's own word, failures made here, and the outage rule.
    #[test]
    fn the_servers_word_and_failures_made_here() {
        // `x-should-retry: true` proves the request unprocessed; `false` forbids a retry but
        // a 429 still closes the path.
        let again = answer(409, "{}", &[("x-should-retry", "true")]);
        assert_eq!(row(&again), (Retry, STAYS, true));
        let never = answer(429, "{}", &[("x-should-retry", "false")]);
        assert_eq!(row(&never), (DoNotRetry, CLOSES, true));
        let never = answer(503, "{}", &[("x-should-retry", "false")]);
        assert_eq!(row(&never), (DoNotRetry, STAYS, false));
        // A gRPC server's UNAVAILABLE is proof only for a layer that takes it for one.
        let grpc = answer(200, "", &[("grpc-status", "14")]);
        assert!(!grpc.verdict().proves_unprocessed() && grpc.verdict().unprocessed(true));
        // A bare RESOURCE_EXHAUSTED over gRPC, and one naming its wait.
        let bare = answer(200, "", &[("grpc-status", "8")]);
        assert_eq!(bare.verdict().gate, Gate::Closes { bare: true });
        let pushback = answer(
            200,
            "",
            &[("grpc-status", "8"), ("grpc-retry-pushback-ms", "500")],
        );
        assert_eq!(pushback.verdict().gate, CLOSES);
        // A refused connection was never sent, and is an outage signal; a reset is neither.
        let refused = Error::transport(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            row(&refused),
            (Retry, Gate::Outage(OutageSignals::REFUSED), true)
        );
        let reset = Error::transport(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert_eq!(row(&reset), (Retry, STAYS, false));
        // A closed gate: a rate limit never sent, which closes nothing more.
        let held = Error::gate_closed(std::time::Duration::from_secs(1));
        assert_eq!(row(&held), (RateLimited, STAYS, true));
        // A declared code never changes a failure made here.
        let contract = ErrorContract::new().code("RESOURCE_EXHAUSTED", NeedsHuman);
        assert_eq!(row(&held.judged(&contract)), (RateLimited, STAYS, true));
        // With outages off, nothing is a signal: not a server's 503, nor a refused connection
        // the layer with that contract made.
        let off = ErrorContract::new().outages(OutageRule::OFF);
        let refused = Error::transport_with(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            &crate::text::Credentials::new(),
            &off,
        );
        assert_eq!(row(&refused), (Retry, STAYS, true));
        assert_eq!(
            row(&envelope(503, "UNAVAILABLE").judged(&off)),
            (Retry, STAYS, false)
        );
    }
}
