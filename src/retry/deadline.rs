//! The call's deadline across attempts, and gRPC's `grpc-timeout` header.

use http::{HeaderMap, HeaderName, HeaderValue};
use std::time::Duration;
use tokio::time::Instant;

/// gRPC's deadline header: the time the caller still waits, as `1*8DIGIT` and a unit.
pub(crate) const GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// The largest `TimeoutValue` gRPC allows: 8 digits.
const MAX_VALUE: u128 = 99_999_999;

/// Parses a `grpc-timeout` value (`TimeoutValue TimeoutUnit`: at most 8 digits, then one of
/// `H`, `M`, `S`, `m`, `u`, `n`). `None` for anything else.
pub(crate) fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = digits
        .iter()
        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
    Some(match unit {
        b'H' => Duration::from_secs(n * 60 * 60),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Encodes `left` as a `grpc-timeout` value in the finest unit whose value fits in 8 digits,
/// rounded up (as grpc-go does), so the server's deadline is never earlier than the client's.
pub(crate) fn encode_grpc_timeout(left: Duration) -> HeaderValue {
    let nanos = left.as_nanos();
    const UNITS: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60 * 1_000_000_000, 'M'),
        (60 * 60 * 1_000_000_000, 'H'),
    ];
    let (value, unit) = UNITS
        .iter()
        .map(|&(per, unit)| (nanos.div_ceil(per), unit))
        .find(|&(value, _)| value <= MAX_VALUE)
        .unwrap_or((MAX_VALUE, 'H'));
    HeaderValue::try_from(format!("{value}{unit}")).expect("digits and a letter")
}

/// The instant by which a call must be answered, in a request's extensions: every wait the
/// request meets below the [`RetryLayer`](super::RetryLayer) ends there, the rate-limit
/// gate's included. The retry layer puts it on every attempt of a call with a deadline;
/// without one, insert it yourself. A request still waiting at a rate-limit gate when its
/// deadline comes fails there, unsent, with `DEADLINE_EXCEEDED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallDeadline(Instant);

impl CallDeadline {
    /// A deadline at `at`.
    pub const fn new(at: Instant) -> CallDeadline {
        CallDeadline(at)
    }

    /// When the call must be answered.
    pub const fn at(&self) -> Instant {
        self.0
    }

    /// The deadline `request` carries, if any.
    pub(crate) fn of<B>(request: &http::Request<B>) -> Option<CallDeadline> {
        request.extensions().get::<CallDeadline>().copied()
    }
}

/// The end of a call's retry schedule, in a retry's extensions: no wait for an outage below
/// the [`RetryLayer`](super::RetryLayer) runs past it.
///
/// The retry layer puts it on every retry: the nominal waits left of the schedule, less what
/// earlier attempts waited at a gate (a first attempt carries none; the gate's
/// [`max_outage_wait`](crate::RateLimitBackoffLayer::max_outage_wait) bounds it, the whole
/// schedule under [`ApiContractLayer`](crate::ApiContractLayer)). A request still held for
/// an outage then fails there, unsent, as a closed gate, and the retry layer returns the
/// server's last answer with
/// [`NotRetried::GateOutlastsSchedule`](crate::NotRetried::GateOutlastsSchedule). Unlike a
/// [`CallDeadline`], it never makes an error `DEADLINE_EXCEEDED`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleEnd(Instant);

impl ScheduleEnd {
    /// A schedule that ends at `at`.
    pub const fn new(at: Instant) -> ScheduleEnd {
        ScheduleEnd(at)
    }

    /// When the schedule ends.
    pub const fn at(&self) -> Instant {
        self.0
    }
}

/// A call's deadline: the earlier of the request's own `grpc-timeout` and the layer's
/// [`deadline`](super::RetryLayer::deadline), both measured from when the call entered the
/// retry layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    /// The whole allowance, for messages.
    pub(crate) limit: Duration,
    /// A gRPC call: each attempt carries the time left in `grpc-timeout`, is cut off at the
    /// deadline, and the call ends with `DEADLINE_EXCEEDED`.
    pub(crate) grpc: bool,
    /// The layer's deadline is earlier than the request's own `grpc-timeout` (or the request
    /// has none): the first attempt must carry it too.
    pub(crate) from_layer: bool,
}

impl Deadline {
    /// The deadline of a call with these headers entering the layer at `now()` (read only
    /// when it has one), or `None`.
    pub(crate) fn of(
        layer: Option<Duration>,
        headers: &HeaderMap,
        now: impl FnOnce() -> Instant,
    ) -> Option<Deadline> {
        let own = headers.get(GRPC_TIMEOUT).and_then(parse_grpc_timeout);
        let (limit, from_layer) = match (own, layer) {
            (Some(own), Some(layer)) if layer < own => (layer, true),
            (Some(own), _) => (own, false),
            (None, Some(layer)) => (layer, true),
            (None, None) => return None,
        };
        let grpc = own.is_some() || crate::grpc::is_grpc(headers);
        let now = now();
        let at = now
            .checked_add(limit)
            .unwrap_or_else(|| now + crate::retry_after::MAX_HINT);
        Some(Deadline {
            at,
            limit,
            grpc,
            from_layer,
        })
    }

    /// The time left, zero once past.
    pub(crate) fn left(&self, now: Instant) -> Duration {
        self.at.saturating_duration_since(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit_and_rejects_the_rest() {
        let p = |s: &'static str| parse_grpc_timeout(&HeaderValue::from_static(s));
        assert_eq!(p("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(p("2M"), Some(Duration::from_secs(120)));
        assert_eq!(p("3S"), Some(Duration::from_secs(3)));
        assert_eq!(p("1500m"), Some(Duration::from_millis(1500)));
        assert_eq!(p("99999999u"), Some(Duration::from_micros(99_999_999)));
        assert_eq!(p("0n"), Some(Duration::ZERO));
        assert_eq!(p("99999999H"), Some(Duration::from_secs(99_999_999 * 3600)));
        for bad in [
            "",
            "m",
            "100",
            "123456789m",
            "1.5S",
            "-1S",
            "+1S",
            "1s",
            "1 S",
            "1SS",
        ] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn encodes_in_the_finest_unit_that_fits_rounding_up() {
        let e = |d: Duration| encode_grpc_timeout(d).to_str().unwrap().to_owned();
        assert_eq!(e(Duration::ZERO), "0n");
        assert_eq!(e(Duration::from_nanos(99_999_999)), "99999999n");
        assert_eq!(e(Duration::from_millis(100)), "100000u");
        assert_eq!(e(Duration::from_millis(1500)), "1500000u");
        assert_eq!(e(Duration::from_nanos(1_500_000_001)), "1500001u");
        assert_eq!(e(Duration::from_secs(100_000)), "100000S");
        assert_eq!(e(Duration::from_secs(100_000_000)), "1666667M");
        assert_eq!(e(Duration::MAX), "99999999H");
        // Every encoding parses back to at least the time left, and less than one unit more.
        for ns in [
            1u64,
            999,
            1_000_001,
            123_456_789_012,
            7 * 3_600_000_000_000,
            u64::MAX,
        ] {
            let d = Duration::from_nanos(ns);
            let back = parse_grpc_timeout(&encode_grpc_timeout(d)).unwrap();
            assert!(back >= d && back - d <= d / 100_000, "{d:?} {back:?}");
        }
    }
}
