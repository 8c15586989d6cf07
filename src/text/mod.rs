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

/// Writes a set of named flags as `Type(A | B)`: the `Debug` of the crate's small flag sets.
pub(crate) fn write_set<'a>(
    f: &mut std::fmt::Formatter<'_>,
    type_name: &str,
    members: impl Iterator<Item = &'a str>,
) -> std::fmt::Result {
    f.write_str(type_name)?;
    f.write_str("(")?;
    for (i, name) in members.enumerate() {
        if i > 0 {
            f.write_str(" | ")?;
        }
        f.write_str(name)?;
    }
    f.write_str(")")
}
