//! A person's consent in a run: a pending approval (`approve RUN_ID`) or a saved plan
//! (`apply FILE`) lifts the removal guards for exactly the plan it names, by digest.
//!
//! Decided after the guards judged the plan and before anything is recorded as planned, so
//! the record says at once whether the actions will be sent. An approval is consumed by the
//! first run that gets this far: `applied` when its digest is this run's, `superseded` when
//! the run used another pending approval, else `refused` with what differs; it is never
//! carried over to a later plan. The empty-desired-state refusal is
//! never lifted, and the per-user rules (protected emails, users without an email, ambiguous
//! emails) shaped the plan before any approval is looked at, so an approval cannot touch them.

use super::Engine;
use crate::model::digest::{PlanDifferences, PlannedAction};
use crate::sync::plan::GuardTrip;

/// What may lift a removal guard in a run.
#[derive(Clone, Debug, Default)]
pub enum Consent {
    /// Pending approvals in the history (`approve`): what the daemon and `apply` use.
    #[default]
    Approvals,
    /// `apply FILE`: the saved plan, and only it, may be sent.
    SavedPlan(SavedPlanConsent),
}

/// A saved plan as `apply FILE` read it.
#[derive(Clone, Debug)]
pub struct SavedPlanConsent {
    pub digest: String,
    pub actions: Vec<PlannedAction>,
    /// The file, as named on the command line (for messages and the record).
    pub file: String,
    /// Who applies it (the OS user).
    pub by: String,
}

/// How a run used an approval or a saved plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ApprovalUse {
    /// The `approvals` row.
    pub id: i64,
    /// E.g. `approval 3 by alice (plan of run 12)`.
    pub approved: String,
    /// The guard it lifted (`None`: the plan tripped none).
    pub lifted: Option<GuardTrip>,
}

/// The outcome of [`Engine::consent`]: the guard that still stops the run, and the approval
/// the run uses.
pub(super) struct Decision {
    pub guard: Option<GuardTrip>,
    pub used: Option<ApprovalUse>,
}

impl Engine {
    /// Applies `consent` to a run's plan (`actions`, `digest`) that the guards judged
    /// `guard`; consumes what it looks at.
    pub(super) async fn consent(
        &self,
        run_id: i64,
        actions: &[PlannedAction],
        digest: &str,
        guard: Option<GuardTrip>,
        consent: &Consent,
    ) -> Result<Decision, crate::store::history::HistoryError> {
        let h = &self.history;
        let empty = matches!(guard, Some(GuardTrip::EmptyDesired));
        match consent {
            Consent::SavedPlan(saved) => {
                let id = h
                    .insert_approval(
                        "saved_plan",
                        None,
                        &saved.by,
                        &saved.digest,
                        saved.actions.len(),
                        Some(&saved.file),
                    )
                    .await?;
                let approved = format!("the saved plan {}", saved.file);
                if empty {
                    h.consume_approval(id, "refused", run_id, Some(NEVER_EMPTY))
                        .await?;
                    return Ok(Decision { guard, used: None });
                }
                if saved.digest == digest {
                    h.consume_approval(id, "applied", run_id, None).await?;
                    log_lifted(&approved, guard.as_ref());
                    return Ok(Decision {
                        guard: None,
                        used: Some(ApprovalUse {
                            id,
                            approved,
                            lifted: guard,
                        }),
                    });
                }
                let differences = PlanDifferences::between(&saved.actions, actions);
                let detail = format!("the plan changed: {differences}");
                h.consume_approval(id, "refused", run_id, Some(&detail))
                    .await?;
                Ok(Decision {
                    guard: Some(GuardTrip::PlanChanged {
                        approved,
                        differences,
                        still: guard.map(Box::new),
                    }),
                    used: None,
                })
            }
            Consent::Approvals => {
                let pending = h.pending_approvals().await?;
                let Some(newest) = pending.last() else {
                    return Ok(Decision { guard, used: None });
                };
                if empty {
                    for p in &pending {
                        h.consume_approval(p.id, "refused", run_id, Some(NEVER_EMPTY))
                            .await?;
                    }
                    tracing::warn!(
                        approvals = pending.len(),
                        "the desired state is empty: pending approvals refused (never lifted)"
                    );
                    return Ok(Decision { guard, used: None });
                }
                let describe = |p: &crate::store::history::ApprovalRow| {
                    format!(
                        "approval {} by {} (plan of run {})",
                        p.id,
                        p.approved_by,
                        p.run_id.unwrap_or_default()
                    )
                };
                if let Some(m) = pending.iter().find(|p| p.digest == digest) {
                    h.consume_approval(m.id, "applied", run_id, None).await?;
                    // Not refused: the run sent a plan someone approved, through another approval.
                    for p in pending.iter().filter(|p| p.id != m.id) {
                        let detail =
                            format!("superseded by approval {}, used by run {run_id}", m.id);
                        h.consume_approval(p.id, "superseded", run_id, Some(&detail))
                            .await?;
                    }
                    let approved = describe(m);
                    log_lifted(&approved, guard.as_ref());
                    return Ok(Decision {
                        guard: None,
                        used: Some(ApprovalUse {
                            id: m.id,
                            approved,
                            lifted: guard,
                        }),
                    });
                }
                // No approval is for this plan: say how it differs from the newest one.
                let approved_actions = match newest.run_id {
                    Some(run) => h.planned_actions(run).await?,
                    None => Vec::new(),
                };
                let differences = PlanDifferences::between(&approved_actions, actions);
                let detail = format!("the plan changed: {differences}");
                for p in &pending {
                    h.consume_approval(p.id, "refused", run_id, Some(&detail))
                        .await?;
                }
                let approved = describe(newest);
                tracing::warn!(approval = %approved, %differences, "the plan changed since it was approved: the approval is not used");
                Ok(Decision {
                    guard: guard.map(|g| GuardTrip::PlanChanged {
                        approved,
                        differences,
                        still: Some(Box::new(g)),
                    }),
                    used: None,
                })
            }
        }
    }
}

const NEVER_EMPTY: &str =
    "the desired state is empty: an approval never lifts that refusal (an empty file or a failed query looks the same)";

fn log_lifted(approved: &str, guard: Option<&GuardTrip>) {
    match guard {
        Some(g) => {
            tracing::warn!(approval = %approved, guard = %g, "the plan is the approved one: the guard is lifted for this run")
        }
        None => {
            tracing::info!(approval = %approved, "the plan is the approved one (no guard trips now)")
        }
    }
}
