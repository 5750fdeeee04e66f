//! The plan: the pure difference between the desired and the current state, and the safety
//! guards that decide whether it may be applied.
//!
//! No I/O happens here. [`plan`] is a function of its arguments, so it is tested exhaustively
//! (property tests below) and `plan` and `apply` agree by construction. Safety lives in two
//! places on purpose: per-user rules (protected, no email, ambiguous, add-only) shape the plan
//! itself, while whole-run guards ([`check_guards`]) judge the plan as a whole, and each
//! managed role's share of it, and abort the run before anything is sent. A plan also knows
//! the order its actions must reach Studio in ([`Plan::phases`]): a move between exclusive
//! roles removes first.

use crate::input::desired::DesiredState;
use crate::input::roles::{ManagedRoles, RoleSet};
use crate::input::safety_limits::SafetyLimits;
pub use crate::model::change::{Change, ChangeKind};
pub use crate::model::guard_kind::GuardKind;
use crate::sync::current::{CurrentState, EmailMatch};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Why a desired email or a holder is left alone this run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PendingReason {
    /// Studio has no user with this email yet; retried every run.
    NotInStudio,
    /// Several Studio users share this email.
    Ambiguous,
    /// A holder with no email: it can never be matched, so it is never pruned.
    NoEmail,
    /// A protected email would have lost roles.
    Protected,
    /// The email should get a role that excludes one it holds (`roles.exclusive`), and the
    /// held role is not removed (protected email, or `remove_unlisted: false`): Studio would
    /// refuse the add, so it is not sent.
    Exclusive,
    /// A directory group lists a member with no usable email: reported, never guessed.
    NoEmailInDirectory,
}

impl PendingReason {
    pub fn as_str(self) -> &'static str {
        match self {
            PendingReason::NotInStudio => "not_in_studio",
            PendingReason::Ambiguous => "ambiguous",
            PendingReason::NoEmail => "no_email",
            PendingReason::Protected => "protected",
            PendingReason::Exclusive => "exclusive",
            PendingReason::NoEmailInDirectory => "no_email_in_directory",
        }
    }
}

/// An email (or an email-less user) the run reports but does not act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingEmail {
    /// The email, or `user <id>` for a user without one.
    pub email: String,
    pub user_id: Option<u64>,
    pub reason: PendingReason,
    pub detail: String,
}

/// The rules that shape a plan, from the `roles` section of the config.
#[derive(Clone, Debug)]
pub struct Policy {
    pub remove_unlisted: bool,
    pub protected: HashSet<String>,
    /// `roles.managed`, with its exclusive groups (`roles.exclusive`).
    pub managed: ManagedRoles,
}

impl Policy {
    /// A role of `kept` that shares an exclusive group with `role`.
    fn conflicting(&self, kept: RoleSet, role: usize) -> Option<usize> {
        self.managed
            .exclusive_groups()
            .iter()
            .filter(|g| g.contains(role))
            .find_map(|g| g.intersection(kept).iter().find(|&r| r != role))
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    /// Sorted by role, then kind, then email: stable output, and batches group by role.
    pub actions: Vec<Change>,
    pub pending: Vec<PendingEmail>,
    /// Current managed-role grants (user, role) seen in Studio.
    pub current_grants: usize,
    /// Current holders of each managed role, by role index: the base of each role's guard.
    pub current_by_role: Vec<usize>,
    /// The desired grants of each email the plan adds a role to: which source gave it.
    pub grants: HashMap<String, Vec<crate::desired::Grant>>,
    /// Removals held back by `safety.remove_after` (see [`plan_with_grace`]): not sent, and
    /// not counted by the guards.
    pub waiting: Vec<crate::sync::grace::Waiting>,
    /// The ended grants of each email the plan removes a role from because its `until`
    /// passed: `plan` says "ended" rather than leaving the removal unexplained.
    pub ended: HashMap<String, Vec<crate::desired::Grant>>,
    /// Desired grants that end within `notify.grant_expiring_days` (set by the run, which
    /// knows today's date): `plan` says "expires in N days".
    pub ending: Vec<crate::desired::Ending>,
}

impl Plan {
    pub fn adds(&self) -> usize {
        self.actions
            .iter()
            .filter(|a| a.kind == ChangeKind::Add)
            .count()
    }

