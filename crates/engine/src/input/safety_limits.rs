//! The safety limits a run is judged against: how many grants it may remove, in all, as a
//! share of the current ones, and for each managed role. The config parses them (`safety:`)
//! and the planner's guards ([`check_guards`](crate::sync::plan::check_guards)) read them; a type of
//! its own, so the planner depends on no config type and the config on nothing of the planner.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The limits of the whole-run guards (`safety:` in the config): how many grants a run may
/// remove, in all and as a share of the current ones, and per role.
#[derive(Debug, Clone)]
pub struct SafetyLimits {
    pub max_removals: usize,
    pub max_removal_ratio: f64,
    /// `safety.roles`: limits for one managed role (by index), overriding the two above for
    /// that role's own guard. Every managed role has a guard; this only changes its limits.
    pub roles: BTreeMap<usize, RoleLimits>,
    /// `safety.remove_after`: how long a grant must be missing from the sources before it is
    /// removed; `None` (the default) removes it on the first run that misses it.
    pub remove_after: Option<RemoveAfter>,
}

/// The grace period of `safety.remove_after`: a number of runs that must have seen the grant
/// missing, or a time it must have been missing for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoveAfter {
    Runs(u32),
    Time(Duration),
}

impl fmt::Display for RemoveAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoveAfter::Runs(1) => write!(f, "1 run"),
            RemoveAfter::Runs(n) => write!(f, "{n} runs"),
            RemoveAfter::Time(d) => write!(f, "{}", humantime::format_duration(*d)),
        }
    }
}

/// A per-role override of the removal guard; `None` keeps the overall value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoleLimits {
    pub max_removals: Option<usize>,
    pub max_removal_ratio: Option<f64>,
}
