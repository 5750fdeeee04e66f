//! Emails left alone, kept as spans of runs: the history grows with changes, not with runs.
//!
//! An email that stays `not_in_studio` for a year used to be one row in every run (35,000
//! rows at a 15-minute schedule). Now it is one row in `pending_spans`: written when it
//! starts, touched when it is searched (the back-off's `last_checked_at`, `next_check_at`,
//! `checks`), and closed by the first run that no longer reports it. The `run_pending` view
//! (migration 0004) turns spans back into one row per run, so queries written for the old
//! table give the same answers. A run that records its plan after a later run did (an admin's
//! `plan` overlapping the daemon's run) gets one-run spans of its own.

use super::clock::text;
use super::db::Sql;
use super::db::{DbError, Tx};
use super::{Clock, History, HistoryError, PendingRow, ROWS_PER_INSERT};
use crate::model::recheck::Backoff;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// What a run left pending, and which `not_in_studio` emails it searched.
#[derive(Clone, Debug, Default)]
pub struct PendingUpdate<'a> {
    pub rows: &'a [PendingRow],
    /// Emails searched by email this run; those still `not_in_studio` wait before the next.
    pub searched: &'a [String],
    pub backoff: Backoff,
}

/// How a run's pending set differs from the one before: what the log reports (it grows with
/// changes, like the spans). Empty for a run recorded out of order (it changes no open span).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingChanges {
    /// Spans this run opened: `(email, reason, detail)`.
    pub started: Vec<(String, String, Option<String>)>,
    /// Spans this run closed: `(email, reason)`.
    pub ended: Vec<(String, String)>,
}

/// An email left alone now (an open span), with its back-off.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct PendingNow {
    pub email: String,
    pub reason: String,
    pub user_id: Option<i64>,
    pub detail: Option<String>,
    /// When the span started (the first run that reported it).
    pub since: String,
    pub last_checked_at: Option<String>,
    pub next_check_at: Option<String>,
}

type Key = (String, String, Option<i64>, Option<String>);
/// id, email, reason, user_id, detail, checks.
type OpenSpan = (i64, String, String, Option<i64>, Option<String>, i64);

fn key(p: &PendingRow) -> Key {
    (
        p.email.clone(),
        p.reason.clone(),
        p.user_id,
        p.detail.clone(),
    )
}

/// Writes the changes of run `run_id`'s pending set to the spans (inside its plan's transaction).
pub(super) async fn record(
    tx: &mut Tx,
    run_id: i64,
    clock: &Clock,
    update: &PendingUpdate<'_>,
) -> Result<PendingChanges, DbError> {
    let now = clock.now();
    let at = text(now);
    let later: Option<i64> =
        Sql::new("SELECT MAX(id) FROM runs WHERE plan_recorded = TRUE AND id > ?")
            .bind(run_id)
            .scalar(&mut *tx)
            .await?;
    let mut seen = HashSet::new();
    let rows: Vec<&PendingRow> = update.rows.iter().filter(|p| seen.insert(key(p))).collect();
    if later.is_some() {
        // Out of order: the open spans already speak for the later run; this run's set is
        // recorded as spans covering this run alone.
        insert(tx, run_id, &at, &rows, Some(run_id + 1)).await?;
        return Ok(PendingChanges::default());
    }
    let open: Vec<OpenSpan> = Sql::new(
        "SELECT id, email, reason, user_id, detail, checks FROM pending_spans WHERE ended_run_id IS NULL",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut open_by_key: HashMap<Key, (i64, i64)> = HashMap::with_capacity(open.len());
    for (id, email, reason, user_id, detail, checks) in open {
        open_by_key.insert((email, reason, user_id, detail), (id, checks));
    }
    let ended_keys: Vec<(&Key, i64)> = open_by_key
        .iter()
        .filter(|(k, _)| !seen.contains(*k))
        .map(|(k, (id, _))| (k, *id))
        .collect();
    let ended: Vec<i64> = ended_keys.iter().map(|(_, id)| *id).collect();
    if !ended.is_empty() {
        let last: Option<(i64, String)> = Sql::new(
            "SELECT id, COALESCE(finished_at, started_at) FROM runs \
             WHERE plan_recorded = TRUE AND id < ? ORDER BY id DESC LIMIT 1",
        )
        .bind(run_id)
        .fetch_optional(&mut *tx)
        .await?;
        let (last_id, last_at) = last.unzip();
        for chunk in ended.chunks(ROWS_PER_INSERT) {
            let mut q = Sql::new("UPDATE pending_spans SET ended_run_id = ");
            q.push_bind(run_id)
                .push(", ended_at = ")
                .push_bind(&at)
                .push(", last_run_id = ")
                .push_bind(last_id)
                .push(", last_seen_at = ")
                .push_bind(&last_at)
                .push(" WHERE id IN ")
                .push_list(chunk.iter().copied());
            q.execute(&mut *tx).await?;
        }
    }
    let new: Vec<&PendingRow> = rows
        .iter()
        .copied()
        .filter(|p| !open_by_key.contains_key(&key(p)))
        .collect();
    insert(tx, run_id, &at, &new, None).await?;
    let changes = PendingChanges {
        started: new
            .iter()
            .map(|p| (p.email.clone(), p.reason.clone(), p.detail.clone()))
            .collect(),
        ended: ended_keys
            .iter()
            .map(|((email, reason, _, _), _)| (email.clone(), reason.clone()))
            .collect(),
    };

    // The back-off: an email searched and still not found waits longer before the next search.
    let searched: HashSet<&str> = update.searched.iter().map(String::as_str).collect();
    for p in rows
        .iter()
        .filter(|p| p.reason == "not_in_studio" && searched.contains(p.email.as_str()))
    {
        let checks = open_by_key.get(&key(p)).map_or(0, |(_, c)| *c) + 1;
        let wait = update
            .backoff
            .interval(u32::try_from(checks).unwrap_or(u32::MAX), &p.email);
        let next = now + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX);
        Sql::new(
            "UPDATE pending_spans SET checks = ?, last_checked_at = ?, next_check_at = ? \
             WHERE ended_run_id IS NULL AND email = ? AND reason = 'not_in_studio'",
        )
        .bind(checks)
        .bind(&at)
        .bind(text(next))
        .bind(&p.email)
        .execute(&mut *tx)
        .await?;
    }
    Ok(changes)
}

