//! Where a value came from. After a central policy is tightened by a local one, each limit
//! and rule still knows its file and line, so `warmlake policy check` and `explain` can say
//! "max_cache 20 GiB (policy.toml:4)" instead of leaving the admin to guess which file won.

use std::fmt;

use serde::Serialize;

/// A file name and the 1-based line of a value, rule or job in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Origin {
    /// The file name given to [`crate::Policy::parse`], or what stands in for a file when no
    /// file set the value (see [`crate::Policy::deny_all`]).
    pub file: String,
    /// 1-based line; 0 when the value was not written in a file.
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 { f.write_str(&self.file) } else { write!(f, "{}:{}", self.file, self.line) }
    }
}

/// A value set in a policy file, with where it was set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    /// The value.
    pub value: T,
    /// Where it was written.
    pub origin: Origin,
}

/// Serialises a duration as whole seconds, the unit every JSON consumer understands.
pub(crate) fn serialize_secs<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(duration.as_secs())
}
