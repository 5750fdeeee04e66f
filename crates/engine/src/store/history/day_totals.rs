//! The day totals the console's charts draw (`run_day_totals`, migration 0014): the runs
//! that were not dry runs, summed by the day they started, their end and their trigger.
//!
//! Why a table of its own: a chart of a year read from `runs` aggregates every run of the
//! year (35,040 at a 15-minute schedule), and loses the days that retention folded into
//! `run_days`. The totals are a few rows a day whatever the schedule, and they outlive
//! retention.
//!
//! Why recounted, not added to: the day of a run is recounted from `runs` and `run_days` in
//! the transaction that ends the run ([`History::recount_run_day`]), so the totals are always
//! a function of the runs they sum. Recording a run's end twice, or an end written by
//! another path (an interrupted run), cannot count it twice. [`History::recount_days`] does
//! the same for a range, after runs were rewritten outside the engine.

use super::db::{seconds_between, HistoryRow, Sql, Tx};
use super::{History, HistoryError};
use crate::model::run_status::RunStatus;
use chrono::NaiveDate;
use serde::Serialize;

/// One day of runs that changed or could have changed Studio (dry runs left out).
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DayStats {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub runs: i64,
    pub adds: i64,
    pub removes: i64,
    pub failed: i64,
    /// The most emails left alone by one run that day (runs that read Studio and finished).
    pub pending_max: i64,
    /// Runs that failed, were stopped by a guard or interrupted: drawn as marks, never as
    /// zero seconds or zero pending.
    pub bad_runs: i64,
    /// Run durations that day, in seconds (runs that succeeded or were partial).
    pub duration_avg: f64,
    pub duration_max: f64,
}

/// Runs whose duration and pending count mean something: they read Studio and finished.
const COMPLETED: &str = "status IN ('succeeded', 'partial')";
/// Runs drawn as a dark mark under the axis.
const BAD: &str = "status IN ('failed', 'aborted', 'interrupted')";

