//! One run, end to end: load the desired state, read Studio, plan, guard, apply, record.
//!
//! Level-triggered and idempotent, like a Kubernetes controller's reconcile: nothing is
//! remembered between runs but the history; every run recomputes its plan from live state, so
//! a run that died halfway is finished by the next one. Every way a run can end goes through
//! [`RunReport`] and one mapping to a status and an exit code.

use crate::input::config::Config;
use crate::input::desired::{self, DesiredError, DesiredState};
use crate::model::change::{Change, ChangeKind, Outcome};
use crate::service::metrics::Metrics;
use crate::service::notifications::Notifier;
use crate::service::shutdown::CancellationToken;
use crate::store::history::MissingGrant;
use crate::store::history::{
    ActionRow, History, HistoryError, PendingRow, PendingUpdate, RunRecord,
};
use crate::studio::auth::Auth;
use crate::studio::{StudioClient, StudioError};
use crate::sync::apply::{Applier, Stopped};
use crate::sync::grace::{Grace, MissingSince};
use crate::sync::identity::{self, Verification};
use crate::sync::plan::{check_guards, plan, plan_with_grace, GuardTrip, Plan, Policy};
use crate::sync::read::{read_current, ReadError, ReadInputs};
use crate::sync::run_report::{RunError, RunReport};
use crate::sync::run_status::RunStatus;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

mod consent;
mod left_alone_log;
mod people;

pub use consent::{ApprovalUse, Consent, SavedPlanConsent};

/// What started a run, as recorded in `runs.trigger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Schedule,
    Startup,
    Reload,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Startup => "startup",
            Trigger::Reload => "reload",
        }
    }
}

/// Whether a run must be a full verification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyRequest {
    /// Full when `verify.full_every` has passed since the last full verification (or there
    /// was none yet): what the daemon and a plain `plan`/`apply` do.
    WhenDue,
    /// Full now (`plan --full`, `apply --full`).
    Now,
}

/// Everything a run needs that outlives it: config, history, client, metrics.
pub struct Engine {
    pub config: Arc<Config>,
    pub history: History,
    pub client: StudioClient,
    pub metrics: Metrics,
    /// Sends messages on the transitions of the runs it makes (`notify:`); `None` when off.
    pub notifier: Option<Notifier>,
}

/// The Studio client for a config: static token or OAuth (whose tokens live in `history`).
pub async fn make_client(
    config: &Config,
    history: &History,
    metrics: &Metrics,
) -> Result<StudioClient, StudioError> {
    let auth = Auth::from_config(&config.studio.auth, Arc::new(history.clone()), metrics).await?;
    StudioClient::new(&config.studio, auth, metrics.clone())
}

/// Loads the desired state: the union of the configured sources, or the first failure.
pub async fn load_desired(config: &Config) -> Result<DesiredState, DesiredError> {
    desired::load_all(&config.sources, &config.roles.managed)
        .await
        .map(|(d, _)| d)
}

impl Engine {
    pub async fn new(
        config: Arc<Config>,
        history: History,
        metrics: Metrics,
    ) -> Result<Engine, StudioError> {
        let client = make_client(&config, &history, &metrics).await?;
        let notifier = Notifier::new(config.clone(), metrics.clone());
        Ok(Engine {
            config,
            history,
            client,
            metrics,
            notifier,
        })
    }

    fn policy(&self) -> Policy {
        Policy {
            remove_unlisted: self.config.roles.remove_unlisted,
            protected: self.config.roles.protected.clone(),
            managed: self.config.roles.managed.clone(),
        }
    }

    /// One run. `desired` is used when given (the daemon's last valid state); otherwise the
    /// source is loaded. A dry run plans and records but sends nothing. It is a full
    /// verification when one is due.
    pub async fn run(
        &self,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
    ) -> Result<RunReport, HistoryError> {
        self.run_verifying(trigger, dry_run, desired, shutdown, VerifyRequest::WhenDue)
            .await
    }

    /// As [`run`](Self::run), saying whether it must be a full verification. Pending
    /// approvals may lift a removal guard.
    pub async fn run_verifying(
        &self,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
    ) -> Result<RunReport, HistoryError> {
        self.run_with_consent(
            trigger,
            dry_run,
            desired,
            shutdown,
            verify,
            Consent::Approvals,
        )
        .await
    }

