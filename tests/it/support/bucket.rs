//! A token bucket on tokio's clock, for servers in virtual time.

use tokio::time::Instant;

/// `rate` tokens a second, at most `burst` saved; full at `at`.
pub struct Bucket {
    pub rate: f64,
    pub burst: f64,
    pub tokens: f64,
    pub at: Instant,
}

impl Bucket {
    /// A full bucket at `at`.
    pub fn full(rate: f64, burst: f64, at: Instant) -> Bucket {
        Bucket {
            rate,
            burst,
            tokens: burst,
            at,
        }
    }

    /// Takes a token at `now`, when there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        let refill = (now - self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
        }
        ok
    }
}
