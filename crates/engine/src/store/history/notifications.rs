//! The history's part in notifications and flapping: which changes were applied in the last
//! runs, which actions of a run are flapping, and the conditions already notified.
//!
//! The notified conditions live here rather than in memory so that every process sharing the
//! history (the daemon, a one-shot `apply`) sees the same transitions, and a restart never
//! sends a message again.

use super::db::{no_index, Sql};
use super::{History, HistoryError};
use crate::model::change::{ChangeKey, ChangeKind};
use std::collections::HashSet;

/// A row of `notify_conditions`: a condition notified and not over yet.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredCondition {
    pub condition: String,
    pub since: String,
    pub since_run_id: Option<i64>,
    pub last_sent: String,
    pub last_run_id: Option<i64>,
}

impl History {
    /// The changes applied in *every one* of the `runs` non-dry runs before `before_run` that
    /// sent their changes (`succeeded` or `partial`; a run a guard stopped or that failed sent
    /// nothing and neither breaks nor extends a streak). A change left alone because it was
    /// flapping counts as applied, so leaving it alone does not reset its streak. `None` when
    /// the history has fewer such runs.
    pub async fn repeated_actions(
        &self,
        before_run: i64,
        runs: u32,
    ) -> Result<Option<HashSet<ChangeKey>>, HistoryError> {
        // Newest first along the primary key, stopping after `runs` matches. The unary `+`
        // keeps SQLite off the `runs_status` index, which would read every run of those
        // statuses and sort them: linear in the history's length instead of constant.
        let plain = no_index(self.db.dialect());
        let recent: Vec<(i64,)> = Sql::new(format!(
            "SELECT id FROM runs WHERE id < ? AND {plain}dry_run = FALSE \
             AND {plain}status IN ('succeeded', 'partial') ORDER BY id DESC LIMIT ?",
        ))
        .bind(before_run)
        .bind(runs as i64)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        if recent.len() < runs as usize {
            return Ok(None);
        }
        let (Some(&(newest,)), Some(&(oldest,))) = (recent.first(), recent.last()) else {
            return Ok(None);
        };
        // Retention folds old no-op runs away (`history.keep_noop_runs`): a quiet run deleted
        // between two of these would make them look consecutive. Every id from the oldest up
        // to this run must still be there.
        let (present,): (i64,) = Sql::new("SELECT COUNT(*) FROM runs WHERE id >= ? AND id < ?")
            .bind(oldest)
            .bind(before_run)
            .fetch_one(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        if present != before_run - oldest {
            return Ok(None);
        }
        // `run_actions_key` starts with run_id: this reads the actions of those runs only.
        let rows: Vec<ChangeKey> = Sql::new(
            "SELECT user_id, role, action FROM run_actions \
             WHERE run_id IN (SELECT id FROM runs WHERE id BETWEEN ? AND ? AND dry_run = FALSE \
                              AND status IN ('succeeded', 'partial')) \
               AND (outcome = 'applied' OR flapping = TRUE) \
             GROUP BY user_id, role, action HAVING COUNT(DISTINCT run_id) = ?",
        )
        .bind(oldest)
        .bind(newest)
        .bind(runs as i64)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(Some(rows.into_iter().collect()))
    }

    /// Marks the actions of `run_id` found flapping, and
    /// the run's count of them.
    pub async fn mark_flapping(
        &self,
        run_id: i64,
        actions: &[ChangeKey],
    ) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        for key in actions {
            Sql::new(
                "UPDATE run_actions SET flapping = TRUE \
                 WHERE run_id = ? AND planned_user_id = ? AND role = ? AND action = ?",
            )
            .bind(run_id)
            .bind(key.user_id)
            .bind(&key.role)
            .bind(key.kind)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        Sql::new("UPDATE runs SET flapping = ? WHERE id = ?")
            .bind(actions.len() as i64)
            .bind(run_id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// The actions of `run_id` found flapping, as `(email, role, action)`.
    pub async fn flapping_actions(
        &self,
        run_id: i64,
    ) -> Result<Vec<(Option<String>, String, ChangeKind)>, HistoryError> {
        Sql::new(
            "SELECT email, role, action FROM run_actions WHERE run_id = ? AND flapping = TRUE \
             ORDER BY role, action, email",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// Reads the notified conditions, lets `decide` compute the new set (and what to send),
    /// and stores it, in one transaction: two processes never both send one transition.
    pub async fn notify_step<T>(
        &self,
        decide: impl FnOnce(Vec<StoredCondition>) -> (Vec<StoredCondition>, T),
    ) -> Result<T, HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        // Take the write lock first, so the read below is not stale when the write comes.
        Sql::new("DELETE FROM notify_conditions WHERE 0")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        let stored: Vec<StoredCondition> = Sql::new(
            "SELECT condition, since, since_run_id, last_sent, last_run_id FROM notify_conditions \
             ORDER BY condition",
        )
        .fetch_all(&mut tx)
        .await
        .map_err(|e| self.err(e))?;
        let (next, out) = decide(stored);
        Sql::new("DELETE FROM notify_conditions")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        for c in &next {
            Sql::new(
                "INSERT INTO notify_conditions (condition, since, since_run_id, last_sent, last_run_id) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&c.condition)
            .bind(&c.since)
            .bind(c.since_run_id)
            .bind(&c.last_sent)
            .bind(c.last_run_id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::change::Outcome;
    use crate::model::run_status::RunStatus;
    use crate::store::history::backends::history_tests;
    use crate::store::history::{ActionRow, PendingUpdate, RunRecord};

    async fn run(h: &History, dry_run: bool, status: RunStatus, applied: &[i64]) -> i64 {
        let id = h.start_run("schedule", dry_run).await.unwrap();
        let rows: Vec<ActionRow> = applied
            .iter()
            .map(|&user_id| ActionRow {
                email: Some(format!("u{user_id}@x.edu")),
                user_id,
                role: "Admin".into(),
                action: ChangeKind::Remove,
                outcome: if status == RunStatus::Aborted {
                    Outcome::Skipped
                } else {
                    Outcome::Applied
                },
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
        h.finish_run(&RunRecord {
            id,
            status,
            dry_run,
            ..Default::default()
        })
        .await
        .unwrap();
        id
    }

    history_tests! {
        async fn streaks_skip_dry_and_aborted_runs_and_break_on_a_quiet_or_pruned_one(h: History) {
            let key = ChangeKey {
                user_id: 7,
                role: "Admin".into(),
                kind: ChangeKind::Remove,
            };
            run(&h, false, RunStatus::Succeeded, &[7, 8]).await;
            assert_eq!(
                h.repeated_actions(2, 2).await.unwrap(),
                None,
                "too few runs"
            );
            run(&h, true, RunStatus::Succeeded, &[]).await; // a `plan`
            run(&h, false, RunStatus::Aborted, &[7]).await; // a guard: sent nothing
            let third = run(&h, false, RunStatus::Succeeded, &[7]).await;
            let repeated = h.repeated_actions(third + 1, 2).await.unwrap().unwrap();
            assert_eq!(repeated, [key.clone()].into());
            // A quiet run in between breaks the streak.
            let quiet = run(&h, false, RunStatus::Succeeded, &[]).await;
            assert_eq!(
                h.repeated_actions(quiet + 1, 2).await.unwrap(),
                Some(HashSet::new())
            );
            // A run folded away by retention: the remaining ones are not consecutive.
            Sql::new("DELETE FROM runs WHERE id = ?")
                .bind(quiet)
                .execute(&h.db)
                .await
                .ok();
            let after = run(&h, false, RunStatus::Succeeded, &[7]).await;
            assert_eq!(h.repeated_actions(after, 2).await.unwrap(), None);
        }
    }
}
