//! Text that reaches a user: credentials a request carried, redaction of secrets found by
//! their markers, and the bounds every message is kept within.

pub(crate) mod credentials;
pub(crate) mod redact;
pub(crate) mod safe;

pub use credentials::Credentials;
pub(crate) use credentials::SensitiveHeaders;

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`), for
/// percent-encoding a path segment or a query value.
pub(crate) const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
