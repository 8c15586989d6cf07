//! The pace of a path after a rate limit, as pure functions of the time: a slow start from
//! [`INITIAL_RATE`] while the server's capacity is unknown; then a ceiling, the rate the
//! server took from the path when it pushed back, under which the pace holds, probing above
//! it at intervals that double while the probes are rejected.

use std::{
    f64::consts::LN_2,
    time::{Duration, Instant},
};

/// The pace of a path whose server's capacity is unknown: requests per second.
pub(crate) const INITIAL_RATE: f64 = 20.0;

/// A slow start doubles the pace this often.
pub(crate) const DOUBLING: Duration = Duration::from_millis(250);

/// After a lowered ceiling, the pace starts again at this share of its hold and climbs back.
pub(crate) const BETA: f64 = 0.8;

/// The pace holds at this share of the ceiling.
pub(crate) const MARGIN: f64 = 0.97;

/// After a slow start, the ceiling is at least this share of the pace that overran the
/// server: the pace one [`DOUBLING`] before.
pub(crate) const SLOW_START_KEEP: f64 = 0.5;

/// A rejection measures the server when the server took at least this share of what the
/// path's pace let through over the same seconds, and [`MIN_TAKEN`] requests: otherwise the
/// pace was not what overran it (a probe, another client).
const IN_USE: f64 = 0.25;
const MIN_TAKEN: f64 = 3.0;

/// The cubic curve's scaling, as a share of the hold per second³, so every server is probed
/// on the same timeline.
pub(crate) const C: f64 = 0.002;

/// How long the pace first holds under a new ceiling before it probes above it; each
/// rejected probe doubles it, up to [`MAX_HOLD`].
pub(crate) const HOLD: f64 = 10.0;

/// The longest hold, in seconds.
pub(crate) const MAX_HOLD: f64 = 160.0;

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
    /// Under a known ceiling.
    Held(Ceiling),
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Ceiling {
    /// The rate the server took from the path when it last pushed back.
    rate: f64,
    /// The pace starts at this share of its hold (1: at the hold) and climbs back to it.
    from: f64,
    /// How long it holds before it probes above the ceiling, in seconds.
    hold: f64,
    /// The lowest pace at or under the hold that overran the server, if any: a rejected
    /// probe raises the ceiling no higher.
    over: f64,
}

impl Ceiling {
    /// The climb back to the hold ends this long after the reopening.
    fn climb(&self) -> f64 {
        ((1.0 - self.from) / C).cbrt()
    }

    /// The pace `t` seconds after the reopening: a cubic climb from `from` to the hold, the
    /// hold, then a cubic probe above the ceiling.
    fn rate_at(&self, t: f64) -> f64 {
        let k = self.climb();
        let d = if t < k {
            t - k
        } else {
            (t - k - self.hold).max(0.0)
        };
        MARGIN * self.rate * (1.0 + C * d.powi(3))
    }

