//! What a person approves: a plan's actions in one canonical form, its SHA-256 digest, and the
//! differences between two plans when a digest does not match.
//!
//! An approval (`approve RUN_ID`) or a saved plan (`plan --out FILE`, `apply FILE`) names a
//! plan by its digest, and a later run may send its own plan only when that digest is the
//! same: the approval is of *these* actions, not of "some removals". The canonical form is one
//! line per action (`user id`, `email`, `role`, `add|remove`), sorted, so the digest does not
//! depend on the order a plan lists them in, and it is computed the same way from a live
//! plan's changes and from the `run_actions` rows of an aborted run. A run's own digest and the
//! one `approve` computes from the history both read the recorded rows through
//! [`recorded_plan`], so a row recorded but not planned (a flapping change left alone) is out
//! of both. Pure: no I/O. It sits below sync and store, which both name plans by it; the rows
//! are read through [`RecordedAction`], so it needs neither.

use crate::input::roles::ManagedRoles;
use crate::model::change::Change;
pub use crate::model::change::PlannedAction;
use sha2::{Digest, Sha256};
use std::fmt;

/// How many actions of each side a differences message lists before counting the rest.
const LISTED: usize = 5;

/// The actions of a plan's `changes`, sorted canonically.
pub fn planned_actions(changes: &[Change], managed: &ManagedRoles) -> Vec<PlannedAction> {
    let mut v: Vec<PlannedAction> = changes.iter().map(|c| c.named(managed)).collect();
    v.sort();
    v
}

/// How the detail of a recorded action that is not part of the plan begins: a flapping change
/// left alone is recorded, so the history shows it, but it is neither sent nor approved.
pub(crate) const LEFT_ALONE: &str = "left alone: ";

/// A recorded action as the digest reads it: a `run_actions` row (the store's `ActionRow`).
pub(crate) trait RecordedAction {
    /// The change the row records, by its role's name.
    fn recorded_change(&self) -> PlannedAction;
    /// The row's detail, which tells a change [`LEFT_ALONE`].
    fn recorded_detail(&self) -> Option<&str>;
}

/// The plan a run recorded, from its `run_actions` rows (every row but those [`LEFT_ALONE`]),
/// sorted canonically: the one reading for the run's digest and for `approve`'s.
pub(crate) fn recorded_plan<'a, R: RecordedAction + 'a>(
    rows: impl IntoIterator<Item = &'a R>,
) -> Vec<PlannedAction> {
    let mut v: Vec<PlannedAction> = rows
        .into_iter()
        .filter(|r| {
            !r.recorded_detail()
                .is_some_and(|d| d.starts_with(LEFT_ALONE))
        })
        .map(R::recorded_change)
        .collect();
    v.sort();
    v
}

/// `sha256:<hex>` of the canonical form of `actions` (sorted here, whatever their order).
pub fn digest(actions: &[PlannedAction]) -> String {
    let mut lines: Vec<String> = actions
        .iter()
        .map(|a| {
            format!(
                "{}\t{}\t{}\t{}\n",
                a.user_id,
                a.email.as_deref().unwrap_or(""),
                a.role,
                a.action
            )
        })
        .collect();
    lines.sort_unstable();
    let mut h = Sha256::new();
    // A version line: a later canonical form gets other digests, never colliding ones.
    h.update(b"studio-role-sync plan v1\n");
    for l in &lines {
        h.update(l.as_bytes());
    }
    let hex: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// The first characters of a digest, for tables and messages.
pub fn short(digest: &str) -> &str {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex.get(..12).unwrap_or(hex)
}

/// How two plans differ: the actions only the approved one has, and those only the new one
/// has (each as a multiset difference, sorted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlanDifferences {
    pub only_approved: Vec<PlannedAction>,
    pub only_new: Vec<PlannedAction>,
}

