//! Runs that did not finish: told as they happened, from their actions.
//!
//! A run's counts are written at its end; a process that died (or a run that panicked, or
//! outlived the shutdown grace) never wrote them, though some of its batches were applied and
//! recorded. So when such a run is closed, its counts are rebuilt from its `run_actions`, and
//! the actions it left `planned` (sent or not, no answer was recorded) get the outcome
//! `unknown`: Studio may or may not have them; the next run reads Studio and finishes the job.

use super::db::Sql;
use super::{History, HistoryError};
use crate::model::run_status::RunStatus;

/// The detail of an action whose answer was never recorded (outcome `unknown`).
const UNKNOWN_DETAIL: &str =
    "never confirmed: the run stopped before Studio's answer was recorded; the next run reads Studio again";

impl History {
    /// Marks runs left `running` by a process that died, with counts rebuilt from their
    /// actions. Call only while holding the single-instance lock: otherwise a live run could
    /// be marked.
    pub async fn mark_interrupted(&self) -> Result<u64, HistoryError> {
        self.close_running(
            RunStatus::Interrupted,
            "the process stopped before the run finished",
            "status = 'running'",
            None,
        )
        .await
    }

    /// Under a new leader of a shared PostgreSQL history: the runs a previous leader left
    /// `running` (it died, or its lease ended mid-run and its writes were refused).
    pub async fn mark_taken_over(&self) -> Result<u64, HistoryError> {
        self.close_running(
            RunStatus::Interrupted,
            "leadership lost: the daemon running it stopped leading (it stopped, or lost the \
             lease); the new leader finishes the work",
            "status = 'running'",
            None,
        )
        .await
    }

    /// Records this process's runs still `running` as `failed` with `error`: for a run whose
    /// task panicked, so it is not left `running` until the next start.
    pub async fn fail_running_runs_of_this_process(
        &self,
        error: &str,
    ) -> Result<u64, HistoryError> {
        self.close_running(
            RunStatus::Failed,
            error,
            "status = 'running' AND pid = ?",
            Some(std::process::id() as i64),
        )
        .await
    }

    async fn close_running(
        &self,
        status: RunStatus,
        error: &str,
        which: &str,
        pid: Option<i64>,
    ) -> Result<u64, HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        let sql = format!("SELECT id FROM runs WHERE {which}");
        let mut select = Sql::new(&sql);
        if let Some(pid) = pid {
            select = select.bind(pid);
        }
        let ids: Vec<i64> = select.scalars(&mut tx).await.map_err(|e| self.err(e))?;
        let at = self.now();
        for id in &ids {
            Sql::new(
                "UPDATE run_actions SET outcome = ?, detail = COALESCE(detail, ?), updated_at = ? \
                 WHERE run_id = ? AND outcome = 'planned'",
            )
            .bind(crate::model::change::Outcome::Unknown)
            .bind(UNKNOWN_DETAIL)
            .bind(&at)
            .bind(id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
            Sql::new(
                "UPDATE runs SET status = ?, finished_at = ?, error = COALESCE(error, ?), \
                 adds_planned = (SELECT COUNT(*) FROM run_actions WHERE run_id = runs.id AND action = 'add'), \
                 removes_planned = (SELECT COUNT(*) FROM run_actions WHERE run_id = runs.id AND action = 'remove'), \
                 adds_applied = (SELECT COUNT(*) FROM run_actions WHERE run_id = runs.id AND action = 'add' AND outcome = 'applied'), \
                 removes_applied = (SELECT COUNT(*) FROM run_actions WHERE run_id = runs.id AND action = 'remove' AND outcome = 'applied'), \
                 failed = (SELECT COUNT(*) FROM run_actions WHERE run_id = runs.id AND outcome = 'failed'), \
                 pending = (SELECT COUNT(*) FROM run_pending WHERE run_id = runs.id AND reason IN ('not_in_studio', 'ambiguous')) \
                 WHERE id = ?",
            )
            .bind(status)
            .bind(&at)
            .bind(error)
            .bind(id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
            self.recount_run_day(&mut tx, *id).await?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(ids.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{ActionRow, PendingUpdate};
    use super::*;
    use crate::model::change::{ChangeKind, Outcome};
    use crate::store::history::backends::history_tests;

    history_tests! {
        async fn an_interrupted_run_counts_what_it_applied(h: History) {
            let id = h.start_run("schedule", false).await.unwrap();
            let rows: Vec<ActionRow> = (0..50)
                .map(|i| ActionRow {
                    email: Some(format!("u{i}@x.edu")),
                    user_id: i,
                    role: "Admin".into(),
                    action: if i < 45 {
                        ChangeKind::Add
                    } else {
                        ChangeKind::Remove
                    },
                    outcome: Outcome::Planned,
                    http_status: None,
                    detail: None,
                    source: None,
                    until: None,
                    reason: None,
                })
                .collect();
            h.record_plan(id, &rows, &PendingUpdate::default())
                .await
                .unwrap();
            let answered: Vec<ActionRow> = rows[..40]
                .iter()
                .map(|a| ActionRow {
                    outcome: if a.user_id == 3 {
                        Outcome::Failed
                    } else {
                        Outcome::Applied
                    },
                    http_status: Some(200),
                    ..a.clone()
                })
                .collect();
            h.record_outcomes(id, &answered).await.unwrap();
            assert_eq!(h.mark_interrupted().await.unwrap(), 1);
            let run = h.run(id).await.unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Interrupted);
            assert_eq!((run.adds_planned, run.removes_planned), (45, 5));
            assert_eq!(
                (run.adds_applied, run.removes_applied, run.failed),
                (39, 0, 1)
            );
            let actions = h.actions(id).await.unwrap();
            let unknown = actions
                .iter()
                .filter(|a| a.outcome == Outcome::Unknown)
                .count();
            assert_eq!(unknown, 10);
            assert!(actions
                .iter()
                .filter(|a| a.outcome == Outcome::Unknown)
                .all(|a| a.detail.as_deref().unwrap().starts_with("never confirmed")));
            assert_eq!(h.mark_interrupted().await.unwrap(), 0, "only once");
        }
    }
}
