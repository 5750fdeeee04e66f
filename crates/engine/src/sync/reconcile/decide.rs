//! The second step of a run: the plan from the two states, the flapping changes left alone,
//! the guards, and a person's consent (an approval or a saved plan) that may lift them.
//!
//! It writes only what the decision itself rests on (the grants found missing, consumed
//! approvals); the plan is recorded by the next step ([`record`](super::record)).

use super::observe::Observed;
use super::{Consent, Engine};
use crate::input::desired::{self, DesiredState};
use crate::model::change::{Change, ChangeKind, Outcome};
use crate::model::digest::{self, PlannedAction, RecordedAction, LEFT_ALONE};
use crate::store::history::{ActionRow, HistoryError, MissingGrant};
use crate::sync::current::CurrentState;
use crate::sync::grace::{Grace, MissingSince};
use crate::sync::plan::{check_guards, plan, plan_with_grace, GuardTrip, Plan, Policy};
use crate::sync::run_report::{RunError, RunReport};
use std::collections::{HashMap, HashSet};

/// What a run decided: the plan, what it left alone, whether a guard holds it back.
pub(super) struct Decided {
    pub plan: Plan,
    /// Planned changes also applied in the previous runs (`flapping.after_runs`).
    pub flapping: Vec<Change>,
    /// True when those are left out of the plan (`flapping.reapply: false`).
    pub left_alone: bool,
    /// The guard that stops the run, after consent.
    pub guard: Option<GuardTrip>,
    /// The rows as they will be recorded: the plan's changes first, then those left alone.
    pub rows: Vec<ActionRow>,
    /// The plan's digest (`sha256:...`), as an approval names it.
    pub digest: String,
}

impl Engine {
    pub(super) async fn decide(
        &self,
        report: &mut RunReport,
        observed: &Observed,
        dry_run: bool,
        consent: &Consent,
    ) -> Result<Decided, RunError> {
        let config = &self.config;
        let managed = &config.roles.managed;
        let desired = &observed.desired;
        let policy = self.policy();
        let mut the_plan = self
            .plan_with_grace(
                report.record.id,
                dry_run,
                desired,
                &observed.read.current,
                &policy,
            )
            .await?;
        the_plan.ending = desired.ending_within(
            &desired::Calendar::now(config.timezone),
            config.notify.grant_expiring_days,
        );
        let flapping = self.find_flapping(report.record.id, &the_plan).await?;
        // Left alone, a flapping change is not part of the plan: not sent, not guarded.
        let left_alone = !flapping.is_empty() && !config.flapping.reapply;
        if left_alone {
            let alone: HashSet<&Change> = flapping.iter().collect();
            the_plan.actions.retain(|a| !alone.contains(a));
        }
        let guard = check_guards(&the_plan, desired, &policy, &config.safety).err();
        // Where an added grant came from, for `history --email` and the console.
        let source = |c: &Change| match (c.kind, &c.email) {
            (ChangeKind::Add, Some(email)) => {
                let from = the_plan.sources_of(email, c.role);
                (!from.is_empty()).then(|| {
                    from.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
            }
            _ => None,
        };
        let row = |c: &Change, outcome: Outcome, detail: Option<String>| {
            let mut r = ActionRow::planned(c, managed, outcome, detail, source(c));
            // An added grant's end and reason; a removed grant's when it ended.
            if let Some(email) = &c.email {
                if c.kind == ChangeKind::Add || desired.has_ended(email, c.role) {
                    let (until, reason) = desired.note_of(email, c.role);
                    r.until = until.map(|d| d.to_string());
                    r.reason = reason;
                }
            }
            r
        };
        // The rows as they will be recorded; the digest reads them as `approve` will.
        let mut rows: Vec<ActionRow> = the_plan
            .actions
            .iter()
            .map(|a| row(a, Outcome::Planned, None))
            .collect();
        if left_alone {
            let why = format!(
                "{LEFT_ALONE}flapping (applied in {} consecutive runs; flapping.reapply: false)",
                config.flapping.after_runs
            );
            rows.extend(
                flapping
                    .iter()
                    .map(|a| row(a, Outcome::Skipped, Some(why.clone()))),
            );
        }
        let planned = digest::recorded_plan(&rows);
        let digest = digest::digest(&planned);
        let guard = if dry_run {
            guard
        } else {
            let decision = self
                .consent(report.record.id, &planned, &digest, guard, consent)
                .await?;
            report.approval = decision.used;
            decision.guard
        };
        Ok(Decided {
            plan: the_plan,
            flapping,
            left_alone,
            guard,
            rows,
            digest,
        })
    }

    /// The plan, with the grace period of `safety.remove_after` judged on the history's
    /// "missing since" facts. A run that is not a dry run records the grants it found missing
    /// (and forgets the others; all of them when the grace period is off).
    async fn plan_with_grace(
        &self,
        run_id: i64,
        dry_run: bool,
        desired: &DesiredState,
        current: &CurrentState,
        policy: &Policy,
    ) -> Result<Plan, HistoryError> {
        let managed = &self.config.roles.managed;
        let Some(remove_after) = self.config.safety.remove_after else {
            if !dry_run {
                self.history.record_missing(run_id, &[]).await?;
            }
            return Ok(plan(desired, current, policy));
        };
        let missing: HashMap<(u64, usize), MissingSince> = self
            .history
            .missing_grants(run_id)
            .await?
            .into_iter()
            .filter_map(|((user, role), since)| Some(((user, managed.index(&role)?), since)))
            .collect();
        let grace = Grace {
            remove_after,
            now: self.history.clock().now(),
            missing: &missing,
        };
        let the_plan = plan_with_grace(desired, current, policy, Some(&grace));
        if !dry_run {
            let grants: Vec<MissingGrant> = crate::sync::grace::missing_grants(&the_plan)
                .map(|a| (a.user_id, managed.name(a.role).to_string(), a.email.clone()))
                .collect();
            self.history.record_missing(run_id, &grants).await?;
        }
        Ok(the_plan)
    }

    /// The planned actions that were also applied in each of the previous
    /// `flapping.after_runs - 1` runs that sent changes.
    async fn find_flapping(&self, run_id: i64, plan: &Plan) -> Result<Vec<Change>, HistoryError> {
        if plan.actions.is_empty() {
            return Ok(Vec::new());
        }
        let previous = self.config.flapping.after_runs.saturating_sub(1).max(1);
        Ok(
            match self.history.repeated_actions(run_id, previous).await? {
                Some(repeated) => crate::sync::flapping::flapping(
                    &plan.actions,
                    &repeated,
                    &self.config.roles.managed,
                ),
                None => Vec::new(),
            },
        )
    }
}

/// How the digest reads a recorded row: here, beside where rows left alone are written (the
/// store keeps rows without knowing what a digest is).
impl RecordedAction for ActionRow {
    fn recorded_change(&self) -> PlannedAction {
        self.named()
    }

    fn recorded_detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }
}
