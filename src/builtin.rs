//! What is specific to the two pages of the built-in contract, beyond their codes and body
//! shapes: the `agent_connected` conflict and its force-rotate header, and the
//! `currentObjective` budget block with credits shown as dollars. The layers never act on
//! these; they are for the caller, who decides.
//!
//! A 409 `agent_connected` is read by [`ApiError::agent_connected`]: see [`AgentConnected`].
//!
//! # Budgets
//!
//! Agent work runs against a credit budget, 1 credit = $0.01, and the `currentObjective`
//! block (returned by `usage_stats` and on every checkpoint) tells the agent how to pace
//! itself:
//!
//! | signal | [`BudgetState`] | what to do |
//! | --- | --- | --- |
//! | `remainingPct` > 30 | [`Normal`](BudgetState::Normal) | carry on |
//! | `remainingPct` ≤ 30 | [`SlowDown`](BudgetState::SlowDown) | stop opening new branches |
//! | `remainingPct` ≤ 10 | [`Finalize`](BudgetState::Finalize) | ship a partial result now |
//! | `abortSignal` present | [`Abort`](BudgetState::Abort) | post one summary, mark blocked, stop |
//!
//! ```
//! use tower_api_retry::builtin::{BudgetState, Credits, Objective};
//!
//! let block = serde_json::json!({"allocated": 500, "spent": 430, "remaining": 70, "remainingPct": 14});
//! let objective = Objective::from_value(&block).unwrap();
//! assert_eq!(objective.state(), BudgetState::SlowDown);
//! assert_eq!(objective.remaining.unwrap().to_string(), "$0.70");
//! assert_eq!(Credits(120).to_string(), "$1.20");
//! ```

use crate::{code::ErrorCode, error::ApiError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// A number of credits. One credit is one US cent; [`Display`](fmt::Display) shows dollars,
/// as the page asks ("phrase spend to humans as a dollar amount, never as a raw credit count").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Credits(pub i64);

impl fmt::Display for Credits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let cents = self.0.unsigned_abs();
        write!(f, "{sign}${}.{:02}", cents / 100, cents % 100)
    }
}

/// How an agent should pace itself, from the `currentObjective` block.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum BudgetState {
    /// More than 30 % left: carry on.
    Normal,
    /// `remainingPct` ≤ 30: slow down, stop opening new branches.
    SlowDown,
    /// `remainingPct` ≤ 10: finalize now, ship a partial result.
    Finalize,
    /// `abortSignal` present: post one final summary, mark the task blocked, stop the loop.
    Abort,
}

/// The `currentObjective` block: allocated, spent and remaining credits, `remainingPct`, and
/// the optional `abortSignal`. Unknown fields are ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
#[non_exhaustive]
pub struct Objective {
    /// Credits allocated to the objective.
    pub allocated: Option<Credits>,
    /// Credits spent so far.
    pub spent: Option<Credits>,
    /// Credits remaining.
    pub remaining: Option<Credits>,
    /// Percentage of the budget remaining.
    pub remaining_pct: Option<f64>,
    /// Present (any value but `null`) when the budget was exhausted mid-session.
    pub abort_signal: Option<serde_json::Value>,
}

