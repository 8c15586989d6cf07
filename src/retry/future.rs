use super::{
    Attempts, ExhaustedBefore, ReplayBody, RetryLayer, ScheduleEnd,
    deadline::{Deadline, GRPC_TIMEOUT, encode_grpc_timeout},
    policy::{self, Refusal},
};
use crate::{backoff::Backoff, error::Error, reason::NotRetried, telemetry};
use http::{Request, Response, request::Parts};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
use tower::BoxError;
use tower::Service;

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
        B: ReplayBody,
    {
        #[pin]
        state: State<S::Future>,
        retry: Option<Retrying<S, B>>,
        attempts: u32,
        // The current attempt's span (disabled when nobody listens).
        span: tracing::Span,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Called { #[pin] future: F },
        Waiting { #[pin] sleep: Sleep },
        Ready,
        Done,
    }
}

/// What a retry needs: the service, the request's head and the body copy.
pub(crate) struct Retrying<S, B: ReplayBody> {
    pub(crate) service: S,
    /// The layer's `max_retries`, or the request's own (`RetryOverride`).
    pub(crate) max_retries: u32,
    /// The request declared itself safe to send twice (`RetryOverride::idempotent`).
    pub(crate) idempotent: bool,
    pub(crate) parts: Parts,
    pub(crate) copy: B::Replay,
    pub(crate) layer: Arc<RetryLayer>,
    pub(crate) deadline: Option<Deadline>,
    /// For a gRPC call with a deadline, once armed: fires at the deadline and cuts the attempt
    /// in flight short. Boxed, made once per call, and only when needed.
    pub(crate) cutoff: Option<Pin<Box<Sleep>>>,
    /// The last attempt's error: kept while the next one is due, and while it is under way
    /// (an attempt held at a gate for an outage is no answer: then this one is returned).
    pub(crate) last: Option<Error>,
    pub(crate) previous: Option<Duration>,
    pub(crate) pending: Option<B>,
    /// The server's last answer to this request was a gRPC `RESOURCE_EXHAUSTED` that names
    /// no wait: the same answer again is the request's own.
    pub(crate) exhausted: bool,
    /// The retry waiting to be sent passes the retry budget's throttle first (with a budget).
    pub(crate) hold: Option<Hold>,
    /// Retries whose turn passed while a retry was held: they are spent.
    pub(crate) spent: u32,
    /// Once a retry was held past its turn: the end of the request's schedule, which no
    /// later retry waits past, and whether a rate-limit gate held it (else the budget).
    pub(crate) ends: Option<(Instant, bool)>,
}

/// A retry held by the budget: the budget's throttle is checked again when it is due.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Hold {
    /// When it is due: after its backoff (or the server's hint, or a wait for its token).
    due: Instant,
    /// The end of the request's schedule (and of `max_budget_wait`, and the deadline): a
    /// retry still held then is not sent.
    until: Instant,
    /// Which retry it is (0-based, spent ones counted).
    retry: u32,
    /// It has its token from the budget.
    token: bool,
    /// The gate made it wait past when it was due.
    held: bool,
}

/// How often a held retry looks at the budget's throttle again.
const RECHECK: Duration = Duration::from_millis(100);

