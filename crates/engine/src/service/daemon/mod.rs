//! `daemon`: the long-running service.
//!
//! One loop owns the runs, so runs never overlap: the scheduler, the file watcher, startup and
//! people (SIGHUP, `trigger`, `approve`: see `requests.rs`) only *ask* for a run through a
//! one-slot channel. A scheduled slot that comes while a run is
//! busy (or another is already queued) is skipped and logged; edits are debounced into one
//! pending reload, which waits for the run in progress.
//!
//! Before each run the loop re-reads the config file (when its text changed) and the desired
//! state, and keeps the last valid ones: a bad edit is logged with its file and line, reported
//! on `/readyz` and in metrics, and never applied; scheduled runs go on with the last valid
//! config and desired state. On SIGTERM/SIGINT it stops taking runs, lets the run in flight
//! finish its batch (bounded wait), records it with its true status, and exits 0. One
//! `CancellationToken` stops everything (the schedule, the HTTP servers, the request pollers,
//! the run), and one error type says why the daemon could not start.
//!
//! Every few seconds, and before each run, it checks that the history's path still leads to
//! the file it holds (`InstanceLock::check_in_place`): runs recorded into a deleted or replaced
//! file would be lost at the next start, so then it fails `/readyz`, logs an error, and runs
//! nothing until the file is back (moved back into place) or the daemon restarts.

mod open_files;
mod requests;
mod schedule;
mod systemd;
mod watch;

pub use schedule::Slots;

use crate::input::config::Config;
use crate::input::config::DEFAULT_LEASE;
use crate::input::desired::DesiredState;
use crate::model::history_place::HistoryPlace;
use crate::model::run_status::RunStatus;
use crate::service::http::{HttpExtension, HttpState, LastRun, Readiness};
use crate::service::leadership::{LeaderState, Leadership};
use crate::service::metrics::Metrics;
use crate::service::shutdown::{spawn_signal_handler, CancellationToken};
use crate::store::history::{History, WriteTerm};
use crate::store::lease::{Epoch, Lease};
use crate::store::lock::{Displaced, InstanceLock};
use crate::sync::reconcile::{load_desired, Engine, RunRequest, Trigger};
use schedule::Schedule;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use systemd::{notify_systemd, spawn_watchdog};
use tokio::sync::mpsc;
use watch::FileWatch;

/// How long a shutdown waits for the run in flight before recording it interrupted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long a shutdown waits for open HTTP connections.
const HTTP_GRACE: Duration = Duration::from_secs(5);
/// How long a shutdown waits for notifications still being delivered.
const NOTIFY_GRACE: Duration = Duration::from_secs(5);
/// How often the daemon checks that its history file is still in place.
const HISTORY_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Why the daemon could not start. Once it runs, it stops only when asked (SIGTERM/SIGINT).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A config the daemon cannot use (a schedule it cannot build), named by key and line.
    #[error("{0}")]
    Config(#[from] crate::input::config::ConfigError),
    #[error("{0}")]
    Lock(#[from] crate::store::lock::LockError),
    #[error("{0}")]
    History(#[from] crate::store::history::HistoryError),
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        listen: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// Runs the daemon with `config` (read from `config_path` as `config_text`) until SIGTERM or
/// SIGINT. The caller loaded the config and set up logging; this takes the instance lock,
/// opens the history and serves.
pub async fn run(
    config: Config,
    config_path: &Path,
    config_text: String,
) -> Result<(), DaemonError> {
    run_with(config, config_path, config_text, None).await
}

/// As [`run`], also serving `extension`'s routes (the binary's console).
pub async fn run_with(
    config: Config,
    config_path: &Path,
    config_text: String,
    extension: Option<HttpExtension>,
) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let (history, lock, term) = match config.history_place() {
        HistoryPlace::File(path) => {
            // Kept until the history is closed (see `lock.rs` on closing descriptors): the
            // daemon owns it.
            let lock = InstanceLock::acquire(&path)?;
            let history = History::open(&path).await?;
            match history.mark_interrupted().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    runs = n,
                    "marked runs left running by a process that died as interrupted"
                ),
                Err(e) => tracing::error!("{e}"),
            }
            (history, Some(lock), None)
        }
        // Several daemons may share it: the one holding the lease runs (see `serve`), and
        // marks what a dead leader left running when it takes over.
        place @ HistoryPlace::Postgres { .. } => {
            let term = WriteTerm::default();
            let history = History::open_place(&place)
                .await?
                .with_write_term(term.clone());
            tracing::info!(history = %history.path().display(), "the history is in PostgreSQL; runs wait for the leader lease");
            (history, None, Some(term))
        }
    };
    let mut daemon = Daemon::new(
        config,
        config_path.to_path_buf(),
        config_text,
        history,
        lock,
        term,
    );
    let served = daemon.serve(extension).await;
    daemon.history.close().await;
    drop(daemon);
    served
}

