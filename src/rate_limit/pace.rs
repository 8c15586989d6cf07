//! The pace of a path after a rate limit, as pure functions: how fast requests are let
//! through when its gate reopens, instead of all at once.
//!
//! A server that rejected a burst accepts a rate, not a burst. When a gate reopens, its
//! waiters (and the requests that keep arriving) are therefore let through one at a time, at
//! a rate learned from what the server accepted:
//!
//! - **Before anything is known** (the first rate limit of a path), the pace starts at
//!   [`INITIAL_RATE`] and doubles every [`DOUBLING`] (a slow start), so a server's capacity
//!   is found in a few hundred milliseconds without a herd.
//! - **At a rate limit**, the rate the server *accepted* over the last second (its
//!   successes, counted per [`BUCKET`]; see [`Pace::rejected`] for the first rejection after
//!   a slow start or soon after a reopening) becomes the ceiling `w_max`, and the pace drops to
//!   [`BETA`]` × w_max`. From the reopening it climbs back along a cubic curve (CUBIC, as in
//!   AWS's adaptive retry mode, with [`C`] as its scaling): fast while far below `w_max`,
//!   flat near it, then probing above it slowly. A probe rejected again lowers the ceiling
//!   once more.
//!
//! AWS's adaptive mode measures the client's *sending* rate, which after a burst is far above
//! what the server took; the successes are what the server demonstrably accepts, so one
//! decrease lands below the limit instead of several.
//!
//! Every function takes the time as an argument: the rules are tested with plain `#[test]`s.

use std::time::{Duration, Instant};

/// The pace of a path whose server's capacity is unknown: requests per second.
pub(crate) const INITIAL_RATE: f64 = 20.0;

/// A slow start doubles the pace this often.
pub(crate) const DOUBLING: Duration = Duration::from_millis(250);

/// The multiplicative decrease: the pace after a rate limit, as a share of the rate the
/// server accepted.
pub(crate) const BETA: f64 = 0.8;

/// After a slow start, the ceiling is at least this share of the pace that overran the
/// server.
pub(crate) const SLOW_START_KEEP: f64 = 0.65;

/// The cubic curve's scaling, in requests per second per second³ (AWS's value).
pub(crate) const C: f64 = 0.4;

/// The slowest pace: one request every two seconds.
pub(crate) const MIN_RATE: f64 = 0.5;

/// The fastest pace that is still a pace (a million requests per second).
pub(crate) const MAX_RATE: f64 = 1e6;

/// The width of one bucket of the success count; ten make the one-second window.
pub(crate) const BUCKET: Duration = Duration::from_millis(100);

const BUCKETS: usize = 10;

/// How fast one path may send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Pace {
    phase: Phase,
    /// When the current phase began (the reopening).
    since: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Doubling from this rate.
    SlowStart(f64),
    /// Doubling from the first rate, up to the second (after an outage: see [`Pace::ramp`]).
    Ramp(f64, f64),
    /// Climbing back towards this ceiling.
    Cubic(f64),
}

impl Pace {
    /// A slow start from [`INITIAL_RATE`] at `since`.
    pub(crate) fn slow_start(since: Instant) -> Pace {
        Pace {
            phase: Phase::SlowStart(INITIAL_RATE),
            since,
        }
    }

    /// A slow start from [`INITIAL_RATE`] at `since` that stops doubling at `cap` requests
    /// per second (never below [`INITIAL_RATE`]): the ramp of a path reopened after an
    /// outage, which says nothing of the server's capacity, but whose callers' rate is known.
    pub(crate) fn ramp(since: Instant, cap: f64) -> Pace {
        let cap = if cap.is_nan() { INITIAL_RATE } else { cap };
        Pace {
            phase: Phase::Ramp(INITIAL_RATE, cap.clamp(INITIAL_RATE, MAX_RATE)),
            since,
        }
    }

