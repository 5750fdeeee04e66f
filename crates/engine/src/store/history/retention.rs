//! Retention: old runs that changed nothing become one row per day; the space is reclaimed
//! while the daemon runs.
//!
//! A run that succeeded without planning a change tells nothing a day's summary does not
//! (`run_days`: runs, requests, retries, durations). Once older than `history.keep_noop_runs`
//! it is folded into its day and deleted. Every other run (a change, a failure, an abort, an
//! interrupted run) is kept for `history.keep_changes`, forever by default. The newest run and
//! the last full verification are never pruned (the next run reads them). Pages freed go back
//! to the file system with `PRAGMA incremental_vacuum` (the file is in incremental auto-vacuum
//! mode when created by this version; an older file needs one `VACUUM`, docs/operations.md).

use super::clock::text;
use super::db::{greater, seconds_between, smaller, Dialect, Sql};
use super::{History, HistoryError};
use crate::input::config::RetentionConfig;

/// Runs deleted per transaction: short transactions keep the daemon's own writes flowing.
const RUNS_PER_PASS: i64 = 5_000;

/// What a prune did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    /// No-op runs folded into `run_days`.
    pub noop_runs: u64,
    /// Runs with changes (and their actions) older than `keep_changes`.
    pub change_runs: u64,
    /// Pending spans no remaining run refers to.
    pub spans: u64,
}

/// The runs a prune must never delete: the newest, and the last completed full verification.
const KEPT: &str = "id NOT IN (SELECT MAX(id) FROM runs) \
    AND id IS DISTINCT FROM (SELECT MAX(id) FROM runs WHERE verification = 'full' \
                   AND status IN ('succeeded', 'partial', 'aborted'))";

