//! The third step of a run: the plan recorded before anything is sent, with what was left
//! alone (pending emails, flapping changes) and, when a guard holds the run back, why.
//!
//! A run that dies after this step leaves a record that says what it meant to do; the
//! outcomes are written as they come back ([`send`](super::send)).

use super::decide::Decided;
use super::observe::Observed;
use super::{left_alone_log, people, Engine};
use crate::model::change::{Change, Outcome};
use crate::store::history::{PendingRow, PendingUpdate};
use crate::sync::plan::GuardTrip;
use crate::sync::run_report::{RunError, RunReport};

impl Engine {
    /// Records the decided plan and moves it into `report`. Returns the phases to send, or
    /// `None` when nothing is to be sent (a dry run, a guard, nothing to change).
    pub(super) async fn record_plan(
        &self,
        report: &mut RunReport,
        observed: &Observed,
        decided: Decided,
        dry_run: bool,
    ) -> Result<Option<Vec<Vec<Change>>>, RunError> {
        let config = &self.config;
        let managed = &config.roles.managed;
        let Decided {
            plan: the_plan,
            flapping,
            left_alone,
            guard,
            mut rows,
            digest,
        } = decided;
        self.history
            .set_run_plan(
                report.record.id,
                &digest,
                guard.as_ref().map(GuardTrip::kind),
            )
            .await?;
        if guard.is_some() {
            // What the guard protected, per role: the console shows the risk before the remedy.
            let holders: Vec<(String, usize)> = (0..managed.len())
                .map(|role| (managed.name(role).to_string(), the_plan.holders_of(role)))
                .collect();
            self.history
                .set_role_holders(report.record.id, &holders)
                .await?;
        }
        report.digest = Some(digest);
        let r = &mut report.record;
        r.adds_planned = the_plan.adds() as i64;
        r.removes_planned = the_plan.removes() as i64;
        r.pending = the_plan.pending_emails() as i64;
        // Recorded before anything is sent; a tripped guard means none of it will be.
        let skipped = match &guard {
            // The differences are in the run's error; one line per action is enough here.
            Some(GuardTrip::PlanChanged { .. }) => {
                Some("not sent: the plan changed since it was approved".to_string())
            }
            Some(g) => Some(format!("not sent: safety guard: {g}")),
            None => None,
        };
        if let Some(detail) = skipped {
            for r in rows.iter_mut().take(the_plan.actions.len()) {
                r.outcome = Outcome::Skipped;
                r.detail = Some(detail.clone());
            }
        }
        let mut pending: Vec<PendingRow> = the_plan
            .pending
            .iter()
            .map(|p| PendingRow {
                email: p.email.clone(),
                reason: p.reason.as_str().into(),
                user_id: p.user_id.map(|i| i as i64),
                detail: Some(p.detail.clone()),
            })
            .collect();
        // The countdown is left out of the detail: a detail that changed every run would
        // start a new span every run. `plan` shows it.
        pending.extend(the_plan.waiting.iter().map(|w| PendingRow {
            email: w.action.email.clone().unwrap_or_default(),
            reason: "remove_after".into(),
            user_id: Some(w.action.user_id as i64),
            detail: Some(format!(
                "{}: missing from the sources; removed once missing for safety.remove_after ({})",
                managed.name(w.action.role),
                config
                    .safety
                    .remove_after
                    .map(|a| a.to_string())
                    .unwrap_or_default()
            )),
        }));
        let update = PendingUpdate {
            rows: &pending,
            searched: &observed.read.searched,
            backoff: config.pending.backoff(),
        };
        let changes = self
            .history
            .record_plan(report.record.id, &rows, &update)
            .await?;
        left_alone_log::log_left_alone(&the_plan.pending, &changes);
        self.history
            .record_people(
                report.record.id,
                &people::accounts(&observed.read.current, managed),
                &people::desired(&observed.desired, managed),
            )
            .await?;
        if !flapping.is_empty() {
            let keys: Vec<_> = flapping.iter().map(|a| a.key(managed)).collect();
            self.history.mark_flapping(report.record.id, &keys).await?;
            for a in &flapping {
                tracing::warn!(
                    email = a.email.as_deref().unwrap_or("-"),
                    role = managed.name(a.role),
                    action = a.kind.as_str(),
                    runs = config.flapping.after_runs,
                    left_alone,
                    "flapping: this change was made in every recent run and something in Studio keeps undoing it (Canvas admin inheritance?)"
                );
            }
        }
        report.flapping = flapping;
        report.flapping_left_alone = left_alone;
        if let Some(g) = &guard {
            if g.approvable() && !dry_run {
                tracing::warn!(guard = %g, "safety guard tripped: nothing sent; if these changes are right, let exactly them through with: studio-role-sync approve {}", report.record.id);
            } else {
                tracing::warn!(guard = %g, "safety guard tripped: nothing sent");
            }
        }
        let phases = the_plan.phases(managed);
        report.guard = guard;
        report.plan = Some(the_plan);
        if report.guard.is_some() || dry_run || phases.iter().all(Vec::is_empty) {
            return Ok(None);
        }
        Ok(Some(phases))
    }
}