    /// The pace at `now`, in requests per second: never below [`MIN_RATE`], never above
    /// [`MAX_RATE`], and the phase's first rate before it begins.
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let t = now.saturating_duration_since(self.since).as_secs_f64();
        let rate = match self.phase {
            Phase::SlowStart(from) => from * (t / DOUBLING.as_secs_f64()).min(64.0).exp2(),
            Phase::Ramp(from, cap) => {
                (from * (t / DOUBLING.as_secs_f64()).min(64.0).exp2()).min(cap)
            }
            Phase::Cubic(w_max) => {
                let k = (w_max * (1.0 - BETA) / C).cbrt();
                C * (t - k).powi(3) + w_max
            }
        };
        if rate.is_nan() {
            return MIN_RATE;
        }
        rate.clamp(MIN_RATE, MAX_RATE)
    }

    /// How long after `from` the `n`-th request after one sent at `from` is due, each at the
    /// pace of its own time: the inverse of the pace's integral in a slow start (so a queue
    /// released together still doubles), `n` intervals of the pace at `from` on the cubic
    /// curve (flat enough over a queue's length).
    pub(crate) fn after(&self, from: Instant, n: u64) -> Duration {
        let n = n as f64;
        let secs = match self.phase {
            Phase::SlowStart(_) => {
                let (r0, d) = (self.rate(from), DOUBLING.as_secs_f64());
                d * (1.0 + n * std::f64::consts::LN_2 / (r0 * d)).log2()
            }
            Phase::Ramp(_, cap) => {
                let (r0, d) = (self.rate(from), DOUBLING.as_secs_f64());
                // Doubling until the cap (`n_cap` requests on the way), then at the cap.
                let n_cap = d / std::f64::consts::LN_2 * (cap - r0);
                if r0 >= cap {
                    n / cap
                } else if n <= n_cap {
                    d * (1.0 + n * std::f64::consts::LN_2 / (r0 * d)).log2()
                } else {
                    d * (cap / r0).log2() + (n - n_cap) / cap
                }
            }
            Phase::Cubic(_) => n / self.rate(from),
        };
        Duration::try_from_secs_f64(secs).unwrap_or(crate::retry_after::MAX_HINT)
    }

    /// The gap after a request sent at `at`.
    pub(crate) fn interval(&self, at: Instant) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate(at))
    }

    /// The server rejected the path at `now`: `accepted` is how many requests it took in the
    /// last second, and the path reopens at `reopen`. The new ceiling:
    ///
    /// - after a slow start, what was accepted per second of open time, and at least
    ///   [`SLOW_START_KEEP`] of the pace that overran the server (a climbing pace is
    ///   under-measured, and the server's saved burst let it overrun for a while);
    /// - when the path was open for less than a second since it last reopened, the pace
    ///   started too high: [`BETA`] × the lower of the pace and the ceiling;
    /// - otherwise what was accepted over that second ([`BETA`] × the pace when nothing was).
    pub(crate) fn rejected(&mut self, now: Instant, accepted: f64, reopen: Instant) {
        let open_for = now.saturating_duration_since(self.since).as_secs_f64();
        let per_open_second = accepted / open_for.clamp(0.2, 1.0);
        let ceiling = match self.phase {
            Phase::SlowStart(_) | Phase::Ramp(..) => {
                per_open_second.max(SLOW_START_KEEP * self.rate(now))
            }
            Phase::Cubic(w) if open_for < 1.0 => BETA * self.rate(now).min(w),
            Phase::Cubic(_) if accepted > 0.0 => accepted,
            Phase::Cubic(_) => BETA * self.rate(now),
        };
        self.phase = Phase::Cubic(ceiling.clamp(MIN_RATE, MAX_RATE));
        self.since = reopen;
    }

    /// A ramp that reached its cap goes on as a slow start from there (its backlog is
    /// gone: the callers may ask faster now). Returns whether the pace changed.
    pub(crate) fn unramp(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Ramp(_, cap) if self.rate(now) >= cap => {
                *self = Pace {
                    phase: Phase::SlowStart(cap),
                    since: now,
                };
                true
            }
            _ => false,
        }
    }

    /// The path reopened at `now` (its probe was answered): the current phase counts from
    /// here, not from when the probe went.
    pub(crate) fn reopened(&mut self, now: Instant) {
        self.since = self.since.max(now);
    }

    /// The ceiling the pace climbs back to, when one is known.
    #[cfg(test)]
    pub(crate) fn ceiling(&self) -> Option<f64> {
        match self.phase {
            Phase::SlowStart(_) | Phase::Ramp(..) => None,
            Phase::Cubic(w) => Some(w),
        }
    }
}

