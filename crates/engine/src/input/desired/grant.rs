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

/// The days grants are counted in: today, and the date of a moment, in the schedule's time
/// zone (`timezone`, UTC by default). A grant with `until` is desired through the end of
/// that day there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calendar {
    pub zone: chrono_tz::Tz,
    pub today: NaiveDate,
}

impl Calendar {
    /// The calendar of this moment in `zone`.
    pub fn now(zone: chrono_tz::Tz) -> Self {
        Calendar::at(zone, chrono::Utc::now())
    }

    pub fn at(zone: chrono_tz::Tz, now: chrono::DateTime<chrono::Utc>) -> Self {
        Calendar {
            zone,
            today: now.with_timezone(&zone).date_naive(),
        }
    }

    /// The day `t` (a file's modification time) falls on in the zone.
    pub fn date_of(&self, t: std::time::SystemTime) -> NaiveDate {
        chrono::DateTime::<chrono::Utc>::from(t)
            .with_timezone(&self.zone)
            .date_naive()
    }

    /// Days from today to `until`: 0 on its last day, negative once it has ended.
    pub fn days_left(&self, until: NaiveDate) -> i64 {
        (until - self.today).num_days()
    }

    /// Whether a grant ending on `until` is still desired today.
    pub fn is_current(&self, until: Option<NaiveDate>) -> bool {
        until.is_none_or(|u| u >= self.today)
    }
}

/// The end of a role held through several grants: the latest `until`, or none when any
/// grant has none (a grant without an end from one source keeps the role).
pub fn latest_until<'g>(grants: impl IntoIterator<Item = &'g Grant>) -> Option<NaiveDate> {
    let mut latest = None;
    for g in grants {
        match g.until {
            None => return None,
            Some(u) => latest = latest.max(Some(u)),
        }
    }
    latest
}
