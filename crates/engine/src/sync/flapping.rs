//! Flapping: a change the tool makes run after run because something else in Studio keeps
//! undoing it.
//!
//! The usual cause is Canvas: a Canvas LMS account admin is given Studio's Admin role by
//! inheritance, so when the roles file does not list them, each run removes Admin and Studio
//! grants it back. Neither side wins and, without this, nobody notices. An action planned now
//! that was also applied in each of the previous `flapping.after_runs - 1` runs that sent
//! changes is flapping. It is found from the history (`History::repeated_actions`), so it
//! works across restarts and for `plan` too; the decision itself is the pure [`flapping`].

use crate::input::roles::ManagedRoles;
use crate::store::history::notifications::ActionKey;
use crate::sync::plan::RoleAction;
use std::collections::HashSet;

/// The actions of `planned` found in `repeated` (the changes applied in every one of the
/// previous runs that count), in plan order.
pub fn flapping(
    planned: &[RoleAction],
    repeated: &HashSet<ActionKey>,
    managed: &ManagedRoles,
) -> Vec<RoleAction> {
    if repeated.is_empty() {
        return Vec::new();
    }
    planned
        .iter()
        .filter(|a| repeated.contains(&key(a, managed)))
        .cloned()
        .collect()
}

/// How the history keys `a`.
pub fn key(a: &RoleAction, managed: &ManagedRoles) -> ActionKey {
    (
        a.user_id as i64,
        managed.name(a.role).to_string(),
        a.kind.as_str().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::plan::ActionKind;

    fn action(user_id: u64, role: usize, kind: ActionKind) -> RoleAction {
        RoleAction {
            user_id,
            email: Some(format!("u{user_id}@x.edu")),
            role,
            kind,
        }
    }

    #[test]
    fn only_the_same_user_role_and_direction_flaps() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()]);
        let repeated: HashSet<ActionKey> = [(1, "Admin".into(), "remove".into())].into();
        let planned = vec![
            action(1, 0, ActionKind::Remove),
            action(1, 0, ActionKind::Add),
            action(1, 1, ActionKind::Remove),
            action(2, 0, ActionKind::Remove),
        ];
        assert_eq!(
            flapping(&planned, &repeated, &managed),
            vec![action(1, 0, ActionKind::Remove)]
        );
        assert!(flapping(&planned, &HashSet::new(), &managed).is_empty());
    }
}
