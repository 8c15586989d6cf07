//! The rules of a rate-limit gate, as pure functions: they take the time and the random
//! sample as arguments, so every rule is tested with plain `#[test]`s. The Redis store's
//! scripts keep the same rules.

use crate::{backoff::Backoff, retry_after::MAX_HINT};
use std::time::{Duration, Instant};

/// The id of a probe: the one request allowed through when a key's time is up. Unique per
/// store; a stale id (of a probe whose role ended) matches nothing.
pub(crate) type ProbeId = u64;

/// How long an expired entry is kept when no request for its key arrives: long enough that
/// the next request for the key is still its probe, and another rejection still doubles the
/// backoff.
pub(crate) const LINGER: Duration = Duration::from_secs(30);

/// If adding a wait to the present overflows `Instant`, the gate closes for this long instead.
const OVERFLOW_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// What the gate remembers about one closed key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// When the key's time is up (its probe may go).
    pub(crate) until: Instant,
    /// Consecutive rejections of this key's probes (1 after the first rate limit).
    pub(crate) rejections: u32,
    /// The wait the last rejection of the probe (or the first rejection) chose.
    pub(crate) last_delay: Duration,
    /// The request currently probing this key, if any.
    pub(crate) probe: Option<ProbeId>,
}

impl Entry {
    /// The entry of a key closed for `wait` from `now` by its first rejection.
    pub(crate) fn closed(now: Instant, wait: Duration) -> Entry {
        Entry {
            until: until(now, wait),
            rejections: 1,
            last_delay: wait,
            probe: None,
        }
    }
}

/// The configuration the rules depend on: one layer's backoff and trust in hints. Each
/// rejection is judged with the policy of the layer that saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Policy {
    /// The schedule of a key rejected without a hint: delay *n* after the *n*-th consecutive
    /// rejection.
    pub(crate) backoff: Backoff,
    /// The longest one hint closes a key, however long the server asked for.
    pub(crate) max_closed: Duration,
    /// The rejections are an outage's: holds follow [`outage_hold`], not the doubling.
    pub(crate) outage: bool,
}

/// An outage's first hold, as a share of the backoff's base delay.
const OUTAGE_FIRST: f64 = 0.5;

/// How much longer each hold of an outage is than the one before.
const OUTAGE_GROWTH: f64 = 1.5;

/// The nominal hold after the `k`-th consecutive probe of a path out for an outage was
/// refused (0: the closure itself): [`OUTAGE_FIRST`] × the base delay, then
/// [`OUTAGE_GROWTH`] times the one before, up to the backoff's cap. The gentle growth keeps
/// the first request after a recovery within half the time held, plus the first hold.
pub(crate) fn outage_hold(backoff: &Backoff, k: u32) -> Duration {
    let max = backoff.max;
    let factor = OUTAGE_FIRST * OUTAGE_GROWTH.powi(k.min(256) as i32);
    Duration::try_from_secs_f64(backoff.base.as_secs_f64() * factor)
        .unwrap_or(max)
        .min(max)
}

/// What a request arriving at its key's gate does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admit {
    /// The key's time is up and nobody probes it: send as its probe (if the role is still
    /// free when taken).
    Probe,
    /// The key is closed until this instant, which is before the request's deadline: wait
    /// for it, or for a change of the key.
    WaitUntil(Instant),
    /// The key's probe is in flight: wait for its outcome, up to the request's deadline.
    WaitForProbe {
        /// The request's deadline.
        deadline: Instant,
    },
    /// The gate does not open before the deadline: fail with the time left (zero while a
    /// probe is in flight).
    Fail(Duration),
}

impl Policy {
    /// A policy with `backoff`, trusting hints up to `max_closed`.
    pub(crate) const fn new(backoff: Backoff, max_closed: Duration) -> Policy {
        Policy {
            backoff,
            max_closed,
            outage: false,
        }
    }

    /// The same policy for an outage's rejections: see [`outage_hold`].
    pub(crate) const fn for_outage(mut self) -> Policy {
        self.outage = true;
        self
    }

    /// The wait after the `k`-th consecutive rejection without a hint (0: the first),
    /// jittered by `unit`; `last` is the wait before it.
    fn delay(&self, k: u32, last: Option<Duration>, unit: f64) -> Duration {
        let delay = if self.outage {
            Backoff::new()
                .base_delay(outage_hold(&self.backoff, k))
                .max_delay(self.backoff.max)
                .jitter(self.backoff.jitter)
                .delay_with(0, last, unit)
        } else {
            self.backoff.delay_with(k, last, unit)
        };
        delay.min(MAX_HINT)
    }

