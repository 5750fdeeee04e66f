//! One role change, in the few shapes it must take and no more.
//!
//! A [`Change`] is what the plan decides: give or take one managed role (by its index in
//! `roles.managed`) from one Studio user. Sending it ends in an [`Outcome`]
//! ([`ChangeResult`]). Outside the engine a change is named by its role's name: the canonical
//! [`PlannedAction`] is what a digest, an approval and a saved plan hold. Each boundary has one
//! conversion: the wire (`WireAction::of`, in `studio`) and the history rows (`ActionRow`, in
//! `store`). Kind and outcome are enums whose text is the `run_actions` contract.

use crate::input::roles::ManagedRoles;
use crate::model::stored_as_text;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Add or remove a role; `run_actions.action` holds its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    Add,
    Remove,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Add => "add",
            ChangeKind::Remove => "remove",
        }
    }

    /// The kind whose text (in `run_actions.action`) is `text`, if any.
    pub fn parse(text: &str) -> Option<ChangeKind> {
        [ChangeKind::Add, ChangeKind::Remove]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

stored_as_text!(ChangeKind, ChangeKind::parse);

impl fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How a change ended; `run_actions.outcome` holds its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Recorded before sending; not sent (yet).
    Planned,
    /// Studio made it, and its answer shows it.
    Applied,
    /// Studio refused it, or its answer does not show it made.
    Failed,
    /// Not sent: a guard, a breaker, a shutdown, or left alone as flapping.
    Skipped,
    /// Sent by a process that died before Studio's answer was recorded.
    Unknown,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Planned => "planned",
            Outcome::Applied => "applied",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
            Outcome::Unknown => "unknown",
        }
    }

    /// The outcome whose text (in `run_actions.outcome`) is `text`, if any.
    pub fn parse(text: &str) -> Option<Outcome> {
        [
            Outcome::Planned,
            Outcome::Applied,
            Outcome::Failed,
            Outcome::Skipped,
            Outcome::Unknown,
        ]
        .into_iter()
        .find(|o| o.as_str() == text)
    }
}

stored_as_text!(Outcome, Outcome::parse);

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One change to send: give or take one managed role from one Studio user.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub user_id: u64,
    pub email: Option<String>,
    /// Index into `roles.managed`.
    pub role: usize,
    pub kind: ChangeKind,
}

impl Change {
    /// The change by its role's name, as approved and recorded.
    pub fn named(&self, managed: &ManagedRoles) -> PlannedAction {
        PlannedAction {
            user_id: self.user_id as i64,
            email: self.email.clone(),
            role: managed.name(self.role).to_string(),
            action: self.kind,
        }
    }

    /// How the history finds this change among a run's rows.
    pub fn key(&self, managed: &ManagedRoles) -> ChangeKey {
        ChangeKey {
            user_id: self.user_id as i64,
            role: managed.name(self.role).to_string(),
            kind: self.kind,
        }
    }
}

/// A change after sending: how it ended, and what Studio said.
#[derive(Clone, Debug)]
pub struct ChangeResult {
    pub change: Change,
    pub outcome: Outcome,
    pub http_status: Option<u16>,
    pub detail: Option<String>,
}

/// One planned change by its role's name, as approved: who, which role, add or remove. Its
/// fields are those of a saved plan file and of `approvals.actions`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PlannedAction {
    pub user_id: i64,
    pub email: Option<String>,
    pub role: String,
    pub action: ChangeKind,
}

impl fmt::Display for PlannedAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {} (user {})",
            self.action,
            self.role,
            self.email.as_deref().unwrap_or("(no email)"),
            self.user_id
        )
    }
}

/// A change as the history keys it across runs (flapping): user, role name, kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, sqlx::FromRow)]
pub struct ChangeKey {
    pub user_id: i64,
    pub role: String,
    #[sqlx(rename = "action")]
    pub kind: ChangeKind,
}