/// Asks for a run each time this daemon becomes the leader: the work a dead leader left is
/// finished now, not at the next scheduled slot.
fn spawn_takeover_runs(
    mut state: tokio::sync::watch::Receiver<LeaderState>,
    tx: mpsc::Sender<Trigger>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut leading = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = state.changed() => if changed.is_err() { return },
            }
            let now = matches!(*state.borrow_and_update(), LeaderState::Leader { .. });
            if now && !leading && tx.send(Trigger::Takeover).await.is_err() {
                return;
            }
            leading = now;
        }
    });
}

/// What re-reading the config file found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ConfigReload {
    /// Same text as last time (valid or not).
    Unchanged,
    /// A new valid config is in use.
    Applied,
    /// The file is invalid: the previous config stays in use.
    Invalid,
}

/// The pieces that ask for runs; rebuilt in part when the config changes.
struct Triggers {
    tx: mpsc::Sender<Trigger>,
    busy: Arc<AtomicBool>,
    /// Stopped by the daemon's token like everything else; replaced when the config changes.
    schedule: Option<Schedule>,
    watcher: Option<FileWatch>,
    /// The daemon's one cancellation, which every schedule's token is a child of.
    shutdown: CancellationToken,
}

struct Daemon {
    config: Arc<Config>,
    config_path: PathBuf,
    /// The config file's text as last read (valid or not), to notice changes.
    config_text: String,
    history: History,
    metrics: Metrics,
    readiness: Arc<RwLock<Readiness>>,
    engine: Option<Engine>,
    last_desired: Option<DesiredState>,
    /// Who asked for the next manual run (recorded as `runs.requested_by`).
    askers: requests::Askers,
    /// The instance lock of a history file, which also tells whether the file is still in
    /// place; `None` for a PostgreSQL history, which the lease guards instead.
    lock: Option<InstanceLock>,
    /// A PostgreSQL history's write term: set while this daemon leads (`service::leadership`).
    term: Option<WriteTerm>,
    /// The term this daemon last ran under: a run under a new one first closes what the
    /// previous leader left running.
    ran_under: Option<Epoch>,
    /// Whether the last trigger was skipped because another daemon leads (logged once).
    standing_by: bool,
    /// Why the last run could not be recorded: the reason its row gets once the history
    /// takes writes again (before the next run).
    unrecorded_end: Option<String>,
}

impl Daemon {
    fn new(
        config: Arc<Config>,
        config_path: PathBuf,
        config_text: String,
        history: History,
        lock: Option<InstanceLock>,
        term: Option<WriteTerm>,
    ) -> Daemon {
        let metrics = Metrics::new();
        metrics.set_config_valid(true);
        // A history file has one writer, by its lock: this daemon leads alone.
        metrics.set_leader(term.is_none());
        Daemon {
            config,
            config_path,
            config_text,
            history,
            metrics,
            readiness: Arc::new(RwLock::new(Readiness::default())),
            engine: None,
            last_desired: None,
            askers: requests::Askers::default(),
            lock,
            term,
            ran_under: None,
            standing_by: false,
            unrecorded_end: None,
        }
    }

    /// Whether the history file is still the one the daemon holds; logs and sets readiness
    /// when that changes (an error when it goes, so whoever watches errors hears of it).
    fn history_in_place(&self) -> bool {
        let Some(lock) = &self.lock else {
            return true;
        };
        let now = lock.check_in_place().err();
        let before = self.readiness_now().history_displaced;
        if now != before {
            match (&now, &before) {
                (Some(problem), _) => tracing::error!(
                    history = %self.config.history.display(),
                    "{}",
                    problem.detail()
                ),
                (None, Some(Displaced::HardLinked(..))) => tracing::info!(
                    history = %self.config.history.display(),
                    "the history database has one name again; runs resume"
                ),
                (None, _) => tracing::info!(
                    history = %self.config.history.display(),
                    "the history database is back in place; runs resume"
                ),
            }
            self.set_ready(|r| r.history_displaced = now.clone());
        }
        now.is_none()
    }