/// `d` after `now`, or a year after for a wait past any schedule.
fn after(now: Instant, d: Duration) -> Instant {
    now.checked_add(d)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

/// What the budget says to a retry that is due.
enum Gate {
    Go,
    Wait(Duration),
    Refuse,
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: ReplayBody,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
    B: ReplayBody,
{
    /// The first attempt, sent; `retry` is `None` when no retry can follow.
    pub(crate) fn new(
        future: S::Future,
        span: tracing::Span,
        retry: Option<Retrying<S, B>>,
    ) -> Self {
        ResponseFuture {
            state: State::Called { future },
            retry,
            attempts: 1,
            span,
        }
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
    B: ReplayBody,
{
    type Output = Result<Response<ResB>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let mut polled = telemetry::in_span(this.span, || future.poll(cx));
                    // A response is seen where it lies and moved once, into the output: each
                    // move of it on the way out is a copy on every call.
                    if let Poll::Ready(Ok(res)) = &mut polled {
                        telemetry::attempt_ok(this.span, res.status());
                        if *this.attempts > 1 {
                            res.extensions_mut().insert(Attempts(*this.attempts));
                        } else if !res.extensions().is_empty() {
                            // A first attempt's success carries no count (`Attempts::of`
                            // answers 1), not even one an inner retry layer left.
                            res.extensions_mut().remove::<Attempts>();
                        }
                    }
                    let (failure, cut): (BoxError, bool) = match polled {
                        Poll::Ready(Ok(res)) => return Poll::Ready(Ok(res)),
                        Poll::Ready(Err(e)) => (e.into(), false),
                        // The deadline may pass with the attempt in flight: it is dropped
                        // then.
                        Poll::Pending if this.retry.as_mut().is_some_and(|r| r.cut_off(cx)) => {
                            (tower::timeout::error::Elapsed::new().into(), true)
                        }
                        Poll::Pending => return Poll::Pending,
                    };
                    let mut err = match this.retry.as_ref() {
                        Some(retry) => retry.layer.transport(failure),
                        None => Error::transport(failure),
                    };
                    // Drop the failed attempt first: a request it never sent hands its body
                    // back as it goes (see `CaptureBody`), for the replay below.
                    this.state.set(State::Done);
                    err.set_attempts(*this.attempts);
                    telemetry::attempt_failed(this.span, &err);
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(err));
                    };
                    let decided = match cut {
                        true => Err(Refusal::Deadline(NotRetried::DeadlineDuringAttempt {
                            limit: retry.limit(),
                            attempt: *this.attempts,
                        })),
                        false => retry.decide(&err, *this.attempts),
                    };
                    let sleep = match decided {
                        Ok(wait) => {
                            telemetry::retried(&err);
                            tracing::info!(
                                attempt = *this.attempts + 1,
                                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                status = err.status().map(|s| s.as_u16()),
                                code = err.code().as_str(),
                                method = retry.parts.method.as_str(),
                                path = retry.parts.uri.path(),
                                "retrying request"
                            );
                            tokio::time::sleep(wait)
                        }
                        // Nothing is sent again: the call ends when its deadline does.
                        Err(Refusal::AtDeadline) => tokio::time::sleep_until(
                            retry.deadline.map_or_else(Instant::now, |d| d.at),
                        ),
                        Err(refusal) => {
                            if !err.request_sent()
                                && !err.gate_wait().is_zero()
                                && let Some(last) = retry.last.take()
                            {
                                err = last;
                            }
                            return Poll::Ready(Err(retry.refuse(err, refusal)));
                        }
                    };
                    retry.last = Some(err);
                    this.state.set(State::Waiting { sleep });
                }
                StateProj::Waiting { sleep } => {
                    ready!(sleep.poll(cx));
                    this.state.set(State::Ready);
                }
                StateProj::Ready => {
                    let retry = this.retry.as_mut().expect("only a retrying future waits");
                    // No attempt starts past the deadline: the wait ended before it, but
                    // getting the service ready may take a while.
                    let left = retry.deadline.map(|d| d.left(Instant::now()));
                    let refusal = if left.is_some_and(|left| left.is_zero()) || retry.cut_off(cx) {
                        Some(Refusal::Deadline(NotRetried::DeadlineBeforeAttempt {
                            limit: retry.limit(),
                            attempt: *this.attempts + 1,
                        }))
                    } else {
                        match retry.gate() {
                            Gate::Go => None,
                            Gate::Wait(wait) => {
                                let sleep = tokio::time::sleep(wait);
                                this.state.set(State::Waiting { sleep });
                                continue;
                            }
                            Gate::Refuse => Some(Refusal::Note(NotRetried::BudgetExhausted)),
                        }
                    };
                    if let Some(refusal) = refusal {
                        let err = retry.last.take().expect("the last error is kept");
                        this.state.set(State::Done);
                        return Poll::Ready(Err(retry.refuse(err, refusal)));
                    }
                    if let Err(e) = ready!(retry.service.poll_ready(cx)) {
                        let mut err = retry.layer.transport(e);
                        err.set_attempts(*this.attempts);
                        return Poll::Ready(Err(err));
                    }
                    let req = retry.next_request(*this.attempts, left);
                    *this.attempts += 1;
                    *this.span = telemetry::attempt_span(&retry.parts.method, *this.attempts - 1);
                    let future = telemetry::in_span(this.span, || retry.service.call(req));
                    this.state.set(State::Called { future });
                }
                StateProj::Done => panic!("`ResponseFuture` polled after completion"),
            }
        }
    }
}

