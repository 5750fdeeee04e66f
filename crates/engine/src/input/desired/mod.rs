//! The desired state: which managed roles each email should hold, and where it comes from.
//!
//! Both sources (the YAML roles file in [`yaml`], a SQL query in [`sql`]) feed one
//! [`DesiredBuilder`], so an email or a role is checked by the same rules wherever it was
//! written. Problems are collected rather than returned at the first one: an admin fixing a
//! file wants every bad line at once. A desired state with any problem is never used.

pub mod sql;
pub mod yaml;

use crate::input::roles::{ManagedRoles, RoleSet};
use std::collections::HashMap;
use std::fmt;

/// Normalised email → the managed roles it should hold. An email listed with no roles is
/// present with an empty set: it is known, and holds nothing managed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub users: HashMap<String, RoleSet>,
}

impl DesiredState {
    pub fn grants(&self) -> usize {
        self.users.values().map(|r| r.len()).sum()
    }

    /// True when nothing grants any managed role: an empty file, a failed query.
    pub fn is_empty(&self) -> bool {
        self.users.values().all(|r| r.is_empty())
    }
}

/// Where a problem was found: a line of a file or a row of a query result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Line(usize),
    Row(u64),
    /// The n-th entry of a mapping, turned into a line only if a problem needs showing.
    Entry(usize),
    Unknown,
}

/// One thing wrong with the desired state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub message: String,
}

/// The desired state could not be loaded. `source` is the file path, or "SQL source (...)".
#[derive(Debug, thiserror::Error)]
pub enum DesiredError {
    #[error("{0}")]
    Invalid(InvalidDesired),
    #[error("{place}: {message}")]
    Unavailable { place: String, message: String },
}

/// Problems found in a desired state, shown one per line with their location.
#[derive(Debug)]
pub struct InvalidDesired {
    pub source: String,
    pub problems: Vec<Problem>,
}

/// How many problems are shown; the count of the rest is given.
const SHOWN_PROBLEMS: usize = 20;

impl fmt::Display for InvalidDesired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: desired roles are invalid ({n} problem{}); nothing was sent to Studio",
            self.source,
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems.iter().take(SHOWN_PROBLEMS) {
            match p.origin {
                Origin::Line(l) => write!(f, "\n  {}:{l}: {}", self.source, p.message)?,
                Origin::Row(r) => write!(f, "\n  {} row {r}: {}", self.source, p.message)?,
                Origin::Entry(_) | Origin::Unknown => {
                    write!(f, "\n  {}: {}", self.source, p.message)?
                }
            }
        }
        if n > SHOWN_PROBLEMS {
            write!(f, "\n  ... and {} more", n - SHOWN_PROBLEMS)?;
        }
        Ok(())
    }
}

/// Collects grants from a source, checking each against the contract's rules.
pub struct DesiredBuilder<'a> {
    managed: &'a ManagedRoles,
    users: HashMap<String, RoleSet>,
    problems: Vec<Problem>,
}

impl<'a> DesiredBuilder<'a> {
    pub fn new(managed: &'a ManagedRoles) -> Self {
        DesiredBuilder {
            managed,
            users: HashMap::new(),
            problems: Vec::new(),
        }
    }

    pub fn problem(&mut self, origin: Origin, message: impl Into<String>) {
        self.problems.push(Problem {
            origin,
            message: message.into(),
        });
    }

    /// Checks and normalises an email; `None` (with a problem recorded) when it is not one.
    pub fn email(&mut self, origin: Origin, raw: &str) -> Option<String> {
        match crate::input::email_address::check(raw) {
            Ok(email) => Some(email),
            Err(why) => {
                self.problem(
                    origin,
                    format!("{} {why}", crate::input::email_address::shown(raw)),
                );
                None
            }
        }
    }

