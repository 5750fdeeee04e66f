//! The desired state: which managed roles each email should hold, and where it comes from.
//!
//! Every source (the YAML roles file in [`yaml`], a SQL query in [`sql`]) feeds one
//! [`DesiredBuilder`], so an email or a role is checked by the same rules wherever it was
//! written. Each grant remembers its source ([`Grant`]) for `plan` and `history --email`. Problems are collected rather than returned at the first one: an admin fixing a
//! file wants every bad line at once. A desired state with any problem is never used.

pub mod csv;
mod ending;
mod grant;
pub mod ldap;
pub(crate) mod sources;
pub mod sql;
pub mod yaml;

pub use ending::Ending;
pub use grant::{latest_until, Calendar, Grant, SourceName};
pub use sources::{load_all, GroupCount, SourceRead};

use crate::input::roles::{ManagedRoles, RoleSet};
use chrono::NaiveDate;
use std::collections::HashMap;
use std::fmt;

/// Normalised email → the managed roles it should hold. An email listed with no roles is
/// present with an empty set: it is known, and holds nothing managed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DesiredState {
    pub users: HashMap<String, RoleSet>,
    /// Email → its grants, with their source (and end date and reason, when given). The
    /// planner reads only `users`; these say where each of its roles came from.
    pub grants: HashMap<String, Vec<Grant>>,
    /// Directory members a source could not turn into an email (no `mail`): reported as
    /// pending `no_email_in_directory`, never guessed.
    pub unmatched: Vec<Unmatched>,
    /// Email → its grants whose `until` has passed (see [`DesiredState::expire`]): no longer
    /// desired, kept to say why a role goes (an expiry is removed at once, without
    /// `safety.remove_after`'s wait).
    pub ended: HashMap<String, Vec<Grant>>,
}

/// A member a directory listed without a usable email.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unmatched {
    /// The member as the directory names it (a DN, or a `memberUid`).
    pub member: String,
    pub source: SourceName,
    pub detail: String,
}

impl DesiredState {
    /// The grants of `email`: one per role and source.
    pub fn grants_of(&self, email: &str) -> &[Grant] {
        self.grants.get(email).map_or(&[], Vec::as_slice)
    }

    /// The sources that grant `role` to `email`, in the order they were read.
    pub fn sources_of(&self, email: &str, role: usize) -> impl Iterator<Item = &SourceName> {
        self.grants_of(email)
            .iter()
            .filter(move |g| g.role == role)
            .map(|g| &g.source)
    }

    pub fn grants(&self) -> usize {
        self.users.values().map(|r| r.len()).sum()
    }

    /// When `email`'s `role` ends: the latest `until` of its grants, `None` when one of them
    /// has no end (or the role is not granted).
    pub fn until_of(&self, email: &str, role: usize) -> Option<NaiveDate> {
        let mut of = self
            .grants_of(email)
            .iter()
            .filter(|g| g.role == role)
            .peekable();
        of.peek()?;
        latest_until(of)
    }

    /// The end and reason of `email`'s `role`, to record with an action on it: of its current
    /// grants (the latest end, none when one has none), else of its grants that ended.
    /// Several reasons are joined with "; ".
    pub fn note_of(&self, email: &str, role: usize) -> (Option<NaiveDate>, Option<String>) {
        let of = |g: &HashMap<String, Vec<Grant>>| -> Vec<Grant> {
            g.get(email)
                .into_iter()
                .flatten()
                .filter(|g| g.role == role)
                .cloned()
                .collect()
        };
        let mut grants = of(&self.grants);
        if grants.is_empty() {
            grants = of(&self.ended);
        }
        if grants.is_empty() {
            return (None, None);
        }
        let mut reasons: Vec<&str> = Vec::new();
        for r in grants.iter().filter_map(|g| g.reason.as_deref()) {
            if !reasons.contains(&r) {
                reasons.push(r);
            }
        }
        (
            latest_until(&grants),
            (!reasons.is_empty()).then(|| reasons.join("; ")),
        )
    }

    /// Whether `email`'s `role` is not desired because its grants ended (rather than
    /// because no source lists it).
    pub fn has_ended(&self, email: &str, role: usize) -> bool {
        !self.users.get(email).is_some_and(|r| r.contains(role))
            && self
                .ended
                .get(email)
                .is_some_and(|g| g.iter().any(|g| g.role == role))
    }

