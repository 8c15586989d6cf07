//! The documented backoff schedule: 1 s, doubling, capped at 30 s, with a small random offset.
//!
//! [`Backoff`] is the pages' schedule, shared by the retry layer, the rate-limit gate and the
//! SSE reconnect loop. With the default jitter the offset is *added*: no wait is ever shorter
//! than the page's schedule.
//!
//! | retry | nominal | wait (default) |
//! | --- | --- | --- |
//! | 1st | 1 s | 1 s – 1.2 s |
//! | 2nd | 2 s | 2 s – 2.4 s |
//! | 3rd | 4 s | 4 s – 4.8 s |
//! | 4th | 8 s | 8 s – 9.6 s |
//! | 5th | 16 s | 16 s – 19.2 s |
//! | 6th and later | 30 s (the cap) | 24 s – 30 s |
//!
//! No wait exceeds [`max_delay`](Backoff::max_delay). At the cap, waits spread *below* it, so
//! a fleet of clients does not retry in lockstep every 30 s.
//!
//! ```
//! use std::time::Duration;
//! use tower_api_retry::backoff::{Backoff, Jitter};
//!
//! let backoff = Backoff::new(); // 1 s base, 30 s cap, up to +20 % jitter
//! assert_eq!(backoff.nominal(0), Duration::from_secs(1));
//! assert_eq!(backoff.nominal(2), Duration::from_secs(4));
//! assert_eq!(backoff.nominal(10), Duration::from_secs(30)); // capped
//!
//! let first = backoff.delay(0, None);
//! assert!(first >= Duration::from_secs(1) && first <= Duration::from_millis(1200));
//! let second = backoff.delay(1, None);
//! assert!(second >= Duration::from_secs(2) && second <= Duration::from_millis(2400));
//! let capped = backoff.delay(10, None);
//! assert!(capped >= Duration::from_secs(24) && capped <= Duration::from_secs(30));
//!
//! let none = Backoff::new().jitter(Jitter::None);
//! assert_eq!(none.delay(1, None), Duration::from_secs(2));
//! ```

use std::time::Duration;

/// How a nominal delay is randomised. Every strategy stays at or below the cap; only
/// [`Proportional`](Jitter::Proportional) (the default) and [`None`](Jitter::None) also stay at
/// or above the nominal schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the nominal delay. Only for tests: synchronised clients retry together.
    None,
    /// A small random offset added to the nominal delay (default `Proportional(0.2)`). With
    /// `fraction` `f` (clamped to `0.0..=1.0`; NaN counts as 0):
    ///
    /// - below the cap, uniform in `nominal ..= nominal × (1 + f)`, the top cut at the cap:
    ///   never shorter than the schedule;
    /// - at the cap, uniform in `cap × (1 − f) ..= cap`: still spread, never above the cap.
    Proportional(f64),
    /// Uniform in `0..=nominal` ("full jitter"). Waits may be far shorter than the schedule.
    Full,
    /// Half the nominal delay plus uniform in `0..=nominal/2` ("equal jitter"): between half
    /// the schedule and the schedule.
    Equal,
    /// Uniform in `base..=3 × previous delay` ("decorrelated jitter"), capped. It does not
    /// follow the doubling; the cap still holds.
    Decorrelated,
}

/// The backoff schedule. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// 1 s base, doubling, 30 s cap, up to +20 % jitter: the documented schedule.
    pub const fn new() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: Jitter::Proportional(0.2),
        }
    }

    /// The first delay (default 1 s).
    pub const fn base_delay(mut self, base: Duration) -> Backoff {
        self.base = base;
        self
    }

    /// The cap no delay exceeds (default 30 s). A cap below the base caps the base too.
    pub const fn max_delay(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// The jitter strategy (default [`Jitter::Proportional`]`(0.2)`: up to +20 %).
    pub const fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// The nominal delay before retry number `retry` (0-based): `base × 2^retry`, capped.
    /// Saturates for any `retry`; never overflows.
    pub fn nominal(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.base
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(self.max)
    }

    /// The jittered delay before retry number `retry` (0-based), given the previous delay
    /// (used by [`Jitter::Decorrelated`]).
    pub fn delay(&self, retry: u32, previous: Option<Duration>) -> Duration {
        self.delay_with(retry, previous, rand::random::<f64>())
    }

    /// [`delay`](Self::delay) with the random sample given: `unit` is a number in `0.0..=1.0`
    /// (clamped; NaN counts as 0.5). Pure, for tests and simulations.
    pub fn delay_with(&self, retry: u32, previous: Option<Duration>, unit: f64) -> Duration {
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        let nominal = self.nominal(retry);
        let d = match self.jitter {
            Jitter::None => nominal,
            Jitter::Proportional(fraction) => {
                let fraction = if fraction.is_nan() {
                    0.0
                } else {
                    fraction.clamp(0.0, 1.0)
                };
                if nominal < self.max {
                    // Below the cap: the offset is added, so no wait is shorter than the
                    // schedule; the cap cuts the top of the band.
                    let top = nominal
                        .saturating_add(mul_f64(nominal, fraction))
                        .min(self.max);
                    between(nominal, top, unit)
                } else {
                    // At the cap: spread below it, so retries do not re-synchronise there.
                    let bottom = self.max.saturating_sub(mul_f64(self.max, fraction));
                    between(bottom, self.max, unit)
                }
            }
            Jitter::Full => between(Duration::ZERO, nominal, unit),
            Jitter::Equal => between(nominal / 2, nominal, unit),
            Jitter::Decorrelated => {
                let prev = previous.unwrap_or(self.base).max(self.base);
                between(self.base, prev.saturating_mul(3), unit)
            }
        };
        d.min(self.max)
    }
}

