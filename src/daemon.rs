//! `daemon`: the long-running service.
//!
//! One loop owns the runs, so runs never overlap: the scheduler, the file watcher and startup
//! only *ask* for a run through a one-slot channel. A scheduled slot that comes while a run is
//! busy is skipped and logged; edits are coalesced into one pending reload. The loop re-reads
//! the config and the desired state before each run and keeps the last valid ones, so a bad
//! edit is reported (log, `/readyz`, metrics) and never applied. On SIGTERM/SIGINT it stops
//! taking runs, lets the run in flight finish its batch (bounded wait), records it, and exits 0.

use crate::config::Config;
use crate::desired::DesiredState;
use crate::history::History;
use crate::http::{HttpState, Readiness};
use crate::lock::InstanceLock;
use crate::metrics::Metrics;
use crate::reconcile::{load_desired, Engine, Exit, Trigger};
use crate::shutdown::{Shutdown, ShutdownSignal};
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_cron_scheduler::{Job, JobScheduler};

/// Quiet time after the last file event before a reload: editors write several times.
const DEBOUNCE: Duration = Duration::from_millis(700);
/// How long a shutdown waits for the run in flight before recording it interrupted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub async fn run(config_path: &Path) -> Exit {
    let config = match crate::app::load_config(config_path) {
        Ok(c) => Arc::new(c),
        Err(code) => return code,
    };
    crate::logging::init(config.log.format, &config.log.level);
    let _lock = match InstanceLock::acquire(&config.history) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            return Exit::Error;
        }
    };
    let history = match History::open(&config.history).await {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("{e}");
            return Exit::Error;
        }
    };
    match history.mark_interrupted().await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            runs = n,
            "marked runs left running by a process that died as interrupted"
        ),
        Err(e) => tracing::error!("{e}"),
    }
    let mut daemon = Daemon::new(config, config_path.to_path_buf(), history).await;
    let code = daemon.serve().await;
    daemon.history.close().await;
    code
}

struct Daemon {
    config: Arc<Config>,
    config_path: PathBuf,
    history: History,
    metrics: Metrics,
    readiness: Arc<RwLock<Readiness>>,
    engine: Option<Engine>,
    last_desired: Option<DesiredState>,
}

impl Daemon {
    async fn new(config: Arc<Config>, config_path: PathBuf, history: History) -> Daemon {
        let readiness = Arc::new(RwLock::new(Readiness {
            starting: true,
            ..Default::default()
        }));
        Daemon {
            config,
            config_path,
            history,
            metrics: Metrics::new(),
            readiness,
            engine: None,
            last_desired: None,
        }
    }

    fn set_ready(&self, f: impl FnOnce(&mut Readiness)) {
        f(&mut self.readiness.write().unwrap_or_else(|e| e.into_inner()));
    }

    async fn serve(&mut self) -> Exit {
        let (signal, shutdown) = ShutdownSignal::new();
        let signal = Arc::new(signal);
        spawn_signal_handler(signal.clone());

        let http_state = HttpState {
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
        };
        let mut http_shutdown = shutdown.clone();
        let http = match crate::http::serve(self.config.http.listen, http_state, async move {
            http_shutdown.recv().await
        })
        .await
        {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(listen = %self.config.http.listen, error = %e, "cannot serve http.listen");
                return Exit::Error;
            }
        };