impl PlanDifferences {
    pub fn between(approved: &[PlannedAction], new: &[PlannedAction]) -> PlanDifferences {
        let mut a = approved.to_vec();
        let mut b = new.to_vec();
        a.sort();
        b.sort();
        let (mut i, mut j) = (0, 0);
        let mut d = PlanDifferences::default();
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x == y => {
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x < y => {
                    d.only_approved.push(x.clone());
                    i += 1;
                }
                (Some(_), Some(y)) => {
                    d.only_new.push(y.clone());
                    j += 1;
                }
                (Some(x), None) => {
                    d.only_approved.push(x.clone());
                    i += 1;
                }
                (None, Some(y)) => {
                    d.only_new.push(y.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        d
    }

    pub fn is_empty(&self) -> bool {
        self.only_approved.is_empty() && self.only_new.is_empty()
    }
}

fn list(f: &mut fmt::Formatter<'_>, what: &str, actions: &[PlannedAction]) -> fmt::Result {
    write!(
        f,
        "{} action{} {what}",
        actions.len(),
        if actions.len() == 1 { "" } else { "s" }
    )?;
    if actions.is_empty() {
        return Ok(());
    }
    write!(f, " (")?;
    for (i, a) in actions.iter().take(LISTED).enumerate() {
        if i > 0 {
            write!(f, "; ")?;
        }
        write!(f, "{a}")?;
    }
    if actions.len() > LISTED {
        write!(f, "; and {} more", actions.len() - LISTED)?;
    }
    write!(f, ")")
}

impl fmt::Display for PlanDifferences {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        list(f, "only in the approved plan", &self.only_approved)?;
        write!(f, ", ")?;
        list(f, "only in the new plan", &self.only_new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(id: i64, email: &str, role: &str, action: &str) -> PlannedAction {
        PlannedAction {
            user_id: id,
            email: Some(email.into()),
            role: role.into(),
            action: if action == "add" {
                crate::model::change::ChangeKind::Add
            } else {
                crate::model::change::ChangeKind::Remove
            },
        }
    }

    #[test]
    fn digest_ignores_order_and_sees_every_field() {
        let x = a(1, "a@x.edu", "Admin", "remove");
        let y = a(2, "b@x.edu", "Admin", "remove");
        assert_eq!(
            digest(&[x.clone(), y.clone()]),
            digest(&[y.clone(), x.clone()])
        );
        let base = digest(&[x.clone(), y.clone()]);
        assert!(
            base.starts_with("sha256:") && base.len() == 7 + 64,
            "{base}"
        );
        for changed in [
            a(3, "b@x.edu", "Admin", "remove"),
            a(2, "c@x.edu", "Admin", "remove"),
            a(2, "b@x.edu", "CaptionEditor", "remove"),
            a(2, "b@x.edu", "Admin", "add"),
        ] {
            assert_ne!(digest(&[x.clone(), changed]), base);
        }
        assert_ne!(digest(std::slice::from_ref(&x)), base);
        assert_ne!(digest(&[]), base);
    }

    #[test]
    fn differences_name_each_side_and_count_the_rest() {
        let approved: Vec<_> = (1..=8)
            .map(|i| a(i, &format!("u{i}@x.edu"), "Admin", "remove"))
            .collect();
        let mut new = approved[1..].to_vec();
        new.push(a(99, "new@x.edu", "Admin", "remove"));
        let d = PlanDifferences::between(&approved, &new);
        assert_eq!(d.only_approved, vec![approved[0].clone()]);
        assert_eq!(d.only_new, vec![a(99, "new@x.edu", "Admin", "remove")]);
        let text = d.to_string();
        assert_eq!(
            text,
            "1 action only in the approved plan (remove Admin u1@x.edu (user 1)), \
             1 action only in the new plan (remove Admin new@x.edu (user 99))"
        );
        let d = PlanDifferences::between(&approved, &[]);
        assert!(d.to_string().contains("; and 3 more"), "{d}");
        assert!(PlanDifferences::between(&new, &new).is_empty());
    }
}
