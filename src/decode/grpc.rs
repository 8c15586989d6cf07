//! gRPC errors in response headers: `grpc-status` and the percent-encoded `grpc-message`.

use super::Credentials;
use crate::{
    error::{ApiError, Assembly, BodyShape},
    retry_after::Hint,
};
use http::{HeaderMap, StatusCode};

pub(super) use crate::grpc::is_error;

/// The gRPC error in `headers`, if any (see `grpc::status`); a parsable number is
/// kept as the numeric code.
pub(super) fn decode(
    status: StatusCode,
    headers: &HeaderMap,
    hint: Hint,
    credentials: &Credentials,
) -> Option<ApiError> {
    let crate::grpc::GrpcStatus { code, number } = crate::grpc::status(headers)?;
    let message = crate::grpc::message(headers, credentials);
    let message = if message.is_empty() {
        code.as_str().to_owned()
    } else {
        message
    };
    Some(ApiError::assemble(Assembly {
        message,
        hint,
        numeric_code: number.map(i64::from),
        grpc: crate::grpc::metadata::GrpcExtra::capture(headers, credentials),
        ..Assembly::new(status, code, BodyShape::Grpc)
    }))
}
