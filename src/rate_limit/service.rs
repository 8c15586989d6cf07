use super::{
    Key, RateLimitBackoffLayer, RateLimitGates, ResponseBody,
    gate::{Check, refused, wait_turn},
    lanes::Turn,
    store::GateStore,
};
use crate::quota::{Quota, QuotaScope};
use crate::retry::{CallDeadline, ExhaustedBefore, ScheduleEnd, policy::RequestFacts};
use crate::{error::Error, retry::deadline::Deadline};
use http::{Request, Response};
use pin_project_lite::pin_project;
use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, SystemTime},
};
use tokio::time::Instant;
use tower::{BoxError, Service};

/// The service of [`RateLimitBackoffLayer`]. See the [module docs](super) for an example.
///
/// Clones share one gate map.
#[derive(Clone, Debug)]
pub struct RateLimitBackoff<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<RateLimitBackoffLayer>,
}

impl<S> RateLimitBackoff<S> {
    /// The gate map this service uses.
    pub fn gates(&self) -> &RateLimitGates {
        &self.config.gates
    }
}

impl<S, B, ResB> Service<Request<B>> for RateLimitBackoff<S>
where
    S: Service<Request<B>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = Error;
    type Future = ResponseFuture<S, B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        self.inner.poll_ready(cx).map_err(Error::transport)
    }

    #[inline]
    fn call(&mut self, request: Request<B>) -> Self::Future {
        let keys = match self.config.contract.quota_scope {
            QuotaScope::Path => self.config.key.key(&request).map(|key| (key, key)),
            _ => self.config.key.key_and_origin(&request),
        };
        let Some((key, scope)) = keys else {
            return ResponseFuture::called(self.inner.call(request), None);
        };
        // A retry of a request the server refused as such: one look-up in extensions that
        // are almost always empty.
        let again = request.extensions().get::<ExhaustedBefore>().is_some();
        // The fast path: no key is closed or paced anywhere (two atomic loads), or neither
        // this key nor its scope is (a lock-free filter).
        let gates = &self.config.gates;
        if gates.is_empty() || gates.passes(key, scope) {
            let track = Track::new(self.config.clone(), key, scope, again);
            return ResponseFuture::called(self.inner.call(request), Some(track));
        }
        self.call_at_gate(request, key, scope, again)
    }
}

impl<S> RateLimitBackoff<S> {
    /// Some key is closed: look `key` up, and send, wait or fail.
    #[inline(never)]
    fn call_at_gate<B>(
        &mut self,
        request: Request<B>,
        key: Key,
        scope: Key,
        again: bool,
    ) -> ResponseFuture<S, B>
    where
        S: Service<Request<B>> + Clone,
    {
        let config = &self.config;
        let mut track = Track::new(config.clone(), key, scope, again);
        let now = Instant::now();
        let longest = now
            .checked_add(config.max_wait)
            .unwrap_or_else(|| now + crate::retry_after::MAX_HINT);
        // A call waits no longer than its own deadline: the one the retry layer outside put in
        // its extensions, or a gRPC call's `grpc-timeout`.
        let own = Deadline::of(None, request.headers(), || now).map(|d| d.at);
        let call = [CallDeadline::of(&request).map(|d| d.at()), own]
            .into_iter()
            .flatten()
            .min()
            .filter(|at| *at < longest);
        let deadline = call.unwrap_or(longest);
        // A wait for an outage ends with the request's retry schedule, or the layer's bound.
        let stop = request
            .extensions()
            .get::<ScheduleEnd>()
            .map(ScheduleEnd::at)
            .or_else(|| config.max_outage_wait.and_then(|w| now.checked_add(w)))
            .filter(|end| *end < deadline);
        // A request that must not be sent twice is the probe only when none that may be
        // waits.
        let once = !RequestFacts::of(request.method(), request.headers()).idempotent;
        let mut turn = Turn::new((scope != key).then_some(scope), once);
        // The first look leaves out the end of the schedule: a request held past it fails in
        // `wait_turn`, as one that waited at the gate, and the retry layer then returns the
        // server's last answer rather than the closed gate.
        match config.gates.check(key, now, deadline, None, &mut turn) {
            Check::Go(probe) => {
                track.probe = probe;
                track.landing = turn.landing(key);
                return ResponseFuture::called(self.inner.call(request), Some(track));
            }
            Check::Fail(left, _) if call.is_none() => {
                let error = Some(refused(left));
                let state = State::Failed { error };
                return ResponseFuture { state, track: None };
            }
            // Asking the fleet takes a round trip: the request gives the local role back and
            // asks again as it waits.
            Check::Lease(id, _) => {
                config.gates.view.release_probe(key, id);
            }
            // A gate that opens past the call's deadline fails there (see `wait_turn`).
            Check::Fail(..) | Check::Wait { .. } => {}
        }
        // The request waits for its turn. Keep the instance that `poll_ready` readied; this
        // one takes its place.
        let clone = self.inner.clone();
        let service = std::mem::replace(&mut self.inner, clone);
        let wait = wait_turn(
            config.gates.clone(),
            key,
            deadline,
            call.is_some(),
            stop,
            turn,
        );
        let wait = crate::telemetry::gate_wait(wait);
        ResponseFuture {
            state: State::Waiting {
                wait: Box::pin(wait),
                pending: Some(Box::new((service, request, now))),
            },
            track: Some(track),
        }
    }
}

