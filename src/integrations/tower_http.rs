//! The crate's classification as a `tower_http` classifier, so `TraceLayer` (and anything else
//! driven by [`ClassifyResponse`]) reports failures by [`Disposition`].
//!
//! ```
//! use tower_api_retry::{Disposition, ErrorContract};
//! use tower_api_retry::integrations::tower_http::ContractClassifier;
//!
//! // The built-in contract:
//! let trace = ContractClassifier::trace_layer(ErrorContract::new());
//! // Or one with the codes an API declares, the same value the layers of the stack consult:
//! let contract = ErrorContract::new().code("QUOTA_EXCEEDED", Disposition::RateLimited);
//! let trace = ContractClassifier::trace_layer(contract);
//! # let _ = trace;
//! ```
//!
//! `TraceLayer`'s default span records the whole URI, query string included, which puts a
//! `?token=convo_…` credential into every log line. [`PathOnlySpan`] records the method and the
//! path only; [`ContractClassifier::trace_layer`] uses it. A `TraceLayer` of your own takes
//! the classifier as `SharedClassifier::new(ContractClassifier::new(contract))`; give it
//! `.make_span_with(PathOnlySpan)` on any stack that may carry credentials in the query.
//!
//! Responses are classified by HTTP status (400 and above are failures) and by `grpc-status`,
//! in the headers (trailers-only) or in the trailers at the end of the stream. Errors of this
//! crate's stack are classified by their own code; any other error counts as a transport
//! failure.

use crate::{classify::Disposition, code::ErrorCode, contract::ErrorContract, error::Error};
use http::{HeaderMap, Response, StatusCode};
use std::{any::Any, fmt};
use tower_http::{
    classify::{ClassifiedResponse, ClassifyEos, ClassifyResponse, SharedClassifier},
    trace::{MakeSpan, TraceLayer},
};

/// A failure as [`ContractClassifier`] reports it: the disposition, the code and the status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailureClass {
    disposition: Disposition,
    code: ErrorCode,
    status: Option<StatusCode>,
}

impl FailureClass {
    /// What a careful caller does.
    pub fn disposition(&self) -> Disposition {
        self.disposition
    }

    /// The code (derived from the status when only a status is known).
    pub fn code(&self) -> &ErrorCode {
        &self.code
    }

    /// The HTTP status, `None` for an error without a response.
    pub fn status(&self) -> Option<StatusCode> {
        self.status
    }

    fn new(contract: &ErrorContract, status: Option<StatusCode>, code: ErrorCode) -> FailureClass {
        FailureClass {
            disposition: contract.disposition(status, &code),
            code,
            status,
        }
    }
}

impl fmt::Display for FailureClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}", self.disposition, self.code)?;
        if let Some(status) = self.status {
            write!(f, ", HTTP {}", status.as_u16())?;
        }
        f.write_str(")")
    }
}

/// Classifies responses and errors by an [`ErrorContract`] (the built-in one by default). See
/// the [module docs](self).
#[derive(Clone, Debug, Default)]
pub struct ContractClassifier {
    contract: ErrorContract,
}

impl ContractClassifier {
    /// A classifier of `contract`: it classifies the responses it sees by `contract`, and an
    /// [`Error`] by the [`Verdict`](crate::Verdict) the error carries.
    pub fn new(contract: ErrorContract) -> ContractClassifier {
        ContractClassifier { contract }
    }

    /// A `TraceLayer` that classifies by `contract` and never logs a query string.
    pub fn trace_layer(
        contract: ErrorContract,
    ) -> TraceLayer<SharedClassifier<ContractClassifier>, PathOnlySpan> {
        TraceLayer::new(SharedClassifier::new(ContractClassifier::new(contract)))
            .make_span_with(PathOnlySpan)
    }
}

/// A `tower_http` span maker that records the method and the path, never the query string
/// (where `?token=` credentials live) nor any header.
#[derive(Clone, Copy, Debug, Default)]
pub struct PathOnlySpan;

impl<B> MakeSpan<B> for PathOnlySpan {
    fn make_span(&mut self, request: &http::Request<B>) -> tracing::Span {
        tracing::debug_span!("request", method = %request.method(), path = %request.uri().path())
    }
}

fn grpc_failure(
    contract: &ErrorContract,
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<FailureClass> {
    let code = crate::grpc::status(headers)?.code;
    let mut class = FailureClass::new(contract, Some(status), code);
    // A negative or unparsable pushback: the server forbade a retry.
    if class.disposition.is_retryable()
        && crate::retry_after::hint_from_headers(headers).do_not_retry
    {
        class.disposition = Disposition::DoNotRetry;
    }
    Some(class)
}

fn error_class<E: fmt::Display + 'static>(contract: &ErrorContract, error: &E) -> FailureClass {
    match (error as &dyn Any).downcast_ref::<Error>() {
        Some(err) => FailureClass {
            disposition: err.disposition(),
            code: err.code().clone(),
            status: err.status(),
        },
        None => FailureClass::new(contract, None, ErrorCode::Unavailable),
    }
}

impl ClassifyResponse for ContractClassifier {
    type FailureClass = FailureClass;
    type ClassifyEos = GrpcEos;

