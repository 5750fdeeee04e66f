//! One run, end to end: [`Engine::run`] takes a [`RunRequest`] (who asks, dry run, full
//! verification, what consent may lift a guard) and goes through four steps, each returning a
//! typed value: [`observe`] (desired state + Studio) → [`decide`] (plan, flapping, guards,
//! consent) → [`record`] (the plan in the history, before anything is sent) → [`send`]
//! (batches, outcomes written as they come back).
//!
//! Level-triggered and idempotent, like a Kubernetes controller's reconcile: nothing is
//! remembered between runs but the history; every run recomputes its plan from live state, so
//! a run that died halfway is finished by the next one. Every way a run can end goes through
//! [`RunReport`] and one mapping to a status and an exit code.

use crate::input::config::Config;
use crate::input::desired::{self, DesiredError, DesiredState};
use crate::model::run_status::RunStatus;
use crate::service::metrics::Metrics;
use crate::service::notifications::Notifier;
use crate::service::shutdown::CancellationToken;
use crate::store::history::{History, HistoryError, RunRecord};
use crate::studio::auth::Auth;
use crate::studio::{StudioClient, StudioError};
use crate::sync::plan::Policy;
use crate::sync::run_report::{RunError, RunReport};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

mod consent;
mod decide;
mod left_alone_log;
mod observe;
mod people;
mod record;
mod send;

pub use consent::{ApprovalUse, Consent, SavedPlanConsent};
/// What started a run, as recorded in `runs.trigger`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Manual,
    Schedule,
    Startup,
    Reload,
    /// This daemon took over the lease of a shared PostgreSQL history: it finishes at once
    /// what the previous leader may have left.
    Takeover,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Startup => "startup",
            Trigger::Reload => "reload",
            Trigger::Takeover => "takeover",
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

/// What a caller asks of a run.
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// What started it (`runs.trigger`).
    pub trigger: Trigger,
    /// Who asked for it (`runs.requested_by`), when someone did.
    pub requested_by: Option<String>,
    /// Plan and record, send nothing.
    pub dry_run: bool,
    pub verify: VerifyRequest,
    /// What may lift a removal guard; a dry run consumes none.
    pub consent: Consent,
    /// The desired state, when the caller has it (the daemon's last valid state, or one the
    /// binary checked before the run); else the run loads the sources.
    pub desired: Option<DesiredState>,
}

impl RunRequest {
    /// A run that sends its changes, a full verification when one is due, pending approvals
    /// as consent, and the sources loaded by the run.
    pub fn new(trigger: Trigger) -> RunRequest {
        RunRequest {
            trigger,
            requested_by: None,
            dry_run: false,
            verify: VerifyRequest::WhenDue,
            consent: Consent::Approvals,
            desired: None,
        }
    }
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
    let client = StudioClient::new(&config.studio, auth, metrics.clone())?;
    // Several daemons may share a PostgreSQL history: each change asks first whether this
    // process still leads.
    Ok(match history.is_postgres() {
        true => client.gated(Arc::new(history.clone())),
        false => client,
    })
}

/// Loads the desired state: the union of the configured sources, or the first failure.
pub async fn load_desired(config: &Config) -> Result<DesiredState, DesiredError> {
    let calendar = desired::Calendar::now(config.timezone);
    desired::load_all(&config.sources, &config.roles.managed, &calendar)
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

    /// One run, recorded from its start to its end: the report says how it ended. An `Err`
    /// is a history that could not even take the run's start or end.
    pub async fn run(
        &self,
        request: RunRequest,
        shutdown: CancellationToken,
    ) -> Result<RunReport, HistoryError> {
        let trigger = request.trigger;
        let dry_run = request.dry_run;
        let id = self.history.start_run(trigger.as_str(), dry_run).await?;
        let span = tracing::info_span!("run", run_id = id);
        async move {
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
            if let Some(who) = &request.requested_by {
                if let Err(e) = self.history.set_requested_by(id, who).await {
                    tracing::warn!(error = %e, "cannot record who asked for the run");
                }
            }
            if let Err(e) = self.steps(&mut report, request, shutdown).await {
                // A graceful stop (SIGTERM, `systemctl restart`) is not a failure: nothing is
                // wrong, and whoever is paged on errors must not be.
                if matches!(e, RunError::Stopped)
                    || report.record.status == RunStatus::Interrupted
                {
                    tracing::info!(reason = %e, "run interrupted by the shutdown; the next run finishes the work");
                } else if e.is_leadership_lost() {
                    tracing::warn!(reason = %e, "run stopped: this daemon no longer leads; the new leader finishes the work");
                } else {
                    tracing::error!(error = %e, "run failed");
                }
                report.error = Some(e);
            }
            self.finish(report, before, started).await
        }
        .instrument(span)
        .await
    }

    /// The body of a run, step by step; an `Err` is what stopped it (status `failed` or
    /// `interrupted`).
    async fn steps(
        &self,
        report: &mut RunReport,
        request: RunRequest,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let RunRequest {
            trigger,
            dry_run,
            verify,
            consent,
            desired,
            ..
        } = request;
        let observed = self
            .observe(report, trigger, desired, verify, &shutdown)
            .await?;
        let decided = self.decide(report, &observed, dry_run, &consent).await?;
        match self
            .record_plan(report, &observed, decided, dry_run)
            .await?
        {
            Some(phases) => self.send(report, phases, shutdown).await,
            None => Ok(()),
        }
    }

    /// Writes the run's end (status, counts, error), then metrics and notifications.
    async fn finish(
        &self,
        mut report: RunReport,
        before: crate::studio::RequestCounts,
        started: Instant,
    ) -> Result<RunReport, HistoryError> {
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
        if !report.record.dry_run && report.plan.is_some() {
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
}