impl<S, B: ReplayBody> Retrying<S, B> {
    /// Whether to send the request again after `err`, and after how long (see
    /// [`policy::decide`]). On `Ok` the body to send is in `pending`.
    fn decide(&mut self, err: &Error, attempts: u32) -> Result<Duration, Refusal> {
        let layer = Arc::clone(&self.layer);
        let now = Instant::now();
        // Retries spent while one was held count as made.
        let attempts = attempts.saturating_add(self.spent);
        let retries = attempts.saturating_sub(1);
        let backoff = layer.backoff.delay(retries, self.previous);
        // The nominal waits left of the schedule: what a gate below, or the budget's
        // throttle, may still hold the request.
        let schedule = schedule_left(&layer.backoff, retries, self.max_retries);
        let waited = err.gate_wait();
        if !waited.is_zero() {
            // Waiting at a gate spends the schedule; the attempt's own time does not.
            self.end_schedule(after(now, schedule.saturating_sub(waited)), true);
        }
        let facts = policy::Facts {
            err,
            attempts,
            max_retries: self.max_retries,
            method: &self.parts.method,
            // Worked out only here, on the error path: the success path never looks at
            // headers.
            request: policy::RequestFacts::of(&self.parts.method, &self.parts.headers),
            declared_idempotent: self.idempotent,
            exhausted_before: self.exhausted,
            deadline: self.deadline.map(|d| policy::Left {
                left: d.left(now),
                limit: d.limit,
                grpc: d.grpc,
            }),
            backoff,
        };
        if err.request_sent() {
            // An attempt never sent (a closed gate) is no answer: the last one still counts.
            self.exhausted = err.verdict().is_bare_exhaustion();
            if let Some(budget) = &layer.budget
                && attempts == 1
                && err.verdict().disposition().is_retryable()
                && !err.verdict().closes_gate()
            {
                // A request whose first attempt failed as a retry could follow drains the
                // budget's throttle; a rate limit does not (the gate paces those).
                budget.failed();
            }
        }
        let (copy, pending) = (&self.copy, &mut self.pending);
        let replay = || {
            *pending = Some(B::replay(copy)?);
            Ok(())
        };
        let mut token = false;
        let budget = layer.budget.as_ref().map(|budget| {
            let token = &mut token;
            move |bound| budget.ask(bound, token)
        });
        let mut decided = policy::decide(&facts, &layer, replay, budget);
        if let (Some((ends, at_gate)), Ok(wait)) = (self.ends, &mut decided) {
            // A retry held past its turn (by the budget or a gate) spent the schedule: the
            // rest of it ends where it did.
            match ends.checked_duration_since(now) {
                Some(left) if !left.is_zero() => *wait = (*wait).min(left),
                _ if at_gate => {
                    let why = NotRetried::GateOutlastsSchedule {
                        wait: *wait,
                        left: Duration::ZERO,
                    };
                    decided = Err(Refusal::Note(why));
                }
                _ => decided = Err(Refusal::Note(NotRetried::BudgetExhausted)),
            }
        }
        if let (Ok(wait), Some(_)) = (&decided, &layer.budget) {
            let due = after(now, *wait);
            let mut until = self.within_schedule(after(now, schedule.min(layer.max_budget_wait)));
            if let Some(deadline) = self.deadline {
                until = until.min(deadline.at);
            }
            self.hold = Some(Hold {
                due,
                // Never refused before it is due (a server's hint may be longer).
                until: until.max(due),
                retry: retries,
                token,
                held: false,
            });
        }
        if decided.is_ok() {
            self.previous = Some(backoff);
        } else {
            self.pending = None;
        }
        decided
    }

    /// The request of the attempt after `attempts`, with `left` of the call's deadline.
    fn next_request(&mut self, attempts: u32, left: Option<Duration>) -> Request<B> {
        let body = self
            .pending
            .take()
            .expect("a body is replayed before waiting");
        let mut parts = self.parts.clone();
        if let (Some(deadline), Some(left)) = (self.deadline, left)
            && deadline.grpc
        {
            // Each attempt carries the time that is left, and is cut off when it runs out.
            parts
                .headers
                .insert(GRPC_TIMEOUT, encode_grpc_timeout(left));
            self.arm_cutoff();
        }
        if self.exhausted {
            parts.extensions.insert(ExhaustedBefore);
        }
        // A gate below waits no longer than what is left of the schedule: the nominal waits
        // of the retries after this one.
        let from = (attempts - 1).saturating_add(self.spent);
        let left = schedule_left(&self.layer.backoff, from, self.max_retries);
        let end = self.within_schedule(after(Instant::now(), left));
        parts.extensions.insert(ScheduleEnd::new(end));
        Request::from_parts(parts, body)
    }