    pub fn removes(&self) -> usize {
        self.actions.len() - self.adds()
    }

    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The sources that gave `email` managed role `role` (empty for a removal).
    pub fn sources_of(&self, email: &str, role: usize) -> Vec<&crate::desired::SourceName> {
        self.grants
            .get(email)
            .into_iter()
            .flatten()
            .filter(|g| g.role == role)
            .map(|g| &g.source)
            .collect()
    }

    /// The last day of `email`'s grants of `role` that ended, with their reasons, when the
    /// plan removes it for that.
    pub fn ended_of(
        &self,
        email: &str,
        role: usize,
    ) -> Option<(chrono::NaiveDate, Option<String>)> {
        let grants: Vec<&crate::desired::Grant> = self
            .ended
            .get(email)?
            .iter()
            .filter(|g| g.role == role)
            .collect();
        let until = grants.iter().filter_map(|g| g.until).max()?;
        let mut reasons: Vec<&str> = Vec::new();
        for r in grants.iter().filter_map(|g| g.reason.as_deref()) {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
        Some((until, (!reasons.is_empty()).then(|| reasons.join("; "))))
    }

    /// Current holders of managed role `role`.
    pub fn holders_of(&self, role: usize) -> usize {
        self.current_by_role.get(role).copied().unwrap_or(0)
    }

    /// Removes planned of managed role `role`.
    pub fn removes_of(&self, role: usize) -> usize {
        self.actions
            .iter()
            .filter(|a| a.role == role && a.kind == ChangeKind::Remove)
            .count()
    }

    /// The actions in the order they must reach Studio. A user moving between two roles of
    /// an exclusive group must lose the old role before Studio lets them have the new one, so
    /// such removes form a first phase that completes before the rest is sent. A plan with no
    /// move is one phase: it costs no PUT more than the batches need.
    pub fn phases(&self, managed: &ManagedRoles) -> Vec<Vec<Change>> {
        let mut added: HashMap<u64, RoleSet> = HashMap::new();
        for a in self.actions.iter().filter(|a| a.kind == ChangeKind::Add) {
            added.entry(a.user_id).or_default().insert(a.role);
        }
        let (first, rest): (Vec<Change>, Vec<Change>) =
            self.actions.iter().cloned().partition(|a| {
                a.kind == ChangeKind::Remove
                    && added
                        .get(&a.user_id)
                        .is_some_and(|new| new.iter().any(|r| managed.excludes(r, a.role)))
            });
        if first.is_empty() {
            vec![rest]
        } else {
            vec![first, rest]
        }
    }

    /// Desired emails not acted on: not in Studio yet, or ambiguous. They are reported, not
    /// failures, and retried every run.
    pub fn pending_emails(&self) -> usize {
        self.pending
            .iter()
            .filter(|p| {
                matches!(
                    p.reason,
                    PendingReason::NotInStudio | PendingReason::Ambiguous
                )
            })
            .count()
    }
}

/// As [`plan`], with the grace period of `safety.remove_after` (when set): a removal whose
/// grant has not been missing long enough waits in [`Plan::waiting`]. A grant that ended
/// (its `until` passed) is a declared end, not a missing read: its removal does not wait.
pub(crate) fn plan_with_grace(
    desired: &DesiredState,
    current: &CurrentState,
    policy: &Policy,
    grace: Option<&crate::sync::grace::Grace<'_>>,
) -> Plan {
    let mut p = plan(desired, current, policy);
    if let Some(grace) = grace {
        crate::sync::grace::hold_back(&mut p, grace, policy, desired);
    }
    p
}

/// Computes the changes that make Studio's managed roles equal the desired state.
pub fn plan(desired: &DesiredState, current: &CurrentState, policy: &Policy) -> Plan {
    let mut actions = Vec::new();
    let mut pending = Vec::new();
    // Users whose fate the desired state decided (matched, or ambiguous): not pruned below.
    let mut decided: HashSet<u64> = HashSet::with_capacity(desired.users.len());

    for (email, &want) in &desired.users {
        match current.by_email.get(email).unwrap_or(&EmailMatch::NotFound) {
            EmailMatch::NotFound => {
                if !want.is_empty() {
                    pending.push(PendingEmail {
                        email: email.clone(),
                        user_id: None,
                        reason: PendingReason::NotInStudio,
                        detail: "no Studio user has this email yet".into(),
                    });
                }
            }
            EmailMatch::Many(ids) => {
                decided.extend(ids.iter().copied());
                let mut ids = ids.clone();
                ids.sort_unstable();
                let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
                pending.push(PendingEmail {
                    email: email.clone(),
                    user_id: None,
                    reason: PendingReason::Ambiguous,
                    detail: format!("Studio users {} share this email", ids.join(", ")),
                });
            }
            EmailMatch::One(id) => {
                decided.insert(*id);
                let Some(user) = current.users.get(id) else {
                    continue;
                };
                let extra = user.roles.minus(want);
                let removing = policy.remove_unlisted && !policy.protected.contains(email);
                // Roles the user keeps after this run: an add that one of them excludes
                // would be refused by Studio.
                let kept = if removing {
                    want
                } else {
                    user.roles.union(want)
                };
                let mut add = want.minus(user.roles);
                for r in add.iter() {
                    if let Some(held) = policy.conflicting(kept, r) {
                        add.remove(r);
                        pending.push(PendingEmail {
                            email: email.clone(),
                            user_id: Some(user.id),
                            reason: PendingReason::Exclusive,
                            detail: format!(
                                "{} not added: the user holds {}, which excludes it \
                                 (roles.exclusive), and that role is not removed ({})",
                                policy.managed.name(r),
                                policy.managed.name(held),
                                if policy.remove_unlisted {
                                    "protected email"
                                } else {
                                    "roles.remove_unlisted is false"
                                }
                            ),
                        });
                    }
                }
                push_all(&mut actions, user.id, Some(email), add, ChangeKind::Add);
                if !extra.is_empty() && policy.remove_unlisted {
                    remove_unless_protected(
                        &mut actions,
                        &mut pending,
                        policy,
                        user.id,
                        email,
                        extra,
                    );
                }
            }
        }
    }

    pending.extend(desired.unmatched.iter().map(|u| PendingEmail {
        email: u.member.clone(),
        user_id: None,
        reason: PendingReason::NoEmailInDirectory,
        detail: format!("{}: {}", u.source, u.detail),
    }));

    if policy.remove_unlisted {
        let mut holders: Vec<_> = current
            .holders()
            .filter(|u| !decided.contains(&u.id))
            .collect();
        holders.sort_by_key(|u| u.id);
        for user in holders {
            match &user.email {
                None => pending.push(PendingEmail {
                    email: format!("user {}", user.id),
                    user_id: Some(user.id),
                    reason: PendingReason::NoEmail,
                    detail: "holds a managed role but has no email; never removed".into(),
                }),
                Some(email) => remove_unless_protected(
                    &mut actions,
                    &mut pending,
                    policy,
                    user.id,
                    email,
                    user.roles,
                ),
            }
        }
    }

    actions.sort_by(|a, b| {
        (a.role, a.kind, &a.email, a.user_id).cmp(&(b.role, b.kind, &b.email, b.user_id))
    });
    pending.sort_by(|a, b| (a.reason, &a.email).cmp(&(b.reason, &b.email)));
    let mut current_by_role = vec![0; crate::input::roles::MAX_MANAGED_ROLES];
    for u in current.users.values() {
        for r in u.roles.iter() {
            current_by_role[r] += 1;
        }
    }
    let grants = actions
        .iter()
        .filter(|a| a.kind == ChangeKind::Add)
        .filter_map(|a| a.email.as_ref())
        .map(|e| (e.clone(), desired.grants_of(e).to_vec()))
        .collect();
    let ended = actions
        .iter()
        .filter(|a| a.kind == ChangeKind::Remove)
        .filter_map(|a| a.email.as_ref().filter(|e| desired.has_ended(e, a.role)))
        .filter_map(|e| Some((e.clone(), desired.ended.get(e)?.clone())))
        .collect();
    Plan {
        actions,
        pending,
        current_grants: current.grants(),
        current_by_role,
        grants,
        ended,
        waiting: Vec::new(),
        ending: Vec::new(),
    }
}

fn push_all(
    actions: &mut Vec<Change>,
    user_id: u64,
    email: Option<&String>,
    roles: RoleSet,
    kind: ChangeKind,
) {
    actions.extend(roles.iter().map(|role| Change {
        user_id,
        email: email.cloned(),
        role,
        kind,
    }));
}

fn remove_unless_protected(
    actions: &mut Vec<Change>,
    pending: &mut Vec<PendingEmail>,
    policy: &Policy,
    user_id: u64,
    email: &String,
    roles: RoleSet,
) {
    if policy.protected.contains(email) {
        pending.push(PendingEmail {
            email: email.clone(),
            user_id: Some(user_id),
            reason: PendingReason::Protected,
            detail: format!("{} managed role(s) kept", roles.len()),
        });
    } else {
        push_all(actions, user_id, Some(email), roles, ChangeKind::Remove);
    }
}

/// A whole-run guard that refused the plan. Nothing is sent when one trips.
#[derive(Clone, Debug, PartialEq)]
pub enum GuardTrip {
    EmptyDesired,
    /// One role's guard: more removals of `role` than its limit.
    RoleRemovals {
        role: String,
        planned: usize,
        max: usize,
        /// The limit's config key (`safety.max_removals` or `safety.roles.<role>.max_removals`).
        key: String,
    },
    /// One role's guard: more than its share of the role's holders.
    RoleRatio {
        role: String,
        planned: usize,
        current: usize,
        max_ratio: f64,
        key: String,
    },
    TooManyRemovals {
        planned: usize,
        max: usize,
    },
    RemovalRatio {
        planned: usize,
        current: usize,
        max_ratio: f64,
    },
    /// An approval or a saved plan was for other actions than this run's plan: it is not
    /// used. `still` is the removal guard this plan trips without it (a saved plan is refused
    /// even when none does: `apply FILE` sends that plan or nothing).
    PlanChanged {
        /// What was approved, e.g. `approval 3 (alice) of run 12's plan`.
        approved: String,
        differences: crate::model::digest::PlanDifferences,
        still: Option<Box<GuardTrip>>,
    },
}

impl GuardTrip {
    /// The guard's kind, as recorded in `runs.guard`. For a changed plan, the removal guard it
    /// still trips: that is what an approval of the new plan would lift.
    pub fn kind(&self) -> GuardKind {
        match self {
            GuardTrip::EmptyDesired => GuardKind::EmptyDesired,
            GuardTrip::RoleRemovals { .. } => GuardKind::RoleMaxRemovals,
            GuardTrip::RoleRatio { .. } => GuardKind::RoleMaxRemovalRatio,
            GuardTrip::TooManyRemovals { .. } => GuardKind::MaxRemovals,
            GuardTrip::RemovalRatio { .. } => GuardKind::MaxRemovalRatio,
            GuardTrip::PlanChanged { still: Some(g), .. } => g.kind(),
            GuardTrip::PlanChanged { still: None, .. } => GuardKind::PlanChanged,
        }
    }

