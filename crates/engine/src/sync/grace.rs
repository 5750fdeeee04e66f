//! The grace period before a removal (`safety.remove_after`): which of a plan's removals are
//! due, and which wait because their grant has not been missing from the sources long enough.
//!
//! Pure, like the planner it follows. The facts it judges ("missing since") are recomputed
//! from the history by the run, never kept in memory, so a restart changes nothing; this
//! module decides from them alone, and is tested with the planner's properties.

use crate::input::safety_limits::RemoveAfter;
use crate::model::change::{Change, ChangeKind};
pub(crate) use crate::model::run_memory::MissingSince;
use crate::sync::plan::{PendingEmail, PendingReason, Plan, Policy};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// The facts a grace period is judged on.
#[derive(Clone, Debug)]
pub struct Grace<'a> {
    pub remove_after: RemoveAfter,
    pub now: DateTime<Utc>,
    /// (Studio user id, managed role index) → when first seen missing. A grant not in it is
    /// missing for the first time now.
    pub missing: &'a HashMap<(u64, usize), MissingSince>,
}

/// How long until a waiting removal is due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Left {
    Runs(u32),
    Time(Duration),
}

impl fmt::Display for Left {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Left::Runs(1) => write!(f, "removal in 1 run"),
            Left::Runs(n) => write!(f, "removal in {n} runs"),
            // Rounded up: "in 1h" is never shown for a removal 61 minutes away.
            Left::Time(d) if d >= Duration::from_secs(3600) => {
                write!(f, "removal in {}h", d.as_secs().div_ceil(3600))
            }
            Left::Time(d) => write!(f, "removal in {}m", d.as_secs().div_ceil(60).max(1)),
        }
    }
}

/// A removal held back by the grace period: not sent, not counted by the guards.
#[derive(Clone, Debug, PartialEq)]
pub struct Waiting {
    pub action: Change,
    /// When the grant was first seen missing (now, for a grant missing for the first time).
    pub since: DateTime<Utc>,
    pub left: Left,
}

impl Grace<'_> {
    /// How long the removal of `role` from `user_id` still waits; `None` when it is due.
    pub fn left(&self, user_id: u64, role: usize) -> (DateTime<Utc>, Option<Left>) {
        let seen = self
            .missing
            .get(&(user_id, role))
            .copied()
            .unwrap_or(MissingSince {
                at: self.now,
                runs: 0,
            });
        let left = match self.remove_after {
            RemoveAfter::Runs(n) => (seen.runs < n).then(|| Left::Runs(n - seen.runs)),
            RemoveAfter::Time(d) => {
                let missing = (self.now - seen.at).to_std().unwrap_or(Duration::ZERO);
                (missing < d).then(|| Left::Time(d - missing))
            }
        };
        (seen.at, left)
    }
}

/// Moves the removals of `plan` that are not due yet to [`Plan::waiting`]. An add that a
/// waiting removal's role excludes (`roles.exclusive`) waits with it: Studio would refuse it
/// while the old role is held. The removal of a grant that ended (`until`) is due at once.
pub(crate) fn hold_back(
    plan: &mut Plan,
    grace: &Grace<'_>,
    policy: &Policy,
    desired: &crate::input::desired::DesiredState,
) {
    let mut waiting = Vec::new();
    plan.actions.retain(|a| {
        if a.kind != ChangeKind::Remove {
            return true;
        }
        if a.email
            .as_deref()
            .is_some_and(|e| desired.has_ended(e, a.role))
        {
            return true;
        }
        match grace.left(a.user_id, a.role) {
            (_, None) => true,
            (since, Some(left)) => {
                waiting.push(Waiting {
                    action: a.clone(),
                    since,
                    left,
                });
                false
            }
        }
    });
    let managed = &policy.managed;
    let mut blocked = Vec::new();
    plan.actions.retain(|a| {
        let held = waiting.iter().find(|w| {
            a.kind == ChangeKind::Add
                && w.action.user_id == a.user_id
                && managed.excludes(a.role, w.action.role)
        });
        match held {
            None => true,
            Some(w) => {
                blocked.push(PendingEmail {
                    email: a.email.clone().unwrap_or_default(),
                    user_id: Some(a.user_id),
                    reason: PendingReason::Exclusive,
                    detail: format!(
                        "{} not added yet: the user holds {}, which excludes it \
                         (roles.exclusive), until its {} (safety.remove_after: {})",
                        managed.name(a.role),
                        managed.name(w.action.role),
                        w.left,
                        grace.remove_after
                    ),
                });
                false
            }
        }
    });
    plan.pending.extend(blocked);
    plan.pending
        .sort_by(|a, b| (a.reason, &a.email).cmp(&(b.reason, &b.email)));
    plan.waiting = waiting;
}

/// Every grant the plan finds missing from the sources: the removals it sends and those that
/// wait. What the history remembers as "missing since" (a grant not among them came back, or
/// is gone).
pub(crate) fn missing_grants(plan: &Plan) -> impl Iterator<Item = &Change> {
    plan.actions
        .iter()
        .filter(|a| a.kind == ChangeKind::Remove)
        .chain(plan.waiting.iter().map(|w| &w.action))
}
