//! Approvals and run requests in the history (migration 0005): what `approve`, `apply FILE`
//! and `trigger` write, what a run consumes, and the cheap query the daemon polls.
//!
//! They go through the history, not through a signal or the instance lock, so that an admin
//! in another container (or without the right to signal the service) can approve or ask for a
//! run while the daemon holds the lock. Every check `approve` makes (the run exists, a removal
//! guard aborted it, it has no approval yet) is here, next to the rows it reads.

use super::db::Sql;
use super::{now, ActionRow, History, HistoryError};
use crate::model::change::PlannedAction;
use crate::model::digest;
use crate::model::guard_kind::GuardKind;
use crate::model::run_status::RunStatus;
use serde::Serialize;

/// A row of `approvals`.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ApprovalRow {
    pub id: i64,
    /// `approve` or `saved_plan`.
    pub kind: String,
    /// The aborted run approved (`None` for a saved plan).
    pub run_id: Option<i64>,
    pub approved_by: String,
    pub approved_at: String,
    pub digest: String,
    pub actions: i64,
    /// `pending`, `applied`, `superseded` (the run used another approval) or `refused`.
    pub status: String,
    pub used_by_run: Option<i64>,
    pub used_at: Option<String>,
    pub detail: Option<String>,
    pub plan_file: Option<String>,
}

/// Why `approve` refused: each says what to do instead.
#[derive(Debug, thiserror::Error)]
pub enum ApproveError {
    #[error("there is no run {0} in the history")]
    NoSuchRun(i64),
    #[error("run {id} is {status}, not aborted by a safety guard: there is nothing to approve")]
    NotAborted { id: i64, status: RunStatus },
    #[error(
        "run {id} was refused because the desired state is empty; an approval never lifts \
         that refusal (an empty file or a failed query looks the same): fix the source"
    )]
    EmptyDesired { id: i64 },
    #[error(
        "run {id} was not aborted by a removal guard ({why}); only the removal guards \
         (safety.max_removals, max_removal_ratio, per role) can be approved"
    )]
    NotApprovable { id: i64, why: String },
    #[error("run {id} is already approved (approval {} by {} at {}){}", .row.id, .row.approved_by, .row.approved_at, consumed(.row))]
    AlreadyApproved { id: i64, row: Box<ApprovalRow> },
    #[error("{0}")]
    History(#[from] HistoryError),
}

fn consumed(row: &ApprovalRow) -> String {
    match (row.status.as_str(), row.used_by_run) {
        ("pending", _) => ", waiting for the next run".into(),
        (status, Some(run)) => format!(", {status} by run {run}"),
        (status, None) => format!(", {status}"),
    }
}

