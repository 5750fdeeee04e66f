//! What a run hands the history about people (`History::record_people`): every Studio account
//! it read, with its name and the managed roles it held, and every listed email with its roles
//! and their sources, in words.

use crate::input::desired::DesiredState;
use crate::input::roles::{ManagedRoles, RoleSet};
use crate::store::history::{AccountSeen, DesiredSeen};
use crate::sync::current::CurrentState;

fn role_names(roles: RoleSet, managed: &ManagedRoles) -> String {
    roles
        .iter()
        .map(|r| managed.name(r))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every account the run read.
pub(super) fn accounts(current: &CurrentState, managed: &ManagedRoles) -> Vec<AccountSeen> {
    current
        .users
        .values()
        .map(|u| AccountSeen {
            user_id: u.id as i64,
            full_name: current.names.get(&u.id).cloned(),
            email: u.email.clone(),
            held: role_names(u.roles, managed),
        })
        .collect()
}

/// Every listed email: `Admin (roles.yaml, ldap); Teacher (sql, until 2027-01-31)`.
pub(super) fn desired(desired: &DesiredState, managed: &ManagedRoles) -> Vec<DesiredSeen> {
    desired
        .users
        .iter()
        .map(|(email, roles)| DesiredSeen {
            email: email.clone(),
            roles: roles
                .iter()
                .map(|role| {
                    let mut from: Vec<String> = Vec::new();
                    for g in desired.grants_of(email).iter().filter(|g| g.role == role) {
                        let s = match g.until {
                            Some(day) => format!("{}, until {day}", g.source),
                            None => g.source.to_string(),
                        };
                        if !from.contains(&s) {
                            from.push(s);
                        }
                    }
                    if from.is_empty() {
                        managed.name(role).to_string()
                    } else {
                        format!("{} ({})", managed.name(role), from.join("; "))
                    }
                })
                .collect::<Vec<_>>()
                .join("; "),
        })
        .collect()
}