    /// Whether an approval of this exact plan lets it through (see [`GuardKind::approvable`]).
    pub fn approvable(&self) -> bool {
        self.kind().approvable()
    }
}

impl fmt::Display for GuardTrip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardTrip::EmptyDesired => write!(
                f,
                "the desired state grants no role while roles.remove_unlisted is true: refusing to \
                 revoke every managed role (an empty file or a failed query looks the same)"
            ),
            GuardTrip::RoleRemovals {
                role,
                planned,
                max,
                key,
            } => write!(
                f,
                "role {role}: {planned} removals planned, more than {key} ({max}) for this role"
            ),
            GuardTrip::RoleRatio {
                role,
                planned,
                current,
                max_ratio,
                key,
            } => write!(
                f,
                "role {role}: {planned} of its {current} holders would lose it ({:.0}%), more \
                 than {key} ({:.0}%) for this role",
                100.0 * *planned as f64 / *current as f64,
                100.0 * max_ratio
            ),
            GuardTrip::TooManyRemovals { planned, max } => write!(
                f,
                "{planned} removals planned, more than safety.max_removals ({max})"
            ),
            GuardTrip::RemovalRatio {
                planned,
                current,
                max_ratio,
            } => write!(
                f,
                "{planned} removals planned out of {current} current grants ({:.0}%), more than \
                 safety.max_removal_ratio ({:.0}%)",
                100.0 * *planned as f64 / *current as f64,
                100.0 * max_ratio
            ),
            GuardTrip::PlanChanged {
                approved,
                differences,
                still,
            } => {
                write!(
                    f,
                    "the plan changed since {approved}, which is not used: {differences}"
                )?;
                match still {
                    Some(g) => write!(f, "; without it: {g}"),
                    None => Ok(()),
                }
            }
        }
    }
}