/// `lo + (hi − lo) × unit`, exactly within `lo..=hi` (`lo <= hi`, `unit` in `0.0..=1.0`).
fn between(lo: Duration, hi: Duration, unit: f64) -> Duration {
    let span = hi.saturating_sub(lo);
    lo.saturating_add(mul_f64(span, unit).min(span))
}

/// `d × f` for a finite non-negative `f`, saturating instead of panicking.
fn mul_f64(d: Duration, f: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * f.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn the_documented_schedule() {
        let b = Backoff::new().jitter(Jitter::None);
        let got: Vec<_> = (0..7).map(|n| b.delay(n, None)).collect();
        assert_eq!(got, [S(1), S(2), S(4), S(8), S(16), S(30), S(30)]);
    }

    /// The table of the module docs, at both ends of the random sample.
    #[test]
    fn the_default_waits_are_the_schedule_plus_up_to_20_percent() {
        let b = Backoff::new();
        let bands = [
            (S(1), MS(1200)),
            (S(2), MS(2400)),
            (S(4), MS(4800)),
            (S(8), MS(9600)),
            (S(16), MS(19200)),
            (S(24), S(30)),
            (S(24), S(30)),
        ];
        for (retry, (lo, hi)) in bands.into_iter().enumerate() {
            let retry = retry as u32;
            assert_eq!(b.delay_with(retry, None, 0.0), lo, "{retry}");
            assert_eq!(b.delay_with(retry, None, 1.0), hi, "{retry}");
            let mid = b.delay_with(retry, None, 0.5);
            assert!(lo < mid && mid < hi, "{retry} {mid:?}");
        }
        // At the cap the waits still spread, below it.
        assert_eq!(b.delay_with(u32::MAX, None, 0.0), S(24));
        assert_eq!(b.delay_with(u32::MAX, None, 1.0), S(30));
    }

    #[test]
    fn the_cap_cuts_the_top_of_the_band_below_it() {
        // Nominal 16 s, cap 18 s: 16 ..= 18 s, never above the cap, never below 16 s.
        let b = Backoff::new().max_delay(S(18));
        assert_eq!(b.delay_with(4, None, 0.0), S(16));
        assert_eq!(b.delay_with(4, None, 1.0), S(18));
        assert_eq!(b.delay_with(4, None, 0.5), S(17));
        // A cap below the base: every wait is at the cap, spread below it.
        let b = Backoff::new().base_delay(S(10)).max_delay(S(5));
        assert_eq!(b.delay_with(0, None, 0.0), S(4));
        assert_eq!(b.delay_with(0, None, 1.0), S(5));
    }

    #[test]
    fn fractions_out_of_range_are_clamped() {
        let zero = Backoff::new().jitter(Jitter::Proportional(0.0));
        assert_eq!(zero.delay_with(1, None, 1.0), S(2));
        assert_eq!(zero.delay_with(9, None, 0.0), S(30));
        let neg = Backoff::new().jitter(Jitter::Proportional(-3.0));
        assert_eq!(neg.delay_with(1, None, 1.0), S(2));
        let big = Backoff::new().jitter(Jitter::Proportional(7.0));
        assert_eq!(big.delay_with(1, None, 1.0), S(4));
        assert_eq!(big.delay_with(9, None, 0.0), S(0));
        let nan = Backoff::new().jitter(Jitter::Proportional(f64::NAN));
        assert_eq!(nan.delay_with(0, None, 0.3), S(1));
    }

    #[test]
    fn other_strategies() {
        let full = Backoff::new().jitter(Jitter::Full);
        assert_eq!(full.delay_with(2, None, 0.0), S(0));
        assert_eq!(full.delay_with(2, None, 1.0), S(4));
        let equal = Backoff::new().jitter(Jitter::Equal);
        assert_eq!(equal.delay_with(2, None, 0.0), S(2));
        assert_eq!(equal.delay_with(2, None, 1.0), S(4));
        let dec = Backoff::new().jitter(Jitter::Decorrelated);
        assert_eq!(dec.delay_with(0, None, 0.0), S(1));
        assert_eq!(dec.delay_with(5, Some(S(4)), 1.0), S(12));
        assert_eq!(dec.delay_with(5, Some(S(20)), 1.0), S(30));
    }

    #[test]
    fn never_overflows() {
        let b = Backoff::new()
            .base_delay(Duration::MAX)
            .max_delay(Duration::MAX);
        for j in [
            Jitter::None,
            Jitter::Proportional(0.2),
            Jitter::Full,
            Jitter::Equal,
            Jitter::Decorrelated,
        ] {
            let b = b.jitter(j);
            for retry in [0, 1, 31, 32, 1000, u32::MAX] {
                for unit in [0.0, 1.0, f64::NAN, f64::INFINITY, -1.0] {
                    let _ = b.delay_with(retry, Some(Duration::MAX), unit);
                }
            }
        }
    }
}

