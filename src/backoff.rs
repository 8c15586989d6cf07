//! The documented backoff schedule: 1 s, doubling, capped at 30 s, with jitter.
//!
//! From the pages: "Start with a 1-second delay and double on each attempt, up to a reasonable
//! maximum (e.g. 30 seconds)" and "add a small random offset so retries don't synchronize".
//! [`Backoff`] is that schedule, shared by the retry layer, the rate-limit gate and the SSE
//! reconnect loop. Jitter is applied *before* the cap: no delay ever exceeds
//! [`max`](Backoff::max).
//!
//! ```
//! use std::time::Duration;
//! use tower_api_retry::backoff::{Backoff, Jitter};
//!
//! let backoff = Backoff::new(); // 1 s base, 30 s cap, ±20 % jitter
//! assert_eq!(backoff.nominal(0), Duration::from_secs(1));
//! assert_eq!(backoff.nominal(2), Duration::from_secs(4));
//! assert_eq!(backoff.nominal(10), Duration::from_secs(30)); // capped
//!
//! let first = backoff.delay(0, None);
//! assert!(first >= Duration::from_millis(800) && first <= Duration::from_millis(1200));
//!
//! let none = Backoff::new().jitter(Jitter::None);
//! assert_eq!(none.delay(1, None), Duration::from_secs(2));
//! ```

use std::time::Duration;

/// How a nominal delay is randomised.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Jitter {
    /// Exactly the nominal delay. Only for tests: synchronised clients retry together.
    None,
    /// Uniform within ±`fraction` of the nominal delay (the default, ±20 %): "a small random
    /// offset". The fraction is clamped to `0.0..=1.0`.
    Proportional(f64),
    /// Uniform in `0..=nominal` ("full jitter", AWS Architecture Blog).
    Full,
    /// Half the nominal delay plus uniform in `0..=nominal/2` ("equal jitter").
    Equal,
    /// Uniform in `base..=3 × previous delay` ("decorrelated jitter").
    Decorrelated,
}

/// The backoff schedule. See the [module docs](self).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    jitter: Jitter,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

impl Backoff {
    /// 1 s base, doubling, 30 s cap, ±20 % jitter: the documented schedule.
    pub const fn new() -> Backoff {
        Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(30),
            jitter: Jitter::Proportional(0.2),
        }
    }

    /// The first delay (default 1 s).
    pub const fn base(mut self, base: Duration) -> Backoff {
        self.base = base;
        self
    }

    /// The cap no delay exceeds (default 30 s). A cap below the base caps the base too.
    pub const fn max(mut self, max: Duration) -> Backoff {
        self.max = max;
        self
    }

    /// The jitter strategy (default ±20 %).
    pub const fn jitter(mut self, jitter: Jitter) -> Backoff {
        self.jitter = jitter;
        self
    }

    /// The configured base delay.
    pub const fn base_delay(&self) -> Duration {
        self.base
    }

    /// The configured cap.
    pub const fn max_delay(&self) -> Duration {
        self.max
    }

    /// The configured jitter.
    pub const fn jitter_strategy(&self) -> Jitter {
        self.jitter
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

    /// The jittered delay before retry number `retry`, given the previous delay (used by
    /// [`Jitter::Decorrelated`]). Never above [`max_delay`](Self::max_delay).
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
                // At the cap this still varies below it, so retries do not re-synchronise.
                mul_f64(nominal, 1.0 + fraction * (2.0 * unit - 1.0))
            }
            Jitter::Full => mul_f64(nominal, unit),
            Jitter::Equal => (nominal / 2).saturating_add(mul_f64(nominal / 2, unit)),
            Jitter::Decorrelated => {
                let prev = previous.unwrap_or(self.base).max(self.base);
                let hi = prev.saturating_mul(3);
                self.base
                    .saturating_add(mul_f64(hi.saturating_sub(self.base), unit))
            }
        };
        d.min(self.max)
    }
}

/// `d × f` for a finite non-negative `f`, saturating instead of panicking.
fn mul_f64(d: Duration, f: f64) -> Duration {
    Duration::try_from_secs_f64(d.as_secs_f64() * f.max(0.0)).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_documented_schedule() {
        let b = Backoff::new().jitter(Jitter::None);
        let got: Vec<_> = (0..7).map(|n| b.delay(n, None)).collect();
        assert_eq!(got, [S(1), S(2), S(4), S(8), S(16), S(30), S(30)]);
    }

    #[test]
    fn proportional_jitter_stays_in_its_band_and_under_the_cap() {
        let b = Backoff::new();
        for retry in 0..64 {
            for unit in [0.0, 0.25, 0.5, 0.75, 1.0] {
                let d = b.delay_with(retry, None, unit);
                assert!(d <= S(30), "{retry} {unit} {d:?}");
                if retry < 4 {
                    let n = b.nominal(retry).as_secs_f64();
                    assert!(d.as_secs_f64() >= n * 0.8 - 1e-9 && d.as_secs_f64() <= n * 1.2 + 1e-9);
                }
            }
        }
        // At the cap the delay still varies below it (retries do not re-synchronise at 30 s).
        assert!(b.delay_with(10, None, 0.0) < S(30));
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
        let b = Backoff::new().base(Duration::MAX).max(Duration::MAX);
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
        let odd = Backoff::new().jitter(Jitter::Proportional(f64::NAN));
        assert_eq!(odd.delay_with(0, None, 0.3), S(1));
    }
}