/// Judges a plan as a whole; the first guard that trips is returned: the empty-state guard,
/// then each managed role's own guard (in `roles.managed` order, so the message names the
/// role), then the overall guards.
pub fn check_guards(
    plan: &Plan,
    desired: &DesiredState,
    policy: &Policy,
    safety: &SafetyLimits,
) -> Result<(), GuardTrip> {
    if policy.remove_unlisted && desired.is_empty() {
        return Err(GuardTrip::EmptyDesired);
    }
    let managed = &policy.managed;
    for role in 0..managed.len() {
        let planned = plan.removes_of(role);
        if planned == 0 {
            continue;
        }
        let name = managed.name(role);
        let limits = safety.roles.get(&role).copied().unwrap_or_default();
        let key = |field: &str, overridden: bool| {
            if overridden {
                format!("safety.roles.{name}.{field}")
            } else {
                format!("safety.{field}")
            }
        };
        let max = limits.max_removals.unwrap_or(safety.max_removals);
        if planned > max {
            return Err(GuardTrip::RoleRemovals {
                role: name.to_string(),
                planned,
                max,
                key: key("max_removals", limits.max_removals.is_some()),
            });
        }
        let max_ratio = limits.max_removal_ratio.unwrap_or(safety.max_removal_ratio);
        let current = plan.holders_of(role);
        if planned as f64 > max_ratio * current as f64 {
            return Err(GuardTrip::RoleRatio {
                role: name.to_string(),
                planned,
                current,
                max_ratio,
                key: key("max_removal_ratio", limits.max_removal_ratio.is_some()),
            });
        }
    }
    let removes = plan.removes();
    if removes > safety.max_removals {
        return Err(GuardTrip::TooManyRemovals {
            planned: removes,
            max: safety.max_removals,
        });
    }
    if removes > 0 && removes as f64 > safety.max_removal_ratio * plan.current_grants as f64 {
        return Err(GuardTrip::RemovalRatio {
            planned: removes,
            current: plan.current_grants,
            max_ratio: safety.max_removal_ratio,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
