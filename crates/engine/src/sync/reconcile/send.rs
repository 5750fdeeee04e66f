//! The last step of a run: the recorded plan sent to Studio in batches, each outcome written
//! to the history as it comes back, and the run's counts from them.
//!
//! A batch whose outcomes cannot be written leaves its changes `planned`; the run goes on
//! (Studio's state does not depend on the history) but cannot succeed.

use super::Engine;
use crate::model::change::{Change, ChangeKind, Outcome};
use crate::model::run_status::RunStatus;
use crate::service::shutdown::CancellationToken;
use crate::store::history::{ActionRow, HistoryError};
use crate::sync::apply::{Applier, Stopped};
use crate::sync::run_report::{RunError, RunReport};

impl Engine {
    /// Sends `phases` one after the other; an `Err` is what stopped the sending.
    pub(super) async fn send(
        &self,
        report: &mut RunReport,
        phases: Vec<Vec<Change>>,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let config = &self.config;
        let managed = &config.roles.managed;
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
            Some(Stopped::LeadershipLost(why)) => return Err(RunError::LeadershipLost(why)),
            None => {}
        }
        match unrecorded {
            Some((unrecorded, source)) => Err(RunError::Outcomes { unrecorded, source }),
            None => Ok(()),
        }
    }
}
