//! A one-shot command on a PostgreSQL history (`plan`, `apply`, `export`, …) takes the
//! leader lease for as long as it runs, exactly as a daemon does, so it never talks to Studio
//! at the same time as the daemon that leads. It waits a bounded time for the lease (a
//! daemon stopping hands it over at once) and otherwise refuses, naming that daemon.

use super::fail;
use crate::exit::Exit;
use std::time::Duration;
use studio_role_sync_engine::config::{Config, DEFAULT_LEASE};
use studio_role_sync_engine::history::{History, WriteTerm};
use studio_role_sync_engine::leadership::Leadership;
use studio_role_sync_engine::lease::Lease;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::shutdown::CancellationToken;

/// How long a command waits for the lease before it refuses.
const WAIT: Duration = Duration::from_secs(10);

/// The lease this command holds; renewed in the background until released or dropped.
pub(crate) struct LeaseHold {
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LeaseHold {
    /// Hands the lease back and waits until it is (bounded by the renew interval).
    pub(crate) async fn release(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for LeaseHold {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Takes the lease of `history`'s schema for this command: the history comes back with its
/// writes fenced by the command's term.
pub(crate) async fn take(history: History, config: &Config) -> Result<(History, LeaseHold), Exit> {
    let Some(pool) = history.postgres_pool().cloned() else {
        return Err(fail(
            "internal: a lease for a history that is not in PostgreSQL",
        ));
    };
    let lease = Lease::new(pool, config.ha.map_or(DEFAULT_LEASE, |ha| ha.lease));
    let term = WriteTerm::default();
    let stop = CancellationToken::new();
    let (leadership, task) =
        Leadership::spawn(lease.clone(), Metrics::new(), stop.clone(), term.clone());
    let mut state = leadership.watch();
    let deadline = tokio::time::Instant::now() + WAIT;
    while leadership.is_leader_now().is_none() {
        tokio::select! {
            changed = state.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    let hold = LeaseHold {
        stop,
        task: Some(task),
    };
    if leadership.is_leader_now().is_some() {
        return Ok((history.with_write_term(term), hold));
    }
    hold.release().await;
    let who = match lease.leader().await {
        Ok(Some(leader)) => leader.to_string(),
        Ok(None) => "no daemon leads, yet the lease could not be taken".into(),
        Err(e) => format!("the lease could not be read ({e})"),
    };
    Err(fail(format!(
        "not run: {who} on this history ({}); only the leader talks to Studio. Ask it to \
         run now with `studio-role-sync trigger`, or stop it first",
        history.path().display()
    )))
}
