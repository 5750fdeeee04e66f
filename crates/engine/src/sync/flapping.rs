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
use crate::model::change::{Change, ChangeKey};
use std::collections::HashSet;

/// The actions of `planned` found in `repeated` (the changes applied in every one of the
/// previous runs that count), in plan order.
pub(crate) fn flapping(
    planned: &[Change],
    repeated: &HashSet<ChangeKey>,
    managed: &ManagedRoles,
) -> Vec<Change> {
    if repeated.is_empty() {
        return Vec::new();
    }
    planned
        .iter()
        .filter(|a| repeated.contains(&a.key(managed)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::plan::ChangeKind;

    fn action(user_id: u64, role: usize, kind: ChangeKind) -> Change {
        Change {
            user_id,
            email: Some(format!("u{user_id}@x.edu")),
            role,
            kind,
        }
    }

    #[test]
    fn only_the_same_user_role_and_direction_flaps() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()]);
        let repeated: HashSet<ChangeKey> = [ChangeKey {
            user_id: 1,
            role: "Admin".into(),
            kind: ChangeKind::Remove,
        }]
        .into();
        let planned = vec![
            action(1, 0, ChangeKind::Remove),
            action(1, 0, ChangeKind::Add),
            action(1, 1, ChangeKind::Remove),
            action(2, 0, ChangeKind::Remove),
        ];
        assert_eq!(
            flapping(&planned, &repeated, &managed),
            vec![action(1, 0, ChangeKind::Remove)]
        );
        assert!(flapping(&planned, &HashSet::new(), &managed).is_empty());
    }
}