        let (tx, mut rx) = mpsc::channel::<Trigger>(1);
        let busy = Arc::new(AtomicBool::new(false));
        let mut scheduler = match start_scheduler(&self.config, tx.clone(), busy.clone()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the scheduler");
                return Exit::Error;
            }
        };
        let _watcher = match watch_files(&self.config, &self.config_path, tx.clone()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the config and roles files; edits are picked up at the next scheduled run");
                None
            }
        };
        let _ = tx.try_send(Trigger::Startup);
        notify_systemd(&[sd_notify::NotifyState::Ready]);
        spawn_watchdog(shutdown.clone());
        tracing::info!(schedule = %self.config.schedule, timezone = %self.config.timezone, "daemon started");

        let mut stop = shutdown.clone();
        loop {
            let trigger = tokio::select! {
                _ = stop.recv() => break,
                t = rx.recv() => match t { Some(t) => t, None => break },
            };
            busy.store(true, Ordering::SeqCst);
            let finished = {
                let run = self.one_run(trigger, shutdown.clone());
                tokio::pin!(run);
                tokio::select! {
                    _ = &mut run => true,
                    _ = stop.recv() => {
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
                let _ = self.history.mark_interrupted().await;
                break;
            }
            if shutdown.is_shutdown() {
                break;
            }
        }
        notify_systemd(&[sd_notify::NotifyState::Stopping]);
        let _ = scheduler.shutdown().await;
        let _ = http.await;
        tracing::info!("daemon stopped");
        Exit::Success
    }

    /// Reloads inputs as needed, then runs once with the last valid desired state.
    async fn one_run(&mut self, trigger: Trigger, shutdown: Shutdown) {
        if trigger == Trigger::Reload {
            self.reload_config().await;
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
                    tracing::error!(error = %e, "cannot set up the Studio client");
                    self.set_ready(|r| r.failed_run = Some((0, e.to_string())));
                    return;
                }
            }
        }
        let desired = match load_desired(&self.config).await {
            Ok(d) => {
                self.metrics.set_config_valid(true);
                self.set_ready(|r| r.invalid_input = None);
                self.last_desired = Some(d.clone());
                Some(d)
            }
            Err(e) => {
                tracing::error!(error = %e, "the desired state is invalid; nothing from it is applied");
                self.metrics.set_config_valid(false);
                self.set_ready(|r| r.invalid_input = Some(e.to_string()));
                if trigger == Trigger::Reload {
                    return;
                }
                match &self.last_desired {
                    Some(d) => {
                        tracing::warn!("running with the last valid desired state");
                        Some(d.clone())
                    }
                    // Nothing valid yet: the run records the failure.
                    None => None,
                }
            }
        };
        let engine = self.engine.as_ref().expect("set above");
        match engine.run(trigger, false, desired, shutdown).await {
            Ok(report) => {
                let failed = (report.record.status == "failed").then(|| {
                    (
                        report.record.id,
                        report.record.error.clone().unwrap_or_default(),
                    )
                });
                self.set_ready(|r| {
                    r.failed_run = failed;
                    r.starting = false;
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record the run");
                self.set_ready(|r| r.failed_run = Some((0, e.to_string())));
            }
        }
    }

    /// Re-reads the config file; a bad one is reported and the previous one kept.
    async fn reload_config(&mut self) {
        match Config::load(&self.config_path) {
            Ok(new) => {
                if new.history != self.config.history
                    || new.http.listen != self.config.http.listen
                    || new.schedule != self.config.schedule
                {
                    tracing::warn!("history, http.listen and schedule changes take effect when the daemon restarts");
                }
                self.config = Arc::new(new);
                self.engine = None;
            }
            Err(e) => {
                tracing::error!(error = %e, "the config file is invalid; keeping the previous config");
                self.metrics.set_config_valid(false);
                self.set_ready(|r| r.invalid_input = Some(e.to_string()));
            }
        }
    }
}

fn spawn_signal_handler(signal: Arc<ShutdownSignal>) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal as unix_signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            unix_signal(SignalKind::terminate()),
            unix_signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("cannot install signal handlers");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
        signal.trigger();
    });
}

async fn start_scheduler(
    config: &Config,
    tx: mpsc::Sender<Trigger>,
    busy: Arc<AtomicBool>,
) -> Result<JobScheduler, tokio_cron_scheduler::JobSchedulerError> {
    let scheduler = JobScheduler::new().await?;
    let job = Job::new_async_tz(
        config.schedule.as_str(),
        config.timezone,
        move |_id, _lock| {
            let tx = tx.clone();
            let busy = busy.clone();
            Box::pin(async move {
                if busy.load(Ordering::SeqCst) || tx.try_send(Trigger::Schedule).is_err() {
                    tracing::warn!("scheduled slot skipped: a run is still in progress or queued");
                }
            })
        },
    )?;
    scheduler.add(job).await?;
    scheduler.start().await?;
    Ok(scheduler)
}

/// Watches the folders of the config and roles files (not the files: editors replace files by
/// rename, and Kubernetes swaps a `..data` symlink) and asks for a reload after a quiet time.
fn watch_files(
    config: &Config,
    config_path: &Path,
    tx: mpsc::Sender<Trigger>,
) -> notify::Result<notify::RecommendedWatcher> {
    let mut files: Vec<PathBuf> = vec![config_path.to_path_buf()];
    if let Some(roles) = config.roles_file() {
        files.push(roles.to_path_buf());
    }
    let names: HashSet<std::ffi::OsString> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_os_string()))
        .collect();
    let dirs: HashSet<PathBuf> = files
        .iter()
        .map(|f| {
            f.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .collect();
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let relevant = event.paths.iter().any(|p| {
            p.file_name()
                .is_some_and(|n| names.contains(n) || n.to_string_lossy().starts_with(".."))
        });
        if relevant {
            let _ = events_tx.send(());
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        while events_rx.recv().await.is_some() {
            // Debounce: wait until the folder has been quiet for a moment.
            loop {
                match tokio::time::timeout(DEBOUNCE, events_rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            tracing::info!("config or roles file changed; reloading");
            if tx.send(Trigger::Reload).await.is_err() {
                return;
            }
        }
    });
    Ok(watcher)
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        if let Err(e) = sd_notify::notify(false, state) {
            tracing::warn!(error = %e, "cannot notify systemd");
        }
    }
}

/// Pings the systemd watchdog at half its interval while the daemon runs.
fn spawn_watchdog(mut shutdown: Shutdown) {
    let mut usec = 0u64;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = tokio::time::sleep(every) => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
            }
        }
    });
}
