//! The announced-quota policy: a lane's [`Budget`].

use std::time::{Duration, Instant};

/// A quota the server announced for a lane's scope: the requests left until the window ends,
/// counted down locally with each request sent and spread over the time to the reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Budget {
    /// Requests that may still be sent before `ends`.
    left: u64,
    /// When the window ends, as announced (the earliest of the announcements of this
    /// window: a delay given in whole seconds is rounded up, so the earliest is the closest).
    ends: Instant,
    /// The quota of a whole window, when announced.
    limit: Option<u64>,
    /// The window's length: announced, or the longest reset seen.
    window: Duration,
    /// Requests sent under this budget and not answered yet.
    in_flight: u64,
    /// When the window of `left` and `ends` began by the local count: a budget renews when
    /// a request is due past `ends`, which may be ahead of the answers still coming in.
    starts: Instant,
    /// The lowest remaining count announced in the server's current window: a count higher
    /// by more than the requests in flight means the window turned.
    announced: u64,
    /// Whether the budget has seen a window end. Until then, answers to requests sent before
    /// the first announcement (not counted in flight) may arrive in any order, and a higher
    /// count says nothing of a turn.
    settled: bool,
}

impl Budget {
    /// The budget of a first announcement: `remaining` requests until `ends`.
    pub(super) fn new(
        now: Instant,
        remaining: u64,
        ends: Instant,
        limit: Option<u64>,
        window: Duration,
    ) -> Budget {
        Budget {
            left: remaining,
            ends,
            limit,
            window,
            in_flight: 0,
            starts: now,
            announced: remaining,
            settled: false,
        }
    }

    /// Takes one request of the budget for a request that would go at `at`; returns when it
    /// may go. When the window is over (by the announced reset), a new one begins with the
    /// whole quota, or, when the quota was never announced, with one request whose answer
    /// tells the rest. When nothing is left, the request goes when the window ends.
    /// Also returns when the request after it may go: the quota left, spread over the time
    /// left.
    pub(super) fn take(&mut self, mut at: Instant) -> (Instant, Instant) {
        if at >= self.ends {
            self.renew(at);
        }
        if self.left == 0 {
            at = self.ends;
            self.renew(at);
        }
        self.left = self.left.saturating_sub(1);
        self.in_flight = self.in_flight.saturating_add(1);
        let share = u32::try_from(self.left.saturating_add(1)).unwrap_or(u32::MAX);
        (at, at + self.ends.saturating_duration_since(at) / share)
    }

    /// A request counted in flight is answered (or will not go).
    pub(super) fn landed(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    fn renew(&mut self, at: Instant) {
        self.starts = at;
        self.settled = true;
        self.left = self.limit.unwrap_or(1).max(1);
        self.ends = at + self.window.max(MIN_WINDOW);
    }

    /// A response announced `remaining` requests until `ends`. The server's count, less the
    /// requests in flight, lowers the local count; it raises it only when the server's window
    /// turned (its count rose by more than the requests in flight) or the local window is
    /// over. The earliest `ends` of a window is the closest (servers round delays up). An
    /// answer from before the local window began counts only when the server's window turned:
    /// then the local window moves back to the server's.
    pub(super) fn announced(
        &mut self,
        now: Instant,
        remaining: u64,
        ends: Instant,
        limit: Option<u64>,
        window: Duration,
    ) {
        let turned = self.settled && remaining > self.announced.saturating_add(self.in_flight);
        self.limit = limit.or(self.limit);
        self.window = self.window.max(window);
        let left = remaining.saturating_sub(self.in_flight);
        if now < self.starts {
            if turned {
                self.announced = remaining;
                self.starts = now;
                self.ends = self.ends.min(ends);
                self.left = self.left.min(left);
            }
            return;
        }
        if turned || now >= self.ends {
            self.settled |= now >= self.ends;
            self.announced = remaining;
            self.ends = ends;
            self.left = left;
        } else {
            self.announced = self.announced.min(remaining);
            self.ends = self.ends.min(ends);
            self.left = self.left.min(left);
        }
    }
}

/// The shortest window a budget assumes: a server that announces a reset of zero does not
/// get a request storm.
const MIN_WINDOW: Duration = Duration::from_millis(100);