    /// As [`run_verifying`](Self::run_verifying), saying what may lift a removal guard (a
    /// saved plan for `apply FILE`). A dry run consumes no approval.
    pub async fn run_with_consent(
        &self,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
        consent: Consent,
    ) -> Result<RunReport, HistoryError> {
        let id = self.history.start_run(trigger.as_str(), dry_run).await?;
        let span = tracing::info_span!("run", run_id = id);
        self.run_recorded(id, trigger, dry_run, desired, shutdown, verify, consent)
            .instrument(span)
            .await
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

    #[allow(clippy::too_many_arguments)]
    async fn run_recorded(
        &self,
        id: i64,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
        consent: Consent,
    ) -> Result<RunReport, HistoryError> {
        let started = Instant::now();
        let before = self.client.counts();
        tracing::info!(trigger = trigger.as_str(), dry_run, "run started");
        let mut report = RunReport::new(RunRecord {
            id,
            trigger: trigger.as_str().into(),
            dry_run,
            status: RunStatus::Running,
            ..Default::default()
        });
        let result = self
            .plan_and_apply(
                &mut report,
                trigger,
                dry_run,
                desired,
                shutdown,
                verify,
                consent,
            )
            .await;
        if let Err(e) = result {
            // A graceful stop (SIGTERM, `systemctl restart`) is not a failure: nothing is
            // wrong, and whoever is paged on errors must not be.
            if matches!(e, RunError::Stopped) || report.record.status == RunStatus::Interrupted {
                tracing::info!(reason = %e, "run interrupted by the shutdown; the next run finishes the work");
            } else {
                tracing::error!(error = %e, "run failed");
            }
            report.error = Some(e);
        }
        let counts = self.client.counts().since(before);
        let status = report.status();
        let error = report
            .error
            .as_ref()
            .map(ToString::to_string)
            .or_else(|| report.guard.as_ref().map(|g| format!("safety guard: {g}")));
        let r = &mut report.record;
        r.api_requests = counts.requests as i64;
        r.retries = counts.retries as i64;
        r.throttled = counts.throttled as i64;
        r.error = error;
        r.status = status;
        self.history.finish_run(&report.record).await?;
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.run_finished(
            report.record.status,
            seconds,
            report.record.pending as usize,
        );
        if !dry_run && report.plan.is_some() {
            self.metrics.set_flapping(report.flapping.len());
        }
        // After the run is recorded; the sending itself happens in the background.
        if let Some(notifier) = &self.notifier {
            notifier.after_run(&self.history, &report).await;
        }
        tracing::info!(
            status = %report.record.status,
            adds = report.record.adds_applied,
            removes = report.record.removes_applied,
            failed = report.record.failed,
            pending = report.record.pending,
            api_requests = report.record.api_requests,
            seconds = format!("{seconds:.2}"),
            "run finished"
        );
        Ok(report)
    }

    /// The body of a run; an `Err` is what stopped it (status `failed` or `interrupted`).
    #[allow(clippy::too_many_arguments)]
    async fn plan_and_apply(
        &self,
        report: &mut RunReport,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
        consent: Consent,
    ) -> Result<(), RunError> {
        let config = &self.config;
        let managed = &config.roles.managed;
        let desired = match desired {
            Some(d) => d,
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
            managed,
            desired: &desired,
            ambiguous: &ambiguous,
            resting: &resting,
            verification,
            concurrency: config.studio.concurrency,
        };
        let read = match read_current(&self.client, &inputs, &shutdown).await {
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

        let policy = self.policy();
        let mut the_plan = self
            .plan_with_grace(report.record.id, dry_run, &desired, &read.current, &policy)
            .await?;
        let flapping = self.find_flapping(report.record.id, &the_plan).await?;
        // Left alone, a flapping change is not part of the plan: not sent, not guarded.
        let left_alone = !flapping.is_empty() && !config.flapping.reapply;
        if left_alone {
            let alone: std::collections::HashSet<&Change> = flapping.iter().collect();
            the_plan.actions.retain(|a| !alone.contains(a));
        }
        let guard = check_guards(&the_plan, &desired, &policy, &config.safety).err();
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
            ActionRow::planned(c, managed, outcome, detail, source(c))
        };
        // The rows as they will be recorded; the digest reads them as `approve` will.
        let mut rows: Vec<ActionRow> = the_plan
            .actions
            .iter()
            .map(|a| row(a, Outcome::Planned, None))
            .collect();
        if left_alone {
            let why = format!(
                "{}flapping (applied in {} consecutive runs; flapping.reapply: false)",
                crate::sync::digest::LEFT_ALONE,
                config.flapping.after_runs
            );
            rows.extend(
                flapping
                    .iter()
                    .map(|a| row(a, Outcome::Skipped, Some(why.clone()))),
            );
        }
        let planned = crate::sync::digest::recorded_plan(&rows);
        let digest = crate::sync::digest::digest(&planned);
        let guard = if dry_run {
            guard
        } else {
            let decision = self
                .consent(report.record.id, &planned, &digest, guard, &consent)
                .await?;
            report.approval = decision.used;
            decision.guard
        };
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
            searched: &read.searched,
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
                &people::accounts(&read.current, managed),
                &people::desired(&desired, managed),
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
            return Ok(());
        }

        let applier = Applier {
            client: &self.client,
            managed,
            batch_size: config.studio.batch_size,
            concurrency: config.studio.concurrency,
            shutdown,
        };
        let history = &self.history;
        let metrics = &self.metrics;
        let run_id = report.record.id;
        // Outcomes go to a writer that runs beside the apply: the record keeps up batch by
        // batch, and a slow disk never holds back the requests in flight.
        let (outcomes_tx, mut outcomes_rx) =
            tokio::sync::mpsc::unbounded_channel::<Vec<ActionRow>>();
        // A batch whose outcomes cannot be written leaves its actions `planned`; the run goes
        // on (Studio's state does not depend on the history) but cannot succeed.
        let writer = async move {
            let mut unrecorded: Option<(usize, HistoryError)> = None;
            while let Some(rows) = outcomes_rx.recv().await {
                if let Err(e) = history.record_outcomes(run_id, &rows).await {
                    tracing::error!(error = %e, changes = rows.len(), "cannot record outcomes");
                    let n = unrecorded.as_ref().map_or(0, |(n, _)| *n) + rows.len();
                    unrecorded = Some((n, unrecorded.map_or(e, |(_, first)| first)));
                }
            }
            unrecorded
        };
        let sending = applier.apply(phases, move |batch| {
            for o in batch {
                metrics.action(o.change.kind.as_str(), o.outcome.as_str(), 1);
            }
            let _ = outcomes_tx.send(batch.iter().map(|o| ActionRow::sent(o, managed)).collect());
        });
        let (applied, unrecorded) = tokio::join!(sending, writer);
        let r = &mut report.record;
        for o in &applied.outcomes {
            match (o.outcome, o.change.kind) {
                (Outcome::Applied, ChangeKind::Add) => r.adds_applied += 1,
                (Outcome::Applied, ChangeKind::Remove) => r.removes_applied += 1,
                (Outcome::Failed, _) => r.failed += 1,
                (Outcome::Planned | Outcome::Skipped | Outcome::Unknown, _) => {}
            }
        }
        report.outcomes = applied.outcomes;
        match applied.stopped {
            Some(Stopped::Outage(why)) => return Err(RunError::Outage(why)),
            Some(Stopped::Auth(why)) => return Err(RunError::Auth(why)),
            Some(Stopped::Shutdown) => report.record.status = RunStatus::Interrupted,
            None => {}
        }
        match unrecorded {
            Some((unrecorded, source)) => Err(RunError::Outcomes { unrecorded, source }),
            None => Ok(()),
        }
    }
}

impl Engine {
    /// The plan, with the grace period of `safety.remove_after` judged on the history's
    /// "missing since" facts. A run that is not a dry run records the grants it found missing
    /// (and forgets the others; all of them when the grace period is off).
    async fn plan_with_grace(
        &self,
        run_id: i64,
        dry_run: bool,
        desired: &DesiredState,
        current: &crate::sync::current::CurrentState,
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
