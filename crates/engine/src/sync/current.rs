//! The current state: who holds each managed role in Studio, and which Studio user each
//! desired email is.
//!
//! Built by a pure function from what the client read (role listings and email searches), so
//! the planner and its property tests never see HTTP. Only managed roles are kept: every other
//! role a user holds is invisible from here on, and so can never be touched.

use crate::input::email_address;
use crate::input::roles::{ManagedRoles, RoleSet};
use crate::studio::StudioUser;
use std::collections::HashMap;

/// A Studio user as the planner sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: u64,
    /// Normalised; `None` for users without an email (SSO without email): never touched.
    pub email: Option<String>,
    /// The managed roles the user holds.
    pub roles: RoleSet,
}

/// What an email resolves to in Studio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmailMatch {
    One(u64),
    /// Several accounts share the email: reported, never acted on.
    Many(Vec<u64>),
    NotFound,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CurrentState {
    /// Holders of managed roles, plus users found for desired emails.
    pub users: HashMap<u64, CurrentUser>,
    /// Emails of every user above, plus the desired emails that were searched.
    pub by_email: HashMap<String, EmailMatch>,
    /// The name Studio gave each user above (`full_name`), bounded; only recorded, for the
    /// console's names beside ids: the planner never reads it.
    pub names: HashMap<u64, String>,
}

/// Longest Studio name kept, in characters.
const MAX_NAME: usize = 200;

impl CurrentState {
    /// Holders of at least one managed role.
    pub fn holders(&self) -> impl Iterator<Item = &CurrentUser> {
        self.users.values().filter(|u| !u.roles.is_empty())
    }

    /// Current (user, managed role) pairs: the base of `max_removal_ratio`.
    pub fn grants(&self) -> usize {
        self.users.values().map(|u| u.roles.len()).sum()
    }

    /// Adds a user read from Studio (a holder, or a result of an email search).
    pub fn add_user(&mut self, managed: &ManagedRoles, user: &StudioUser) {
        let email = user
            .email
            .as_deref()
            .map(email_address::normalize)
            .filter(|e| !e.is_empty());
        let roles = managed.set_of(user.role_names.iter().map(String::as_str));
        if let Some(e) = &email {
            let id = user.id;
            self.by_email
                .entry(e.clone())
                .and_modify(|m| match m {
                    EmailMatch::One(other) if *other != id => {
                        *m = EmailMatch::Many(vec![*other, id])
                    }
                    EmailMatch::Many(ids) if !ids.contains(&id) => ids.push(id),
                    EmailMatch::NotFound => *m = EmailMatch::One(id),
                    _ => {}
                })
                .or_insert(EmailMatch::One(id));
        }
        if let Some(name) = user.full_name.as_deref().map(str::trim) {
            if !name.is_empty() {
                self.names
                    .insert(user.id, name.chars().take(MAX_NAME).collect());
            }
        }
        self.users.insert(
            user.id,
            CurrentUser {
                id: user.id,
                email,
                roles,
            },
        );
    }

    /// Records the outcome of searching Studio for `email`: `found` are the search results
    /// whose email matched exactly (the caller filters partial matches).
    pub fn add_search(&mut self, managed: &ManagedRoles, email: &str, found: &[StudioUser]) {
        if found.is_empty() {
            self.by_email
                .entry(email.to_string())
                .or_insert(EmailMatch::NotFound);
        }
        for user in found {
            self.add_user(managed, user);
        }
    }

    /// Whether `email` still needs a search: it is neither a holder's nor already searched.
    pub fn knows_email(&self, email: &str) -> bool {
        self.by_email.contains_key(email)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_emails_become_ambiguous() {
        let managed = ManagedRoles::new(vec!["Admin".into()]);
        let mut c = CurrentState::default();
        let u = |id, email: &str| StudioUser {
            id,
            full_name: None,
            email: Some(email.into()),
            role_names: vec!["Admin".into(), "Teacher".into()],
        };
        c.add_user(&managed, &u(1, "A@x.edu"));
        c.add_user(&managed, &u(2, " a@x.edu"));
        c.add_user(&managed, &u(2, "a@x.edu"));
        assert_eq!(c.by_email["a@x.edu"], EmailMatch::Many(vec![1, 2]));
        assert_eq!(
            c.users[&1].roles,
            RoleSet::single(0),
            "unmanaged roles are dropped"
        );
        c.add_search(&managed, "b@x.edu", &[]);
        assert_eq!(c.by_email["b@x.edu"], EmailMatch::NotFound);
    }
}
