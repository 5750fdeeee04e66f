//! Identity: which Studio account a desired email is, decided only from what Studio reports
//! during the run.
//!
//! The rule the whole tool keeps: a role is only ever added to an account whose email, as
//! Studio reported it in *this* run (the holder listing, or an email search), equals the
//! desired email. Nothing remembered from an earlier run can make an add happen; the only
//! memory is the other way round, and can only cause *more* searches:
//! - an email once found shared by several accounts is searched on every run, and stays
//!   `ambiguous` until a search finds exactly one account ([`AmbiguityUpdate`]);
//! - a [`Verification::Full`] run (every `verify.full_every`) also searches every desired
//!   email a holder has, so a duplicate account created next to a holder, or an email changed
//!   on an account matched through the listing, is seen.
//!
//! This module is pure: it decides which emails a read must search and what the history
//! should remember afterwards. `studio::read` does the requests, `history` stores the memory.

use crate::input::desired::DesiredState;
pub(crate) use crate::model::run_memory::AmbiguityUpdate;
use crate::sync::current::{CurrentState, EmailMatch};
use std::collections::HashSet;

/// Which kind of run this is, recorded in `runs.verification`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Verification {
    /// Holders are matched through this run's listing; other emails are searched when they
    /// need a role added, or when they were once found ambiguous.
    Incremental,
    /// As incremental, plus a search of every desired email that a holder has.
    Full,
}

impl Verification {
    pub fn as_str(self) -> &'static str {
        match self {
            Verification::Incremental => "incremental",
            Verification::Full => "full",
        }
    }
}

/// What the read knows before it searches: the holders' emails and the remembered ambiguity.
pub(crate) struct SearchInputs<'a> {
    pub desired: &'a DesiredState,
    /// The state built from this run's holder listing.
    pub listed: &'a CurrentState,
    /// Emails found shared by several accounts in an earlier run and not resolved since.
    pub ambiguous: &'a HashSet<String>,
    /// `not_in_studio` emails still waiting out their back-off (`recheck`): not searched,
    /// unless this is a full verification. Empty for a manual run.
    pub resting: &'a HashSet<String>,
    pub verification: Verification,
}

/// The desired emails this run must search by email, sorted: the lower bound of docs/contracts.md.
/// - an email no holder has, that should hold a role: it needs an add, and only a search can
///   say which account has the email now (unless it rests: searched before, not found, and
///   its back-off has not run out; a full verification searches it all the same);
/// - an email remembered as ambiguous, whatever it should hold: no holder shortcut may hide a
///   second account;
/// - in a full verification, an email a holder has.
pub(crate) fn emails_to_search(inputs: &SearchInputs<'_>) -> Vec<String> {
    let mut out: Vec<String> = inputs
        .desired
        .users
        .iter()
        .filter(|(email, want)| {
            let held = inputs.listed.knows_email(email);
            let full = inputs.verification == Verification::Full;
            inputs.ambiguous.contains(*email)
                || (!held && !want.is_empty() && (full || !inputs.resting.contains(*email)))
                || (held && full)
        })
        .map(|(email, _)| email.clone())
        .collect();
    out.sort_unstable();
    out
}

/// Compares what the run saw with the memory: every email the run saw on several accounts is
/// (still) ambiguous; a searched email that resolved to one account is forgotten.
pub(crate) fn ambiguity_update(current: &CurrentState, searched: &[String]) -> AmbiguityUpdate {
    let mut remember: Vec<(String, Vec<u64>)> = current
        .by_email
        .iter()
        .filter_map(|(email, m)| match m {
            EmailMatch::Many(ids) => {
                let mut ids = ids.clone();
                ids.sort_unstable();
                Some((email.clone(), ids))
            }
            _ => None,
        })
        .collect();
    remember.sort();
    let mut forget: Vec<String> = searched
        .iter()
        .filter(|e| matches!(current.by_email.get(*e), Some(EmailMatch::One(_))))
        .cloned()
        .collect();
    forget.sort();
    AmbiguityUpdate { remember, forget }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::roles::{ManagedRoles, RoleSet};
    use crate::studio::StudioUser;

    fn user(id: u64, email: &str, roles: &[&str]) -> StudioUser {
        StudioUser {
            id,
            full_name: None,
            email: Some(email.into()),
            role_names: roles.iter().map(|r| r.to_string()).collect(),
        }
    }

    #[test]
    fn searches_what_needs_an_add_what_was_ambiguous_and_holders_when_full() {
        let m = ManagedRoles::new(vec!["Admin".into()]);
        let mut listed = CurrentState::default();
        listed.add_user(&m, &user(1, "holder@x.edu", &["Admin"]));
        listed.add_user(&m, &user(2, "twin@x.edu", &["Admin"]));
        let desired = DesiredState {
            users: [
                ("holder@x.edu", RoleSet::single(0)),
                ("twin@x.edu", RoleSet::single(0)),
                ("new@x.edu", RoleSet::single(0)),
                ("none@x.edu", RoleSet::EMPTY),
                ("gone@x.edu", RoleSet::EMPTY),
            ]
            .into_iter()
            .map(|(e, r)| (e.to_string(), r))
            .collect(),
            ..Default::default()
        };
        let ambiguous: HashSet<String> = ["twin@x.edu".to_string(), "gone@x.edu".to_string()]
            .into_iter()
            .collect();
        let resting = HashSet::new();
        let mut inputs = SearchInputs {
            desired: &desired,
            listed: &listed,
            ambiguous: &ambiguous,
            resting: &resting,
            verification: Verification::Incremental,
        };
        assert_eq!(
            emails_to_search(&inputs),
            ["gone@x.edu", "new@x.edu", "twin@x.edu"]
        );
        // Resting: left out of an incremental run; an ambiguous email never rests.
        let resting: HashSet<String> = ["new@x.edu".to_string(), "twin@x.edu".to_string()]
            .into_iter()
            .collect();
        inputs.resting = &resting;
        assert_eq!(emails_to_search(&inputs), ["gone@x.edu", "twin@x.edu"]);
        inputs.verification = Verification::Full;
        assert_eq!(
            emails_to_search(&inputs),
            ["gone@x.edu", "holder@x.edu", "new@x.edu", "twin@x.edu"]
        );
    }

    #[test]
    fn remembers_shared_emails_and_forgets_resolved_ones() {
        let m = ManagedRoles::new(vec!["Admin".into()]);
        let mut c = CurrentState::default();
        c.add_user(&m, &user(2, "twin@x.edu", &["Admin"]));
        c.add_search(
            &m,
            "twin@x.edu",
            &[
                user(2, "twin@x.edu", &["Admin"]),
                user(1, "TWIN@x.edu", &[]),
            ],
        );
        c.add_search(&m, "solo@x.edu", &[user(3, "solo@x.edu", &[])]);
        c.add_search(&m, "nobody@x.edu", &[]);
        let searched = ["twin@x.edu", "solo@x.edu", "nobody@x.edu"].map(String::from);
        let u = ambiguity_update(&c, &searched);
        assert_eq!(u.remember, vec![("twin@x.edu".to_string(), vec![1, 2])]);
        assert_eq!(u.forget, vec!["solo@x.edu".to_string()]);
    }
}
