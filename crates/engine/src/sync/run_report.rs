//! How a run ended: the [`RunReport`] a run hands its caller, the [`RunError`] that stopped
//! it, and the one mapping from both to the run's [`RunStatus`].
//!
//! Its own module so that what reads a finished run (notifications, the binary's rendering)
//! depends on this, not on the run itself.

use crate::input::desired::DesiredError;
use crate::model::change::{Change, ChangeResult};
use crate::model::run_status::RunStatus;
use crate::store::history::{HistoryError, RunRecord};
use crate::studio::StudioError;
use crate::sync::plan::{GuardTrip, Plan};
use crate::sync::reconcile::ApprovalUse;

/// How a run ended: what the caller prints, and what its exit code is made from.
#[derive(Debug)]
pub struct RunReport {
    pub record: RunRecord,
    pub plan: Option<Plan>,
    pub guard: Option<GuardTrip>,
    pub outcomes: Vec<ChangeResult>,
    pub error: Option<RunError>,
    /// Planned changes that were also applied in the previous runs (`flapping.after_runs`):
    /// something in Studio keeps undoing them.
    pub flapping: Vec<Change>,
    /// True when those were left alone (`flapping.reapply: false`) rather than applied again.
    pub flapping_left_alone: bool,
    /// The approval or saved plan this run used, if any.
    pub approval: Option<ApprovalUse>,
    /// The digest of the plan (`sha256:...`), once planned.
    pub digest: Option<String>,
}

/// Why a run could not do its work (status `failed`, or `interrupted` for [`RunError::Stopped`]).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The desired state could not be loaded, or is invalid: nothing was sent.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// The history could not be read or written before anything was sent.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// Changes were sent, but the history could not record what Studio answered for some of
    /// them: they still say `planned`. The run went on (Studio's state does not depend on the
    /// history), and the next run reads Studio again.
    #[error(
        "could not record the outcome of {unrecorded} change(s) sent to Studio (they still say \
         planned; the next run reads Studio again): {source}"
    )]
    Outcomes {
        unrecorded: usize,
        source: HistoryError,
    },
    /// Reading Studio failed (see [`RunError::is_auth`] for refused credentials).
    #[error("reading Studio failed: {0}")]
    StudioRead(StudioError),
    /// Studio kept failing while changes were sent: the breaker opened.
    #[error("Studio is failing: {0}")]
    Outage(String),
    /// Studio refused the credentials while changes were sent.
    #[error("{0}")]
    Auth(String),
    /// A shutdown stopped the run while it read Studio.
    #[error("stopped by a shutdown while reading Studio; nothing was sent")]
    Stopped,
    /// This daemon's lease ended during the run (a history several daemons share): it sent
    /// nothing more, and the new leader finishes the work.
    #[error("{0}")]
    LeadershipLost(String),
}

impl RunError {
    /// This daemon's lease ended: what it sent was fenced off, and the new leader goes on.
    pub fn is_leadership_lost(&self) -> bool {
        match self {
            RunError::LeadershipLost(_) => true,
            RunError::History(e) | RunError::Outcomes { source: e, .. } => e.is_leadership_lost(),
            _ => false,
        }
    }
    /// Whether Studio refused the credentials (401, or no token could be had).
    pub fn is_auth(&self) -> bool {
        // A 403 is left out: Studio (behind Canvas) also answers 403 when throttling.
        match self {
            RunError::Auth(_) => true,
            RunError::StudioRead(e) => {
                matches!(e, StudioError::Unauthorized { .. } | StudioError::Auth(_))
            }
            _ => false,
        }
    }
}

impl RunReport {
    /// A report for run `record` that has not done anything yet.
    pub fn new(record: RunRecord) -> RunReport {
        RunReport {
            record,
            plan: None,
            guard: None,
            outcomes: Vec::new(),
            error: None,
            flapping: Vec::new(),
            flapping_left_alone: false,
            approval: None,
            digest: None,
        }
    }

    /// The run failed because Studio refused the credentials.
    pub fn auth_failed(&self) -> bool {
        self.error.as_ref().is_some_and(RunError::is_auth)
    }

    /// The one mapping from how a run ended to its recorded status. A shutdown wins: the run
    /// did not fail, it was stopped (its error says where).
    pub fn status(&self) -> RunStatus {
        if self.record.status == RunStatus::Interrupted
            || matches!(self.error, Some(RunError::Stopped))
            || self
                .error
                .as_ref()
                .is_some_and(RunError::is_leadership_lost)
        {
            RunStatus::Interrupted
        } else if self.error.is_some() {
            RunStatus::Failed
        } else if self.guard.is_some() {
            RunStatus::Aborted
        } else if self.record.failed > 0 {
            RunStatus::Partial
        } else {
            RunStatus::Succeeded
        }
    }
}