impl History {
    /// The planned actions of a run, as recorded before anything was sent (without those left
    /// alone), read as the run itself read them for its digest.
    pub async fn planned_actions(&self, run_id: i64) -> Result<Vec<PlannedAction>, HistoryError> {
        let rows: Vec<ActionRow> = Sql::new(
            "SELECT email, user_id, role, action, outcome, http_status, detail \
             FROM run_actions WHERE run_id = ?",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(digest::recorded_plan(&rows))
    }

    /// Records a run's plan digest and the guard that stopped it (if one did).
    pub async fn set_run_plan(
        &self,
        run_id: i64,
        digest: &str,
        guard: Option<GuardKind>,
    ) -> Result<(), HistoryError> {
        Sql::new("UPDATE runs SET plan_digest = ?, guard = ? WHERE id = ?")
            .bind(digest)
            .bind(guard)
            .bind(run_id)
            .execute(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// `(plan_digest, guard)` of a run.
    pub async fn run_plan(
        &self,
        run_id: i64,
    ) -> Result<(Option<String>, Option<GuardKind>), HistoryError> {
        let row: Option<(Option<String>, Option<GuardKind>)> =
            Sql::new("SELECT plan_digest, guard FROM runs WHERE id = ?")
                .bind(run_id)
                .fetch_optional(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        Ok(row.unwrap_or((None, None)))
    }

    /// `approve RUN_ID`: records an approval of the plan of run `run_id` by `by`, after
    /// checking that a removal guard aborted it and that it has no approval yet.
    pub async fn approve(&self, run_id: i64, by: &str) -> Result<ApprovalRow, ApproveError> {
        let run = self
            .run(run_id)
            .await?
            .ok_or(ApproveError::NoSuchRun(run_id))?;
        if run.status != RunStatus::Aborted {
            return Err(ApproveError::NotAborted {
                id: run_id,
                status: run.status,
            });
        }
        let (_, guard) = self.run_plan(run_id).await?;
        match guard {
            Some(GuardKind::EmptyDesired) => return Err(ApproveError::EmptyDesired { id: run_id }),
            Some(kind) if kind.approvable() => {}
            other => {
                return Err(ApproveError::NotApprovable {
                    id: run_id,
                    why: match other {
                        Some(kind) => format!("guard {kind}"),
                        None => run
                            .error
                            .unwrap_or_else(|| "no guard was recorded for it".into()),
                    },
                })
            }
        }
        if let Some(row) = self.approval_of_run(run_id).await? {
            return Err(ApproveError::AlreadyApproved {
                id: run_id,
                row: Box::new(row),
            });
        }
        let actions = self.planned_actions(run_id).await?;
        let digest = digest::digest(&actions);
        let id = self
            .insert_approval("approve", Some(run_id), by, &digest, actions.len(), None)
            .await;
        match id {
            Ok(id) => Ok(self.approval(id).await?.expect("just written")),
            // Two admins at once: the unique index lets one through.
            Err(e) => match self.approval_of_run(run_id).await? {
                Some(row) => Err(ApproveError::AlreadyApproved {
                    id: run_id,
                    row: Box::new(row),
                }),
                None => Err(e.into()),
            },
        }
    }

    /// Writes a `pending` approval.
    pub async fn insert_approval(
        &self,
        kind: &str,
        run_id: Option<i64>,
        by: &str,
        digest: &str,
        actions: usize,
        plan_file: Option<&str>,
    ) -> Result<i64, HistoryError> {
        Sql::new(
            "INSERT INTO approvals (kind, run_id, approved_by, approved_at, digest, actions, status, plan_file) \
             VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
        )
        .bind(kind)
        .bind(run_id)
        .bind(by)
        .bind(now())
        .bind(digest)
        .bind(actions as i64)
        .bind(plan_file)
        .scalar(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    const APPROVAL_COLUMNS: &'static str = "id, kind, run_id, approved_by, approved_at, digest, \
        actions, status, used_by_run, used_at, detail, plan_file";

    pub async fn approval(&self, id: i64) -> Result<Option<ApprovalRow>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM approvals WHERE id = ?",
            Self::APPROVAL_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// The `approve` approval of run `run_id`, if any.
    pub async fn approval_of_run(&self, run_id: i64) -> Result<Option<ApprovalRow>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM approvals WHERE run_id = ? AND kind = 'approve'",
            Self::APPROVAL_COLUMNS
        ))
        .bind(run_id)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// Approvals written by `approve` and not used or refused yet, oldest first.
    pub async fn pending_approvals(&self) -> Result<Vec<ApprovalRow>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM approvals WHERE status = 'pending' AND kind = 'approve' ORDER BY id",
            Self::APPROVAL_COLUMNS
        ))
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// Marks a pending approval `applied`, `superseded` or `refused` by run `run_id`. False when it was no
    /// longer pending.
    pub async fn consume_approval(
        &self,
        id: i64,
        status: &str,
        run_id: i64,
        detail: Option<&str>,
    ) -> Result<bool, HistoryError> {
        let r = Sql::new(
            "UPDATE approvals SET status = ?, used_by_run = ?, used_at = ?, detail = ? \
             WHERE id = ? AND status = 'pending'",
        )
        .bind(status)
        .bind(run_id)
        .bind(now())
        .bind(detail)
        .bind(id)
        .execute(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(r == 1)
    }

    /// The latest approvals, newest first.
    pub async fn approvals(&self, limit: u32) -> Result<Vec<ApprovalRow>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM approvals ORDER BY id DESC LIMIT ?",
            Self::APPROVAL_COLUMNS
        ))
        .bind(limit as i64)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// Approvals of, or used by, any of `runs`.
    pub async fn approvals_of_runs(&self, runs: &[i64]) -> Result<Vec<ApprovalRow>, HistoryError> {
        let mut out = Vec::new();
        for chunk in runs.chunks(400) {
            let mut q = Sql::new(format!(
                "SELECT {} FROM approvals WHERE run_id IN ",
                Self::APPROVAL_COLUMNS
            ));
            q.push_list(chunk.iter().copied())
                .push(" OR used_by_run IN ")
                .push_list(chunk.iter().copied())
                .push(" ORDER BY id");
            let rows: Vec<ApprovalRow> = q.fetch_all(&self.db).await.map_err(|e| self.err(e))?;
            out.extend(rows);
        }
        out.sort_by_key(|r| r.id);
        out.dedup_by_key(|r| r.id);
        Ok(out)
    }

    /// `trigger`: asks the daemon for a run now. Returns the request's id.
    pub async fn request_run(&self, by: &str) -> Result<i64, HistoryError> {
        Sql::new("INSERT INTO run_requests (requested_at, requested_by) VALUES (?, ?) RETURNING id")
            .bind(now())
            .bind(by)
            .scalar(&self.db)
            .await
            .map_err(|e| self.err(e))
    }

    /// Whether the daemon has taken run request `id`.
    pub async fn run_request_taken(&self, id: i64) -> Result<bool, HistoryError> {
        let taken: Option<Option<String>> =
            Sql::new("SELECT taken_at FROM run_requests WHERE id = ?")
                .bind(id)
                .scalar_optional(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        Ok(matches!(taken, Some(Some(_))))
    }

    /// Takes every waiting run request (the daemon's poller); returns who asked, one name per
    /// request. Requests taken more than 30 days ago are deleted: they are not history, only mail.
    pub async fn take_run_requests(&self) -> Result<Vec<String>, HistoryError> {
        let at = now();
        let by: Vec<String> = Sql::new(
            "UPDATE run_requests SET taken_at = ? WHERE taken_at IS NULL RETURNING requested_by",
        )
        .bind(&at)
        .scalars(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        if !by.is_empty() {
            let cutoff = (chrono::Utc::now() - chrono::Duration::days(30))
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            Sql::new("DELETE FROM run_requests WHERE taken_at < ?")
                .bind(cutoff)
                .execute(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(by)
    }

    /// The daemon's poll, one cheap query on two partial indexes: the newest pending
    /// approval's id, and whether a run request is waiting.
    pub async fn poll_requests(&self) -> Result<(Option<i64>, bool), HistoryError> {
        let (approval, waiting): (Option<i64>, i64) = Sql::new(
            "SELECT (SELECT MAX(id) FROM approvals WHERE status = 'pending' AND kind = 'approve'), \
             CAST(CASE WHEN EXISTS (SELECT 1 FROM run_requests WHERE taken_at IS NULL) THEN 1 ELSE 0 END AS BIGINT)",
        )
        .fetch_one(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok((approval, waiting != 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::backends::history_tests;
    use crate::store::history::{ActionRow, RunRecord};

    async fn aborted_run(h: &History, guard: GuardKind) -> i64 {
        let id = h.start_run("schedule", false).await.unwrap();
        let row = ActionRow {
            email: Some("a@x.edu".into()),
            user_id: 7,
            role: "Admin".into(),
            action: crate::model::change::ChangeKind::Remove,
            outcome: crate::model::change::Outcome::Skipped,
            http_status: None,
            detail: None,
            source: None,
            until: None,
            reason: None,
        };
        h.record_plan(id, &[row], &crate::store::history::PendingUpdate::default())
            .await
            .unwrap();
        let digest = digest::digest(&h.planned_actions(id).await.unwrap());
        h.set_run_plan(id, &digest, Some(guard)).await.unwrap();
        let mut r: RunRecord = h.run(id).await.unwrap().unwrap();
        r.status = RunStatus::Aborted;
        h.finish_run(&r).await.unwrap();
        id
    }

    history_tests! {
        async fn approve_checks_the_run_and_records_once(h: History) {
            assert!(matches!(
                h.approve(9, "alice").await,
                Err(ApproveError::NoSuchRun(9))
            ));
            let empty = aborted_run(&h, GuardKind::EmptyDesired).await;
            assert!(matches!(
                h.approve(empty, "alice").await,
                Err(ApproveError::EmptyDesired { .. })
            ));
            let id = aborted_run(&h, GuardKind::RoleMaxRemovalRatio).await;
            let row = h.approve(id, "alice").await.unwrap();
            assert_eq!(
                (row.status.as_str(), row.actions, row.run_id),
                ("pending", 1, Some(id))
            );
            assert_eq!(
                Some(row.digest.clone()),
                h.run_plan(id).await.unwrap().0,
                "the digest from run_actions equals the one the run recorded"
            );
            let again = h.approve(id, "bob").await.unwrap_err().to_string();
            assert!(
                again.contains("already approved") && again.contains("alice"),
                "{again}"
            );
            assert_eq!(h.poll_requests().await.unwrap(), (Some(row.id), false));
            assert!(h
                .consume_approval(row.id, "applied", id, None)
                .await
                .unwrap());
            assert!(!h
                .consume_approval(row.id, "refused", id, None)
                .await
                .unwrap());
            assert_eq!(h.poll_requests().await.unwrap(), (None, false));
            let r = h.request_run("bob").await.unwrap();
            assert_eq!(h.poll_requests().await.unwrap(), (None, true));
            assert_eq!(h.take_run_requests().await.unwrap().len(), 1);
            assert!(h.run_request_taken(r).await.unwrap());
            assert_eq!(h.approvals_of_runs(&[id]).await.unwrap().len(), 1);
        }
    }

    history_tests! {
        async fn pruning_keeps_the_approvals_consistent(h: History) {
            use crate::input::config::RetentionConfig;
            use crate::store::history::Clock;
            use chrono::TimeZone;
            let start = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let clock = Clock::manual(start);
            let h = h.with_clock(clock.clone());
            let aborted = aborted_run(&h, GuardKind::MaxRemovals).await;
            let approval = h.approve(aborted, "alice").await.unwrap();
            // The source was fixed instead: a run with nothing to do refuses the approval.
            let noop = h.start_run("manual", false).await.unwrap();
            h.consume_approval(approval.id, "refused", noop, Some("the plan changed"))
                .await
                .unwrap();
            h.finish_run(&RunRecord {
                id: noop,
                status: RunStatus::Succeeded,
                ..Default::default()
            })
            .await
            .unwrap();
            // The newest run, still running, the next day (a day with a run still running
            // keeps its runs).
            clock.set(start + chrono::Duration::days(1));
            h.start_run("schedule", false).await.unwrap();
            clock.set(start + chrono::Duration::days(3));
            let day = std::time::Duration::from_secs(86400);
            let keep = RetentionConfig {
                keep_noop_runs: day,
                keep_changes: None,
            };
            assert_eq!(
                h.prune(&keep).await.unwrap().noop_runs,
                0,
                "it used an approval"
            );
            assert!(h.run(noop).await.unwrap().is_some());
            let drop_changes = RetentionConfig {
                keep_changes: Some(day),
                ..keep
            };
            assert_eq!(h.prune(&drop_changes).await.unwrap().change_runs, 2);
            assert_eq!(h.approvals(10).await.unwrap(), vec![]);
        }
    }
}