    /// How far a server's hint is trusted: at most `max_closed`, and never past
    /// [`MAX_HINT`].
    pub(crate) fn clamp(&self, hint: Duration) -> Duration {
        hint.min(self.max_closed).min(MAX_HINT)
    }

    /// The first rejection of an open key: how long it closes. The hint (clamped) if any,
    /// else the first backoff delay, jittered by `unit` (a sample in `0.0..=1.0`).
    pub(crate) fn close(&self, hint: Option<Duration>, unit: f64) -> Duration {
        hint.map_or_else(|| self.delay(0, None, unit), |hint| self.clamp(hint))
    }

    /// A rejection of a key tracked as `e`: how long from `now` it closes, or `None` when
    /// nothing changes. The current probe's rejection re-closes it for the next backoff (or
    /// the hint); any other request's only extends it to its own, longer, hint.
    pub(crate) fn reclose(
        &self,
        e: &Entry,
        now: Instant,
        hint: Option<Duration>,
        probe: Option<ProbeId>,
        unit: f64,
    ) -> Option<Duration> {
        if is_probe(e, probe) {
            let backoff = || self.delay(e.rejections, Some(e.last_delay), unit);
            return Some(hint.map_or_else(backoff, |hint| self.clamp(hint)));
        }
        let wait = self.clamp(hint?);
        (until(now, wait) > e.until).then_some(wait)
    }
}

/// How long a request that must not be sent twice leaves a due probe role to a waiting
/// request that may be: a refused probe costs a POST its request, a GET nothing.
pub(crate) const PROBE_GRACE: Duration = Duration::from_millis(20);

/// What a request for a key tracked as `e` does at `now`, given the latest instant it may
/// still be sent; `defer` when it must not be sent twice and a request that may be waits for
/// the key (see [`PROBE_GRACE`]).
pub(crate) fn admit(e: &Entry, now: Instant, deadline: Instant, defer: bool) -> Admit {
    if probe_due(e, now) {
        let grace = e.until.checked_add(PROBE_GRACE).unwrap_or(e.until);
        if defer && now < grace && grace <= deadline {
            return Admit::WaitUntil(grace);
        }
        return Admit::Probe;
    }
    if e.until <= now {
        // The probe is in flight: wait for its outcome, up to the deadline.
        if now >= deadline {
            return Admit::Fail(Duration::ZERO);
        }
        return Admit::WaitForProbe { deadline };
    }
    if e.until > deadline {
        return Admit::Fail(e.until - now);
    }
    Admit::WaitUntil(e.until)
}

/// The key's time is up and nobody probes it: the next request may take the probe role.
pub(crate) fn probe_due(e: &Entry, now: Instant) -> bool {
    e.until <= now && e.probe.is_none()
}

/// `probe` is the key's current probe. `None` (a request that did not probe) never is.
pub(crate) fn is_probe(e: &Entry, probe: Option<ProbeId>) -> bool {
    probe.is_some() && e.probe == probe
}

/// An entry whose time was up at `until` expired [`LINGER`] ago by `now`, with no request for
/// its key since: it may be dropped.
pub(crate) fn expired(until: Instant, now: Instant) -> bool {
    until.checked_add(LINGER).is_some_and(|t| t <= now)
}

/// `now + wait`, the wait capped at [`MAX_HINT`]; never overflows.
pub(crate) fn until(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(MAX_HINT))
        .or_else(|| now.checked_add(OVERFLOW_WAIT))
        .unwrap_or(now)
}