    /// Whether this daemon may run now: always on a history file; on a PostgreSQL history
    /// only while it holds the lease (the leader does what another daemon is asked). Standing
    /// by is logged when it starts, not at every skipped trigger.
    fn leads(&mut self, trigger: Trigger) -> bool {
        let Some(term) = &self.term else {
            return true;
        };
        let leads = term.get().is_some();
        if !leads && !self.standing_by {
            tracing::info!(
                trigger = trigger.as_str(),
                "standby: another daemon leads (or none yet); runs here wait for the lease"
            );
        }
        self.standing_by = !leads;
        leads
    }

    /// Under a new term, before its first run: the runs a previous leader left `running`
    /// (it died, or lost the lease mid-run) are recorded `interrupted`.
    async fn close_what_the_last_leader_left(&mut self) {
        let Some(epoch) = self.term.as_ref().and_then(WriteTerm::get) else {
            return;
        };
        if self.ran_under == Some(epoch) {
            return;
        }
        match self.history.mark_taken_over().await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                runs = n,
                "marked runs left running by the previous leader as interrupted"
            ),
            Err(e) => tracing::error!("{e}"),
        }
        self.ran_under = Some(epoch);
    }

    /// A run could not even be recorded: readiness shows it as a failed run without an id.
    fn failed_without_run(&self, error: String) {
        self.set_ready(|r| {
            r.last_run = Some(LastRun {
                id: None,
                status: RunStatus::Failed,
                error: Some(error),
            })
        });
    }

    fn set_ready(&self, f: impl FnOnce(&mut Readiness)) {
        let mut r = self.readiness.write().unwrap_or_else(|e| e.into_inner());
        f(&mut r);
        self.metrics
            .set_config_valid(r.invalid_config.is_none() && r.invalid_desired.is_none());
    }

    async fn serve(&mut self, extension: Option<HttpExtension>) -> Result<(), DaemonError> {
        let shutdown = CancellationToken::new();
        spawn_signal_handler(shutdown.clone());
        // A PostgreSQL history: this daemon contends for the lease. Its own stop comes last,
        // after the run in flight is recorded, so that run's writes still pass the fence.
        let lease_stop = CancellationToken::new();
        let leadership = match (&self.term, self.history.postgres_pool()) {
            (Some(term), Some(pool)) => {
                let lease = Lease::new(
                    pool.clone(),
                    self.config.ha.map_or(DEFAULT_LEASE, |ha| ha.lease),
                );
                Some(Leadership::spawn(
                    lease,
                    self.metrics.clone(),
                    lease_stop.clone(),
                    term.clone(),
                ))
            }
            _ => None,
        };

        let http_state = HttpState {
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
        };
        let mut router = crate::service::http::router(http_state.clone());
        let mut what = "(/healthz, /readyz, /metrics)".to_string();
        let mut own_listener = None;
        if let Some(ext) = extension {
            let extra = (ext.build)(&http_state);
            match ext.listen {
                None => {
                    router = router.merge(extra);
                    what = format!("(/healthz, /readyz, /metrics; {})", ext.name);
                }
                Some(listen) => own_listener = Some((listen, extra, format!("({})", ext.name))),
            }
        }
        let mut servers = Vec::new();
        let listeners =
            std::iter::once((self.config.http.listen, router, what)).chain(own_listener);
        // One budget for every listener, sized by the open-file limit.
        let budget = crate::service::http::ConnectionBudget::within(open_files::raise_limit());
        tracing::info!(
            connections = budget.size(),
            "HTTP connections served at once, all listeners together"
        );
        for (listen, router, what) in listeners {
            let limits = crate::service::http::HttpLimits::default();
            let stop = shutdown.clone().cancelled_owned();
            let budget = budget.clone();
            match crate::service::http::serve_router_within(
                listen, router, &what, limits, budget, stop,
            )
            .await
            {
                Ok((_, h)) => servers.push(h),
                Err(source) => return Err(DaemonError::Listen { listen, source }),
            }
        }
        let http = futures::future::join_all(servers);

        let (tx, mut rx) = mpsc::channel::<Trigger>(1);
        // Queued before the scheduler starts, so the first run is always `startup`.
        let _ = tx.try_send(Trigger::Startup);
        let busy = Arc::new(AtomicBool::new(false));
        if let Some((leadership, _)) = &leadership {
            spawn_takeover_runs(leadership.watch(), tx.clone(), shutdown.clone());
        }
        requests::spawn_sighup(tx.clone(), self.askers.clone(), shutdown.clone());
        requests::spawn_poller(
            self.history.clone(),
            self.term.clone(),
            tx.clone(),
            self.askers.clone(),
            shutdown.clone(),
        );
        let mut triggers = Triggers {
            tx: tx.clone(),
            busy: busy.clone(),
            schedule: None,
            watcher: None,
            shutdown: shutdown.clone(),
        };
        let schedule = Schedule::start(
            &self.config,
            &self.config_text,
            tx.clone(),
            busy.clone(),
            &shutdown,
        )
        .await?;
        triggers.schedule = Some(schedule);
        self.schedule_in_effect(&self.config.clone());
        match FileWatch::start(tx.clone()) {
            Ok(mut w) => {
                w.follow(&self.config, &self.config_path);
                triggers.watcher = Some(w);
            }
            Err(e) => tracing::warn!(
                error = %e,
                "cannot watch the config and roles files; edits are picked up at the next scheduled run"
            ),
        }
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        spawn_watchdog(shutdown.clone());
        tracing::info!(schedule = %self.config.schedule, timezone = %self.config.timezone, "daemon started");

        let mut history_check = tokio::time::interval(HISTORY_CHECK_EVERY);
        loop {
            let trigger = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                t = rx.recv() => match t { Some(t) => t, None => break },
                _ = history_check.tick() => {
                    self.history_in_place();
                    continue;
                }
            };
            if !self.leads(trigger) {
                continue;
            }
            busy.store(true, Ordering::SeqCst);
            let finished = {
                let run = self.one_run(trigger, shutdown.clone(), &mut triggers);
                tokio::pin!(run);
                tokio::select! {
                    _ = &mut run => true,
                    _ = shutdown.cancelled() => {
                        tracing::info!("shutting down: letting the batch in flight finish");
                        tokio::time::timeout(SHUTDOWN_GRACE, &mut run).await.is_ok()
                    }
                }
            };
            busy.store(false, Ordering::SeqCst);
            if !finished {
                tracing::warn!(
                    "the run did not finish within {} s; recording it interrupted",
                    SHUTDOWN_GRACE.as_secs()
                );
                if let Err(e) = self.history.mark_interrupted().await {
                    tracing::error!(error = %e, "cannot record the run interrupted");
                }
                break;
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        tracing::info!("shutting down: no new runs");
        if let Some(n) = self.engine.as_ref().and_then(|e| e.notifier.as_ref()) {
            if !n.flush(NOTIFY_GRACE).await {
                tracing::warn!(
                    "notifications still being delivered after {} s were abandoned",
                    NOTIFY_GRACE.as_secs()
                );
            }
        }
        // Hands the lease over at once (a standby need not wait for it to expire).
        lease_stop.cancel();
        if let Some((_, handle)) = leadership {
            let _ = handle.await;
        }
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        drop(triggers.watcher.take());
        // The token already stopped it: this only waits for its scheduler to be shut down.
        if let Some(s) = triggers.schedule.take() {
            s.stop().await;
        }
        if tokio::time::timeout(HTTP_GRACE, http).await.is_err() {
            tracing::warn!(
                "HTTP connections still open after {} s; closing",
                HTTP_GRACE.as_secs()
            );
        }
        tracing::info!("daemon stopped");
        Ok(())
    }

    /// Reloads inputs as needed, then runs once with the last valid config and desired state.
    async fn one_run(
        &mut self,
        trigger: Trigger,
        shutdown: CancellationToken,
        triggers: &mut Triggers,
    ) {
        if !self.history_in_place() {
            tracing::warn!(
                trigger = ?trigger,
                "not running: the history database is not in place or has another name (see /readyz)"
            );
            return;
        }
        self.close_what_the_last_leader_left().await;
        if trigger != Trigger::Startup {
            self.reload_config(triggers).await;
        }
        // With an invalid config file, the previous config stays in use; a reload then runs
        // only if the desired state itself changed.
        let config_invalid = self.readiness_now().invalid_config.is_some();
        let desired = match load_desired(&self.config).await {
            Ok(d) => {
                if self.readiness_now().invalid_desired.is_some() {
                    tracing::info!("the desired state is valid again");
                }
                self.set_ready(|r| r.invalid_desired = None);
                if trigger == Trigger::Reload
                    && config_invalid
                    && self.last_desired.as_ref() == Some(&d)
                {
                    tracing::info!("not running: the config file is invalid and the desired state did not change");
                    return;
                }
                self.last_desired = Some(d.clone());
                Some(d)
            }
            Err(e) => {
                let message = e.to_string();
                let new_problem =
                    self.readiness_now().invalid_desired.as_deref() != Some(message.as_str());
                if new_problem || trigger == Trigger::Reload {
                    tracing::error!(error = %message, "the desired state is invalid; nothing from it is applied");
                }
                self.set_ready(|r| r.invalid_desired = Some(message));
                if trigger == Trigger::Reload {
                    return;
                }
                match &self.last_desired {
                    Some(d) => {
                        tracing::warn!("running with the last valid desired state");
                        Some(d.clone())
                    }
                    // Nothing valid yet: the run loads it again and records the failure.
                    None => None,
                }
            }
        };
        if config_invalid {
            tracing::warn!("the config file is invalid: this run uses the previous config");
        }
        if self.engine.is_none() {
            match Engine::new(
                self.config.clone(),
                self.history.clone(),
                self.metrics.clone(),
            )
            .await
            {
                Ok(e) => self.engine = Some(e),
                Err(e) => {
                    tracing::error!(error = %e, "cannot set up the Studio client; no run");
                    self.failed_without_run(format!("cannot set up the Studio client: {e}"));
                    return;
                }
            }
        }
        // Taken as the run starts: who asks during it is served by the next run.
        let asked_by = if trigger == Trigger::Manual {
            self.askers.take()
        } else {
            None
        };
        // Runs of this daemon follow one another, so a row of this process still `running`
        // here is one whose end could not be written (a full disk, any write error): it is
        // recorded `failed` now that the history may take writes again, not left `running`
        // until the next start.
        let unrecorded = match &self.unrecorded_end {
            Some(why) => format!("{UNRECORDED_END}: {why}"),
            None => UNRECORDED_END.to_string(),
        };
        match self
            .history
            .fail_running_runs_of_this_process(&unrecorded)
            .await
        {
            Ok(n) => {
                if n > 0 {
                    tracing::warn!(
                        runs = n,
                        "an earlier run whose end could not be written is now recorded failed"
                    );
                }
                self.unrecorded_end = None;
            }
            Err(e) => tracing::warn!(error = %e, "the history still takes no writes"),
        }
        let engine = self.engine.as_ref().expect("set above");
        let request = RunRequest {
            requested_by: asked_by,
            desired,
            ..RunRequest::new(trigger)
        };
        let run = run_catching_panics(&self.history, engine.run(request, shutdown));
        match run.await {
            Ok(report) => {
                let r = &report.record;
                notify_systemd(&[sd_notify::NotifyState::Status(&format!(
                    "last run {} ({}) {}",
                    r.id, r.trigger, r.status
                ))]);
                self.set_ready(|ready| {
                    ready.last_run = Some(LastRun {
                        id: Some(r.id),
                        status: r.status,
                        error: r.error.clone(),
                    })
                });
            }
            Err(message) => {
                tracing::error!(error = %message, "the run did not finish");
                self.unrecorded_end = Some(message.clone());
                // After a panic the client's state is suspect: the next run builds a new one.
                self.engine = None;
                self.failed_without_run(message);
            }
        }
        // Retention after each run: cheap when there is nothing to fold (history/retention.rs).
        match self.history.prune(&self.config.retention).await {
            Ok(p) if p.noop_runs + p.change_runs > 0 => tracing::info!(
                noop_runs = p.noop_runs,
                change_runs = p.change_runs,
                spans = p.spans,
                "old runs pruned (history.keep_noop_runs, history.keep_changes)"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune the history"),
        }
    }

    /// Tells readers of the readiness (the console) which schedule the runs follow now.
    fn schedule_in_effect(&self, config: &Config) {
        let slots = Slots::new(&config.schedule, config.timezone).ok();
        self.set_ready(|r| r.schedule = slots);
    }

    fn readiness_now(&self) -> Readiness {
        self.readiness
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the config file when its text changed; a bad one is reported and the previous
    /// one kept. A new schedule or roles file location takes effect at once; `history`,
    /// `http.listen` and `log` need a restart.
    async fn reload_config(&mut self, triggers: &mut Triggers) -> ConfigReload {
        let text = match crate::input::config::read(&self.config_path) {
            Ok(t) => t,
            Err(e) => {
                let message = e.to_string();
                if self.readiness_now().invalid_config.as_deref() != Some(message.as_str()) {
                    tracing::error!(error = %message, "the config file is invalid; keeping the previous config");
                }
                self.config_text.clear();
                self.set_ready(|r| r.invalid_config = Some(message));
                return ConfigReload::Invalid;
            }
        };
        if text == self.config_text {
            return ConfigReload::Unchanged;
        }
        self.config_text = text;
        let new = match Config::from_text(&self.config_path, &self.config_text) {
            Ok(new) => new,
            Err(e) => return self.config_invalid(e),
        };
        let old = &self.config;
        if new.history != old.history
            || new.http.listen != old.http.listen
            || new.log.format != old.log.format
            || new.log.level != old.log.level
        {
            tracing::warn!(
                "changes to history, http.listen and log take effect when the daemon restarts"
            );
        }
        let reschedule = new.schedule != old.schedule || new.timezone != old.timezone;
        if reschedule {
            // Built before anything changes: a schedule that cannot be built is a config
            // error like any other, and the previous config (and schedule) stays in use.
            let built = Schedule::start(
                &new,
                &self.config_text,
                triggers.tx.clone(),
                triggers.busy.clone(),
                &triggers.shutdown,
            )
            .await;
            match built {
                Ok(s) => {
                    if let Some(old) = triggers.schedule.replace(s) {
                        old.stop().await;
                    }
                    tracing::info!(schedule = %new.schedule, timezone = %new.timezone, "new schedule in effect");
                    self.schedule_in_effect(&new);
                }
                Err(e) => return self.config_invalid(e),
            }
        }
        let new = Arc::new(new);
        if let Some(w) = triggers.watcher.as_mut() {
            w.follow(&new, &self.config_path);
        }
        if self.readiness_now().invalid_config.is_some() {
            tracing::info!("the config file is valid again");
        } else {
            tracing::info!("config reloaded");
        }
        self.config = new;
        self.engine = None;
        self.set_ready(|r| r.invalid_config = None);
        ConfigReload::Applied
    }

    /// A config file that cannot be used: reported (log, `/readyz`, metrics), never applied.
    fn config_invalid(&self, e: crate::input::config::ConfigError) -> ConfigReload {
        tracing::error!(error = %e, "the config file is invalid; keeping the previous config");
        self.set_ready(|r| r.invalid_config = Some(e.to_string()));
        ConfigReload::Invalid
    }
}

/// The error of a run whose end could not be written, recorded before the next run (followed
/// by the write error, when this process saw it).
const UNRECORDED_END: &str =
    "the history could not record the end of this run; recorded failed before the next run";

/// Runs one run, turning a panic in it (a bug) into a recorded failure: the run row becomes
/// `failed` with the panic's message, and the daemon goes on with the next run instead of
/// dying with the run left `running`.
async fn run_catching_panics(
    history: &History,
    run: impl std::future::Future<
        Output = Result<crate::sync::run_report::RunReport, crate::store::history::HistoryError>,
    >,
) -> Result<crate::sync::run_report::RunReport, String> {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(run).catch_unwind().await {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(e)) => {
            let message = format!("cannot record the run: {e}");
            // Recorded `failed` at once where the history takes this write; otherwise before
            // the next run (see `one_run`), or at the next start.
            match history.fail_running_runs_of_this_process(&message).await {
                Ok(_) => {}
                Err(e) => tracing::error!(
                    error = %e,
                    "the run stays `running` in the history until it takes writes again"
                ),
            }
            Err(message)
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            let message =
                format!("the run stopped on an internal error (a bug; please report it): {what}");
            tracing::error!(error = %message, "run panicked");
            if let Err(e) = history.fail_running_runs_of_this_process(&message).await {
                tracing::error!(error = %e, "cannot record the panicked run as failed");
            }
            Err(message)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_run_is_recorded_failed_and_the_daemon_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let history = History::open(&dir.path().join("history.db")).await.unwrap();
        let h = history.clone();
        let result = run_catching_panics(&history, async move {
            let id = h.start_run("schedule", false).await?;
            if id > 0 {
                panic!("index out of bounds in run {id}");
            }
            unreachable!()
        })
        .await;
        let message = result.unwrap_err();
        assert!(
            message.contains("index out of bounds in run 1"),
            "{message}"
        );
        let run = history.run(1).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert!(run.error.unwrap().contains("internal error"));
        assert!(run.finished_at.is_some());
    }
}