impl History {
    /// Applies `retention` as of this history's clock, then returns freed pages to the disk.
    pub async fn prune(&self, retention: &RetentionConfig) -> Result<Pruned, HistoryError> {
        let now = self.clock.now();
        let age = |d: std::time::Duration| {
            text(now - chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX / 2))
        };
        let mut pruned = Pruned::default();
        let noop_before = age(retention.keep_noop_runs);
        loop {
            let n = self.fold_noop_runs(&noop_before).await?;
            pruned.noop_runs += n;
            if n < RUNS_PER_PASS as u64 {
                break;
            }
        }
        if let Some(keep) = retention.keep_changes {
            let before = age(keep);
            loop {
                let n = self.delete_old_runs(&before).await?;
                pruned.change_runs += n;
                if n < RUNS_PER_PASS as u64 {
                    break;
                }
            }
        }
        if pruned.noop_runs + pruned.change_runs > 0 {
            pruned.spans = Sql::new(
                "DELETE FROM pending_spans WHERE ended_run_id IS NOT NULL AND NOT EXISTS \
                 (SELECT 1 FROM runs r WHERE r.id >= pending_spans.first_run_id \
                  AND r.id < pending_spans.ended_run_id AND r.plan_recorded = TRUE)",
            )
            .execute(&self.db)
            .await
            .map_err(|e| self.err(e))?;
            // Gives the freed pages back; a no-op on a file not in incremental mode.
            // (PostgreSQL's autovacuum does this by itself.)
            if self.db.dialect() == Dialect::Sqlite {
                Sql::new("PRAGMA incremental_vacuum")
                    .execute(&self.db)
                    .await
                    .map_err(|e| self.err(e))?;
            }
        }
        Ok(pruned)
    }

    async fn fold_noop_runs(&self, before: &str) -> Result<u64, HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        let which = format!(
            "SELECT id FROM runs WHERE status = 'succeeded' AND adds_planned = 0 \
             AND removes_planned = 0 AND failed = 0 AND error IS NULL AND started_at < ? AND {KEPT} \
             AND NOT EXISTS (SELECT 1 FROM run_actions a WHERE a.run_id = runs.id) \
             AND NOT EXISTS (SELECT 1 FROM approvals p WHERE p.used_by_run = runs.id) \
             ORDER BY id LIMIT {RUNS_PER_PASS}"
        );
        Sql::new("CREATE TEMP TABLE IF NOT EXISTS prune_ids (id BIGINT PRIMARY KEY)")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        Sql::new("DELETE FROM prune_ids")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        Sql::new(format!("INSERT INTO prune_ids {which}"))
            .bind(before)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        let seconds = seconds_between(self.db.dialect(), "finished_at", "started_at");
        // The existing row is named by its table (`run_days.runs`): PostgreSQL finds a bare
        // `runs` ambiguous beside `excluded.runs`.
        Sql::new(format!(
            "INSERT INTO run_days (day, runs, succeeded, dry_runs, api_requests, retries, throttled, \
             pending_max, seconds_total, seconds_max, first_run_id, last_run_id) \
             SELECT substr(started_at, 1, 10), COUNT(*), COUNT(*), \
             SUM(CASE WHEN dry_run THEN 1 ELSE 0 END), SUM(api_requests), \
             SUM(retries), SUM(throttled), MAX(pending), \
             SUM(COALESCE({seconds}, 0)), MAX(COALESCE({seconds}, 0)), \
             MIN(id), MAX(id) \
             FROM runs WHERE id IN (SELECT id FROM prune_ids) GROUP BY substr(started_at, 1, 10) \
             ON CONFLICT (day) DO UPDATE SET runs = run_days.runs + excluded.runs, \
             succeeded = run_days.succeeded + excluded.succeeded, \
             dry_runs = run_days.dry_runs + excluded.dry_runs, \
             api_requests = run_days.api_requests + excluded.api_requests, \
             retries = run_days.retries + excluded.retries, \
             throttled = run_days.throttled + excluded.throttled, \
             pending_max = {pending_max}, \
             seconds_total = run_days.seconds_total + excluded.seconds_total, \
             seconds_max = {seconds_max}, \
             first_run_id = {first_run_id}, \
             last_run_id = {last_run_id}",
            pending_max = greater("run_days.pending_max", "excluded.pending_max"),
            seconds_max = greater("run_days.seconds_max", "excluded.seconds_max"),
            first_run_id = smaller("run_days.first_run_id", "excluded.first_run_id"),
            last_run_id = greater("run_days.last_run_id", "excluded.last_run_id"),
        ))
        .execute(&mut tx)
        .await
        .map_err(|e| self.err(e))?;
        let n = Sql::new("DELETE FROM runs WHERE id IN (SELECT id FROM prune_ids)")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Runs older than `keep_changes`, except on a day that still has a run `running`: when
    /// that run ends its day is recounted from the runs there (`day_totals.rs`), which must
    /// still include these.
    async fn delete_old_runs(&self, before: &str) -> Result<u64, HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        let ids: Vec<i64> = Sql::new(format!(
            "SELECT id FROM runs WHERE status != 'running' AND started_at < ? AND {KEPT} \
             AND substr(started_at, 1, 10) NOT IN \
               (SELECT substr(started_at, 1, 10) FROM runs WHERE status = 'running') \
             ORDER BY id LIMIT {RUNS_PER_PASS}"
        ))
        .bind(before)
        .scalars(&mut tx)
        .await
        .map_err(|e| self.err(e))?;
        for id in &ids {
            // An approval goes with the run it approved; a run that used one is forgotten by it.
            for sql in [
                "DELETE FROM run_actions WHERE run_id = ?",
                "DELETE FROM approvals WHERE run_id = ?1",
                "UPDATE approvals SET used_by_run = NULL WHERE used_by_run = ?1",
                "DELETE FROM runs WHERE id = ?",
            ] {
                Sql::new(sql)
                    .bind(id)
                    .execute(&mut tx)
                    .await
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(ids.len() as u64)
    }

    /// Folds the WAL back into the file (what an idle daemon's file looks like on disk).
    /// PostgreSQL's own checkpoints need nothing from us.
    pub async fn checkpoint(&self) -> Result<(), HistoryError> {
        if self.db.dialect() == Dialect::Sqlite {
            Sql::new("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// The history's size in bytes and how much of it is free: a SQLite file's pages in use
    /// and free; a PostgreSQL schema's tables with their indexes and TOAST (free space there
    /// is PostgreSQL's to reuse, not reported).
    pub async fn size(&self) -> Result<(u64, u64), HistoryError> {
        if self.db.dialect() == Dialect::Postgres {
            let bytes: i64 = Sql::new(
                "SELECT CAST(COALESCE(SUM(pg_total_relation_size(c.oid)), 0) AS BIGINT) \
                 FROM pg_class c WHERE c.relnamespace = CAST(current_schema() AS regnamespace) \
                 AND c.relkind = 'r'",
            )
            .scalar(&self.db)
            .await
            .map_err(|e| self.err(e))?;
            return Ok((bytes.max(0) as u64, 0));
        }
        let pages: i64 = Sql::new("PRAGMA page_count")
            .scalar(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        let size: i64 = Sql::new("PRAGMA page_size")
            .scalar(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        let free: i64 = Sql::new("PRAGMA freelist_count")
            .scalar(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(((pages * size) as u64, (free * size) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Clock, PendingUpdate, RunRecord};
    use super::*;
    use crate::model::run_status::RunStatus;
    use crate::store::history::backends::history_tests;
    use chrono::TimeZone;
    use std::time::Duration;

    history_tests! {
        async fn old_noop_runs_become_days_and_changes_stay(h: History) {
            let start = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let clock = Clock::manual(start);
            let h = h.with_clock(clock.clone());
            if h.db.dialect() == Dialect::Sqlite {
                let auto: i64 = Sql::new("PRAGMA auto_vacuum").scalar(&h.db).await.unwrap();
                assert_eq!(auto, 2, "a new file is in incremental auto-vacuum mode");
            }
            let mut ids = Vec::new();
            for i in 0..96 * 3 {
                clock.set(start + chrono::Duration::minutes(15 * i));
                let id = h.start_run("schedule", false).await.unwrap();
                h.record_plan(id, &[], &PendingUpdate::default())
                    .await
                    .unwrap();
                let changed = i == 10;
                h.finish_run(&RunRecord {
                    id,
                    status: if i == 20 {
                        RunStatus::Failed
                    } else {
                        RunStatus::Succeeded
                    },
                    adds_planned: i64::from(changed),
                    api_requests: 3,
                    ..Default::default()
                })
                .await
                .unwrap();
                ids.push(id);
            }
            let keep = RetentionConfig {
                keep_noop_runs: Duration::from_secs(86400),
                keep_changes: None,
            };
            clock.set(start + chrono::Duration::days(3));
            let pruned = h.prune(&keep).await.unwrap();
            // Two days older than a day, less the run with a change and the failed one.
            assert_eq!(pruned.noop_runs, 96 * 2 - 2);
            assert!(h.run(ids[10]).await.unwrap().is_some());
            assert!(h.run(ids[20]).await.unwrap().is_some());
            let days: Vec<(String, i64, i64)> =
                Sql::new("SELECT day, runs, api_requests FROM run_days ORDER BY day")
                    .fetch_all(&h.db)
                    .await
                    .unwrap();
            assert_eq!(
                days,
                [
                    ("2026-01-01".into(), 94, 94 * 3),
                    ("2026-01-02".into(), 96, 96 * 3)
                ]
            );
            assert_eq!(h.prune(&keep).await.unwrap(), Pruned::default());
            let forever_but = RetentionConfig {
                keep_changes: Some(Duration::from_secs(86400)),
                ..keep
            };
            assert_eq!(h.prune(&forever_but).await.unwrap().change_runs, 2);
        }
    }
}