    /// Moves the grants whose `until` is before `calendar`'s today to [`ended`](Self::ended):
    /// a role stays desired while any of its grants is current (the union: the latest end,
    /// or none, wins). An email whose grants all ended stays listed, holding nothing.
    /// Expiry only ever takes roles away.
    pub fn expire(&mut self, calendar: &Calendar) {
        for (email, grants) in self.grants.iter_mut() {
            if grants.iter().all(|g| calendar.is_current(g.until)) {
                continue;
            }
            let (current, ended): (Vec<Grant>, Vec<Grant>) = std::mem::take(grants)
                .into_iter()
                .partition(|g| calendar.is_current(g.until));
            let mut roles = RoleSet::EMPTY;
            for g in &current {
                roles.insert(g.role);
            }
            if let Some(held) = self.users.get_mut(email) {
                *held = held.intersection(roles);
            }
            *grants = current;
            self.ended.entry(email.clone()).or_default().extend(ended);
        }
        self.grants.retain(|_, g| !g.is_empty());
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

/// The longest `reason` kept: it is a note for people, not a document.
pub const MAX_REASON_CHARS: usize = 500;

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
    /// The source every grant of this builder comes from.
    source: SourceName,
    /// The day the file was last changed: an `until` before it is refused (see
    /// [`edited_on`](Self::edited_on)).
    edited: Option<NaiveDate>,
    users: HashMap<String, RoleSet>,
    grants: HashMap<String, Vec<Grant>>,
    problems: Vec<Problem>,
}

impl<'a> DesiredBuilder<'a> {
    pub fn new(managed: &'a ManagedRoles, source: SourceName) -> Self {
        DesiredBuilder {
            managed,
            source,
            edited: None,
            users: HashMap::new(),
            grants: HashMap::new(),
            problems: Vec::new(),
        }
    }

    /// Refuses a grant whose `until` was already past on `day`, the day the file was last
    /// changed: whoever wrote it meant a grant that had ended, a typo in the year. A grant
    /// that ended after the file was written is simply no longer desired
    /// ([`DesiredState::expire`]), so a file valid yesterday does not fail today.
    pub fn edited_on(mut self, day: Option<NaiveDate>) -> Self {
        self.edited = day;
        self
    }

