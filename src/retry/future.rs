use super::{Attempts, ReplayBody, layer::Shared, policy};
use crate::error::{BoxError, Error};
use http::{Request, Response, request::Parts};
use pin_project_lite::pin_project;
use std::{
    borrow::Cow,
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};
use tokio::time::{Instant, Sleep};
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
    pub(crate) parts: Parts,
    pub(crate) copy: B::Replay,
    pub(crate) shared: Arc<Shared>,
    pub(crate) started: Option<Instant>,
    pub(crate) previous: Option<Duration>,
    pub(crate) pending: Option<B>,
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
    pub(crate) fn passthrough(future: S::Future) -> Self {
        ResponseFuture {
            state: State::Called { future },
            retry: None,
            attempts: 1,
        }
    }

    pub(crate) fn retrying(future: S::Future, retry: Retrying<S, B>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            retry: Some(retry),
            attempts: 1,
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
                    let mut err = match ready!(future.poll(cx)) {
                        Ok(mut res) => {
                            res.extensions_mut().insert(Attempts(*this.attempts));
                            return Poll::Ready(Ok(res));
                        }
                        Err(e) => Error::transport(e),
                    };
                    // Drop the failed attempt first: a request it never sent hands its body
                    // back as it goes (see `CaptureBody`), for the replay below.
                    this.state.set(State::Done);
                    err.set_attempts(*this.attempts);
                    let Some(retry) = this.retry.as_mut() else {
                        return Poll::Ready(Err(err));
                    };
                    match retry.decide(&err, *this.attempts) {
                        Ok(wait) => {
                            tracing::info!(
                                attempt = *this.attempts + 1,
                                wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                                status = err.status().map(|s| s.as_u16()),
                                code = err.code().as_str(),
                                method = retry.parts.method.as_str(),
                                path = retry.parts.uri.path(),
                                "retrying request"
                            );
                            this.state.set(State::Waiting {
                                sleep: tokio::time::sleep(wait),
                            });
                        }
                        Err(note) => {
                            if let Some(note) = note {
                                err.set_note(note);
                            }
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
                    if let Err(e) = ready!(retry.service.poll_ready(cx)) {
                        let mut err = Error::transport(e);
                        err.set_attempts(*this.attempts);
                        return Poll::Ready(Err(err));
                    }
                    let body = retry
                        .pending
                        .take()
                        .expect("a body is replayed before waiting");
                    let req = Request::from_parts(retry.parts.clone(), body);
                    *this.attempts += 1;
                    this.state.set(State::Called {
                        future: retry.service.call(req),
                    });
                }
                StateProj::Done => panic!("`ResponseFuture` polled after completion"),
            }
        }
    }
}

impl<S, B: ReplayBody> Retrying<S, B> {
    /// Whether to send the request again after `err`, and after how long. On `Ok` the body
    /// to send is in `pending`; `Err` carries the note saying why not.
    fn decide(
        &mut self,
        err: &Error,
        attempts: u32,
    ) -> Result<Duration, Option<Cow<'static, str>>> {
        let config = &self.shared.config;
        if !err.is_retryable() {
            if err.api().is_some_and(crate::ApiError::server_forbids_retry) {
                return Err(Some(
                    "not retried: the server forbids retrying (negative grpc-retry-pushback-ms)"
                        .into(),
                ));
            }
            return Err(None);
        }
        let retries = attempts.saturating_sub(1);
        if retries >= config.max_retries {
            return Err(Some(
                format!("not retried: max_retries ({}) reached", config.max_retries).into(),
            ));
        }
        // Worked out only here, on the error path: the success path never looks at headers.
        let facts = policy::RequestFacts::of(&self.parts.method, &self.parts.headers);
        if !facts.idempotent
            && !config.retry_non_idempotent
            && !policy::not_processed(err, facts, config.retry_grpc_unavailable)
        {
            return Err(Some(
                format!(
                    "not retried: {} is not idempotent and the server may have processed it \
                     (send an Idempotency-Key header, or opt in with retry_non_idempotent)",
                    self.parts.method
                )
                .into(),
            ));
        }
        let hint = err.retry_after();
        if let Some(hint) = hint.filter(|h| *h > config.max_retry_after) {
            return Err(Some(
                format!(
                    "not retried: the server asked to wait {hint:?}, more than max_retry_after ({:?})",
                    config.max_retry_after
                )
                .into(),
            ));
        }
        let body = B::replay(&self.copy).map_err(|why| Some(why.note().into()))?;
        let backoff = config.backoff.delay(retries, self.previous);
        let wait = backoff.max(hint.unwrap_or(Duration::ZERO));
        if let (Some(deadline), Some(started)) = (config.deadline, self.started) {
            let end = started.elapsed().saturating_add(wait);
            if end > deadline {
                return Err(Some(
                    format!(
                        "not retried: waiting {wait:?} would overrun the deadline ({deadline:?})"
                    )
                    .into(),
                ));
            }
        }
        if let Some(budget) = &self.shared.budget
            && !budget.withdraw()
        {
            return Err(Some("not retried: the retry budget is exhausted".into()));
        }
        self.previous = Some(backoff);
        self.pending = Some(body);
        Ok(wait)
    }
}
