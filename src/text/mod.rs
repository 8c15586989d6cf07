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

/// The methods and impls of a small flag set `$ty(u8)` with a `DEFAULT`: `contains`, `|`,
/// `|=`, a `Debug` naming the flags listed (through [`write_set`]) and `Default`.
macro_rules! flag_set {
    ($ty:ident [$($flag:ident),+ $(,)?], $member:literal, $members:literal, $example:literal) => {
        impl $ty {
            #[doc = concat!("`true` when every ", $member, " of `other` is in `self`.")]
            pub const fn contains(self, other: $ty) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl std::ops::BitOr for $ty {
            type Output = $ty;

            fn bitor(self, other: $ty) -> $ty {
                $ty(self.0 | other.0)
            }
        }

        impl std::ops::BitOrAssign for $ty {
            fn bitor_assign(&mut self, other: $ty) {
                self.0 |= other.0;
            }
        }

        impl std::fmt::Debug for $ty {
            #[doc = concat!("The names of the ", $members, ", as `", $example, "`.")]
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let names = [$((stringify!($flag), Self::$flag)),+];
                let members = names.into_iter().filter(|(_, s)| self.contains(*s));
                crate::text::write_set(f, stringify!($ty), members.map(|(name, _)| name))
            }
        }

        impl Default for $ty {
            #[doc = concat!("[`", stringify!($ty), "::DEFAULT`].")]
            fn default() -> Self {
                $ty::DEFAULT
            }
        }
    };
}
pub(crate) use flag_set;
