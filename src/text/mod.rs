//! Text that reaches a user: credentials a request carried, redaction of secrets found by
//! their markers, and the bounds every message is kept within.

pub(crate) mod credentials;
pub(crate) mod redact;
pub(crate) mod safe;

pub use credentials::Credentials;
pub(crate) use credentials::SensitiveHeaders;