    /// The requests the pace sends from the reopening to `t` seconds after it (at the first
    /// rate before it): the integral of [`Ceiling::rate_at`].
    fn sent(&self, t: f64) -> f64 {
        let (k, hold) = (self.climb(), MARGIN * self.rate);
        let quartic = |d: f64| C / 4.0 * d.powi(4);
        let climbed = |t: f64| t + quartic(t - k) - quartic(-k);
        hold * if t <= 0.0 {
            t * self.from
        } else if t < k {
            climbed(t)
        } else {
            climbed(k) + (t - k) + quartic((t - k - self.hold).max(0.0))
        }
    }
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
            Phase::Held(c) => c.rate_at(t),
        };
        if rate.is_nan() {
            return MIN_RATE;
        }
        rate.clamp(MIN_RATE, MAX_RATE)
    }

    /// How long after `from` the `n`-th request after one sent at `from` is due, each at the
    /// pace of its own time: the inverse of the pace's integral (so a queue released together
    /// follows the climb).
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
            Phase::Held(c) => {
                // The pace never falls: `n` requests take at most `n / r0`. Bisect.
                let t0 = from.saturating_duration_since(self.since).as_secs_f64()
                    - self.since.saturating_duration_since(from).as_secs_f64();
                let (mut lo, mut hi) = (0.0, n / r0);
                let at_start = c.sent(t0);
                for _ in 0..48 {
                    let mid = (lo + hi) / 2.0;
                    if c.sent(t0 + mid) - at_start < n {
                        lo = mid;
                    } else {
                        hi = mid;
                    }
                }
                hi
            }
        };
        Duration::try_from_secs_f64(secs).unwrap_or(crate::retry_after::MAX_HINT)
    }

    /// The mean pace over the `secs` seconds up to `now`: what it let the callers send. A
    /// slow start's mean is well under its pace at the end.
    fn mean_rate(&self, now: Instant, secs: f64) -> f64 {
        const SAMPLES: u32 = 32;
        let sum: f64 = (0..SAMPLES)
            .map(|i| {
                let back = secs * (f64::from(i) + 0.5) / f64::from(SAMPLES);
                let back = Duration::try_from_secs_f64(back).unwrap_or_default();
                self.rate(now.checked_sub(back).unwrap_or(now))
            })
            .sum();
        sum / f64::from(SAMPLES)
    }

    /// The gap after a request sent at `at`.
    pub(crate) fn interval(&self, at: Instant) -> Duration {
        Duration::from_secs_f64(1.0 / self.rate(at))
    }

    /// The server rejected the path at `now`, having taken `accepted` from it since it last
    /// reopened; the path reopens at `reopen`.
    ///
    /// A path that was not sending at its pace learns nothing: its phase starts over at the
    /// reopening. Otherwise the ceiling is the rate the server took: after a slow start, at
    /// least half the pace that overran it (as TCP's slow start); a rejected probe keeps the
    /// ceiling and doubles the hold; a rejection at or below the hold lowers the ceiling, and
    /// the pace climbs back to it.
    pub(crate) fn rejected(&mut self, now: Instant, accepted: &Accepted, reopen: Instant) {
        let (pace, took) = (self.rate(now), accepted.rate(now));
        let kept_up = accepted.kept_up(now, |secs| self.mean_rate(now, secs));
        self.since = reopen;
        if !kept_up {
            return;
        }
        let (rate, from, hold, over) = match self.phase {
            Phase::SlowStart(_) | Phase::Ramp(..) => {
                (took.max(SLOW_START_KEEP * pace), BETA, HOLD, f64::INFINITY)
            }
            Phase::Held(c) => {
                let took = took.min(pace);
                // Clearly more than the ceiling, or than a pace that overran the server,
                // beyond what a saved burst adds.
                let bound = if c.over.is_finite() {
                    c.over / MARGIN
                } else {
                    c.rate
                };
                if pace <= MARGIN * c.rate || took < MARGIN * c.rate {
                    // The hold, or the climb to it, overran the server: a lower ceiling, by
                    // [`BETA`] at most at once.
                    (took.max(BETA * pace), BETA, c.hold, pace.min(c.over))
                } else if took > bound / MARGIN {
                    (took, 1.0, HOLD, f64::INFINITY)
                } else {
                    // A rejected probe: the ceiling holds (raised to what the server took,
                    // never to a pace that overran it), for longer.
                    let hold = (2.0 * c.hold).min(MAX_HOLD);
                    (c.rate.max(took).min(c.over), 1.0, hold, c.over)
                }
            }
        };
        let rate = rate.clamp(MIN_RATE, MAX_RATE);
        self.phase = Phase::Held(Ceiling {
            rate,
            from,
            hold,
            over,
        });
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

/// The successes since a path last reopened, by second: no clock read of their own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Accepted {
    /// The latest reopening: answers landing before it are to requests of the closed time.
    since: Instant,
    /// The latest second since the reopening with a success, and the successes of the
    /// [`WINDOW`] seconds up to it, by second modulo [`WINDOW`].
    second: u64,
    seconds: [u32; WINDOW],
}

/// The rate the server took is counted over this many seconds.
const WINDOW: usize = 4;

impl Accepted {
    /// Nothing counted yet; counting from `since`.
    pub(crate) fn new(since: Instant) -> Accepted {
        Accepted {
            since,
            second: 0,
            seconds: [0; WINDOW],
        }
    }

    /// One success at `now`.
    #[inline]
    pub(crate) fn count(&mut self, now: Instant) {
        if let Some(open) = now.checked_duration_since(self.since) {
            let s = open.as_secs();
            self.seconds = self.window(s);
            self.second = s;
            let slot = &mut self.seconds[s as usize % WINDOW];
            *slot = slot.saturating_add(1);
        }
    }

