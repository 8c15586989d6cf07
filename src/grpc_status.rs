//! `tonic` interop: every [`Error`] converts into a [`tonic::Status`] with the right code.
//!
//! With the `tonic` feature, an [`Error`] also carries the equivalent `Status` in its chain of
//! sources, which is where `tonic::client::Grpc` looks when a service below it fails: a call
//! through the crate's stack fails with the server's own gRPC code and message, not
//! `Unknown`.
//!
//! ```
//! use http::StatusCode;
//! use tower_api_retry::{ApiError, Error, ErrorCode};
//!
//! let err = Error::from(ApiError::new(StatusCode::OK, ErrorCode::Unavailable, "restarting"));
//! let status = tonic::Status::from(err);
//! assert_eq!(status.code(), tonic::Code::Unavailable);
//! assert_eq!(status.message(), "restarting");
//! ```

use crate::{Disposition, Error, ErrorCode};

/// The gRPC code for an [`Error`]: its own code where gRPC has one, else by disposition.
pub(crate) fn code_of(err: &Error) -> tonic::Code {
    match err.code().grpc_number() {
        Some(n) => tonic::Code::from_i32(n),
        None => match (err.code(), err.disposition()) {
            (ErrorCode::InvalidApiKey | ErrorCode::KeyRevoked | ErrorCode::KeyAutoDisabled, _) => {
                tonic::Code::Unauthenticated
            }
            (_, Disposition::Retry) => tonic::Code::Unavailable,
            (_, Disposition::RateLimited) => tonic::Code::ResourceExhausted,
            (_, Disposition::FixRequest) => tonic::Code::FailedPrecondition,
            (_, Disposition::Reauthenticate) => tonic::Code::Unauthenticated,
            (_, Disposition::Forbidden) => tonic::Code::PermissionDenied,
            (_, _) => tonic::Code::FailedPrecondition,
        },
    }
}

pub(crate) fn status_of(err: &Error) -> tonic::Status {
    let mut status = tonic::Status::new(code_of(err), err.message());
    if let Some(after) = err.retry_after() {
        let ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
        if let Ok(v) = ms.to_string().parse() {
            status
                .metadata_mut()
                .insert(crate::retry_after::GRPC_RETRY_PUSHBACK_MS, v);
        }
    }
    status
}

impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        status_of(&err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ApiError;
    use http::StatusCode;
    use std::{error::Error as _, time::Duration};

    #[test]
    fn codes_map() {
        let api = |s: u16, c: ErrorCode| {
            Error::from(ApiError::new(StatusCode::from_u16(s).unwrap(), c, "m"))
        };
        assert_eq!(
            code_of(&api(503, ErrorCode::RefreshInProgress)),
            tonic::Code::Unavailable
        );
        assert_eq!(
            code_of(&api(401, ErrorCode::KeyRevoked)),
            tonic::Code::Unauthenticated
        );
        assert_eq!(
            code_of(&api(409, ErrorCode::NoActiveUser)),
            tonic::Code::FailedPrecondition
        );
        assert_eq!(
            code_of(&api(429, ErrorCode::ResourceExhausted)),
            tonic::Code::ResourceExhausted
        );
        assert_eq!(
            code_of(&api(403, ErrorCode::AgentKeyConflict)),
            tonic::Code::PermissionDenied
        );
        assert_eq!(
            code_of(&Error::gate_closed(Duration::from_secs(2))),
            tonic::Code::ResourceExhausted
        );
    }

    #[test]
    fn the_status_is_in_the_source_chain() {
        let err = Error::from(
            ApiError::new(StatusCode::OK, ErrorCode::InvalidArgument, "bad name")
                .with_retry_after(Duration::from_millis(1500)),
        );
        let status = err
            .source()
            .unwrap()
            .downcast_ref::<tonic::Status>()
            .unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            status.metadata().get("grpc-retry-pushback-ms").unwrap(),
            "1500"
        );
    }
}
