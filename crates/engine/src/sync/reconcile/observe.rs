//! The first step of a run: what is wanted (the desired state) and what is (Studio, read for
//! this run's kind of verification), with the ambiguous emails remembered in the history.
//!
//! Nothing is decided here; the step ends with both states in hand ([`Observed`]).

use super::{load_desired, Engine, Trigger, VerifyRequest};
use crate::input::desired::{self, DesiredState};
use crate::service::shutdown::CancellationToken;
use crate::store::history::HistoryError;
use crate::sync::identity::{self, Verification};
use crate::sync::read::{read_current, ReadError, ReadInputs, ReadOutcome};
use crate::sync::run_report::{RunError, RunReport};
use std::collections::HashSet;

/// Both states of a run.
pub(super) struct Observed {
    pub desired: DesiredState,
    /// Studio's current state, and the emails searched for it.
    pub read: ReadOutcome,
}

impl Engine {
    /// Loads the desired state (unless the request brings it), settles the kind of
    /// verification and reads Studio.
    pub(super) async fn observe(
        &self,
        report: &mut RunReport,
        trigger: Trigger,
        desired: Option<DesiredState>,
        verify: VerifyRequest,
        shutdown: &CancellationToken,
    ) -> Result<Observed, RunError> {
        let config = &self.config;
        let desired = match desired {
            // A state read earlier (the daemon's last valid one, kept while the file is
            // invalid) still ends the grants whose `until` has passed since.
            Some(mut d) => {
                d.expire(&desired::Calendar::now(config.timezone));
                d
            }
            None => load_desired(config).await?,
        };
        report.record.desired_users = Some(desired.users.len() as i64);
        let verification = self.verification(verify).await?;
        report.record.verification = Some(verification.as_str().into());
        self.history
            .set_verification(report.record.id, verification.as_str())
            .await?;
        let ambiguous = self.history.ambiguous_emails().await?;
        tracing::info!(
            verification = verification.as_str(),
            remembered_ambiguous = ambiguous.len(),
            "reading Studio"
        );
        // A manual run (an admin's `plan` or `apply`) and a full verification search every
        // pending email; a scheduled one leaves out those whose back-off has not run out.
        let resting = if trigger == Trigger::Manual || verification == Verification::Full {
            HashSet::new()
        } else {
            self.history.resting_emails().await?
        };
        let inputs = ReadInputs {
            managed: &config.roles.managed,
            desired: &desired,
            ambiguous: &ambiguous,
            resting: &resting,
            verification,
            concurrency: config.studio.concurrency,
        };
        let read = match read_current(&self.client, &inputs, shutdown).await {
            Ok(read) => read,
            Err(ReadError::Stopped) => return Err(RunError::Stopped),
            Err(ReadError::Studio(e)) => return Err(RunError::StudioRead(e)),
        };
        if !resting.is_empty() {
            tracing::info!(
                resting = resting.len(),
                searched = read.searched.len(),
                "pending emails waiting out their back-off were not searched"
            );
        }
        let update = identity::ambiguity_update(&read.current, &read.searched);
        for (email, ids) in update
            .remember
            .iter()
            .filter(|(e, _)| !ambiguous.contains(e))
        {
            tracing::warn!(email = %email, user_ids = ?ids, "several Studio accounts share this email: it is left alone, and searched on every run until one account has it");
        }
        for email in update.forget.iter().filter(|e| ambiguous.contains(*e)) {
            tracing::info!(email = %email, "a search found one Studio account for this email: no longer ambiguous");
        }
        self.history.update_ambiguous(&update).await?;
        Ok(Observed { desired, read })
    }

    /// The kind of run `request` asks for, given when the last full verification ran.
    async fn verification(&self, request: VerifyRequest) -> Result<Verification, HistoryError> {
        if request == VerifyRequest::Now {
            return Ok(Verification::Full);
        }
        let every = chrono::Duration::from_std(self.config.verify.full_every)
            .unwrap_or(chrono::Duration::MAX);
        Ok(match self.history.last_full_verification().await? {
            Some(at) if self.history.clock().now() - at < every => Verification::Incremental,
            _ => Verification::Full,
        })
    }
}