    /// An `until` as written (`YYYY-MM-DD`; blank: none). `Err` with a problem recorded when
    /// it is not a date.
    pub(crate) fn until(
        &mut self,
        origin: Origin,
        email: &str,
        raw: &str,
    ) -> Result<Option<NaiveDate>, ()> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        // Exactly ten characters: chrono alone would also take "2027-1-31" or "+2027-01-31".
        match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            Ok(d) if raw.len() == 10 => Ok(Some(d)),
            _ => {
                self.problem(
                    origin,
                    format!(
                        "{email}: until {} is not a date (write YYYY-MM-DD)",
                        crate::email_address::shown(raw)
                    ),
                );
                Err(())
            }
        }
    }

    /// A `reason` as written (blank: none). `Err` with a problem recorded when it is longer
    /// than [`MAX_REASON_CHARS`].
    pub(crate) fn reason(
        &mut self,
        origin: Origin,
        email: &str,
        raw: &str,
    ) -> Result<Option<String>, ()> {
        let raw = raw.trim();
        if raw.chars().count() > MAX_REASON_CHARS {
            self.problem(
                origin,
                format!("{email}: the reason is longer than {MAX_REASON_CHARS} characters"),
            );
            return Err(());
        }
        Ok((!raw.is_empty()).then(|| raw.to_string()))
    }

    /// Records a problem when `grant` ended before the file was last changed.
    fn ended_before_edit(&mut self, origin: Origin, email: &str, grant: &Grant) -> bool {
        let (Some(until), Some(edited)) = (grant.until, self.edited) else {
            return false;
        };
        if until >= edited {
            return false;
        }
        let role = self.managed.name(grant.role).to_string();
        self.problem(
            origin,
            format!(
                "{email}: {role} until {until} had already ended when the file was last changed ({edited}): remove the grant, or give a date to come"
            ),
        );
        true
    }

    /// The source this builder reads, for the grants a reader makes itself.
    pub fn source(&self) -> &SourceName {
        &self.source
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
        let grants = roles
            .iter()
            .map(|r| Grant::new(r, self.source.clone()))
            .collect();
        self.declare_grants(origin, email, grants)
    }

    /// As [`declare`](Self::declare), with each grant given whole (an end date, a reason).
    /// A role granted twice keeps its first grant.
    pub fn declare_grants(&mut self, origin: Origin, email: String, grants: Vec<Grant>) -> bool {
        let mut roles = RoleSet::EMPTY;
        let mut kept: Vec<Grant> = Vec::with_capacity(grants.len());
        for g in grants {
            if self.ended_before_edit(origin, &email, &g) {
                continue;
            }
            if !roles.contains(g.role) {
                roles.insert(g.role);
                kept.push(g);
            }
        }
        self.exclusive(origin, &email, roles);
        if self.users.contains_key(&email) {
            self.problem(
                origin,
                format!("{email} is listed twice (emails compare case-insensitively)"),
            );
            return false;
        }
        if !kept.is_empty() {
            self.grants.insert(email.clone(), kept);
        }
        self.users.insert(email, roles);
        true
    }

    /// Adds one grant (the SQL rule: an email has one row per role; repeats are harmless).
    /// A grant that makes the email hold two roles of one exclusive group is refused at its
    /// `origin`.
    pub fn grant(&mut self, origin: Origin, email: String, role: usize) {
        let grant = Grant::new(role, self.source.clone());
        self.add_grant(origin, email, grant);
    }

    /// As [`grant`](Self::grant), with the grant given whole. A repeated role keeps the
    /// grant first read.
    pub fn add_grant(&mut self, origin: Origin, email: String, grant: Grant) {
        if self.ended_before_edit(origin, &email, &grant) {
            return;
        }
        let held = self.users.get(&email).copied().unwrap_or_default();
        if held.contains(grant.role) {
            return;
        }
        let mut with = held;
        with.insert(grant.role);
        if self.managed.conflict(with).is_some() && self.managed.conflict(held).is_none() {
            self.exclusive(origin, &email, with);
            return;
        }
        self.grants.entry(email.clone()).or_default().push(grant);
        self.users.insert(email, with);
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
            return Ok(DesiredState {
                users: self.users,
                grants: self.grants,
                unmatched: Vec::new(),
                ended: HashMap::new(),
            });
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
        let mut b = DesiredBuilder::new(&managed, SourceName::new("test"));
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

    #[test]
    fn each_grant_keeps_its_source_and_a_repeat_keeps_the_first() {
        let managed = ManagedRoles::new(vec!["Admin".into(), "Cap".into()]);
        let mut b = DesiredBuilder::new(&managed, SourceName::new("grants.csv"));
        b.grant(Origin::Row(1), "a@x.edu".into(), 1);
        let mut first = Grant::new(0, SourceName::new("grants.csv"));
        first.reason = Some("first".into());
        b.add_grant(Origin::Row(2), "a@x.edu".into(), first.clone());
        b.add_grant(
            Origin::Row(3),
            "a@x.edu".into(),
            Grant::new(0, b.source().clone()),
        );
        b.declare(Origin::Line(4), "b@x.edu".into(), RoleSet::EMPTY);
        let d = b.finish("s").unwrap();
        assert_eq!(d.users["a@x.edu"], managed.all());
        assert_eq!(d.grants_of("a@x.edu").len(), 2);
        assert_eq!(d.grants_of("a@x.edu")[1], first);
        let from: Vec<_> = d.sources_of("a@x.edu", 1).map(|s| s.as_str()).collect();
        assert_eq!(from, ["grants.csv"]);
        assert!(d.grants_of("b@x.edu").is_empty() && d.users.contains_key("b@x.edu"));
    }

    proptest::proptest! {
        /// Expiry only takes away: no email gains a role, a role stays exactly while one of
        /// its grants is current, and a later day never gives back what an earlier one took.
        #[test]
        fn expiry_never_adds_a_grant(
            grants in proptest::collection::vec((0..4usize, 0..3usize, proptest::option::of(0..10i64)), 0..20),
            day in 0..12i64,
        ) {
            let managed = ManagedRoles::new(vec!["A".into(), "B".into(), "C".into()]);
            let base = NaiveDate::from_ymd_opt(2027, 1, 1).unwrap();
            let mut parts = Vec::new();
            for (n, source) in ["one", "two"].iter().enumerate() {
                let mut b = DesiredBuilder::new(&managed, SourceName::new(source));
                for (i, (email, role, until)) in grants.iter().enumerate() {
                    if i % 2 == n {
                        let mut g = Grant::new(*role, SourceName::new(source));
                        g.until = until.map(|d| base + chrono::Duration::days(d));
                        b.add_grant(Origin::Row(i as u64), format!("u{email}@x.edu"), g);
                    }
                }
                parts.push(b.finish(source).unwrap());
            }
            let before = sources::union(parts, &managed).unwrap();
            let at = |d: i64| Calendar { zone: chrono_tz::UTC, today: base + chrono::Duration::days(d) };
            let mut now = before.clone();
            now.expire(&at(day));
            let mut later = now.clone();
            later.expire(&at(day + 1));
            for (email, held) in &before.users {
                let kept = now.users[email];
                proptest::prop_assert_eq!(kept.intersection(*held), kept);
                proptest::prop_assert_eq!(later.users[email].intersection(kept), later.users[email]);
                for role in 0..3 {
                    let current = before.grants_of(email).iter().any(|g| g.role == role && at(day).is_current(g.until));
                    proptest::prop_assert_eq!(kept.contains(role), current);
                    proptest::prop_assert_eq!(now.has_ended(email, role), held.contains(role) && !current);
                }
            }
        }
    }

    #[test]
    fn a_roles_file_names_its_grants_by_file_name() {
        let managed = ManagedRoles::new(vec!["Admin".into()]);
        let d = yaml::parse(
            "/etc/x/roles.yaml",
            "users:\n  a@x.edu: [Admin]\n",
            &managed,
        )
        .unwrap();
        let from: Vec<_> = d.sources_of("a@x.edu", 0).map(|s| s.to_string()).collect();
        assert_eq!(from, ["roles.yaml"]);
    }
}
