//! One grant of the desired state: a managed role for an email, with where it came from.
//!
//! The planner only needs each email's [`RoleSet`](crate::input::roles::RoleSet), so the grants are
//! kept beside it ([`DesiredState::grants`](super::DesiredState)) rather than in it: the pure
//! diff stays a bit-set comparison, and `plan` and `history --email` look a grant up only for
//! the actions they show. A role given by two sources is two grants, one per source.

use chrono::NaiveDate;
use std::fmt;
use std::sync::Arc;

/// Which configured source gave a grant, as people read it: `roles.yaml`, `grants.csv`,
/// `sql`, `ldap cn=media-admins`. Shared by every grant of the source (one allocation).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourceName(Arc<str>);

impl SourceName {
    pub fn new(name: impl AsRef<str>) -> Self {
        SourceName(Arc::from(name.as_ref()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for SourceName {
    fn default() -> Self {
        SourceName::new("source")
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// One managed role an email should hold, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Index into `roles.managed`.
    pub role: usize,
    pub source: SourceName,
    /// The last day the grant is desired (in the schedule's time zone), when it ends.
    pub until: Option<NaiveDate>,
    /// Why it was given, as the source wrote it (shown escaped).
    pub reason: Option<String>,
}

impl Grant {
    pub fn new(role: usize, source: SourceName) -> Self {
        Grant {
            role,
            source,
            until: None,
            reason: None,
        }
    }
}