async fn insert(
    tx: &mut Tx,
    run_id: i64,
    at: &str,
    rows: &[&PendingRow],
    ended_run_id: Option<i64>,
) -> Result<(), DbError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut q = Sql::new(
            "INSERT INTO pending_spans (email, reason, user_id, detail, first_run_id, first_seen_at, \
             ended_run_id, ended_at, last_run_id, last_seen_at) ",
        );
        q.push_values(chunk, |row, p| {
            let ended_at = ended_run_id.map(|_| at);
            row.bind(&p.email)
                .bind(&p.reason)
                .bind(p.user_id)
                .bind(&p.detail)
                .bind(run_id)
                .bind(at)
                .bind(ended_run_id)
                .bind(ended_at)
                .bind(ended_run_id.map(|_| run_id))
                .bind(ended_at);
        });
        q.execute(&mut *tx).await?;
    }
    Ok(())
}

impl History {
    /// What is left alone now: the open spans, with their back-off.
    pub async fn pending_now(&self) -> Result<Vec<PendingNow>, HistoryError> {
        Sql::new(
            "SELECT email, reason, user_id, detail, first_seen_at AS since, last_checked_at, next_check_at \
             FROM pending_spans WHERE ended_run_id IS NULL ORDER BY reason, email",
        )
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// `not_in_studio` emails whose next search is not due yet (by this history's clock):
    /// a scheduled run leaves them out of its searches.
    pub async fn resting_emails(&self) -> Result<HashSet<String>, HistoryError> {
        let rows: Vec<(String,)> = Sql::new(
            "SELECT email FROM pending_spans WHERE ended_run_id IS NULL \
             AND reason = 'not_in_studio' AND next_check_at > ?",
        )
        .bind(self.now())
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().map(|(e,)| e).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::backends::history_tests;
    use chrono::TimeZone;

    fn row(email: &str, reason: &str) -> PendingRow {
        PendingRow {
            email: email.into(),
            reason: reason.into(),
            user_id: None,
            detail: Some("no Studio user has this email yet".into()),
        }
    }

    async fn run(h: &History, rows: &[PendingRow], searched: &[String]) -> i64 {
        let id = h.start_run("schedule", false).await.unwrap();
        let update = PendingUpdate {
            rows,
            searched,
            backoff: Backoff::default(),
        };
        h.record_plan(id, &[], &update).await.unwrap();
        id
    }

    async fn pending_of(h: &History, run: i64) -> Vec<String> {
        h.pending(run)
            .await
            .unwrap()
            .into_iter()
            .map(|p| format!("{} {}", p.email, p.reason))
            .collect()
    }

    history_tests! {
        async fn spans_answer_as_rows_per_run_did(h: History) {
            let clock = Clock::manual(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap());
            let h = h.with_clock(clock.clone());
            let a = row("a@x.edu", "not_in_studio");
            let b = row("b@x.edu", "not_in_studio");
            let r1 = run(
                &h,
                &[a.clone(), b.clone()],
                &["a@x.edu".into(), "b@x.edu".into()],
            )
            .await;
            let failed = h.start_run("schedule", false).await.unwrap(); // never planned
            let r2 = run(&h, &[a.clone(), b.clone()], &[]).await;
            let r3 = run(&h, std::slice::from_ref(&a), &[]).await;
            let r4 = run(&h, &[a.clone(), b.clone()], &[]).await;
            assert_eq!(
                pending_of(&h, r1).await,
                ["a@x.edu not_in_studio", "b@x.edu not_in_studio"]
            );
            assert!(pending_of(&h, failed).await.is_empty());
            assert_eq!(pending_of(&h, r2).await.len(), 2);
            assert_eq!(pending_of(&h, r3).await, ["a@x.edu not_in_studio"]);
            assert_eq!(pending_of(&h, r4).await.len(), 2);
            let spans: i64 = Sql::new("SELECT COUNT(*) FROM pending_spans")
                .scalar(&h.db)
                .await
                .unwrap();
            assert_eq!(spans, 3, "a once, b twice");
            let now = h.pending_now().await.unwrap();
            assert_eq!(now.len(), 2);
            // a was searched in r1: it rests; b's new span was never searched: due at once.
            assert!(now[0].next_check_at.is_some() && now[1].next_check_at.is_none());
            assert_eq!(
                h.resting_emails().await.unwrap(),
                HashSet::from(["a@x.edu".to_string()])
            );
            clock.set(chrono::Utc.with_ymd_and_hms(2026, 1, 2, 0, 0, 0).unwrap());
            assert!(h.resting_emails().await.unwrap().is_empty());
            let by_email: i64 = Sql::new("SELECT COUNT(*) FROM run_pending WHERE email = 'b@x.edu'")
                .scalar(&h.db)
                .await
                .unwrap();
            assert_eq!(by_email, 3);
        }
    }
}

#[cfg(test)]
mod migration_tests {
    use super::super::MIGRATOR;
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;

    /// A file written by the previous version (a copy per run) reads the same after 0004.
    #[tokio::test]
    async fn old_rows_become_spans_with_the_same_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        let old = sqlx::SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        let before = sqlx::migrate::Migrator {
            migrations: std::borrow::Cow::Owned(
                MIGRATOR.iter().filter(|m| m.version < 4).cloned().collect(),
            ),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before.run(&old).await.unwrap();
        // Runs 1..=6: 3 failed before planning; 5 is a dry run; b is away in run 4.
        for (id, status) in [
            (1, "succeeded"),
            (2, "succeeded"),
            (3, "failed"),
            (4, "partial"),
            (5, "succeeded"),
            (6, "succeeded"),
        ] {
            Sql::new(
                "INSERT INTO runs (id, started_at, trigger, status) VALUES (?, ?, 'schedule', ?)",
            )
            .bind(id)
            .bind(format!("2026-01-0{id}T00:00:00.000Z"))
            .bind(status)
            .execute(&old)
            .await
            .unwrap();
        }
        let rows = [
            (1, "a"),
            (1, "b"),
            (2, "a"),
            (2, "b"),
            (4, "a"),
            (5, "a"),
            (5, "b"),
            (6, "a"),
        ];
        for (run, who) in rows {
            Sql::new("INSERT INTO run_pending (run_id, email, reason, detail) VALUES (?, ?, 'not_in_studio', 'd')")
                .bind(run)
                .bind(format!("{who}@x.edu"))
                .execute(&old)
                .await
                .unwrap();
        }
        let snapshot = |pool: sqlx::SqlitePool| async move {
            let v: Vec<(i64, String, String)> =
                Sql::new("SELECT run_id, email, reason FROM run_pending ORDER BY run_id, email")
                    .fetch_all(&pool)
                    .await
                    .unwrap();
            v
        };
        let was = snapshot(old.clone()).await;
        old.close().await;
        let h = History::open(&path).await.unwrap();
        assert_eq!(snapshot(h.sqlite_pool()).await, was);
        let spans: Vec<(String, i64, Option<i64>)> = Sql::new(
            "SELECT email, first_run_id, ended_run_id FROM pending_spans ORDER BY email, first_run_id",
        )
        .fetch_all(&h.db)
        .await
        .unwrap();
        assert_eq!(
            spans,
            [
                ("a@x.edu".into(), 1, None),
                ("b@x.edu".into(), 1, Some(4)),
                ("b@x.edu".into(), 5, Some(6)),
            ]
        );
        let now: Vec<String> = h
            .pending_now()
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.email)
            .collect();
        assert_eq!(now, ["a@x.edu"]);
    }
}