/// What the response future (or, for a gRPC response whose status is in its trailers, the
/// response body) reports back to the gate map.
pub(crate) struct Track {
    config: Arc<RateLimitBackoffLayer>,
    key: Key,
    /// Where a quota announced on the response applies.
    scope: Key,
    pub(crate) probe: Option<u64>,
    /// The lanes whose announced budget counted this request, told when it lands.
    landing: [Option<Key>; 2],
    /// The server last answered this request with a gRPC `RESOURCE_EXHAUSTED` that names no
    /// wait (the retry layer outside says so): the same answer again is the request's own.
    again: bool,
    /// How long the request waited at the gate before it was sent.
    waited: Duration,
}

impl Track {
    fn new(config: Arc<RateLimitBackoffLayer>, key: Key, scope: Key, again: bool) -> Track {
        Track {
            config,
            key,
            scope,
            probe: None,
            landing: [None, None],
            again,
            waited: Duration::ZERO,
        }
    }

    /// The request is answered: the budgets that counted it hear so.
    fn land(&mut self) {
        for key in self.landing.iter_mut().filter_map(Option::take) {
            self.config.gates.landed(key);
        }
    }

    /// The server accepted the request: count it for the pace of its key and its scope.
    #[inline]
    fn succeeded(&self) {
        self.config.gates.succeeded(self.key);
        if self.scope != self.key {
            self.config.gates.succeeded(self.scope);
        }
    }

    /// The response announced `quota` (for an error response, as the decode layer read it).
    fn announced(&self, quota: &Quota) {
        if !self.config.contract.rate_limit_headers.is_empty() {
            let max_closed = self.config.max_closed;
            self.config.gates.announced(self.scope, quota, max_closed);
        }
    }

    /// A response came: read the quota it announces, if any.
    #[inline]
    fn announce(&self, headers: &http::HeaderMap) {
        let conventions = self.config.contract.rate_limit_headers;
        if !headers.is_empty()
            && !conventions.is_empty()
            && let Some(quota) = Quota::read(headers, conventions, SystemTime::now())
        {
            self.announced(&quota);
        }
    }

    /// A probe's outcome, or any request's rate limit or outage signal.
    #[inline(never)]
    pub(crate) fn finish_slow(&mut self, error: Option<&Error>) {
        let probe = self.probe.take();
        let gates = &self.config.gates;
        match (error, probe) {
            // The same request, the same bare `RESOURCE_EXHAUSTED`: the server refuses the
            // request (a message over its size limit), which says nothing of the method. It
            // neither closes nor extends the gate; as a probe it hands the role on, so the
            // next request tests the method at once (see the module docs' outages).
            (Some(e), _) if self.again && e.verdict().is_bare_exhaustion() => {
                tracing::debug!(key = %self.key, "rate-limit gate: the same request refused again, not the method");
                if let Some(id) = probe {
                    gates.hand_on(self.key, id);
                }
            }
            (Some(e), _) if e.verdict().closes_gate() => {
                let hint = e.retry_after().map(|d| d.min(self.config.max_closed));
                gates.reject(self.key, hint, probe, &self.config.backoff);
                gates.scope_closed(self.scope, self.key, false);
            }
            (Some(e), _)
                if e.verdict().outage_signal().is_some()
                    && gates.outage(
                        self.key,
                        e.retry_after().map(|d| d.min(self.config.max_closed)),
                        probe,
                        &self.config.backoff,
                        &self.config.contract.outages,
                    ) =>
            {
                // A path out for an outage is evidence about its server, as a rate limit is:
                // two paths of one server out within a second hold the whole server.
                gates.scope_closed(self.scope, self.key, true);
            }
            // No answer (transport failure, an inner gate): another request probes.
            (Some(e), probe) if e.api().is_none() => {
                if let Some(id) = probe {
                    gates.hand_on(self.key, id);
                }
            }
            // Any other answer of the server (a success reported in gRPC trailers included)
            // opens the gate: the server accepted the request, as far as its rate goes.
            (_, probe) => {
                self.succeeded();
                if let Some(id) = probe {
                    gates.open(self.key, id);
                }
            }
        }
    }
}