impl Objective {
    /// Reads the block from a `usage_stats` or checkpoint response: either the block itself or
    /// any object with a `currentObjective` member. `None` only when there is no object.
    ///
    /// Field by field and tolerant: a member of an unexpected type (`"spent": 12.5`,
    /// `"remainingPct": "low"`) is read as well as it can be or left `None`, so that one odd
    /// field can never hide an `abortSignal`.
    pub fn from_value(value: &serde_json::Value) -> Option<Objective> {
        let block = value.get("currentObjective").unwrap_or(value);
        let block = block.as_object()?;
        let number = |name: &str| {
            match block.get(name)? {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
        };
        // Credits are whole cents; a fractional count is rounded (saturating at i64's range).
        let credits = |name: &str| number(name).map(|n| Credits(n.round() as i64));
        Some(Objective {
            allocated: credits("allocated"),
            spent: credits("spent"),
            remaining: credits("remaining"),
            remaining_pct: number("remainingPct"),
            abort_signal: block.get("abortSignal").filter(|v| !v.is_null()).cloned(),
        })
    }

    /// How to pace the work. A missing or non-finite percentage is read as "unknown" and
    /// gives `Normal` unless the abort signal is set: the signal, not the arithmetic, is what
    /// stops work.
    pub fn state(&self) -> BudgetState {
        let abort = self
            .abort_signal
            .as_ref()
            .is_some_and(|v| !v.is_null() && v != &serde_json::Value::Bool(false));
        match self.remaining_pct.filter(|p| p.is_finite()) {
            _ if abort => BudgetState::Abort,
            Some(p) if p <= 10.0 => BudgetState::Finalize,
            Some(p) if p <= 30.0 => BudgetState::SlowDown,
            _ => BudgetState::Normal,
        }
    }
}

impl ApiError {
    /// The documented remedies of a 409 `agent_connected`, or `None` for any other error.
    pub fn agent_connected(&self) -> Option<AgentConnected<'_>> {
        (self.code() == &ErrorCode::AgentConnected).then_some(AgentConnected { error: self })
    }
}

/// The header that forces a key rotation past a connected agent.
pub(crate) const X_FORCE_ROTATE: http::HeaderName = http::HeaderName::from_static("x-force-rotate");

/// A 409 `agent_connected`: the agent is connected to another installation.
///
/// The page documents two remedies, and this crate applies neither on its own: a rotation
/// disconnects somebody, so it is the caller's decision.
///
/// 1. Release the agent first: `POST` [`release_path`](Self::release_path), then rotate.
/// 2. Send the rotation again with `X-Force-Rotate: true` ([`force_rotate`](Self::force_rotate)).
///
/// ```
/// use http::{Request, StatusCode};
/// use tower_api_retry::ApiError;
///
/// let err = ApiError::decode(StatusCode::CONFLICT, &Default::default(),
///     br#"{"error":"agent_connected","message":"Release it first or retry with X-Force-Rotate: true.","agent_id":"agt_7"}"#);
/// let conflict = err.agent_connected().unwrap();
/// assert_eq!(conflict.agent_id(), Some("agt_7"));
/// assert_eq!(conflict.release_path().as_deref(), Some("/api/actors/agt_7/release"));
///
/// let mut retry = Request::post("/api/actors/agt_7/rotate-key").body(()).unwrap();
/// conflict.force_rotate(&mut retry);
/// assert_eq!(retry.headers()["x-force-rotate"], "true");
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AgentConnected<'a> {
    error: &'a ApiError,
}

