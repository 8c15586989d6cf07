//! The pace of a path after a rate limit, as pure functions of the time: a slow start from
//! [`INITIAL_RATE`] while the server's capacity is unknown, then, after a rate limit, a
//! ceiling from what the server *accepted* (its successes, not the client's sending rate, so
//! one decrease lands below the limit) and a climb back along a cubic curve (CUBIC, as in
//! AWS's adaptive retry mode).

use std::{
    f64::consts::LN_2,
    time::{Duration, Instant},
};

/// The pace of a path whose server's capacity is unknown: requests per second.
pub(crate) const INITIAL_RATE: f64 = 20.0;

/// A slow start doubles the pace this often.
pub(crate) const DOUBLING: Duration = Duration::from_millis(250);

/// The multiplicative decrease: the pace after a rate limit, as a share of the rate the
/// server accepted.
pub(crate) const BETA: f64 = 0.8;

/// After a slow start, the ceiling is at least this share of the pace that overran the
/// server: the pace one [`DOUBLING`] before.
pub(crate) const SLOW_START_KEEP: f64 = 0.5;

/// The cubic curve's scaling, as a share of the ceiling per second³ (AWS's 0.4 at a ceiling
/// of 200 requests per second), so every server is probed on the same timeline.
pub(crate) const C: f64 = 0.002;

/// The slowest pace: one request every two seconds.
pub(crate) const MIN_RATE: f64 = 0.5;

/// The fastest pace that is still a pace (a million requests per second).
pub(crate) const MAX_RATE: f64 = 1e6;

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
        let doubled = |from: f64| from * (t / DOUBLING.as_secs_f64()).min(64.0).exp2();
        let rate = match self.phase {
            Phase::SlowStart(from) => doubled(from),
            Phase::Ramp(from, cap) => doubled(from).min(cap),
            Phase::Cubic(w_max) => {
                let k = ((1.0 - BETA) / C).cbrt();
                w_max * (1.0 + C * (t - k).powi(3))
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
        let (r0, d) = (self.rate(from), DOUBLING.as_secs_f64());
        let doubling = d * (1.0 + n * LN_2 / (r0 * d)).log2();
        let secs = match self.phase {
            Phase::SlowStart(_) => doubling,
            Phase::Ramp(_, cap) => {
                // Doubling until the cap (`n_cap` requests on the way), then at the cap.
                let n_cap = d / LN_2 * (cap - r0);
                if r0 >= cap {
                    n / cap
                } else if n <= n_cap {
                    doubling
                } else {
                    d * (cap / r0).log2() + (n - n_cap) / cap
                }
            }
            Phase::Cubic(_) => n / r0,
        };
        Duration::try_from_secs_f64(secs).unwrap_or(crate::retry_after::MAX_HINT)
    }

    /// The gap after a request sent at `at`.
    pub(crate) fn interval(&self, at: Instant) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate(at))
    }

    /// The server rejected the path at `now`: `accepted` is what it took since the path
    /// last reopened, and the path reopens at `reopen`. The new ceiling: after a slow start,
    /// half the pace that overran the server (as TCP's slow start); after less than a second
    /// open, [`BETA`] × the lower of pace and ceiling; otherwise what was accepted per second
    /// of the whole open time (a server serves a saved burst on top of its rate).
    pub(crate) fn rejected(&mut self, now: Instant, accepted: u64, reopen: Instant) {
        let open_for = now.saturating_duration_since(self.since).as_secs_f64();
        let per_open_second = accepted as f64 / open_for.max(1.0);
        let ceiling = match self.phase {
            Phase::SlowStart(_) | Phase::Ramp(..) => {
                per_open_second.max(SLOW_START_KEEP * self.rate(now))
            }
            Phase::Cubic(w) if open_for < 1.0 => BETA * self.rate(now).min(w),
            Phase::Cubic(_) if accepted > 0 => per_open_second,
            Phase::Cubic(_) => BETA * self.rate(now),
        };
        self.phase = Phase::Cubic(ceiling.clamp(MIN_RATE, MAX_RATE));
        self.since = reopen;
    }

    /// A ramp given a new `cap` at `now`: it goes on doubling from the rate it has reached,
    /// up to the new cap. Returns whether the pace changed (`false` for any other phase, or
    /// a cap within an eighth of the old one: the schedule is not moved for noise).
    pub(crate) fn recap(&mut self, now: Instant, cap: f64) -> bool {
        let Phase::Ramp(_, old) = self.phase else {
            return false;
        };
        let cap = if cap.is_nan() { INITIAL_RATE } else { cap }.clamp(INITIAL_RATE, MAX_RATE);
        if (cap - old).abs() <= old / 8.0 {
            return false;
        }
        let from = self.rate(now).min(cap);
        *self = Pace {
            phase: Phase::Ramp(from, cap),
            since: now,
        };
        true
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
}

/// The successes since a path last reopened: one counter, no clock read of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    count: u64,
    /// The latest reopening: answers landing before it are to requests of the closed time.
    since: Instant,
}

impl Accepted {
    /// Nothing counted yet; counting from `since`.
    pub(crate) fn new(since: Instant) -> Accepted {
        Accepted { count: 0, since }
    }

