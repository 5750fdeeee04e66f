//! The [`Leadership`] task: keeps this process's [`Lease`] (renews it while leader, tries to
//! take it while standby) and tells the rest of the daemon which it is.
//!
//! The state is published through a `tokio::sync::watch` ([`LeaderState`]), so a run reads it
//! without waiting and reacts to a change. The leader's local deadline is conservative: it is
//! measured from an `Instant` taken *before* the renew statement is sent, minus a margin. The
//! database's expiry is `now()` + lease at the time the statement runs, which is later; so a
//! leader that cannot renew (PostgreSQL down, the process paused) knows it lost before any
//! standby can take over. Callers check [`Leadership::is_leader_now`] before each request to
//! Studio, and fence their writes with the epoch it gives ([`crate::store::lease::fence`]).
//!
//! Every lease/3 the leader renews and a standby tries to take over, so a standby leads within
//! `lease + lease/3` of the last renewal of a leader that died. While PostgreSQL cannot be
//! reached, a standby retries with a back-off bounded by the lease; logs are written when the
//! state changes (leader, standby, database reachable or not), never once per attempt.

use crate::service::metrics::Metrics;
use crate::service::shutdown::CancellationToken;
use crate::store::history::WriteTerm;
use crate::store::lease::{Epoch, LeaderInfo, Lease};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// What this process is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaderState {
    /// This process leads in term `epoch` until `valid_until` (local, conservative).
    Leader { epoch: Epoch, valid_until: Instant },
    /// Another daemon leads (`Some`), or nobody is known to (`None`: none live, or PostgreSQL
    /// cannot be reached).
    Standby { leader: Option<LeaderInfo> },
}

/// A handle on the leadership task: cheap to clone, read by every part that talks to Studio.
#[derive(Clone)]
pub struct Leadership {
    state: watch::Receiver<LeaderState>,
}

impl Leadership {
    /// Starts the task on `lease`. It stops when `shutdown` is cancelled, releasing the lease
    /// if it holds it (a graceful stop hands over at once); await the handle to know it has.
    ///
    /// `term` is the history's [`WriteTerm`]: set to the epoch while this process leads and
    /// cleared the moment it does not, before anyone reads the new state, so a write never
    /// goes out under a term this task already knows is lost.
    pub fn spawn(
        lease: Lease,
        metrics: Metrics,
        shutdown: CancellationToken,
        term: WriteTerm,
    ) -> (Leadership, tokio::task::JoinHandle<()>) {
        let (tx, rx) = watch::channel(LeaderState::Standby { leader: None });
        metrics.set_leader(false);
        let task = Task {
            timing: Timing::of(lease.duration()),
            lease,
            metrics,
            tx,
            term,
            db_failing: false,
        };
        let handle = tokio::spawn(task.run(shutdown));
        (Leadership { state: rx }, handle)
    }

    /// The epoch to send under, when this process leads now and its local deadline has not
    /// passed; `None` otherwise. Check it before each request to Studio.
    pub fn is_leader_now(&self) -> Option<Epoch> {
        match *self.state.borrow() {
            LeaderState::Leader { epoch, valid_until } if Instant::now() < valid_until => {
                Some(epoch)
            }
            _ => None,
        }
    }

    /// The state, to wait for a change (`changed().await`).
    pub fn watch(&self) -> watch::Receiver<LeaderState> {
        self.state.clone()
    }
}

/// The intervals derived from the lease.
#[derive(Clone, Copy, Debug)]
struct Timing {
    lease: Duration,
    /// How often the leader renews and a standby tries: lease/3.
    every: Duration,
    /// Taken off the local deadline: covers clock-rate differences and the time between a
    /// caller's check and its request (lease/10).
    margin: Duration,
}

impl Timing {
    fn of(lease: Duration) -> Timing {
        Timing {
            lease,
            every: lease / 3,
            margin: lease / 10,
        }
    }

    /// The local deadline of a renewal sent at `sent`.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.lease - self.margin
    }
}

struct Task {
    lease: Lease,
    timing: Timing,
    metrics: Metrics,
    tx: watch::Sender<LeaderState>,
    term: WriteTerm,
    /// Whether the last statement failed (logged once when it starts and once when it ends).
    db_failing: bool,
}