impl<'a> AgentConnected<'a> {
    /// The connected agent's id (`agent_id`).
    pub fn agent_id(&self) -> Option<&'a str> {
        self.error.field("agent_id").and_then(Value::as_str)
    }

    /// `/api/actors/{agent_id}/release`, the endpoint that releases the agent. The id is
    /// percent-encoded as one path segment: unreserved characters (`-`, `.`, `_`, `~`) are kept,
    /// `/`, `?`, `%` and everything else that could change the path are encoded, and an id that
    /// is a whole dot-segment (`.` or `..`) has its dots encoded.
    pub fn release_path(&self) -> Option<String> {
        let id = self.agent_id().filter(|id| !id.is_empty())?;
        // A whole segment of `.` or `..` would climb out of `/api/actors/`: encode its dots.
        let id = if id == "." || id == ".." {
            id.replace('.', "%2E")
        } else {
            percent_encoding::utf8_percent_encode(id, crate::text::NOT_UNRESERVED).to_string()
        };
        Some(format!("/api/actors/{id}/release"))
    }

    /// Adds `X-Force-Rotate: true` to a request (a new rotation request the caller sends).
    pub fn force_rotate<B>(&self, request: &mut http::Request<B>) {
        request
            .headers_mut()
            .insert(X_FORCE_ROTATE, http::HeaderValue::from_static("true"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;
    use serde_json::json;

    #[test]
    fn release_path_keeps_unreserved_and_encodes_the_rest() {
        let path = |id: &str| {
            let body =
                serde_json::json!({"error": "agent_connected", "message": "m", "agent_id": id});
            let err = ApiError::decode(
                StatusCode::CONFLICT,
                &Default::default(),
                body.to_string().as_bytes(),
            );
            err.agent_connected().unwrap().release_path().unwrap()
        };
        assert_eq!(path("agt_7-a~b"), "/api/actors/agt_7-a~b/release");
        assert_eq!(path("../x?y#z"), "/api/actors/..%2Fx%3Fy%23z/release");
        assert_eq!(path("agt_..."), "/api/actors/agt_.../release");
        // A dot-segment on its own would leave /api/actors/: its dots are encoded.
        assert_eq!(path(".."), "/api/actors/%2E%2E/release");
        assert_eq!(path("."), "/api/actors/%2E/release");
        let empty = ApiError::decode(
            StatusCode::CONFLICT,
            &Default::default(),
            br#"{"error": "agent_connected", "message": "m", "agent_id": ""}"#,
        );
        assert_eq!(
            empty.agent_connected().unwrap().release_path(),
            None,
            "no //release"
        );
    }

    #[test]
    fn dollars() {
        for (c, s) in [
            (7, "$0.07"),
            (120, "$1.20"),
            (0, "$0.00"),
            (100_000, "$1000.00"),
            (-5, "-$0.05"),
        ] {
            assert_eq!(Credits(c).to_string(), s);
        }
        assert_eq!(Credits(i64::MIN).to_string(), "-$92233720368547758.08");
    }

    #[test]
    fn the_signal_table() {
        let cases = [
            (json!({"remainingPct": 80}), BudgetState::Normal),
            (json!({"remainingPct": 30.5}), BudgetState::Normal),
            (json!({"remainingPct": 30}), BudgetState::SlowDown),
            (json!({"remainingPct": 11}), BudgetState::SlowDown),
            (json!({"remainingPct": 10}), BudgetState::Finalize),
            (json!({"remainingPct": 0}), BudgetState::Finalize),
            (
                json!({"remainingPct": 50, "abortSignal": {"reason": "exhausted"}}),
                BudgetState::Abort,
            ),
            (
                json!({"remainingPct": 50, "abortSignal": true}),
                BudgetState::Abort,
            ),
            (
                json!({"remainingPct": 50, "abortSignal": null}),
                BudgetState::Normal,
            ),
            (
                json!({"currentObjective": {"remainingPct": 5, "remaining": 3}}),
                BudgetState::Finalize,
            ),
            (json!({}), BudgetState::Normal),
        ];
        for (v, want) in cases {
            assert_eq!(Objective::from_value(&v).unwrap().state(), want, "{v}");
        }
        let o = Objective::from_value(&json!({"currentObjective": {"allocated": 1000, "spent": 993, "remaining": 7, "remainingPct": 0.7}})).unwrap();
        assert_eq!(o.remaining.unwrap().to_string(), "$0.07");
        assert_eq!(o.allocated.unwrap().to_string(), "$10.00");
    }

    #[test]
    fn odd_fields_never_hide_the_abort_signal() {
        let o = Objective::from_value(&json!({"currentObjective": {
            "spent": 12.5, "remaining": "7", "remainingPct": "low", "abortSignal": {"reason": "exhausted"}
        }}))
        .unwrap();
        assert_eq!(o.state(), BudgetState::Abort);
        assert_eq!(
            (o.spent, o.remaining, o.remaining_pct),
            (Some(Credits(13)), Some(Credits(7)), None)
        );
        let o = Objective::from_value(&json!({"remainingPct": "8"})).unwrap();
        assert_eq!(o.state(), BudgetState::Finalize);
        let huge: serde_json::Value =
            serde_json::from_str(r#"{"remainingPct": 1e308, "spent": 1e300}"#).unwrap();
        let o = Objective::from_value(&huge).unwrap();
        assert_eq!(
            (o.state(), o.spent),
            (BudgetState::Normal, Some(Credits(i64::MAX)))
        );
        assert!(Objective::from_value(&json!([1, 2])).is_none());
        assert!(Objective::from_value(&json!("x")).is_none());
    }
}