    /// One success at `now`.
    #[inline]
    pub(crate) fn count(&mut self, now: Instant) {
        if now >= self.since {
            self.count = self.count.saturating_add(1);
        }
    }

    /// The successes since the path last reopened.
    pub(crate) fn since_open(&self) -> u64 {
        self.count
    }

    /// The path reopens at `at`: successes are counted from then.
    pub(crate) fn reopens(&mut self, at: Instant) {
        *self = Accepted::new(at);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Pace {
        /// The ceiling the pace climbs back to, when one is known.
        pub(crate) fn ceiling(&self) -> Option<f64> {
            match self.phase {
                Phase::SlowStart(_) | Phase::Ramp(..) => None,
                Phase::Cubic(w) => Some(w),
            }
        }
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn a_recapped_ramp_goes_on_from_the_rate_it_reached() {
        let t0 = Instant::now();
        let mut p = Pace::ramp(t0, 40.0);
        let later = t0 + 2 * DOUBLING;
        assert_eq!(p.rate(later), 40.0);
        // A cap within an eighth of the old one moves nothing.
        assert!(!p.recap(later, 42.0));
        assert!(p.recap(later, 160.0));
        assert_eq!(p.rate(later), 40.0);
        assert!((p.rate(later + DOUBLING) - 80.0).abs() < 1e-9);
        assert_eq!(p.rate(later + 10 * DOUBLING), 160.0);
        // A lower cap holds the pace down at once.
        assert!(p.recap(later + DOUBLING, 50.0));
        assert_eq!(p.rate(later + DOUBLING), 50.0);
        // Only a ramp has a cap.
        let mut slow = Pace::slow_start(t0);
        assert!(!slow.recap(t0, 1_000.0));
    }

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
        // Open for two seconds, 400 accepted: 200 per second.
        let now = t0 + Duration::from_secs(2);
        let reopen = now + Duration::from_secs(1);
        p.rejected(now, 400, reopen);
        assert_eq!(p.ceiling(), Some(200.0));
        assert!((p.rate(reopen) - BETA * 200.0).abs() < 1e-6);
        // Monotonic climb, flat near the ceiling, then above it.
        let k = ((1.0 - BETA) / C).cbrt();
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
        p.rejected(t0 + MS(300), 90, t0 + MS(1300));
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
        p.rejected(overrun, 100, overrun);
        // The pace a doubling before: the last one the server took.
        assert!((p.ceiling().unwrap() - 160.0).abs() < 1e-6);
        // What was accepted per second of open time wins when it is more.
        let mut q = Pace::slow_start(t0);
        q.rejected(t0 + MS(500), 300, t0 + MS(500)); // 300 in half a second, 80/s pace
        assert!((q.ceiling().unwrap() - 300.0).abs() < 1e-6);
        // A short open time counts as a second: the saved burst is not a rate.
        let mut r = Pace::slow_start(t0);
        r.rejected(t0 + MS(100), 25, t0 + MS(100));
        assert!((r.ceiling().unwrap() - 25.0).abs() < 1e-6);
    }

    #[test]
    fn a_rejection_with_nothing_accepted_lowers_the_ceiling() {
        let t0 = Instant::now();
        let mut p = cubic(100.0, t0);
        let later = t0 + Duration::from_secs(10);
        let pace = p.rate(later);
        p.rejected(later, 0, later);
        assert!((p.ceiling().unwrap() - BETA * pace).abs() < 1e-6);
        for _ in 0..100 {
            p.rejected(later, 0, later);
        }
        assert_eq!(p.ceiling(), Some(MIN_RATE));
        assert_eq!(p.rate(later), MIN_RATE);
    }

    #[test]
    fn hostile_numbers_stay_in_range() {
        let t0 = Instant::now();
        for accepted in [0, 1, u64::MAX] {
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
    fn successes_count_from_the_reopening() {
        let t0 = Instant::now();
        let mut a = Accepted::new(t0 + MS(1_000));
        // Answers to requests of the closed time are not counted.
        a.count(t0 + MS(500));
        assert_eq!(a.since_open(), 0);
        for i in 0..200 {
            a.count(t0 + MS(1_000 + i * 5));
        }
        assert_eq!(a.since_open(), 200);
        a.reopens(t0 + MS(3_000));
        assert_eq!(a.since_open(), 0);
        a.count(t0 + MS(2_999));
        a.count(t0 + MS(3_000));
        assert_eq!(a.since_open(), 1);
    }

    #[test]
    fn a_server_that_saves_a_burst_is_not_overrated() {
        // A token bucket of 20 per second with a burst of 5, reopened with its burst saved:
        // over four seconds at the limit, 85 answers. The ceiling is its rate plus a quarter
        // of the burst per second, not the 25 of the first second.
        let t0 = Instant::now();
        let mut p = cubic(30.0, t0);
        p.rejected(t0 + Duration::from_secs(4), 85, t0 + Duration::from_secs(5));
        assert!((p.ceiling().unwrap() - 21.25).abs() < 1e-6);
    }
}
