//! Which safety guard stopped a run, as `runs.guard` records it: the planner decides it, the
//! history stores it, and `approve` and the console read it back to tell whether an approval
//! can lift it. The text of each kind is a contract (docs/contracts.md).

use std::fmt;

/// Which guard tripped, as `runs.guard` records it (the text is what users query).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuardKind {
    EmptyDesired,
    RoleMaxRemovals,
    RoleMaxRemovalRatio,
    MaxRemovals,
    MaxRemovalRatio,
    PlanChanged,
}

impl GuardKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GuardKind::EmptyDesired => "empty_desired",
            GuardKind::RoleMaxRemovals => "role_max_removals",
            GuardKind::RoleMaxRemovalRatio => "role_max_removal_ratio",
            GuardKind::MaxRemovals => "max_removals",
            GuardKind::MaxRemovalRatio => "max_removal_ratio",
            GuardKind::PlanChanged => "plan_changed",
        }
    }

    /// The kind whose text (in `runs.guard`) is `text`, if any.
    pub fn parse(text: &str) -> Option<GuardKind> {
        [
            GuardKind::EmptyDesired,
            GuardKind::RoleMaxRemovals,
            GuardKind::RoleMaxRemovalRatio,
            GuardKind::MaxRemovals,
            GuardKind::MaxRemovalRatio,
            GuardKind::PlanChanged,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// Whether an approval of this exact plan lets it through: the removal guards (overall,
    /// ratio, per role) only. The empty-desired-state refusal is never lifted.
    pub fn approvable(self) -> bool {
        matches!(
            self,
            GuardKind::MaxRemovals
                | GuardKind::MaxRemovalRatio
                | GuardKind::RoleMaxRemovals
                | GuardKind::RoleMaxRemovalRatio
        )
    }
}

crate::model::stored_as_text!(GuardKind, GuardKind::parse);

impl fmt::Display for GuardKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
