//! `tonic` interop: every [`Error`] converts into a [`tonic::Status`] with the right code.
//!
//! An [`Error`] also carries the equivalent `Status` in its chain of sources, where
//! `tonic::client::Grpc` looks, so a call through the stack fails with the server's own code,
//! message, details and metadata, not `Unknown`.

use crate::error::Error;

/// The gRPC code for an [`Error`]: its own code where gRPC has one, else by the class of its
/// status and code.
pub(crate) fn code_of(err: &Error) -> tonic::Code {
    tonic::Code::from_i32(crate::contract::grpc_number_for(err.code(), err.class()))
}

pub(crate) fn status_of(err: &Error) -> tonic::Status {
    // What the server sent besides its status goes with it, as tonic itself would keep it.
    if err.is_deadline_exceeded() {
        // The details and metadata belong to the last answer, not to this status.
        let last = err.api().map_or("no answer", |api| api.code().as_str());
        return tonic::Status::deadline_exceeded(format!(
            "the call's deadline ran out after {} attempt(s); the last one answered {last}: {}",
            err.attempts(),
            err.message()
        ));
    }
    let mut status = match err.api().and_then(|api| api.grpc_extra()) {
        Some(extra) => tonic::Status::with_details_and_metadata(
            code_of(err),
            err.message(),
            extra.details.clone().unwrap_or_default(),
            tonic::metadata::MetadataMap::from_headers(extra.metadata.clone()),
        ),
        None => tonic::Status::new(code_of(err), err.message()),
    };
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

/// Every [`Error`] converts into a [`tonic::Status`] with the right code, its message,
/// details and metadata. An [`Error`] also carries the equivalent `Status` in its chain of
/// sources, where `tonic::client::Grpc` looks, so a call through the stack fails with the
/// server's own code, not `Unknown`.
///
/// ```
/// use http::StatusCode;
/// use tower_api_retry::{ApiError, Error, ErrorCode};
///
/// let err = Error::from(ApiError::new(StatusCode::OK, ErrorCode::Unavailable, "restarting"));
/// let status = tonic::Status::from(err);
/// assert_eq!(status.code(), tonic::Code::Unavailable);
/// assert_eq!(status.message(), "restarting");
/// ```
impl From<Error> for tonic::Status {
    fn from(err: Error) -> Self {
        status_of(&err)
    }
}

crate::retry::body::replay_by_capture! {
    [] tonic::body::Body => Self::new;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        code::ErrorCode,
        error::ApiError,
        retry::{
            ReplayBody,
            body::tests::{drain, frames, three_attempts},
        },
    };
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
    fn details_and_metadata_are_kept() {
        let mut headers = http::HeaderMap::new();
        headers.insert("grpc-status", "5".parse().unwrap());
        headers.insert("grpc-message", "no%20such%20node".parse().unwrap());
        headers.insert("grpc-status-details-bin", "CAUSBG5vcGU".parse().unwrap());
        headers.insert("x-debug-id", "dbg-7".parse().unwrap());
        headers.insert("trace-bin", "AAEC".parse().unwrap());
        let err = Error::from(ApiError::decode(StatusCode::OK, &headers, b""));
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::NotFound);
        assert_eq!(status.message(), "no such node");
        assert_eq!(status.details(), b"\x08\x05\x12\x04nope");
        assert_eq!(status.metadata().get("x-debug-id").unwrap(), "dbg-7");
        assert_eq!(
            &status
                .metadata()
                .get_bin("trace-bin")
                .unwrap()
                .to_bytes()
                .unwrap()[..],
            [0, 1, 2]
        );
        assert!(status.metadata().get("grpc-status").is_none());
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

    #[tokio::test]
    async fn tonic_bodies_replay() {
        let got = three_attempts(
            tonic::body::Body::new(frames(&[b"\0\0\0\0\x01", b"z"], true)),
            64,
        )
        .await;
        let first = got[0].clone().unwrap();
        assert_eq!(first.0.len(), 6);
        assert!(first.1.is_some());
        assert!(got.iter().all(|a| a.as_ref() == Ok(&first)));
        // Never sent: handed back.
        let body = tonic::body::Body::new(frames(&[b"\0\0\0\0\x01", b"z"], true));
        let (unsent, copy) = body.capture(64);
        drop(unsent);
        let again = tonic::body::Body::replay(&copy).unwrap();
        assert_eq!(drain(again).await, first);
    }
}