    fn classify_response<B>(self, res: &Response<B>) -> ClassifiedResponse<FailureClass, GrpcEos> {
        let status = res.status();
        if let Some(class) = grpc_failure(&self.contract, status, res.headers()) {
            return ClassifiedResponse::Ready(Err(class));
        }
        if status.as_u16() >= 400 {
            return ClassifiedResponse::Ready(Err(FailureClass::new(
                &self.contract,
                Some(status),
                ErrorCode::from_status(status),
            )));
        }
        if crate::grpc::is_grpc(res.headers()) {
            ClassifiedResponse::RequiresEos(GrpcEos {
                status,
                contract: self.contract,
            })
        } else {
            ClassifiedResponse::Ready(Ok(()))
        }
    }

    fn classify_error<E: fmt::Display + 'static>(self, error: &E) -> FailureClass {
        error_class(&self.contract, error)
    }
}

/// Classifies the end of a gRPC stream by the `grpc-status` trailer.
#[derive(Clone, Debug)]
pub struct GrpcEos {
    status: StatusCode,
    contract: ErrorContract,
}

impl ClassifyEos for GrpcEos {
    type FailureClass = FailureClass;

    fn classify_eos(self, trailers: Option<&HeaderMap>) -> Result<(), FailureClass> {
        match trailers.and_then(|t| grpc_failure(&self.contract, self.status, t)) {
            Some(class) => Err(class),
            None => Ok(()),
        }
    }

    fn classify_error<E: fmt::Display + 'static>(self, error: &E) -> FailureClass {
        error_class(&self.contract, error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiError;

    fn res(status: u16, headers: &[(&'static str, &'static str)]) -> Response<()> {
        let mut r = Response::builder().status(status);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        r.body(()).unwrap()
    }

    fn ready(r: ClassifiedResponse<FailureClass, GrpcEos>) -> Result<(), FailureClass> {
        match r {
            ClassifiedResponse::Ready(r) => r,
            ClassifiedResponse::RequiresEos(_) => panic!("expected a ready classification"),
        }
    }

    #[test]
    fn statuses_and_grpc_headers() {
        let c = ContractClassifier::default();
        assert_eq!(ready(c.clone().classify_response(&res(200, &[]))), Ok(()));
        assert_eq!(
            ready(c.clone().classify_response(&res(503, &[])))
                .unwrap_err()
                .disposition(),
            Disposition::Retry
        );
        assert_eq!(
            ready(c.clone().classify_response(&res(429, &[])))
                .unwrap_err()
                .disposition(),
            Disposition::RateLimited
        );
        assert_eq!(
            ready(c.clone().classify_response(&res(401, &[])))
                .unwrap_err()
                .disposition(),
            Disposition::Reauthenticate
        );
        let grpc = ready(
            c.clone()
                .classify_response(&res(200, &[("grpc-status", "8")])),
        )
        .unwrap_err();
        assert_eq!(
            (grpc.code(), grpc.disposition()),
            (&ErrorCode::ResourceExhausted, Disposition::RateLimited)
        );
        assert_eq!(
            grpc.to_string(),
            "rate_limited (RESOURCE_EXHAUSTED, HTTP 200)"
        );
    }

    #[test]
    fn a_refused_retry_is_classified_as_such() {
        let c = ContractClassifier::default();
        let res = res(
            200,
            &[
                ("content-type", "application/grpc"),
                ("grpc-status", "14"),
                ("grpc-retry-pushback-ms", "-1"),
            ],
        );
        let ClassifiedResponse::Ready(Err(class)) = c.clone().classify_response(&res) else {
            panic!("a trailers-only error is classified at once");
        };
        assert_eq!(class.disposition(), Disposition::DoNotRetry);
        assert_eq!(class.code(), &ErrorCode::Unavailable);
    }

    #[test]
    fn grpc_trailers_at_end_of_stream() {
        let c = ContractClassifier::default();
        let ClassifiedResponse::RequiresEos(eos) = c
            .clone()
            .classify_response(&res(200, &[("content-type", "application/grpc")]))
        else {
            panic!("a gRPC response is classified at its end");
        };
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "14".parse().unwrap());
        assert_eq!(
            eos.clone()
                .classify_eos(Some(&trailers))
                .unwrap_err()
                .code(),
            &ErrorCode::Unavailable
        );
        trailers.insert("grpc-status", "0".parse().unwrap());
        assert_eq!(eos.clone().classify_eos(Some(&trailers)), Ok(()));
    }

    #[test]
    fn the_span_never_records_the_query() {
        use tracing_subscriber::layer::SubscriberExt;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = {
            let buf = buf.clone();
            move || SharedWriter(buf.clone())
        };
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(false)
                .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW),
        );
        tracing::subscriber::with_default(subscriber, || {
            // Other tests may have cached these callsites' interest without a subscriber.
            tracing::callsite::rebuild_interest_cache();
            let req = http::Request::get("http://h/api/events?token=convo_SECRET")
                .body(())
                .unwrap();
            let span = PathOnlySpan.make_span(&req);
            span.in_scope(|| tracing::debug!("inside"));
        });
        let out = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
        assert!(out.contains("/api/events"), "{out}");
        assert!(!out.contains("SECRET") && !out.contains("token"), "{out}");
    }

    struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for SharedWriter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn errors_of_the_stack_keep_their_class() {
        let err = Error::from(ApiError::new(
            StatusCode::CONFLICT,
            ErrorCode::SubscriptionCanceled,
            "gone",
        ));
        let class = ContractClassifier::default().classify_error(&err);
        assert_eq!(class.disposition(), Disposition::NeedsHuman);
        assert_eq!(class.status(), Some(StatusCode::CONFLICT));
        let other = ContractClassifier::default().classify_error(&std::io::Error::other("reset"));
        assert_eq!(other.disposition(), Disposition::Retry);
    }
}