    /// The counts of the [`WINDOW`] seconds up to second `s`.
    fn window(&self, s: u64) -> [u32; WINDOW] {
        let mut seconds = self.seconds;
        for gone in self.second.max(s.saturating_sub(WINDOW as u64)) + 1..=s {
            seconds[gone as usize % WINDOW] = 0;
        }
        seconds
    }

    /// The successes of the last [`WINDOW`] seconds at `now`, and the seconds they span.
    fn taken(&self, now: Instant) -> (f64, f64) {
        let open = now.saturating_duration_since(self.since).as_secs_f64();
        let n = self.window(open as u64).iter().map(|&n| f64::from(n)).sum();
        (n, open.min(WINDOW as f64 - 1.0 + open.fract()))
    }

    /// The successes per second at `now`, over the last [`WINDOW`] seconds, and never over
    /// less than a second (a burst the server saved while the path was closed is not a rate).
    pub(crate) fn rate(&self, now: Instant) -> f64 {
        let (n, secs) = self.taken(now);
        n / secs.max(1.0)
    }

    /// Whether the server took [`MIN_TAKEN`] requests until `now`, and [`IN_USE`] of the
    /// `mean` pace over the seconds they span.
    fn kept_up(&self, now: Instant, mean: impl FnOnce(f64) -> f64) -> bool {
        let (n, secs) = self.taken(now);
        n >= MIN_TAKEN && n / secs >= IN_USE * mean(secs)
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
        /// The ceiling, when one is known.
        pub(crate) fn ceiling(&self) -> Option<f64> {
            match self.phase {
                Phase::SlowStart(_) | Phase::Ramp(..) => None,
                Phase::Held(c) => Some(c.rate),
            }
        }

        /// How long the pace holds under its ceiling, in seconds.
        fn hold(&self) -> Option<f64> {
            match self.phase {
                Phase::Held(c) => Some(c.hold),
                _ => None,
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

    /// A pace under ceiling `w`, climbing back from [`BETA`], reopened at `at`.
    fn held(w: f64, at: Instant) -> Pace {
        Pace {
            phase: Phase::Held(Ceiling {
                rate: w,
                from: BETA,
                hold: HOLD,
                over: f64::INFINITY,
            }),
            since: at,
        }
    }

    /// What a path took: `per_second` successes a second for `secs` seconds from `t0`.
    fn took(t0: Instant, per_second: u32, secs: u32) -> Accepted {
        let mut a = Accepted::new(t0);
        for i in 0..per_second * secs {
            a.count(t0 + Duration::from_secs_f64(f64::from(i) / f64::from(per_second)));
        }
        a
    }

    #[test]
    fn a_long_slow_start_that_overran_a_fast_server_learns_from_it() {
        // A server of 1,000/s with a small burst: the slow start, sending all it lets through,
        // overruns it after about 1.5 s, at a pace near 1,400/s. What the server took over
        // those seconds is well under a quarter of that pace, but not of what the slow start
        // let through: the rejection measures the server, and the pace keeps a ceiling.
        let t0 = Instant::now();
        let mut p = Pace::slow_start(t0);
        let mut accepted = Accepted::new(t0);
        let (mut at, end) = (t0, t0 + MS(1_530));
        while at < end {
            accepted.count(at);
            at += p.interval(at);
        }
        assert!(accepted.rate(end) < IN_USE * p.rate(end));
        p.rejected(end, &accepted, end + Duration::from_secs(1));
        let ceiling = p.ceiling().expect("a ceiling learned");
        assert!(ceiling >= SLOW_START_KEEP * 1_300.0, "{ceiling}");
    }

    #[test]
    fn the_pace_climbs_back_holds_under_its_ceiling_then_probes() {
        let t0 = Instant::now();
        let p = held(200.0, t0);
        let at = |s: f64| p.rate(t0 + Duration::from_secs_f64(s));
        let (k, hold) = (((1.0 - BETA) / C).cbrt(), MARGIN * 200.0);
        assert!((at(0.0) - BETA * hold).abs() < 1e-6);
        assert!((at(k) - hold).abs() < 1e-6);
        assert_eq!(at(k + HOLD), hold);
        let mut last = 0.0;
        for tenth in 0..400 {
            let r = at(f64::from(tenth) / 10.0);
            assert!(r >= last);
            last = r;
        }
        assert!(at(k + HOLD + 1.0) < 1.01 * hold);
        assert!(at(k + HOLD + 10.0) > 2.0 * hold);
    }

    #[test]
    fn a_queue_under_a_ceiling_follows_the_climb() {
        // A backlog released at the reopening goes at the pace of each request's own time:
        // it climbs back from the drop, not held at the drop for the whole queue.
        let t0 = Instant::now();
        let p = held(200.0, t0);
        let k = ((1.0 - BETA) / C).cbrt();
        let (hold, drop) = (MARGIN * 200.0, BETA * MARGIN * 200.0);
        let n = |n: u64| p.after(t0, n).as_secs_f64();
        assert!((n(1) - 1.0 / drop).abs() < 1e-4);
        // Ten seconds of queue: faster than at the drop, slower than at the hold.
        let ten = n(1_900);
        assert!(ten > 1_900.0 / hold && ten < 1_900.0 / drop, "{ten}");
        // Past the climb, each request at the hold.
        assert!((n(1_901) - ten - 1.0 / hold).abs() < 1e-4);
        // In order, from any time.
        let mid = t0 + Duration::from_secs_f64(k / 2.0);
        let mut last = Duration::ZERO;
        for i in 0..500 {
            let at = p.after(mid, i * 7);
            assert!(at >= last);
            last = at;
        }
    }

    #[test]
    fn a_rejected_probe_keeps_the_ceiling_for_longer() {
        let t0 = Instant::now();
        let k = ((1.0 - BETA) / C).cbrt();
        let mut p = held(200.0, t0);
        // Probing above the hold, rejected when the server took about the ceiling.
        let mut hold = HOLD;
        let mut since = t0;
        for _ in 0..8 {
            let probe = since + Duration::from_secs_f64(k + hold + 3.0);
            let reopen = probe + Duration::from_secs(1);
            assert!(p.rate(probe) > MARGIN * 200.0);
            p.rejected(probe, &took(probe - Duration::from_secs(5), 200, 5), reopen);
            assert_eq!(p.ceiling(), Some(200.0));
            hold = (2.0 * hold).min(MAX_HOLD);
            assert_eq!(p.hold(), Some(hold));
            // No drop: the pace goes on at the hold.
            assert!((p.rate(reopen) - MARGIN * 200.0).abs() < 1e-6);
            since = reopen;
        }
        assert_eq!(p.hold(), Some(MAX_HOLD));
    }

    #[test]
    fn a_probe_that_finds_more_raises_the_ceiling() {
        let t0 = Instant::now();
        let k = ((1.0 - BETA) / C).cbrt();
        let mut p = held(100.0, t0);
        let probe = t0 + Duration::from_secs_f64(k + HOLD + 10.0);
        assert!(p.rate(probe) > 200.0);
        p.rejected(probe, &took(probe - Duration::from_secs(5), 200, 5), probe);
        assert_eq!(p.ceiling(), Some(200.0));
        assert_eq!(p.hold(), Some(HOLD));
        assert!((p.rate(probe) - MARGIN * 200.0).abs() < 1e-6);
    }

    #[test]
    fn a_pace_that_overran_the_server_bounds_the_ceiling() {
        let t0 = Instant::now();
        let mut p = held(210.0, t0);
        // Rejected at the hold (203.7 a second), the server having taken 200 a second.
        let now = t0 + Duration::from_secs(6);
        let hold = p.rate(now);
        p.rejected(now, &took(t0, 200, 6), now);
        assert_eq!(p.ceiling(), Some(200.0));
        // A probe rejected with 205 a second taken (a saved burst on top of the rate):
        // the ceiling rises no higher than the pace that overran the server.
        let k = ((1.0 - BETA) / C).cbrt();
        let probe = now + Duration::from_secs_f64(k + HOLD + 3.0);
        assert!(p.rate(probe) > hold);
        p.rejected(probe, &took(probe - Duration::from_secs(5), 205, 5), probe);
        assert_eq!(p.ceiling(), Some(hold));
        assert_eq!(p.hold(), Some(2.0 * HOLD));
    }

    #[test]
    fn a_rejection_at_the_hold_lowers_the_ceiling_to_what_was_taken() {
        let t0 = Instant::now();
        let mut p = held(200.0, t0);
        // Six seconds in, the pace holds at 194 a second; the server took 180 a second.
        let now = t0 + Duration::from_secs(6);
        let reopen = now + Duration::from_secs(1);
        p.rejected(now, &took(t0, 180, 6), reopen);
        assert_eq!(p.ceiling(), Some(180.0));
        assert!((p.rate(reopen) - BETA * MARGIN * 180.0).abs() < 1e-6);
        // Never below BETA of the pace that was rejected at once, whatever was taken.
        let mut q = held(200.0, t0);
        q.rejected(now, &took(t0, 50, 6), reopen);
        assert!((q.ceiling().unwrap() - BETA * MARGIN * 200.0).abs() < 1e-6);
    }

    #[test]
    fn a_rejection_of_a_pace_not_in_use_teaches_nothing() {
        // A probe rejected at the reopening, or a rejection from another client: nothing
        // was sent at the pace, so the ceiling and phase stay; the phase starts over.
        let t0 = Instant::now();
        let mut p = held(200.0, t0);
        let reopen = t0 + Duration::from_secs(2);
        p.rejected(t0 + MS(5), &Accepted::new(t0), reopen);
        assert_eq!(p.ceiling(), Some(200.0));
        assert!((p.rate(reopen) - BETA * MARGIN * 200.0).abs() < 1e-6);
        let mut s = Pace::slow_start(t0);
        s.rejected(t0 + MS(5), &took(t0, 2, 1), reopen);
        assert_eq!(s.ceiling(), None);
        assert_eq!(s.rate(reopen), INITIAL_RATE);
        assert!((s.rate(reopen + DOUBLING) - 2.0 * INITIAL_RATE).abs() < 1e-9);
    }

    #[test]
    fn a_slow_start_overrun_keeps_part_of_its_pace() {
        let t0 = Instant::now();
        let mut p = Pace::slow_start(t0);
        let overrun = t0 + 4 * DOUBLING; // 320 per second, after a second open
        p.rejected(overrun, &took(t0, 100, 1), overrun);
        // The pace a doubling before: the last one the server took.
        assert!((p.ceiling().unwrap() - 160.0).abs() < 1e-6);
        // What was accepted per second wins when it is more.
        let mut q = Pace::slow_start(t0);
        let mut a = Accepted::new(t0);
        for i in 0..300 {
            a.count(t0 + MS(i));
        }
        q.rejected(t0 + MS(500), &a, t0 + MS(500)); // 300 in half a second, 80/s pace
        assert!((q.ceiling().unwrap() - 300.0).abs() < 1e-6);
    }

    #[test]
    fn hostile_numbers_stay_in_range() {
        let t0 = Instant::now();
        for accepted in [0, 1, u32::MAX] {
            let a = Accepted {
                seconds: [accepted; WINDOW],
                ..Accepted::new(t0)
            };
            let mut p = Pace::slow_start(t0);
            p.rejected(t0, &a, t0);
            p.rejected(t0, &a, t0);
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
        assert_eq!(a.rate(t0 + MS(1_500)), 0.0);
        for i in 0..200 {
            a.count(t0 + MS(1_000 + i * 5));
        }
        // Never over less than a second: a saved burst is not a rate.
        assert_eq!(a.rate(t0 + MS(1_500)), 200.0);
        a.reopens(t0 + MS(3_000));
        assert_eq!(a.rate(t0 + MS(3_000)), 0.0);
        a.count(t0 + MS(2_999));
        a.count(t0 + MS(3_000));
        assert_eq!(a.rate(t0 + MS(3_000)), 1.0);
    }

    #[test]
    fn the_rate_taken_is_that_of_the_last_seconds() {
        let t0 = Instant::now();
        // 100 a second for 5 s, then 300 in the sixth second.
        let mut a = took(t0, 100, 5);
        for i in 0..300 {
            a.count(t0 + Duration::from_secs(5) + MS(i * 1000 / 300));
        }
        let at = |ms| a.rate(t0 + MS(ms));
        assert!((at(5_999) - 600.0 / 3.999).abs() < 1e-9);
        assert!((at(6_500) - 500.0 / 3.5).abs() < 1e-9);
        assert!((at(8_500) - 300.0 / 3.5).abs() < 1e-9);
        assert_eq!(at(9_500), 0.0);
    }
}