/// The entry after a rejection that closes it for `wait` from `now`: `until` moves later,
/// never earlier. When `probe` is the current probe, the probe role ends and the rejection
/// counts (one more consecutive rejection, `last_delay` = `wait`).
pub(crate) fn closed_again(
    e: &Entry,
    now: Instant,
    wait: Duration,
    probe: Option<ProbeId>,
) -> Entry {
    let mut next = *e;
    next.until = until(now, wait).max(e.until);
    if is_probe(e, probe) {
        next.probe = None;
        next.rejections = e.rejections.saturating_add(1);
        next.last_delay = wait;
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::Jitter;

    const S: fn(u64) -> Duration = Duration::from_secs;
    const NONE: Backoff = Backoff::new().jitter(Jitter::None);
    const P: Policy = Policy::new(NONE, Duration::from_secs(3600));

    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_first_rejection_closes_for_the_hint_or_the_first_backoff() {
        let now = t0();
        assert_eq!(P.close(None, 0.5), S(1));
        assert_eq!(P.close(Some(S(20)), 0.5), S(20));
        let e = Entry::closed(now, S(20));
        assert_eq!(e.until, now + S(20));
        assert_eq!((e.rejections, e.last_delay, e.probe), (1, S(20), None));
        // The jitter sample is the caller's: the policy itself draws nothing.
        let jittered = Policy::new(Backoff::new().jitter(Jitter::Full), S(3600));
        assert_eq!(jittered.close(None, 0.0), S(0));
        assert_eq!(jittered.close(None, 1.0), S(1));
    }

    #[test]
    fn hints_are_clamped_to_max_closed_and_max_hint() {
        let short = Policy::new(NONE, S(600));
        assert_eq!(short.close(Some(S(99_999_999)), 0.5), S(600));
        assert_eq!(short.clamp(S(5)), S(5));
        let long = Policy::new(NONE, Duration::MAX);
        assert_eq!(long.close(Some(Duration::MAX), 0.5), MAX_HINT);
        // A backoff longer than max_closed is the layer's own choice, not a server's.
        let slow = Policy::new(NONE.base_delay(S(900)).max_delay(S(900)), S(600));
        assert_eq!(slow.close(None, 0.5), S(900));
    }

    #[test]
    fn the_probes_rejections_grow_the_backoff() {
        let now = t0();
        let mut e = Entry::closed(now, P.close(None, 0.5));
        let mut waits = vec![e.last_delay];
        for id in 1..=6 {
            e.probe = Some(id);
            let wait = P.reclose(&e, now, None, Some(id), 0.5).unwrap();
            e = closed_again(&e, now, wait, Some(id));
            assert_eq!(e.probe, None, "the probe role ends with its rejection");
            waits.push(wait);
        }
        assert_eq!(waits, [S(1), S(2), S(4), S(8), S(16), S(30), S(30)]);
        assert_eq!(e.rejections, 7);
        // The probe's hint wins over the backoff, clamped.
        e.probe = Some(9);
        assert_eq!(P.reclose(&e, now, Some(S(5)), Some(9), 0.5), Some(S(5)));
        assert_eq!(
            P.reclose(&e, now, Some(S(99_999)), Some(9), 0.5),
            Some(S(3600))
        );
    }

    #[test]
    fn decorrelated_backoff_sees_the_last_delay() {
        let p = Policy::new(Backoff::new().jitter(Jitter::Decorrelated), S(3600));
        let now = t0();
        let mut e = Entry::closed(now, S(4));
        e.probe = Some(1);
        // Uniform in base..=3 × the last delay: the top is 12 s.
        assert_eq!(p.reclose(&e, now, None, Some(1), 1.0), Some(S(12)));
    }

    #[test]
    fn a_stragglers_rejection_only_extends_with_a_longer_hint() {
        let now = t0();
        let e = Entry::closed(now, S(10));
        // No hint: nothing changes, not even from a stale probe id.
        assert_eq!(P.reclose(&e, now, None, None, 0.5), None);
        assert_eq!(P.reclose(&e, now, None, Some(7), 0.5), None);
        // A shorter hint changes nothing either.
        assert_eq!(P.reclose(&e, now, Some(S(5)), None, 0.5), None);
        assert_eq!(P.reclose(&e, now + S(4), Some(S(6)), None, 0.5), None);
        // A longer one extends, and is not a consecutive rejection.
        assert_eq!(P.reclose(&e, now, Some(S(15)), None, 0.5), Some(S(15)));
        let e2 = closed_again(&e, now, S(15), None);
        assert_eq!(e2.until, now + S(15));
        assert_eq!((e2.rejections, e2.last_delay), (1, S(10)));
    }

    #[test]
    fn re_closing_never_shortens() {
        let now = t0();
        // A straggler's long hint, then the probe's short backoff.
        let mut e = closed_again(&Entry::closed(now, S(1)), now, S(60), None);
        e.probe = Some(3);
        let wait = P.reclose(&e, now, None, Some(3), 0.5).unwrap();
        assert_eq!(wait, S(2));
        let after = closed_again(&e, now, wait, Some(3));
        assert_eq!(after.until, now + S(60), "the longer hint stays");
        assert_eq!((after.rejections, after.last_delay), (2, S(2)));
    }

    #[test]
    fn an_outage_is_probed_again_within_half_the_time_held_plus_the_first_hold() {
        let b = Backoff::new().jitter(Jitter::None);
        let first = outage_hold(&b, 0);
        assert_eq!(first, Duration::from_millis(500));
        assert_eq!(outage_hold(&b, 1), Duration::from_millis(750));
        let mut held = Duration::ZERO;
        for k in 0..40 {
            let hold = outage_hold(&b, k);
            // The worst case: the server recovers just after a probe; the next one goes
            // after at most half the time held so far plus the first hold.
            assert!(
                hold <= held / 2 + first + Duration::from_micros(1),
                "{k}: {hold:?}"
            );
            assert!(hold <= b.max);
            assert!(k == 0 || hold >= outage_hold(&b, k - 1), "backed off");
            held += hold;
        }
        assert_eq!(outage_hold(&b, u32::MAX), b.max);
        // Through the policy: the probe's refusal holds for the next, jitter on top.
        let p = P.for_outage();
        let now = t0();
        let e = Entry::closed(now, p.close(None, 0.5));
        assert_eq!(e.last_delay, first);
        let jittered = Policy::new(Backoff::new(), S(3600)).for_outage();
        let wait = jittered.reclose(&e, now, None, None, 1.0);
        assert_eq!(wait, None, "a straggler without a hint extends nothing");
        let mut probing = e;
        probing.probe = Some(1);
        let wait = jittered.reclose(&probing, now, None, Some(1), 1.0).unwrap();
        assert_eq!(wait, Duration::from_millis(900), "0.75 s + 20 %");
    }

    fn admit_any(entry: &Entry, now: Instant, deadline: Instant) -> Admit {
        admit(entry, now, deadline, false)
    }

    #[test]
    fn a_request_sent_once_leaves_the_probe_to_one_that_may_be_repeated_while_one_waits() {
        let now = t0();
        let e = Entry::closed(now, S(1));
        let (up, far) = (now + S(1), now + S(10));
        assert_eq!(admit(&e, up, far, false), Admit::Probe);
        assert_eq!(admit(&e, up, far, true), Admit::WaitUntil(up + PROBE_GRACE));
        // Nobody took it meanwhile: it goes.
        assert_eq!(admit(&e, up + PROBE_GRACE, far, true), Admit::Probe);
        // A deadline inside the grace does not hold it back.
        assert_eq!(admit(&e, up, up, true), Admit::Probe);
    }

    #[test]
    fn admission() {
        let now = t0();
        let far = now + S(3600);
        let mut e = Entry::closed(now, S(10));
        assert_eq!(admit_any(&e, now, far), Admit::WaitUntil(now + S(10)));
        assert_eq!(admit_any(&e, now, now), Admit::Fail(S(10)));
        assert_eq!(admit_any(&e, now + S(4), now + S(5)), Admit::Fail(S(6)));
        // Exactly at the deadline still waits.
        assert_eq!(
            admit_any(&e, now, now + S(10)),
            Admit::WaitUntil(now + S(10))
        );
        // Time up: the first request probes...
        let later = now + S(10);
        assert!(probe_due(&e, later));
        assert_eq!(admit_any(&e, later, far), Admit::Probe);
        assert_eq!(admit_any(&e, later, later), Admit::Probe);
        // ...and the others wait for its answer, or fail with zero left.
        e.probe = Some(1);
        assert!(!probe_due(&e, later));
        assert_eq!(
            admit_any(&e, later, far),
            Admit::WaitForProbe { deadline: far }
        );
        assert_eq!(admit_any(&e, later, later), Admit::Fail(Duration::ZERO));
    }

    #[test]
    fn only_the_current_probe_opens() {
        let now = t0();
        let mut e = Entry::closed(now, S(1));
        assert!(!is_probe(&e, Some(1)));
        assert!(!is_probe(&e, None));
        e.probe = Some(2);
        assert!(!is_probe(&e, Some(1)));
        assert!(is_probe(&e, Some(2)));
        assert!(is_probe(&e, Some(2)));
        assert!(!is_probe(&e, None));
    }

    #[test]
    fn expiry_waits_for_the_linger() {
        let now = t0();
        let e = Entry::closed(now, S(10));
        assert!(!expired(e.until, now + S(10)));
        assert!(!expired(
            e.until,
            now + S(10) + LINGER - Duration::from_nanos(1)
        ));
        assert!(expired(e.until, now + S(10) + LINGER));
    }

    #[test]
    fn waits_never_overflow() {
        let now = t0();
        assert_eq!(until(now, Duration::MAX), now + MAX_HINT);
        let p = Policy::new(
            NONE.base_delay(Duration::MAX).max_delay(Duration::MAX),
            Duration::MAX,
        );
        let e = Entry::closed(now, p.close(None, 0.5));
        assert_eq!(e.until, now + MAX_HINT);
        let mut e = e;
        e.rejections = u32::MAX;
        e.probe = Some(1);
        let wait = p.reclose(&e, now, None, Some(1), f64::NAN).unwrap();
        let e = closed_again(&e, now, wait, Some(1));
        assert_eq!(e.rejections, u32::MAX);
        assert!(!expired(e.until, now));
    }
}