#[cfg(test)]
mod props {
    use super::{Backoff, Jitter};
    use proptest::prelude::*;
    use std::time::Duration;

    const S: fn(u64) -> Duration = Duration::from_secs;

    /// Any duration from nothing to far beyond any real schedule (up to about 3,000 years).
    fn duration() -> impl Strategy<Value = Duration> {
        prop_oneof![
            (0u64..100_000_000_000).prop_map(Duration::from_nanos),
            (0u64..100_000_000_000, 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
            Just(Duration::ZERO),
            Just(Duration::MAX),
        ]
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::None),
            Just(Jitter::Proportional(0.2)),
            (-1.0f64..2.0).prop_map(Jitter::Proportional),
            Just(Jitter::Proportional(f64::NAN)),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
        ]
    }

    /// `a × f` in floating point, saturating.
    fn scaled(a: Duration, f: f64) -> Duration {
        Duration::try_from_secs_f64(a.as_secs_f64() * f).unwrap_or(Duration::MAX)
    }

    /// What float rounding may cost around `a`: a microsecond, or a trillionth of `a`.
    fn rounding(a: Duration) -> Duration {
        Duration::from_micros(1).max(scaled(a, 1e-12))
    }

    proptest! {
        #![proptest_config(crate::props::config(256))]

        /// The default schedule, for every attempt number: below the cap never shorter than
        /// the nominal wait and at most 20 % longer; at the cap within 24–30 s.
        #[test]
        fn the_default_schedule_for_any_attempt(retry in any::<u32>(), unit in 0.0f64..=1.0) {
            let b = Backoff::new();
            let nominal = b.nominal(retry);
            let d = b.delay_with(retry, None, unit);
            prop_assert!(d <= S(30));
            if nominal < S(30) {
                prop_assert_eq!(nominal, S(1) * 2u32.pow(retry));
                prop_assert!(d >= nominal && d <= nominal.mul_f64(1.2), "{retry} {d:?}");
            } else {
                prop_assert!(retry >= 5);
                prop_assert!(d >= S(24), "{retry} {d:?}");
            }
            // The random draw does the same.
            let d = b.delay(retry, None);
            prop_assert!(d <= S(30) && d >= nominal.min(S(24)), "{retry} {d:?}");
        }

        /// Every strategy, any base, cap, attempt number, previous wait and random sample:
        /// the documented band, never above the cap.
        #[test]
        fn every_strategy_keeps_its_band(
            base in duration(),
            max in duration(),
            retry in any::<u32>(),
            previous in prop::option::of(duration()),
            unit in prop_oneof![0.0f64..=1.0, any::<f64>()],
            jitter in jitter(),
        ) {
            let b = Backoff::new().base_delay(base).max_delay(max).jitter(jitter);
            let nominal = b.nominal(retry);
            let d = b.delay_with(retry, previous, unit);
            prop_assert!(nominal <= max && d <= max, "{d:?} > {max:?}");
            match jitter {
                Jitter::None => prop_assert_eq!(d, nominal),
                Jitter::Proportional(f) => {
                    let f = if f.is_nan() { 0.0 } else { f.clamp(0.0, 1.0) };
                    if nominal < max {
                        // Never shorter than the schedule; at most `f` longer.
                        prop_assert!(d >= nominal, "{d:?} < {nominal:?}");
                        let top = scaled(nominal, 1.0 + f).saturating_add(rounding(nominal));
                        prop_assert!(d <= top, "{d:?} > {top:?}");
                    } else {
                        // At the cap: within `f` below it.
                        prop_assert_eq!(nominal, max);
                        let bottom = max.saturating_sub(scaled(max, f)).saturating_sub(rounding(max));
                        prop_assert!(d >= bottom, "{d:?} < {bottom:?}");
                    }
                }
                Jitter::Full => prop_assert!(d <= nominal),
                Jitter::Equal => prop_assert!(d >= nominal / 2 && d <= nominal),
                Jitter::Decorrelated => {
                    let prev = previous.unwrap_or(base).max(base);
                    prop_assert!(d >= base.min(max));
                    prop_assert!(d <= prev.saturating_mul(3));
                }
            }
        }

        /// At the cap the default jitter still spreads: two clients that drew different
        /// samples wait different times, never more than the cap.
        #[test]
        fn at_the_cap_waits_still_spread(retry in 5u32.., a in 0.0f64..=1.0, b in 0.0f64..=1.0) {
            let backoff = Backoff::new();
            let (x, y) = (backoff.delay_with(retry, None, a), backoff.delay_with(retry, None, b));
            prop_assert!(x <= S(30) && y <= S(30));
            if (a - b).abs() > 1e-6 {
                prop_assert_ne!(x, y);
            }
        }

        #[test]
        fn backoff_never_exceeds_its_cap(
            retry in any::<u32>(),
            base_ms in any::<u64>(),
            max_ms in any::<u64>(),
            unit in any::<f64>(),
            prev_ms in prop::option::of(any::<u64>()),
            jitter in 0..5usize,
            fraction in any::<f64>(),
        ) {
            let jitter = [Jitter::None, Jitter::Proportional(fraction), Jitter::Full, Jitter::Equal, Jitter::Decorrelated][jitter];
            let backoff = Backoff::new()
                .base_delay(Duration::from_millis(base_ms))
                .max_delay(Duration::from_millis(max_ms))
                .jitter(jitter);
            let d = backoff.delay_with(retry, prev_ms.map(Duration::from_millis), unit);
            prop_assert!(d <= Duration::from_millis(max_ms), "{d:?}");
            prop_assert!(backoff.nominal(retry) <= Duration::from_millis(max_ms));
        }

        /// The backoff's schedule for any attempt count and any base or cap: never above the
        /// cap, never decreasing, never overflowing.
        #[test]
        fn backoff_nominal_for_any_attempt_and_base(
            base_ms in any::<u64>(),
            max_ms in any::<u64>(),
            retry in any::<u32>(),
            unit in 0.0f64..=1.0,
            prev_ms in any::<u64>(),
        ) {
            let b = Backoff::new()
                .base_delay(Duration::from_millis(base_ms))
                .max_delay(Duration::from_millis(max_ms));
            let max = Duration::from_millis(max_ms);
            let n = b.nominal(retry);
            prop_assert!(n <= max);
            prop_assert!(b.nominal(retry.saturating_add(1)) >= n);
            prop_assert!(b.nominal(u32::MAX) <= max);
            for jitter in [Jitter::None, Jitter::Proportional(0.2), Jitter::Proportional(f64::MAX), Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
                let b = b.jitter(jitter);
                prop_assert!(b.delay_with(retry, Some(Duration::from_millis(prev_ms)), unit) <= max);
                prop_assert!(b.delay(retry, None) <= max);
            }
        }

        #[test]
        fn a_wait_never_overflows_or_exceeds_max_delay(
            retry in any::<u32>(),
            base_ns in any::<u64>(),
            base_s in any::<u64>(),
            max_s in any::<u64>(),
            prev_s in any::<u64>(),
            unit in any::<f64>(),
            strategy in 0..5u8,
        ) {
            let base = Duration::new(base_s, (base_ns % 1_000_000_000) as u32);
            let max = Duration::from_secs(max_s);
            let jitter = match strategy {
                0 => Jitter::None,
                1 => Jitter::Proportional(0.2),
                2 => Jitter::Full,
                3 => Jitter::Equal,
                _ => Jitter::Decorrelated,
            };
            let b = Backoff::new().base_delay(base).max_delay(max).jitter(jitter);
            for r in [retry, 0, u32::MAX] {
                let d = b.delay_with(r, Some(Duration::from_secs(prev_s)), unit);
                prop_assert!(d <= max);
                prop_assert!(b.delay(r, Some(Duration::MAX)) <= max);
            }
        }
    }
}