    /// Whether the retry that is due goes: a throttled budget holds it (until its schedule
    /// runs out), a spent one makes it wait for its token. The time it was held past its
    /// backoff spends the retries whose turn passed meanwhile.
    fn gate(&mut self) -> Gate {
        let (Some(budget), Some(hold)) = (self.layer.budget.as_ref(), self.hold.as_mut()) else {
            return Gate::Go;
        };
        let now = Instant::now();
        let throttled = budget.throttled();
        if throttled {
            // A token taken before the throttle closed is forfeit: held retries leave at
            // the pace tokens come in once it opens, not all at once.
            hold.token = false;
        }
        // Only a token that is there: what successes earn goes to the held retries that look
        // first, and none is spoken for past the end of a schedule.
        if throttled || (!hold.token && budget.take(Duration::ZERO).is_err()) {
            if now >= hold.until {
                self.hold = None;
                return Gate::Refuse;
            }
            hold.held = true;
            return Gate::Wait(RECHECK.min(hold.until - now));
        }
        let Hold {
            due,
            until,
            retry,
            held,
            ..
        } = *hold;
        self.hold = None;
        if held {
            // Held past its turn: the schedule does not start again from here, and the
            // retries whose turn passed meanwhile are spent.
            self.end_schedule(until, false);
            let late = now.saturating_duration_since(due);
            let backoff = &self.layer.backoff;
            let mut covered = Duration::ZERO;
            for next in retry + 1..self.max_retries {
                covered = covered.saturating_add(backoff.nominal(next));
                if covered > late {
                    break;
                }
                self.spent += 1;
            }
        }
        Gate::Go
    }

    /// `at`, or the end of the request's schedule when that is earlier.
    fn within_schedule(&self, at: Instant) -> Instant {
        self.ends.map_or(at, |(ends, _)| at.min(ends))
    }

    /// The request's schedule ends at `at` (held there by a gate, or else by the budget),
    /// unless it already ends earlier.
    fn end_schedule(&mut self, at: Instant, by_gate: bool) {
        if self.ends.is_none_or(|(ends, _)| at < ends) {
            self.ends = Some((at, by_gate));
        }
    }

    /// Says on `err` why it is returned; a gRPC call whose deadline ran out becomes
    /// `DEADLINE_EXCEEDED`.
    fn refuse(&self, mut err: Error, refusal: Refusal) -> Error {
        let (why, deadline) = match refusal {
            Refusal::Quiet | Refusal::AtDeadline => return err,
            Refusal::Note(why) => (why, false),
            Refusal::Deadline(why) => (why, true),
        };
        if matches!(why, NotRetried::BudgetExhausted) {
            telemetry::budget_exhausted();
        }
        telemetry::not_retried(&why);
        err.set_not_retried(why);
        if deadline && self.deadline.is_some_and(|d| d.grpc) {
            err.set_deadline_exceeded();
        }
        err
    }

    /// The call's whole allowance, for messages.
    fn limit(&self) -> Duration {
        self.deadline.map_or(Duration::ZERO, |d| d.limit)
    }

    /// Arms the cutoff at the deadline, once per call.
    fn arm_cutoff(&mut self) {
        if let (None, Some(deadline)) = (&self.cutoff, self.deadline) {
            self.cutoff = Some(Box::pin(tokio::time::sleep_until(deadline.at)));
        }
    }

    /// `true` once an armed cutoff has fired.
    fn cut_off(&mut self, cx: &mut Context<'_>) -> bool {
        self.cutoff
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

/// The nominal waits of retries `from..to`: what is left of a request's schedule.
pub(crate) fn schedule_left(backoff: &Backoff, from: u32, to: u32) -> Duration {
    // Past retry 31 every nominal wait is the same (at the cap, or `base × 2^31`).
    let last = backoff.nominal(u32::MAX);
    let mut total = Duration::ZERO;
    for r in from..to {
        let wait = backoff.nominal(r);
        if wait == last {
            return total.saturating_add(wait.saturating_mul(to - r));
        }
        total = total.saturating_add(wait);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_left_of_the_schedule() {
        let backoff = Backoff::new();
        let s = Duration::from_secs;
        assert_eq!(schedule_left(&backoff, 0, 3), s(7));
        assert_eq!(schedule_left(&backoff, 1, 3), s(6));
        assert_eq!(schedule_left(&backoff, 3, 3), s(0));
        // At the cap (30 s) the rest are counted, not walked.
        assert_eq!(
            schedule_left(&backoff, 0, 7),
            s(1 + 2 + 4 + 8 + 16 + 30 + 30)
        );
        assert_eq!(schedule_left(&backoff, 5, u32::MAX), s(30) * (u32::MAX - 5));
        let huge = Backoff::new()
            .base_delay(Duration::MAX)
            .max_delay(Duration::MAX);
        assert_eq!(schedule_left(&huge, 0, u32::MAX), Duration::MAX);
    }
}
