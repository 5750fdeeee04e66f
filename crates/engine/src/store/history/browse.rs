//! Reading the history page by page (the console): runs filtered by status, trigger and
//! time, their count, and what is known of the OAuth tokens without reading them. (The
//! charts' totals per day are `day_totals.rs`.)
//!
//! Every query is bounded by the caller's page size or date range and walks an index
//! (`runs_started_at`, `runs_status`, the primary key), so a year of runs costs no more per
//! page than a week.

use super::db::Sql;
use super::{History, HistoryError, RunRecord};
use crate::model::run_status::RunStatus;

/// Which runs to list. Times are compared as the history writes them (RFC 3339 UTC).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub trigger: Option<String>,
    /// Started at or after.
    pub from: Option<String>,
    /// Started before.
    pub to: Option<String>,
    /// Only runs that planned or failed a change, or did not succeed (the console's default).
    pub changes_only: bool,
}

/// The runs [`RunFilter::changes_only`] keeps: the condition of the `runs_changes` index
/// (migration 0008), word for word, so that SQLite walks that index.
const CHANGES: &str = " AND (adds_planned + removes_planned + failed > 0 OR status <> 'succeeded')";

/// What the history knows of the OAuth tokens, without the tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthRecord {
    pub client_id: String,
    pub access_expires_at: Option<String>,
    pub updated_at: String,
}

fn push_filter(q: &mut Sql, f: &RunFilter) {
    q.push(" WHERE 1 = 1");
    if let Some(s) = &f.status {
        q.push(" AND status = ").push_bind(*s);
    }
    if let Some(t) = &f.trigger {
        q.push(" AND trigger = ").push_bind(t.clone());
    }
    if let Some(from) = &f.from {
        q.push(" AND started_at >= ").push_bind(from.clone());
    }
    if let Some(to) = &f.to {
        q.push(" AND started_at < ").push_bind(to.clone());
    }
    if f.changes_only {
        q.push(CHANGES);
    }
}