    /// The index of a managed role; a problem is recorded for any other role.
    pub fn role(&mut self, origin: Origin, email: &str, role: &str) -> Option<usize> {
        let index = self.managed.index(role);
        if index.is_none() {
            let hint = self
                .managed
                .names()
                .iter()
                .find(|m| m.eq_ignore_ascii_case(role))
                .map(|m| format!(" (role names are case-sensitive: did you mean {m:?}?)"))
                .unwrap_or_default();
            self.problem(
                origin,
                format!(
                    "{email}: role {role:?} is not in roles.managed {}{hint}",
                    self.managed
                ),
            );
        }
        index
    }

    /// Declares an email once with its roles (the YAML rule: an email is one key).
    /// Returns false, with a problem recorded, when the email was already declared.
    pub fn declare(&mut self, origin: Origin, email: String, roles: RoleSet) -> bool {
        self.exclusive(origin, &email, roles);
        if self.users.contains_key(&email) {
            self.problem(
                origin,
                format!("{email} is listed twice (emails compare case-insensitively)"),
            );
            return false;
        }
        self.users.insert(email, roles);
        true
    }

    /// Adds one grant (the SQL rule: an email has one row per role; repeats are harmless).
    /// A grant that makes the email hold two roles of one exclusive group is refused at its
    /// `origin`.
    pub fn grant(&mut self, origin: Origin, email: String, role: usize) {
        let held = self.users.get(&email).copied().unwrap_or_default();
        let mut with = held;
        with.insert(role);
        if self.managed.conflict(with).is_some() && self.managed.conflict(held).is_none() {
            self.exclusive(origin, &email, with);
            return;
        }
        self.users.entry(email).or_default().insert(role);
    }

    /// Records a problem when `roles` holds two roles of one group of `roles.exclusive`.
    fn exclusive(&mut self, origin: Origin, email: &str, roles: RoleSet) {
        if let Some((a, b)) = self.managed.conflict(roles) {
            let (a, b) = (self.managed.name(a), self.managed.name(b));
            self.problem(
                origin,
                format!(
                    "{email}: {a} and {b} are mutually exclusive (roles.exclusive): Studio lets \
                     a user hold only one of them"
                ),
            );
        }
    }

    /// The desired state, or every problem found, located in `source`.
    pub fn finish(self, source: &str) -> Result<DesiredState, DesiredError> {
        self.finish_with(source, |o| o)
    }

    /// As [`finish`](Self::finish), turning [`Origin::Entry`] into lines with `locate`.
    pub fn finish_with(
        mut self,
        source: &str,
        locate: impl FnOnce(Vec<Origin>) -> Vec<Origin>,
    ) -> Result<DesiredState, DesiredError> {
        if self.problems.is_empty() {
            return Ok(DesiredState { users: self.users });
        }
        let located = locate(self.problems.iter().map(|p| p.origin).collect());
        for (p, origin) in self.problems.iter_mut().zip(located) {
            p.origin = origin;
        }
        self.problems.sort_by_key(|p| match p.origin {
            Origin::Line(n) | Origin::Entry(n) => n as u64,
            Origin::Row(n) => n,
            Origin::Unknown => 0,
        });
        Err(DesiredError::Invalid(InvalidDesired {
            source: source.to_string(),
            problems: self.problems,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_roles_are_refused_where_they_meet() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "Sub".into(), "Cap".into()])
            .with_exclusive(vec![RoleSet::single(0).union(RoleSet::single(1))]);
        let mut b = DesiredBuilder::new(&managed);
        b.grant(Origin::Row(1), "a@x.edu".into(), 0);
        b.grant(Origin::Row(2), "a@x.edu".into(), 2);
        b.grant(Origin::Row(3), "a@x.edu".into(), 1);
        b.declare(Origin::Line(9), "b@x.edu".into(), managed.all());
        let Err(DesiredError::Invalid(e)) = b.finish("s") else {
            panic!("invalid")
        };
        let got: Vec<_> = e.problems.iter().map(|p| p.origin).collect();
        assert_eq!(got, vec![Origin::Row(3), Origin::Line(9)]);
        assert!(e.problems[0]
            .message
            .contains("Admin and Sub are mutually exclusive"));
    }
}