fn day_text(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

impl History {
    /// Totals per day, `first ..= last` (UTC days), of the runs (not dry runs) with `status`
    /// and `trigger` when given (the console's table filter), oldest day first. Days without
    /// runs are absent. Runs folded before the totals existed have no trigger: a `trigger`
    /// filter leaves them out.
    pub async fn day_stats(
        &self,
        first: NaiveDate,
        last: NaiveDate,
        status: Option<RunStatus>,
        trigger: Option<&str>,
    ) -> Result<Vec<DayStats>, HistoryError> {
        let rows = Sql::new(format!(
            "SELECT day, CAST(SUM(runs) AS BIGINT), CAST(SUM(adds_applied) AS BIGINT), \
             CAST(SUM(removes_applied) AS BIGINT), CAST(SUM(failed) AS BIGINT), \
             MAX(CASE WHEN {COMPLETED} THEN pending_max END), \
             SUM(CASE WHEN {COMPLETED} THEN seconds_total END) \
               / SUM(CASE WHEN {COMPLETED} THEN runs END), \
             MAX(CASE WHEN {COMPLETED} THEN seconds_max END), \
             CAST(SUM(CASE WHEN {BAD} THEN runs ELSE 0 END) AS BIGINT) \
             FROM run_day_totals WHERE day >= ?1 AND day <= ?2 \
               AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR trigger = ?4) \
             GROUP BY day ORDER BY day",
        ))
        .bind(day_text(first))
        .bind(day_text(last))
        .bind(status.map(|s| s.as_str()))
        .bind(trigger)
        .fetch_rows(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let get = |r: &HistoryRow| -> Result<DayStats, sqlx::Error> {
            Ok(DayStats {
                day: r.try_get(0)?,
                runs: r.try_get(1)?,
                adds: r.try_get(2)?,
                removes: r.try_get(3)?,
                failed: r.try_get(4)?,
                pending_max: r.try_get::<Option<i64>>(5)?.unwrap_or(0),
                duration_avg: r.try_get::<Option<f64>>(6)?.unwrap_or(0.0),
                duration_max: r.try_get::<Option<f64>>(7)?.unwrap_or(0.0),
                bad_runs: r.try_get(8)?,
            })
        };
        rows.iter()
            .map(get)
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))
    }

    /// Recounts the totals of the days `first ..= last` from the runs and folded days there.
    /// The engine keeps them current by itself; this is for runs whose times were rewritten
    /// outside it (a benchmark spreading generated runs over a year).
    pub async fn recount_days(
        &self,
        first: NaiveDate,
        last: NaiveDate,
    ) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        self.recount(&mut tx, &day_text(first), &day_text(last))
            .await?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Recounts the day run `run_id` started on, inside the transaction that ends it.
    pub(crate) async fn recount_run_day(
        &self,
        tx: &mut Tx,
        run_id: i64,
    ) -> Result<(), HistoryError> {
        let day: Option<String> =
            Sql::new("SELECT substr(started_at, 1, 10) FROM runs WHERE id = ?")
                .bind(run_id)
                .scalars(&mut *tx)
                .await
                .map_err(|e| self.err(e))?
                .into_iter()
                .next();
        match day {
            Some(day) => self.recount(tx, &day, &day).await,
            None => Ok(()),
        }
    }

    /// One DELETE and one INSERT: the INSERT reads `runs` and `run_days` in one statement,
    /// so a fold committing beside it cannot make a run counted twice or not at all.
    async fn recount(&self, tx: &mut Tx, first: &str, last: &str) -> Result<(), HistoryError> {
        Sql::new("DELETE FROM run_day_totals WHERE day >= ?1 AND day <= ?2")
            .bind(first)
            .bind(last)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.err(e))?;
        let seconds = seconds_between(self.db.dialect(), "finished_at", "started_at");
        // `started_at` sorts as text: the days `first ..= last` are the times from `first`
        // up to the day after `last` (any text after `last` and its times: "~" sorts last).
        Sql::new(format!(
            "INSERT INTO run_day_totals (day, status, trigger, runs, adds_applied, \
               removes_applied, failed, pending_max, seconds_total, seconds_max) \
             SELECT substr(started_at, 1, 10), status, trigger, COUNT(*), SUM(adds_applied), \
               SUM(removes_applied), SUM(failed), MAX(pending), SUM(COALESCE({seconds}, 0)), \
               MAX({seconds}) \
             FROM runs WHERE started_at >= ?1 AND started_at < ?2 || '~' \
               AND dry_run = FALSE AND status <> 'running' \
             GROUP BY substr(started_at, 1, 10), status, trigger \
             UNION ALL \
             SELECT day, 'succeeded', '', runs - dry_runs, 0, 0, 0, pending_max, \
               seconds_total * (runs - dry_runs) / runs, seconds_max \
             FROM run_days WHERE day >= ?1 AND day <= ?2 AND runs > dry_runs"
        ))
        .bind(first)
        .bind(last)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Clock, PendingUpdate, RunRecord};
    use super::*;
    use crate::input::config::RetentionConfig;
    use crate::store::history::backends::history_tests;
    use crate::store::history::db::Dialect;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    fn day(d: &str) -> NaiveDate {
        NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()
    }

    /// Three days of 15-minute runs from 2026-01-01, each 2 s long: a change at run 10, a
    /// failure at 20, a partial run by hand at 30, a dry run at 40; the rest change nothing.
    async fn three_days(h: &History, clock: &Clock) {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        for i in 0..96 * 3 {
            let at = start + chrono::Duration::minutes(15 * i);
            clock.set(at);
            let trigger = if i == 30 { "manual" } else { "schedule" };
            let id = h.start_run(trigger, i == 40).await.unwrap();
            h.record_plan(id, &[], &PendingUpdate::default())
                .await
                .unwrap();
            clock.set(at + chrono::Duration::seconds(2));
            let status = match i {
                20 => RunStatus::Failed,
                30 => RunStatus::Partial,
                _ => RunStatus::Succeeded,
            };
            h.finish_run(&RunRecord {
                id,
                status,
                adds_planned: i64::from(i == 10),
                adds_applied: i64::from(i == 10),
                failed: i64::from(i == 30),
                pending: if i < 96 { 4 } else { 2 },
                ..Default::default()
            })
            .await
            .unwrap();
        }
    }

    history_tests! {
        async fn every_run_that_applied_is_counted_on_its_day(h: History) {
            let clock = Clock::manual(Utc::now());
            let h = h.with_clock(clock.clone());
            three_days(&h, &clock).await;
            let days = h
                .day_stats(day("2025-12-31"), day("2026-01-05"), None, None)
                .await
                .unwrap();
            let seen: Vec<_> = days
                .iter()
                .map(|d| (d.day.as_str(), d.runs, d.adds, d.failed, d.bad_runs, d.pending_max))
                .collect();
            // The dry run (40) is left out; the failed run (20) is a bad run.
            assert_eq!(
                seen,
                [
                    ("2026-01-01", 95, 1, 1, 1, 4),
                    ("2026-01-02", 96, 0, 0, 0, 2),
                    ("2026-01-03", 96, 0, 0, 0, 2),
                ]
            );
            assert!((days[0].duration_avg - 2.0).abs() < 0.01, "{days:?}");
            assert!((days[0].duration_max - 2.0).abs() < 0.01, "{days:?}");
            // The charts follow the table's filter.
            let manual = h
                .day_stats(day("2026-01-01"), day("2026-01-03"), None, Some("manual"))
                .await
                .unwrap();
            assert_eq!((manual.len(), manual[0].runs, manual[0].failed), (1, 1, 1));
            let partial = h
                .day_stats(day("2026-01-01"), day("2026-01-03"), Some(RunStatus::Partial), None)
                .await
                .unwrap();
            assert_eq!(partial.iter().map(|d| d.runs).sum::<i64>(), 1);
            // A range is of whole days, both ends included.
            let second = h
                .day_stats(day("2026-01-02"), day("2026-01-02"), None, None)
                .await
                .unwrap();
            assert_eq!(second.len(), 1);
        }

        async fn folded_runs_stay_on_the_charts(h: History) {
            let clock = Clock::manual(Utc::now());
            let h = h.with_clock(clock.clone());
            three_days(&h, &clock).await;
            let range = (day("2026-01-01"), day("2026-01-03"));
            let before = h.day_stats(range.0, range.1, None, None).await.unwrap();
            clock.set(Utc.with_ymd_and_hms(2026, 1, 4, 0, 0, 0).unwrap());
            let keep = RetentionConfig {
                keep_noop_runs: Duration::from_secs(86400),
                keep_changes: Some(Duration::from_secs(86400)),
            };
            let pruned = h.prune(&keep).await.unwrap();
            assert!(pruned.noop_runs > 180 && pruned.change_runs > 0, "{pruned:?}");
            // The runs are gone from `runs`; their days are drawn as they were.
            assert_eq!(h.day_stats(range.0, range.1, None, None).await.unwrap(), before);
        }

        async fn a_day_with_a_run_still_running_keeps_its_runs_until_it_ends(h: History) {
            let start = Utc.with_ymd_and_hms(2026, 1, 1, 8, 0, 0).unwrap();
            let clock = Clock::manual(start);
            let h = h.with_clock(clock.clone());
            // A run left `running` (its process died), then one that failed, the same day.
            let stuck = h.start_run("schedule", false).await.unwrap();
            clock.set(start + chrono::Duration::hours(1));
            let failed = h.start_run("schedule", false).await.unwrap();
            h.finish_run(&RunRecord { id: failed, status: RunStatus::Failed, ..Default::default() })
                .await
                .unwrap();
            // The newest run (never pruned) on a later day.
            clock.set(start + chrono::Duration::days(9));
            let newest = h.start_run("schedule", false).await.unwrap();
            h.finish_run(&RunRecord { id: newest, status: RunStatus::Succeeded, ..Default::default() })
                .await
                .unwrap();
            clock.set(start + chrono::Duration::days(10));
            let keep = RetentionConfig {
                keep_noop_runs: Duration::from_secs(86400),
                keep_changes: Some(Duration::from_secs(86400)),
            };
            // The failed run stays while its day has a run that may still end.
            assert_eq!(h.prune(&keep).await.unwrap().change_runs, 0);
            h.mark_interrupted().await.unwrap();
            let day_one = (day("2026-01-01"), day("2026-01-01"));
            let counted = h.day_stats(day_one.0, day_one.1, None, None).await.unwrap();
            assert_eq!((counted[0].runs, counted[0].bad_runs), (2, 2));
            // Once it has ended, the day may go, and its totals stay.
            assert!(h.prune(&keep).await.unwrap().change_runs >= 1);
            assert!(h.run(failed).await.unwrap().is_none());
            assert_eq!(h.day_stats(day_one.0, day_one.1, None, None).await.unwrap(), counted);
            let _ = stuck;
        }

        async fn a_run_is_counted_once_whoever_writes_its_end(h: History) {
            let today = Utc::now().date_naive();
            let id = h.start_run("schedule", false).await.unwrap();
            let run = RunRecord {
                id,
                status: RunStatus::Succeeded,
                adds_applied: 2,
                ..Default::default()
            };
            h.finish_run(&run).await.unwrap();
            h.finish_run(&run).await.unwrap();
            let days = h.day_stats(today, today, None, None).await.unwrap();
            assert_eq!((days[0].runs, days[0].adds), (1, 2));
            // A run left `running` is not counted until something ends it.
            h.start_run("schedule", false).await.unwrap();
            let days = h.day_stats(today, today, None, None).await.unwrap();
            assert_eq!((days[0].runs, days[0].bad_runs), (1, 0));
            assert_eq!(h.mark_interrupted().await.unwrap(), 1);
            let days = h.day_stats(today, today, None, None).await.unwrap();
            assert_eq!((days[0].runs, days[0].bad_runs), (2, 1));
        }

        async fn recount_follows_rewritten_times(h: History) {
            let id = h.start_run("schedule", false).await.unwrap();
            h.finish_run(&RunRecord { id, status: RunStatus::Aborted, ..Default::default() })
                .await
                .unwrap();
            Sql::new("UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?")
                .bind("2025-03-01T23:59:59.000Z")
                .bind("2025-03-02T00:00:02.000Z")
                .bind(id)
                .execute(&h.db)
                .await
                .unwrap();
            let today = Utc::now().date_naive();
            h.recount_days(day("2025-03-01"), today).await.unwrap();
            let days = h.day_stats(day("2025-01-01"), today, None, None).await.unwrap();
            assert_eq!(days.len(), 1, "moved off today: {days:?}");
            assert_eq!((days[0].day.as_str(), days[0].bad_runs), ("2025-03-01", 1));
        }

        async fn the_migration_counts_as_the_engine_does(h: History) {
            // Runs kept and runs folded, as an older history has them.
            let clock = Clock::manual(Utc::now());
            let h = h.with_clock(clock.clone());
            three_days(&h, &clock).await;
            clock.set(Utc.with_ymd_and_hms(2026, 1, 3, 0, 0, 0).unwrap());
            let keep = RetentionConfig {
                keep_noop_runs: Duration::from_secs(86400),
                keep_changes: None,
            };
            h.prune(&keep).await.unwrap();
            let range = (day("2026-01-01"), day("2026-01-03"));
            let engine = h.day_stats(range.0, range.1, None, None).await.unwrap();
            // The migration's own statement, run on the same rows.
            let migration = match h.db.dialect() {
                Dialect::Sqlite => include_str!("../../../../../migrations/0014_run_day_totals.sql"),
                Dialect::Postgres => {
                    include_str!("../../../../../migrations/postgres/0003_run_day_totals.sql")
                }
            };
            let backfill = &migration[migration.find("INSERT INTO run_day_totals").unwrap()..];
            Sql::new("DELETE FROM run_day_totals").execute(&h.db).await.unwrap();
            Sql::new(backfill.trim().trim_end_matches(';')).execute(&h.db).await.unwrap();
            let migrated = h.day_stats(range.0, range.1, None, None).await.unwrap();
            assert_eq!(migrated.len(), 3);
            // julianday() is exact to about 10 µs, and sums in another order round differently.
            let whole = |d: &[DayStats]| -> Vec<DayStats> {
                d.iter()
                    .map(|d| DayStats {
                        duration_avg: (d.duration_avg * 1e3).round(),
                        duration_max: (d.duration_max * 1e3).round(),
                        ..d.clone()
                    })
                    .collect()
            };
            assert_eq!(whole(&migrated), whole(&engine));
        }
    }
}
