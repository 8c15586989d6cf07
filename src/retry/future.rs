use super::{
    Attempts, ExhaustedBefore, ReplayBody,
    deadline::{Deadline, GRPC_TIMEOUT, encode_grpc_timeout},
    layer::Shared,
    policy::{self, Refusal},
};
use crate::{error::Error, reason::NotRetried, telemetry, text::Credentials};
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
    pub(crate) shared: Arc<Shared>,
    pub(crate) deadline: Option<Deadline>,
    /// For a gRPC call with a deadline, once armed: fires at the deadline and cuts the attempt
    /// in flight short. Boxed, made once per call, and only when needed.
    pub(crate) cutoff: Option<Pin<Box<Sleep>>>,
    /// The last attempt's error, kept while waiting to send the next one.
    pub(crate) last: Option<Error>,
    pub(crate) previous: Option<Duration>,
    pub(crate) pending: Option<B>,
    /// The server's last answer to this request was a gRPC `RESOURCE_EXHAUSTED` that names
    /// no wait: the same answer again is the request's own (see [`Retrying::decide`]).
    pub(crate) exhausted: bool,
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
    pub(crate) fn passthrough(future: S::Future, span: tracing::Span) -> Self {
        ResponseFuture {
            state: State::Called { future },
            retry: None,
            attempts: 1,
            span,
        }
    }

    pub(crate) fn retrying(future: S::Future, span: tracing::Span, retry: Retrying<S, B>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            retry: Some(retry),
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
                    let polled = telemetry::in_span(this.span, || future.poll(cx));
                    let result = match polled {
                        Poll::Ready(result) => result,
                        Poll::Pending => {
                            if let Some(retry) = this.retry.as_mut()
                                && retry.cut_off(cx)
                            {
                                // The deadline passed with the attempt in flight: drop it.
                                this.state.set(State::Done);
                                let mut err = Error::transport_with(
                                    tower::timeout::error::Elapsed::new(),
                                    &Credentials::new(),
                                    &retry.shared.contract,
                                );
                                err.set_attempts(*this.attempts);
                                telemetry::attempt_failed(this.span, &err);
                                let why = NotRetried::DeadlineDuringAttempt {
                                    limit: retry.limit(),
                                    attempt: *this.attempts,
                                };
                                retry.refuse(&mut err, Refusal::Deadline(why));
                                return Poll::Ready(Err(err));
                            }
                            return Poll::Pending;
                        }
                    };
                    let mut err = match result {
                        Ok(mut res) => {
                            telemetry::attempt_ok(this.span, res.status());
                            if *this.attempts > 1 {
                                res.extensions_mut().insert(Attempts(*this.attempts));
                            } else if !res.extensions().is_empty() {
                                // A first attempt's success carries no count (`Attempts::of`
                                // answers 1), not even one an inner retry layer left.
                                res.extensions_mut().remove::<Attempts>();
                            }
                            return Poll::Ready(Ok(res));
                        }
                        Err(e) => match this.retry.as_ref() {
                            Some(retry) => Error::transport_with(
                                e,
                                &Credentials::new(),
                                &retry.shared.contract,
                            ),
                            None => Error::transport(e),
                        },
                    };
                    // Drop the failed attempt first: a request it never sent hands its body
                    // back as it goes (see `CaptureBody`), for the replay below.
                    this.state.set(State::Done);
                    err.set_attempts(*this.attempts);
                    let Some(retry) = this.retry.as_mut() else {
                        telemetry::attempt_failed(this.span, &err);
                        return Poll::Ready(Err(err));
                    };
                    telemetry::attempt_failed(this.span, &err);
                    match retry.decide(&err, *this.attempts) {
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
                            retry.last = Some(err);
                            this.state.set(State::Waiting {
                                sleep: tokio::time::sleep(wait),
                            });
                        }
                        Err(Refusal::AtDeadline) => {
                            // Nothing is sent again: the call ends when its deadline does.
                            let at = retry.deadline.map_or_else(Instant::now, |d| d.at);
                            retry.last = Some(err);
                            this.state.set(State::Waiting {
                                sleep: tokio::time::sleep_until(at),
                            });
                        }
                        Err(refusal) => {
                            retry.refuse(&mut err, refusal);
                            return Poll::Ready(Err(err));
                        }
                    }
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
                    if left.is_some_and(|left| left.is_zero()) || retry.cut_off(cx) {
                        let mut err = retry.last.take().expect("the last error is kept");
                        let why = NotRetried::DeadlineBeforeAttempt {
                            limit: retry.limit(),
                            attempt: *this.attempts + 1,
                        };
                        retry.refuse(&mut err, Refusal::Deadline(why));
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err));
                    }
                    if let Err(e) = ready!(retry.service.poll_ready(cx)) {
                        let mut err =
                            Error::transport_with(e, &Credentials::new(), &retry.shared.contract);
                        err.set_attempts(*this.attempts);
                        return Poll::Ready(Err(err));
                    }
                    let body = retry
                        .pending
                        .take()
                        .expect("a body is replayed before waiting");
                    let mut parts = retry.parts.clone();
                    if let (Some(deadline), Some(left)) = (retry.deadline, left)
                        && deadline.grpc
                    {
                        // Each attempt carries the time that is left, and is cut off when it
                        // runs out.
                        parts
                            .headers
                            .insert(GRPC_TIMEOUT, encode_grpc_timeout(left));
                        retry.arm_cutoff();
                    }
                    if retry.exhausted {
                        parts.extensions.insert(ExhaustedBefore);
                    }
                    retry.last = None;
                    let req = Request::from_parts(parts, body);
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
        let config = &self.shared.config;
        let now = Instant::now();
        let retries = attempts.saturating_sub(1);
        let backoff = config.backoff.delay(retries, self.previous);
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
        }
        let (copy, pending) = (&self.copy, &mut self.pending);
        let replay = || {
            *pending = Some(B::replay(copy)?);
            Ok(())
        };
        let budget = self.shared.budget.as_ref().map(|budget| {
            |bound| {
                let ready = budget.take(bound)?;
                if !ready.is_zero() {
                    tracing::debug!(
                        wait_ms = u64::try_from(ready.as_millis()).unwrap_or(u64::MAX),
                        "retry budget spent: waiting for it"
                    );
                }
                Ok(ready)
            }
        });
        let decided = policy::decide(&facts, config, replay, budget);
        match &decided {
            Ok(_) => self.previous = Some(backoff),
            Err(Refusal::Note(NotRetried::BudgetExhausted)) => telemetry::budget_exhausted(),
            Err(_) => {}
        }
        if decided.is_err() {
            self.pending = None;
        }
        decided
    }

    /// Says on `err` why it is returned; a gRPC call whose deadline ran out becomes
    /// `DEADLINE_EXCEEDED`.
    fn refuse(&self, err: &mut Error, refusal: Refusal) {
        match refusal {
            Refusal::Quiet | Refusal::AtDeadline => {}
            Refusal::Note(why) => {
                telemetry::not_retried(&why);
                err.set_not_retried(why);
            }
            Refusal::Deadline(why) => {
                telemetry::not_retried(&why);
                err.set_not_retried(why);
                if self.deadline.is_some_and(|d| d.grpc) {
                    err.set_deadline_exceeded();
                }
            }
        }
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