impl History {
    /// Runs matching `filter`, newest first, `limit` of them after skipping `offset`.
    pub async fn runs_filtered(
        &self,
        filter: &RunFilter,
        offset: u32,
        limit: u32,
    ) -> Result<Vec<RunRecord>, HistoryError> {
        let mut q = Sql::new(format!("SELECT {} FROM runs", Self::RUN_COLUMNS));
        push_filter(&mut q, filter);
        q.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(limit))
            .push(" OFFSET ")
            .push_bind(i64::from(offset));
        q.fetch_all(&self.db).await.map_err(|e| self.err(e))
    }

    /// How many runs match `filter`.
    pub async fn count_runs(&self, filter: &RunFilter) -> Result<i64, HistoryError> {
        let mut q = Sql::new("SELECT COUNT(*) FROM runs");
        push_filter(&mut q, filter);
        q.scalar(&self.db).await.map_err(|e| self.err(e))
    }

    /// How many of the runs `filter` asks for were folded into daily totals by retention
    /// (`run_days`, `history.keep_noop_runs`) and so are not in [`History::count_runs`]: the
    /// runs of the days that start in its range. Folded runs succeeded and changed nothing,
    /// and their trigger was not kept: `changes_only`, another status, or a trigger gives 0
    /// (as the charts leave them out for a trigger).
    pub async fn count_folded_runs(&self, filter: &RunFilter) -> Result<i64, HistoryError> {
        if filter.changes_only
            || filter.trigger.is_some()
            || filter.status.is_some_and(|s| s != RunStatus::Succeeded)
        {
            return Ok(0);
        }
        // A day's first instant, written as the history writes times, is in the range.
        let mut q =
            Sql::new("SELECT CAST(COALESCE(SUM(runs), 0) AS BIGINT) FROM run_days WHERE 1 = 1");
        if let Some(from) = &filter.from {
            q.push(" AND day || 'T00:00:00.000Z' >= ")
                .push_bind(from.clone());
        }
        if let Some(to) = &filter.to {
            q.push(" AND day || 'T00:00:00.000Z' < ")
                .push_bind(to.clone());
        }
        q.scalar(&self.db).await.map_err(|e| self.err(e))
    }

    /// The newest run that was not a dry run, and the newest aborted one (a tripped guard).
    pub async fn latest_real_runs(
        &self,
    ) -> Result<(Option<RunRecord>, Option<RunRecord>), HistoryError> {
        let latest = Sql::new(format!(
            "SELECT {} FROM runs WHERE dry_run = FALSE ORDER BY id DESC LIMIT 1",
            Self::RUN_COLUMNS
        ))
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let aborted = Sql::new(format!(
            "SELECT {} FROM runs WHERE status = 'aborted' AND dry_run = FALSE ORDER BY id DESC LIMIT 1",
            Self::RUN_COLUMNS
        ))
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok((latest, aborted))
    }

    /// The stored OAuth lineages: client, access-token expiry, last rotation. Never a token.
    pub async fn auth_records(&self) -> Result<Vec<AuthRecord>, HistoryError> {
        let rows: Vec<(String, Option<String>, String)> = Sql::new(
            "SELECT client_id, expires_at, updated_at FROM oauth_tokens ORDER BY client_id",
        )
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .map(|(client_id, access_expires_at, updated_at)| AuthRecord {
                client_id,
                access_expires_at,
                updated_at,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::backends::history_tests;

    history_tests! {
        async fn filters_and_pages(h: History) {
            for (i, (trigger, status, day)) in [
                ("startup", RunStatus::Succeeded, "2025-03-01"),
                ("schedule", RunStatus::Aborted, "2025-03-01"),
                ("schedule", RunStatus::Succeeded, "2025-03-02"),
                ("manual", RunStatus::Partial, "2025-03-03"),
            ]
            .into_iter()
            .enumerate()
            {
                let id = h.start_run(trigger, false).await.unwrap();
                let run = RunRecord {
                    id,
                    status,
                    adds_applied: i as i64,
                    failed: (status == RunStatus::Partial) as i64,
                    pending: 3,
                    ..Default::default()
                };
                h.finish_run(&run).await.unwrap();
                Sql::new("UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?")
                    .bind(format!("{day}T10:00:00.000Z"))
                    .bind(format!("{day}T10:00:02.000Z"))
                    .bind(id)
                    .execute(&h.db)
                    .await
                    .unwrap();
            }
            let ids = |runs: Vec<RunRecord>| runs.iter().map(|r| r.id).collect::<Vec<_>>();
            let all = RunFilter::default();
            assert_eq!(
                ids(h.runs_filtered(&all, 0, 10).await.unwrap()),
                [4, 3, 2, 1]
            );
            assert_eq!(ids(h.runs_filtered(&all, 1, 2).await.unwrap()), [3, 2]);
            let scheduled = RunFilter {
                trigger: Some("schedule".into()),
                ..Default::default()
            };
            assert_eq!(h.count_runs(&scheduled).await.unwrap(), 2);
            let march_2 = RunFilter {
                from: Some("2025-03-02".into()),
                to: Some("2025-03-03".into()),
                ..Default::default()
            };
            assert_eq!(ids(h.runs_filtered(&march_2, 0, 10).await.unwrap()), [3]);
            let aborted = RunFilter {
                status: Some(RunStatus::Aborted),
                ..Default::default()
            };
            assert_eq!(ids(h.runs_filtered(&aborted, 0, 10).await.unwrap()), [2]);
            let (latest, tripped) = h.latest_real_runs().await.unwrap();
            assert_eq!((latest.unwrap().id, tripped.unwrap().id), (4, 2));
            assert!(h.auth_records().await.unwrap().is_empty());
        }

        async fn folded_runs_are_counted_by_the_days_in_range(h: History) {
            let all = RunFilter::default();
            assert_eq!(h.count_folded_runs(&all).await.unwrap(), 0, "nothing folded yet");
            for (day, runs) in [("2025-03-01", 90), ("2025-03-02", 95), ("2025-03-04", 3)] {
                Sql::new(
                    "INSERT INTO run_days (day, runs, succeeded, dry_runs, api_requests, retries, \
                     throttled, pending_max, seconds_total, seconds_max, first_run_id, \
                     last_run_id) VALUES (?, ?, ?, 0, 0, 0, 0, 0, 0, 0, 1, 1)",
                )
                .bind(day)
                .bind(runs)
                .bind(runs)
                .execute(&h.db)
                .await
                .unwrap();
            }
            let h = &h;
            let count = |f: RunFilter| async move { h.count_folded_runs(&f).await.unwrap() };
            assert_eq!(count(all.clone()).await, 188);
            // The console's range: from a day's midnight to the midnight after the last day.
            let march_2_to_3 = RunFilter {
                from: Some("2025-03-02T00:00:00.000Z".into()),
                to: Some("2025-03-04T00:00:00.000Z".into()),
                ..Default::default()
            };
            assert_eq!(count(march_2_to_3.clone()).await, 95);
            let since_noon = RunFilter {
                from: Some("2025-03-01T12:00:00.000Z".into()),
                ..Default::default()
            };
            assert_eq!(count(since_noon).await, 98, "a day counts from its start");
            for not_folded in [
                RunFilter { changes_only: true, ..march_2_to_3.clone() },
                RunFilter { status: Some(RunStatus::Failed), ..march_2_to_3.clone() },
                RunFilter { trigger: Some("schedule".into()), ..march_2_to_3.clone() },
            ] {
                assert_eq!(count(not_folded.clone()).await, 0, "{not_folded:?}");
            }
            let succeeded = RunFilter { status: Some(RunStatus::Succeeded), ..march_2_to_3 };
            assert_eq!(count(succeeded).await, 95);
        }
    }
}