impl Task {
    async fn run(mut self, shutdown: CancellationToken) {
        // A standby's wait before its next attempt (grows while PostgreSQL is unreachable).
        let mut wait = Duration::ZERO;
        loop {
            let state = self.tx.borrow().clone();
            match state {
                LeaderState::Leader { epoch, valid_until } => {
                    if !self.lead(epoch, valid_until, &shutdown).await {
                        self.release(epoch).await;
                        return;
                    }
                    wait = self.timing.every;
                }
                LeaderState::Standby { leader } => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    wait = match self.try_acquire(leader).await {
                        true => self.timing.every,
                        false => (wait * 2).clamp(self.timing.every, self.timing.lease),
                    };
                }
            }
        }
    }

    /// One renewal as leader, after waiting lease/3; `false` when `shutdown` came first.
    async fn lead(
        &mut self,
        epoch: Epoch,
        valid_until: Instant,
        shutdown: &CancellationToken,
    ) -> bool {
        let next = (Instant::now() + self.timing.every).min(valid_until);
        tokio::select! {
            _ = shutdown.cancelled() => return false,
            _ = tokio::time::sleep_until(next) => {}
        }
        if Instant::now() >= valid_until {
            self.lose(epoch, "it could not be renewed before its local deadline");
            return true;
        }
        let sent = Instant::now();
        // The statement may hang (a network partition): it gets no longer than the deadline.
        match tokio::time::timeout_at(valid_until, self.lease.renew(epoch)).await {
            Ok(Ok(true)) => {
                self.db_ok();
                let valid_until = self.timing.deadline(sent);
                self.publish(LeaderState::Leader { epoch, valid_until });
            }
            Ok(Ok(false)) => {
                self.db_ok();
                self.lose(epoch, "it expired or another daemon took it over");
            }
            Ok(Err(e)) => self.db_failed(&e),
            Err(_) => self.lose(epoch, "PostgreSQL did not answer before its local deadline"),
        }
        true
    }

    /// One attempt as standby; `false` when PostgreSQL could not be reached.
    async fn try_acquire(&mut self, known: Option<LeaderInfo>) -> bool {
        let sent = Instant::now();
        let limit = self.timing.every.max(Duration::from_secs(1));
        let acquired = match tokio::time::timeout(limit, self.lease.acquire()).await {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => {
                self.db_failed(&e);
                return false;
            }
            Err(_) => {
                self.db_timed_out();
                return false;
            }
        };
        self.db_ok();
        if let Some(epoch) = acquired {
            let valid_until = self.timing.deadline(sent);
            tracing::info!(
                epoch = epoch.get(),
                "this daemon now leads (it holds the lease)"
            );
            self.metrics.set_leader(true);
            self.publish(LeaderState::Leader { epoch, valid_until });
            return true;
        }
        let leader = match tokio::time::timeout(limit, self.lease.leader()).await {
            Ok(Ok(l)) => l,
            _ => known.clone(),
        };
        let changed = leader.as_ref().map(|l| (&l.holder, l.epoch))
            != known.as_ref().map(|l| (&l.holder, l.epoch));
        if changed {
            match &leader {
                Some(l) => tracing::info!(epoch = l.epoch.get(), "standby: {l}"),
                None => tracing::info!("standby: no daemon leads now"),
            }
            self.publish(LeaderState::Standby { leader });
        }
        true
    }

    /// The new state, to the history's write term first, then to every reader.
    fn publish(&self, state: LeaderState) {
        self.term.set(match &state {
            LeaderState::Leader { epoch, .. } => Some(*epoch),
            LeaderState::Standby { .. } => None,
        });
        self.tx.send_replace(state);
    }

    fn lose(&mut self, epoch: Epoch, why: &str) {
        tracing::warn!(epoch = epoch.get(), "this daemon no longer leads: {why}");
        self.metrics.set_leader(false);
        self.publish(LeaderState::Standby { leader: None });
    }

    /// On a graceful stop: hands the lease over at once (best effort, bounded).
    async fn release(&mut self, epoch: Epoch) {
        self.metrics.set_leader(false);
        self.publish(LeaderState::Standby { leader: None });
        match tokio::time::timeout(self.timing.every, self.lease.release(epoch)).await {
            Ok(Ok(())) => tracing::info!(epoch = epoch.get(), "released the lease on stop"),
            Ok(Err(e)) => {
                tracing::warn!("could not release the lease on stop (it will expire): {e}")
            }
            Err(_) => {
                tracing::warn!("could not release the lease on stop in time (it will expire)")
            }
        }
    }

    fn db_ok(&mut self) {
        if std::mem::take(&mut self.db_failing) {
            tracing::info!("the leader lease's PostgreSQL answers again");
        }
    }

    fn db_failed(&mut self, e: &sqlx::Error) {
        if !std::mem::replace(&mut self.db_failing, true) {
            tracing::error!("cannot reach the leader lease's PostgreSQL (retrying): {e}");
        }
    }

    fn db_timed_out(&mut self) {
        if !std::mem::replace(&mut self.db_failing, true) {
            tracing::error!("the leader lease's PostgreSQL does not answer (retrying)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_deadline_comes_before_the_lease_ends() {
        let t = Timing::of(Duration::from_secs(15));
        assert_eq!(t.every, Duration::from_secs(5));
        let sent = Instant::now();
        assert_eq!(t.deadline(sent), sent + Duration::from_millis(13_500));
    }
}
