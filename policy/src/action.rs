//! What may happen to a table or column on this machine ([`Action`]), and the machine-wide
//! kill switch ([`Mode`]).

use std::fmt;

use serde::Serialize;

/// What the daemon may do with an object, ordered from least to most strict:
/// `Cache < ReadThrough < Deny`. Combining decisions is always `max`, so "tightening" is
/// well-defined and can never lose a restriction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Visible, and its bytes may be written to the local cache (and prewarmed).
    #[default]
    Cache,
    /// Visible and readable, fetched on demand; its bytes are never written to disk (neither
    /// cache nor mirror), so they live only in memory while a read is served.
    ReadThrough,
    /// Invisible and unreadable: absent from the mount, the SQL views and the mirror.
    Deny,
}

impl Action {
    /// Every action, least strict first.
    pub const ALL: [Action; 3] = [Action::Cache, Action::ReadThrough, Action::Deny];

    /// Parses the policy-file spelling: `cache`, `read-through` or `deny`.
    pub fn parse(text: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == text)
    }

    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Cache => "cache",
            Action::ReadThrough => "read-through",
            Action::Deny => "deny",
        }
    }

    /// Whether bytes of the object may be written to disk (cache, mirror of inlined rows).
    pub fn may_store(self) -> bool {
        self == Action::Cache
    }

    /// Whether the object may be shown (listed, opened, queried).
    pub fn is_visible(self) -> bool {
        self != Action::Deny
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[local] mode`: whether this machine may hold anything of the lake at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Rules decide, object by object.
    #[default]
    Allow,
    /// Nothing of the lake is stored or shown on this machine, whatever the rules say: no
    /// cache, no mirror, an empty mount, no tables in SQL.
    Deny,
}

impl Mode {
    /// Parses the policy-file spelling: `allow` or `deny`.
    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "allow" => Some(Mode::Allow),
            "deny" => Some(Mode::Deny),
            _ => None,
        }
    }

    /// The policy-file spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Allow => "allow",
            Mode::Deny => "deny",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness_order() {
        assert!(Action::Cache < Action::ReadThrough);
        assert!(Action::ReadThrough < Action::Deny);
        assert!(Mode::Allow < Mode::Deny);
        let mut sorted = Action::ALL;
        sorted.sort();
        assert_eq!(sorted, Action::ALL);
    }

    #[test]
    fn spellings_round_trip() {
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        assert_eq!(Action::parse("read_through"), None);
        assert_eq!(Action::parse("Deny"), None);
        assert_eq!(Mode::parse("deny"), Some(Mode::Deny));
        assert_eq!(Mode::parse("allow"), Some(Mode::Allow));
        assert_eq!(Mode::parse("off"), None);
    }

    #[test]
    fn capabilities() {
        assert!(Action::Cache.may_store() && Action::Cache.is_visible());
        assert!(!Action::ReadThrough.may_store() && Action::ReadThrough.is_visible());
        assert!(!Action::Deny.may_store() && !Action::Deny.is_visible());
    }
}