impl Drop for Track {
    fn drop(&mut self) {
        self.land();
        // A probe dropped before its answer (cancelled, timed out by an outer layer).
        if let Some(id) = self.probe.take() {
            self.config.gates.hand_on(self.key, id);
        }
    }
}

/// `true` for a gRPC response whose status is still to come, in its trailers: headers
/// without `grpc-status`. (A trailers-only error is already an `Error`, decoded inside.)
#[inline]
fn status_in_trailers<B>(res: &Response<B>) -> bool {
    let headers = res.headers();
    !headers.is_empty()
        && crate::grpc::is_grpc(headers)
        && !headers.contains_key(crate::grpc::GRPC_STATUS)
}

type WaitFuture =
    Pin<Box<dyn Future<Output = Result<(Option<u64>, [Option<Key>; 2]), Error>> + Send>>;

pin_project! {
    /// The response future of [`RateLimitBackoff`].
    pub struct ResponseFuture<S, B>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        state: State<S::Future, S, B>,
        track: Option<Track>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, S, B> {
        Called { #[pin] future: F },
        // Boxed: only the slow path pays for the size of a service and a request.
        Waiting {
            wait: WaitFuture,
            // With when the wait began.
            pending: Option<Box<(S, Request<B>, Instant)>>,
        },
        Ready { pending: Option<Box<(S, Request<B>, Instant)>> },
        Failed { error: Option<Error> },
    }
}

impl<S, B> ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn called(future: S::Future, track: Option<Track>) -> Self {
        ResponseFuture {
            state: State::Called { future },
            track,
        }
    }
}

impl<S, B> fmt::Debug for ResponseFuture<S, B>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<S, B, ResB> Future for ResponseFuture<S, B>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Output = Result<Response<ResponseBody<ResB>>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Called { future } => {
                    let result = ready!(future.poll(cx)).map_err(Error::transport);
                    let res = match (result, this.track.take()) {
                        (Ok(res), None) => res.map(ResponseBody::plain),
                        (Ok(res), Some(track)) if status_in_trailers(&res) => {
                            // The outcome is in the trailers: the body reports it.
                            res.map(|body| ResponseBody::watched(body, track))
                        }
                        (Ok(res), Some(mut track)) => {
                            // The server's count includes this request: it is no longer in
                            // flight when its announcement is read.
                            track.land();
                            track.announce(res.headers());
                            if track.probe.is_some() {
                                track.finish_slow(None);
                            } else {
                                track.succeeded();
                            }
                            res.map(ResponseBody::plain)
                        }
                        (Err(mut e), track) => {
                            if let Some(mut track) = track {
                                if !track.waited.is_zero() {
                                    e.set_gate_wait(track.waited);
                                }
                                if let Some(quota) = e.quota() {
                                    // As for a success: the server counted this request.
                                    track.land();
                                    track.announced(quota);
                                }
                                track.finish_slow(Some(&e));
                            }
                            return Poll::Ready(Err(e));
                        }
                    };
                    return Poll::Ready(Ok(res));
                }
                StateProj::Waiting { wait, pending } => {
                    let polled = ready!(wait.as_mut().poll(cx));
                    // A wait for an outage spends the retry schedule of the request (see
                    // `ScheduleEnd`); one for a rate limit is the server's to ask.
                    let waited = match this.track.as_ref() {
                        Some(track) if track.config.gates.health.is_out(track.key) => {
                            pending.as_ref().map_or(Duration::ZERO, |p| p.2.elapsed())
                        }
                        _ => Duration::ZERO,
                    };
                    let (probe, landing) = polled.map_err(|mut e| {
                        e.set_gate_wait(waited);
                        e
                    })?;
                    if let Some(track) = this.track.as_mut() {
                        track.waited = waited;
                        track.landing = landing;
                        track.probe = probe;
                    }
                    let pending = pending.take();
                    this.state.set(State::Ready { pending });
                }
                StateProj::Ready { pending } => {
                    let (svc, ..) = &mut **pending.as_mut().expect("polled after completion");
                    // The wait may have been long: make sure the instance is still ready. If it
                    // failed, the probe role (if ours) goes on to the next waiter at once.
                    if let Err(e) = ready!(svc.poll_ready(cx)) {
                        if let Some(track) = this.track.as_mut()
                            && let Some(id) = track.probe.take()
                        {
                            track.config.gates.hand_on(track.key, id);
                        }
                        return Poll::Ready(Err(Error::transport(e)));
                    }
                    let (mut svc, request, _) = *pending.take().expect("polled after completion");
                    let future = svc.call(request);
                    this.state.set(State::Called { future });
                }
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error.take().expect("polled after completion")));
                }
            }
        }
    }
}
