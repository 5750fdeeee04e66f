//! One run, end to end: load the desired state, read Studio, plan, guard, apply, record.
//!
//! Level-triggered and idempotent, like a Kubernetes controller's reconcile: nothing is
//! remembered between runs but the history; every run recomputes its plan from live state, so
//! a run that died halfway is finished by the next one. Every way a run can end goes through
//! [`RunReport`] and one mapping to a status and an exit code.

use crate::apply::{ActionOutcome, Applier, Outcome, Stopped};
use crate::config::{Config, SourceConfig};
use crate::desired::{self, DesiredError, DesiredState};
use crate::history::{ActionRow, History, HistoryError, PendingRow, RunRecord};
use crate::identity::{self, Verification};
use crate::metrics::Metrics;
use crate::plan::{check_guards, plan, ActionKind, GuardTrip, Plan, Policy};
use crate::read::read_current;
use crate::shutdown::CancellationToken;
use crate::studio::auth::Auth;
use crate::studio::{StudioClient, StudioError};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

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
}

/// How a run ended: what the caller prints, and what its exit code is made from.
#[derive(Debug)]
pub struct RunReport {
    pub record: RunRecord,
    pub plan: Option<Plan>,
    pub guard: Option<GuardTrip>,
    pub outcomes: Vec<ActionOutcome>,
    pub error: Option<String>,
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

/// Loads the desired state from the configured source.
pub async fn load_desired(config: &Config) -> Result<DesiredState, DesiredError> {
    match &config.source {
        SourceConfig::Yaml(yaml) => desired::yaml::load(yaml, &config.roles.managed),
        SourceConfig::Sql(sql) => desired::sql::load(sql, &config.roles.managed)
            .await
            .map(|(d, _)| d),
    }
}

impl Engine {
    pub async fn new(
        config: Arc<Config>,
        history: History,
        metrics: Metrics,
    ) -> Result<Engine, StudioError> {
        let client = make_client(&config, &history, &metrics).await?;
        Ok(Engine {
            config,
            history,
            client,
            metrics,
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

    /// As [`run`](Self::run), saying whether it must be a full verification.
    pub async fn run_verifying(
        &self,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
    ) -> Result<RunReport, HistoryError> {
        let id = self.history.start_run(trigger.as_str(), dry_run).await?;
        let span = tracing::info_span!("run", run_id = id);
        self.run_recorded(id, trigger, dry_run, desired, shutdown, verify)
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
            Some(at) if chrono::Utc::now() - at < every => Verification::Incremental,
            _ => Verification::Full,
        })
    }

    async fn run_recorded(
        &self,
        id: i64,
        trigger: Trigger,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
    ) -> Result<RunReport, HistoryError> {
        let started = Instant::now();
        let before = self.client.counts();
        tracing::info!(trigger = trigger.as_str(), dry_run, "run started");
        let mut report = RunReport {
            record: RunRecord {
                id,
                trigger: trigger.as_str().into(),
                dry_run,
                status: "running".into(),
                ..Default::default()
            },
            plan: None,
            guard: None,
            outcomes: Vec::new(),
            error: None,
        };
        let result = self
            .plan_and_apply(&mut report, dry_run, desired, shutdown, verify)
            .await;
        if let Err(message) = result {
            tracing::error!(error = %message, "run failed");
            report.error = Some(message);
        }
        let counts = self.client.counts().since(before);
        let status = status_of(&report);
        let error = report
            .error
            .clone()
            .or_else(|| report.guard.as_ref().map(|g| format!("safety guard: {g}")));
        let r = &mut report.record;
        r.api_requests = counts.requests as i64;
        r.retries = counts.retries as i64;
        r.throttled = counts.throttled as i64;
        r.error = error;
        r.status = status.into();
        self.history.finish_run(&report.record).await?;
        let seconds = started.elapsed().as_secs_f64();
        self.metrics.run_finished(
            &report.record.status,
            seconds,
            report.record.pending as usize,
        );
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

    /// The body of a run; an `Err` is the run's error message (status `failed`).
    async fn plan_and_apply(
        &self,
        report: &mut RunReport,
        dry_run: bool,
        desired: Option<DesiredState>,
        shutdown: CancellationToken,
        verify: VerifyRequest,
    ) -> Result<(), String> {
        let config = &self.config;
        let managed = &config.roles.managed;
        let desired = match desired {
            Some(d) => d,
            None => load_desired(config).await.map_err(|e| e.to_string())?,
        };
        report.record.desired_users = Some(desired.users.len() as i64);
        let verification = self.verification(verify).await.map_err(|e| e.to_string())?;
        report.record.verification = Some(verification.as_str().into());
        self.history
            .set_verification(report.record.id, verification.as_str())
            .await
            .map_err(|e| e.to_string())?;
        let ambiguous = self
            .history
            .ambiguous_emails()
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(
            verification = verification.as_str(),
            remembered_ambiguous = ambiguous.len(),
            "reading Studio"
        );
        let read = read_current(
            &self.client,
            managed,
            &desired,
            &ambiguous,
            verification,
            config.studio.concurrency,
        )
        .await
        .map_err(|e| format!("reading Studio failed: {e}"))?;
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
        self.history
            .update_ambiguous(&update)
            .await
            .map_err(|e| e.to_string())?;

        let policy = self.policy();
        let the_plan = plan(&desired, &read.current, &policy);
        let guard = check_guards(&the_plan, &desired, &policy, &config.safety).err();
        let r = &mut report.record;
        r.adds_planned = the_plan.adds() as i64;
        r.removes_planned = the_plan.removes() as i64;
        r.pending = the_plan.pending_emails() as i64;
        // Recorded before anything is sent; a tripped guard means none of it will be.
        let (outcome, detail) = match &guard {
            Some(g) => ("skipped", Some(format!("not sent: safety guard: {g}"))),
            None => ("planned", None),
        };
        let rows: Vec<ActionRow> = the_plan
            .actions
            .iter()
            .map(|a| ActionRow {
                email: a.email.clone(),
                user_id: a.user_id as i64,
                role: managed.name(a.role).to_string(),
                action: a.kind.as_str().into(),
                outcome: outcome.into(),
                http_status: None,
                detail: detail.clone(),
                planned_user_id: a.user_id as i64,
            })
            .collect();
        let pending: Vec<PendingRow> = the_plan
            .pending
            .iter()
            .map(|p| PendingRow {
                email: p.email.clone(),
                reason: p.reason.as_str().into(),
                user_id: p.user_id.map(|i| i as i64),
                detail: Some(p.detail.clone()),
            })
            .collect();
        self.history
            .record_plan(report.record.id, &rows, &pending)
            .await
            .map_err(|e| e.to_string())?;
        for p in &the_plan.pending {
            tracing::info!(email = %p.email, reason = p.reason.as_str(), "{}", p.detail);
        }
        if let Some(g) = &guard {
            tracing::warn!(guard = %g, "safety guard tripped: nothing sent");
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
        let writer = async move {
            while let Some(rows) = outcomes_rx.recv().await {
                if let Err(e) = history.record_outcomes(run_id, &rows).await {
                    tracing::error!(error = %e, "cannot record outcomes");
                }
            }
        };
        let sending = applier.apply(phases, move |batch| {
            for o in batch {
                metrics.action(o.action.kind.as_str(), o.outcome.as_str(), 1);
            }
            let _ = outcomes_tx.send(batch.iter().map(|o| outcome_row(o, managed)).collect());
        });
        let (applied, ()) = tokio::join!(sending, writer);
        let r = &mut report.record;
        for o in &applied.outcomes {
            match (o.outcome, o.action.kind) {
                (Outcome::Applied, ActionKind::Add) => r.adds_applied += 1,
                (Outcome::Applied, ActionKind::Remove) => r.removes_applied += 1,
                (Outcome::Failed, _) => r.failed += 1,
                (Outcome::Skipped, _) => {}
            }
        }
        report.outcomes = applied.outcomes;
        match applied.stopped {
            Some(Stopped::Outage(why)) => Err(format!("Studio is failing: {why}")),
            Some(Stopped::Auth(why)) => Err(why),
            Some(Stopped::Shutdown) => {
                report.record.status = "interrupted".into();
                Ok(())
            }
            None => Ok(()),
        }
    }
}

fn outcome_row(o: &ActionOutcome, managed: &crate::roles::ManagedRoles) -> ActionRow {
    ActionRow {
        email: o.action.email.clone(),
        user_id: o.action.user_id as i64,
        role: managed.name(o.action.role).to_string(),
        action: o.action.kind.as_str().into(),
        outcome: o.outcome.as_str().into(),
        http_status: o.http_status.map(i64::from),
        detail: o.detail.clone(),
        planned_user_id: o.planned_user_id as i64,
    }
}

/// The one mapping from how a run ended to its recorded status.
fn status_of(report: &RunReport) -> &'static str {
    if report.error.is_some() {
        "failed"
    } else if report.guard.is_some() {
        "aborted"
    } else if report.record.status == "interrupted" {
        "interrupted"
    } else if report.record.failed > 0 {
        "partial"
    } else {
        "succeeded"
    }
}
