//! Asking the running daemon for a run now: SIGHUP (`systemctl reload`), a `trigger` row in the
//! history, or a new approval (`approve`).
//!
//! The history is polled every [`POLL`] with one cheap query, so `trigger` and `approve` work
//! from another container or user, without signals and without the instance lock. Every
//! request only *asks* the run loop, through the same one-slot channel as the schedule: while a
//! run is in progress, the first request queues exactly one follow-up run and later ones join
//! it. Runs asked for this way are recorded with trigger `manual`, and with who asked
//! (`runs.requested_by`: `trigger --by NAME`, `SIGHUP`, `approve`), gathered in [`Askers`]
//! until the run that serves them starts.

use crate::service::shutdown::CancellationToken;
use crate::store::history::{History, WriteTerm};
use crate::sync::reconcile::Trigger;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// How often the history is asked for run requests and new approvals.
pub(super) const POLL: Duration = Duration::from_secs(2);

/// Who asked for the manual run to come; the run loop takes them when it starts one.
#[derive(Clone, Default)]
pub(super) struct Askers(Arc<Mutex<Vec<String>>>);

impl Askers {
    fn push(&self, who: String) {
        let mut v = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Bounded: a burst of requests is served by one run and named once each, up to a few.
        if v.len() < 8 && !v.contains(&who) {
            v.push(who);
        }
    }

    /// Who asked since the last call, as one line (`None`: nobody recorded).
    pub(super) fn take(&self) -> Option<String> {
        let v = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        (!v.is_empty()).then(|| v.join(", "))
    }
}

/// Asks for a manual run on behalf of `who`; `why` is logged.
fn ask(tx: &mpsc::Sender<Trigger>, askers: &Askers, who: Vec<String>, why: &str) {
    for w in who {
        askers.push(w);
    }
    match tx.try_send(Trigger::Manual) {
        Ok(()) => tracing::info!("{why}: a run starts now (or right after the run in progress)"),
        Err(TrySendError::Full(_)) => {
            tracing::info!("{why}: a run is already queued, which serves this request too")
        }
        Err(TrySendError::Closed(_)) => {}
    }
}

/// SIGHUP asks for a run now. Without a handler SIGHUP would end the process.
pub(super) fn spawn_sighup(tx: mpsc::Sender<Trigger>, askers: Askers, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot handle SIGHUP; `trigger` still works");
            return;
        }
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    ask(&tx, &askers, vec!["SIGHUP".into()], "SIGHUP received");
                }
            }
        }
    });
}

/// Polls the history for run requests (`trigger`) and approvals newer than the last one seen.
/// Waiting requests are taken at start: the startup run serves them.
pub(super) fn spawn_poller(
    history: History,
    term: Option<WriteTerm>,
    tx: mpsc::Sender<Trigger>,
    askers: Askers,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut seen_approval: Option<i64> = None;
        let mut failing = false;
        let mut first = true;
        loop {
            // A standby leaves requests and approvals to the leader (taking one is a write
            // its fence would refuse).
            let standby = term.as_ref().is_some_and(|t| t.get().is_none());
            let polled = match standby {
                true => None,
                false => Some(history.poll_requests().await),
            };
            match polled.unwrap_or(Ok((None, false))) {
                Ok((approval, waiting)) => {
                    if failing {
                        tracing::info!("reading run requests from the history works again");
                        failing = false;
                    }
                    if waiting {
                        match history.take_run_requests().await {
                            Ok(by) if !by.is_empty() && !first => ask(
                                &tx,
                                &askers,
                                by.into_iter()
                                    .map(|b| format!("trigger --by {b}"))
                                    .collect(),
                                "run requested (studio-role-sync trigger)",
                            ),
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot take run requests"),
                        }
                    }
                    if approval.is_some() && approval > seen_approval {
                        if !first {
                            ask(
                                &tx,
                                &askers,
                                vec!["approve".into()],
                                "new approval (studio-role-sync approve)",
                            );
                        }
                        seen_approval = approval;
                    }
                    first = false;
                }
                Err(e) if !failing => {
                    tracing::warn!(error = %e, "cannot read run requests from the history; trying again");
                    failing = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    });
}