/// Successes over the last second, in [`BUCKET`]s.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    origin: Instant,
    /// The bucket number of `counts[head]`, counted from `origin`.
    tick: u64,
    head: usize,
    counts: [u32; BUCKETS],
}

impl Accepted {
    /// Nothing counted yet.
    pub(crate) fn new(origin: Instant) -> Accepted {
        Accepted {
            origin,
            tick: 0,
            head: 0,
            counts: [0; BUCKETS],
        }
    }

    fn advance(&mut self, now: Instant) {
        let tick = (now.saturating_duration_since(self.origin).as_nanos() / BUCKET.as_nanos())
            .try_into()
            .unwrap_or(u64::MAX);
        if tick <= self.tick {
            return;
        }
        let steps = (tick - self.tick).min(BUCKETS as u64) as usize;
        for _ in 0..steps {
            self.head = (self.head + 1) % BUCKETS;
            self.counts[self.head] = 0;
        }
        self.tick = tick;
    }

    /// One success at `now`.
    pub(crate) fn count(&mut self, now: Instant) {
        self.advance(now);
        self.counts[self.head] = self.counts[self.head].saturating_add(1);
    }

    /// The rate the server accepted over the last second before `now`: its successes in that
    /// second. A path reopened less than a second ago is not credited for the closed part:
    /// right after a window the server serves its saved burst, which is not its rate.
    pub(crate) fn rate(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        total as f64 / (BUCKET.as_secs_f64() * BUCKETS as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_slow_start_doubles() {
        let t0 = Instant::now();
        let p = Pace::slow_start(t0);
        assert_eq!(p.rate(t0), INITIAL_RATE);
        // Before it begins (waiters take slots ahead), the first rate.
        assert_eq!(Pace::slow_start(t0 + MS(500)).rate(t0), INITIAL_RATE);
        assert!((p.rate(t0 + DOUBLING) - 2.0 * INITIAL_RATE).abs() < 1e-9);
        assert!((p.rate(t0 + 4 * DOUBLING) - 16.0 * INITIAL_RATE).abs() < 1e-9);
        assert_eq!(p.rate(t0 + Duration::from_secs(3600)), MAX_RATE);
        assert_eq!(p.interval(t0), MS(50));
    }

    #[test]
    fn a_ramp_doubles_up_to_its_cap() {
        let t0 = Instant::now();
        let p = Pace::ramp(t0, 100.0);
        assert_eq!(p.rate(t0), INITIAL_RATE);
        assert!((p.rate(t0 + DOUBLING) - 2.0 * INITIAL_RATE).abs() < 1e-9);
        assert_eq!(p.rate(t0 + 4 * DOUBLING), 100.0);
        assert_eq!(p.rate(t0 + Duration::from_secs(3600)), 100.0);
        // The schedule follows the rate: the integral of the doubling, then the cap.
        let d = DOUBLING.as_secs_f64();
        let n_cap = d / std::f64::consts::LN_2 * (100.0 - INITIAL_RATE);
        let at_cap = p.after(t0, n_cap.round() as u64).as_secs_f64();
        assert!((at_cap - d * 5f64.log2()).abs() < 0.01, "{at_cap}");
        let later = p.after(t0, n_cap.round() as u64 + 100).as_secs_f64();
        assert!((later - at_cap - 1.0).abs() < 0.01, "{later}");
        // Never below the initial rate, whatever the cap.
        assert_eq!(
            Pace::ramp(t0, 1.0).rate(t0 + Duration::from_secs(9)),
            INITIAL_RATE
        );
        assert_eq!(Pace::ramp(t0, f64::NAN).rate(t0), INITIAL_RATE);
        // Once at its cap, with no backlog left, it doubles on from there.
        let mut p = p;
        assert!(!p.unramp(t0 + DOUBLING));
        let later = t0 + Duration::from_secs(2);
        assert!(p.unramp(later));
        assert_eq!(p.rate(later), 100.0);
        assert!((p.rate(later + DOUBLING) - 200.0).abs() < 1e-9);
        assert!(!p.unramp(later));
    }

    /// A pace in its cubic phase with ceiling `w`, reopened at `at`.
    fn cubic(w: f64, at: Instant) -> Pace {
        Pace {
            phase: Phase::Cubic(w),
            since: at,
        }
    }

    #[test]
    fn a_rejection_drops_below_what_was_accepted_and_climbs_back() {
        let t0 = Instant::now();
        let mut p = cubic(300.0, t0);
        // Open for two seconds, 200 accepted over the last one.
        let now = t0 + Duration::from_secs(2);
        let reopen = now + Duration::from_secs(1);
        p.rejected(now, 200.0, reopen);
        assert_eq!(p.ceiling(), Some(200.0));
        assert!((p.rate(reopen) - BETA * 200.0).abs() < 1e-6);
        // Monotonic climb, flat near the ceiling, then above it.
        let k = (200.0 * (1.0 - BETA) / C).cbrt();
        let at = |s: f64| p.rate(reopen + Duration::from_secs_f64(s));
        assert!((at(k) - 200.0).abs() < 1e-6);
        let mut last = 0.0;
        for tenth in 0..200 {
            let r = at(f64::from(tenth) / 10.0);
            assert!(r >= last);
            last = r;
        }
        assert!(at(k - 1.0) > 199.0 && at(k + 1.0) < 201.0);
        assert!(at(k + 10.0) > 500.0);
    }

    #[test]
    fn a_rejection_soon_after_reopening_lowers_the_ceiling() {
        let t0 = Instant::now();
        let mut p = cubic(100.0, t0);
        // Rejected 300 ms after reopening: the pace started too high, whatever was accepted.
        p.rejected(t0 + MS(300), 90.0, t0 + MS(1300));
        assert!((p.ceiling().unwrap() - BETA * p_rate_before(100.0, MS(300))).abs() < 1e-6);
    }

    fn p_rate_before(w: f64, after: Duration) -> f64 {
        let t0 = Instant::now();
        cubic(w, t0).rate(t0 + after).min(w)
    }

    #[test]
    fn a_slow_start_overrun_keeps_part_of_its_pace() {
        let t0 = Instant::now();
        let mut p = Pace::slow_start(t0);
        let overrun = t0 + 4 * DOUBLING; // 320 per second, after a second open
        p.rejected(overrun, 100.0, overrun);
        assert!((p.ceiling().unwrap() - SLOW_START_KEEP * 320.0).abs() < 1e-6);
        // What was accepted per second of open time wins when it is more.
        let mut q = Pace::slow_start(t0);
        q.rejected(t0 + MS(500), 150.0, t0 + MS(500)); // 150 in half a second open
        assert!((q.ceiling().unwrap() - 300.0).abs() < 1e-6);
    }

    #[test]
    fn a_rejection_with_nothing_accepted_lowers_the_ceiling() {
        let t0 = Instant::now();
        let mut p = cubic(100.0, t0);
        let later = t0 + Duration::from_secs(10);
        let pace = p.rate(later);
        p.rejected(later, 0.0, later);
        assert!((p.ceiling().unwrap() - BETA * pace).abs() < 1e-6);
        for _ in 0..100 {
            p.rejected(later, 0.0, later);
        }
        assert_eq!(p.ceiling(), Some(MIN_RATE));
        assert_eq!(p.rate(later), MIN_RATE);
    }

    #[test]
    fn hostile_numbers_stay_in_range() {
        let t0 = Instant::now();
        for accepted in [f64::NAN, f64::INFINITY, -1.0, 1e300] {
            let mut p = Pace::slow_start(t0);
            p.rejected(t0, accepted, t0);
            p.rejected(t0, accepted, t0);
            for s in [0.0, 1.0, 1e6] {
                let r = p.rate(t0 + Duration::from_secs_f64(s));
                assert!((MIN_RATE..=MAX_RATE).contains(&r), "{accepted} {s} {r}");
            }
        }
    }

    #[test]
    fn the_success_count_covers_one_second() {
        let t0 = Instant::now();
        let mut a = Accepted::new(t0);
        assert_eq!(a.rate(t0), 0.0);
        for i in 0..200 {
            a.count(t0 + MS(i * 5)); // 200 over the first second
        }
        assert_eq!(a.rate(t0 + MS(999)), 200.0);
        // Half a second later, the first half has left the window.
        assert_eq!(a.rate(t0 + MS(1_499)), 100.0);
        assert_eq!(a.rate(t0 + Duration::from_secs(5)), 0.0);
        // A clock that does not move forward changes nothing.
        a.count(t0);
        assert_eq!(a.rate(t0 + Duration::from_secs(5)), 1.0);
    }
}
