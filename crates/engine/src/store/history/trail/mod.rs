//! One person's audit trail: every action taken for an email and every run that left it
//! alone, newest first (`history --email`, and the console's person page).
//!
//! A left-alone email is recorded in every run (`run_pending`), so an address Studio does not
//! know yet would fill a year of 15-minute runs with 35,000 identical lines. Runs in a row
//! that left the email alone for the same reason are therefore one entry, "from run A to run
//! B". "In a row" skips runs that never read Studio (they failed before planning, so they say
//! nothing about anyone); any run that planned without this email pending for that reason
//! ends the streak.
//!
//! Both reads go through indexes on the email: `run_actions_email` for the actions, and
//! `pending_spans_email` for the left-alone stretches, read from the spans themselves (one row
//! per stretch, see `pending.rs`) rather than from the per-run `run_pending` view. So the cost
//! follows the person's rows, not the size of the history.

mod columns;

pub use columns::{action_reason, left_alone_why, reason_words, short_time, TrailColumns};

use super::db::Sql;
use super::{History, HistoryError};
use crate::model::change::{ChangeKind, Outcome};
use crate::model::run_status::RunStatus;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use serde::Serialize;

/// Statuses of runs that stopped before they planned, unless they recorded counts: such a
/// run neither continues nor breaks a streak of left-alone runs.
const MAY_NOT_HAVE_PLANNED: &str = "('failed', 'interrupted', 'running')";

/// The first run at or after a time: one step down `runs_started_at`.
const FIRST_RUN_SINCE: &str =
    "SELECT id FROM runs WHERE started_at >= ? ORDER BY started_at, id LIMIT 1";

/// A person's actions, newest first: a walk down `run_actions_email` (no sort).
const TRAIL_ACTIONS: &str =
    "SELECT a.run_id, r.started_at, r.trigger, r.dry_run, r.status, a.role, a.action, \
     a.outcome, a.user_id, a.http_status, a.detail, a.source, a.until, a.reason \
     FROM run_actions a JOIN runs r ON r.id = a.run_id \
     WHERE a.email = ? AND a.run_id >= ? ORDER BY a.id DESC LIMIT ?";

/// One entry of a person's trail.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct TrailEntry {
    /// The run; for a left-alone streak, its newest run (the oldest is in [`TrailEvent`]).
    pub run_id: i64,
    pub started_at: String,
    pub trigger: String,
    pub dry_run: bool,
    /// How that run ended (`succeeded`, `partial`, `aborted`...).
    pub run_status: RunStatus,
    #[serde(flatten)]
    pub event: TrailEvent,
}

/// What happened to the person in that entry.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TrailEvent {
    /// A role added or removed (or planned, or skipped by a guard).
    Action {
        role: String,
        action: ChangeKind,
        outcome: Outcome,
        user_id: i64,
        http_status: Option<i64>,
        detail: Option<String>,
        /// The sources that gave an added grant (`roles.yaml, ldap`).
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// The grant's end, `YYYY-MM-DD`: of an added grant, or of an ended grant removed.
        #[serde(skip_serializing_if = "Option::is_none")]
        until: Option<String>,
        /// The reason its source gave.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// Left alone, in every run of `first_run_id ..= run_id` that read Studio.
    LeftAlone {
        reason: String,
        detail: Option<String>,
        user_id: Option<i64>,
        first_run_id: i64,
        first_started_at: String,
        /// How many runs recorded it (runs that never read Studio are not counted).
        runs: i64,
    },
}

impl TrailEntry {
    /// The kind of entry, as the JSON `kind` field says it: `action` or `left_alone`.
    pub fn kind(&self) -> &'static str {
        match self.event {
            TrailEvent::Action { .. } => "action",
            TrailEvent::LeftAlone { .. } => "left_alone",
        }
    }
}

/// A left-alone streak of one reason, as SQLite finds it (runs with consecutive ids) before
/// streaks separated only by runs that never read Studio are joined.
#[derive(Clone, Debug)]
pub(super) struct Island {
    pub(super) reason: String,
    pub(super) first_run: i64,
    pub(super) first_started_at: String,
    pub(super) last: TrailEntry,
    pub(super) runs: i64,
}

/// Parses the `--since` of `history --email`, and the console's dates: an RFC 3339 time
/// (`2025-03-01T08:00:00Z`), a date (`2025-03-01`, midnight UTC), or a duration back from
/// `now` (`7d`, `12h`, `1w`).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        return Ok(at.with_timezone(&Utc));
    }
    if let Ok(day) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc());
    }
    if let Ok(ago) = humantime::parse_duration(t) {
        if let Some(at) = chrono::Duration::from_std(ago)
            .ok()
            .and_then(|d| now.checked_sub_signed(d))
        {
            return Ok(at);
        }
    }
    Err(format!(
        "{} is not a time: use a date (2025-03-01), an RFC 3339 time (2025-03-01T08:00:00Z) \
         or a duration back from now (7d, 12h)",
        crate::input::email_address::shown(t)
    ))
}

/// A time as the history writes it, for comparing with `runs.started_at` as text.
pub fn history_time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl History {
    /// The trail of `email` (normalised as the engine compares emails), newest first, at most
    /// `limit` entries, only from runs started at or after `since`.
    pub async fn email_trail(
        &self,
        email: &str,
        since: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<TrailEntry>, HistoryError> {
        let email = crate::input::email_address::normalize(email);
        let from_run = self.first_run_since(since).await?;
        let limit = i64::from(limit);
        let mut entries = self.trail_actions(&email, from_run, limit).await?;
        let islands = self.pending_islands(&email, from_run).await?;
        entries.extend(self.join_streaks(islands).await?.into_iter().map(|i| {
            let mut entry = i.last;
            if let TrailEvent::LeftAlone {
                first_run_id,
                first_started_at,
                runs,
                ..
            } = &mut entry.event
            {
                *first_run_id = i.first_run;
                *first_started_at = i.first_started_at;
                *runs = i.runs;
            }
            entry
        }));
        // Newest run first; in one run, actions before what was left alone.
        entries.sort_by(|a, b| b.run_id.cmp(&a.run_id).then_with(|| a.kind().cmp(b.kind())));
        entries.truncate(limit as usize);
        Ok(entries)
    }

    /// The id of the first run started at or after `since` (1 without `since`).
    pub(crate) async fn first_run_since(
        &self,
        since: Option<DateTime<Utc>>,
    ) -> Result<i64, HistoryError> {
        let Some(since) = since else { return Ok(1) };
        let id: Option<i64> = Sql::new(FIRST_RUN_SINCE)
            .bind(history_time(since))
            .scalar_optional(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(id.unwrap_or(i64::MAX))
    }

    /// The newest `limit` actions for `email` from run `from_run` on. Rows are taken in
    /// insertion order (the email index's own order, so no sort), which is run order except
    /// for two runs planning at the same moment; the caller sorts what it gets.
    async fn trail_actions(
        &self,
        email: &str,
        from_run: i64,
        limit: i64,
    ) -> Result<Vec<TrailEntry>, HistoryError> {
        let rows = Sql::new(TRAIL_ACTIONS)
            .bind(email)
            .bind(from_run)
            .bind(limit)
            .fetch_rows(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                Ok(TrailEntry {
                    run_id: r.try_get(0)?,
                    started_at: r.try_get(1)?,
                    trigger: r.try_get(2)?,
                    dry_run: r.try_get(3)?,
                    run_status: r.try_get(4)?,
                    event: TrailEvent::Action {
                        role: r.try_get(5)?,
                        action: r.try_get(6)?,
                        outcome: r.try_get(7)?,
                        user_id: r.try_get(8)?,
                        http_status: r.try_get(9)?,
                        detail: r.try_get(10)?,
                        source: r.try_get(11)?,
                        until: r.try_get(12)?,
                        reason: r.try_get(13)?,
                    },
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.err(e))
    }

    /// The runs that left `email` alone, as streaks of consecutive run ids per reason, oldest
    /// first, each with its newest run and the detail recorded there.
    pub(super) async fn pending_islands(
        &self,
        email: &str,
        from_run: i64,
    ) -> Result<Vec<Island>, HistoryError> {
        // Straight from the spans (one row per stretch, `pending_spans_email`), not from the
        // `run_pending` view, which would expand a year-long stretch into 35,000 rows. A
        // span's runs are those that recorded a plan in `first_run_id .. ended_run_id`, as the
        // view says; runs folded away by retention are not counted.
        let rows = Sql::new(
            "WITH s AS ( \
               SELECT reason, detail, user_id, CASE WHEN first_run_id > ?2 THEN first_run_id ELSE ?2 END AS lo, \
                      COALESCE(ended_run_id - 1, 9223372036854775807) AS hi \
                 FROM pending_spans \
                WHERE email = ?1 AND (ended_run_id IS NULL OR ended_run_id > ?2)), \
             b AS ( \
               SELECT s.*, \
                 (SELECT MIN(id) FROM runs WHERE id BETWEEN s.lo AND s.hi AND plan_recorded = TRUE) AS first_run, \
                 (SELECT MAX(id) FROM runs WHERE id BETWEEN s.lo AND s.hi AND plan_recorded = TRUE) AS last_run, \
                 (SELECT COUNT(*) FROM runs WHERE id BETWEEN s.lo AND s.hi AND plan_recorded = TRUE) AS runs \
               FROM s) \
             SELECT b.reason, b.first_run, f.started_at, b.runs, b.last_run, r.started_at, r.trigger, \
                    r.dry_run, r.status, b.detail, b.user_id \
               FROM b JOIN runs r ON r.id = b.last_run JOIN runs f ON f.id = b.first_run \
              ORDER BY b.first_run",
        )
        .bind(email)
        .bind(from_run)
        .fetch_rows(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                let reason: String = r.try_get(0)?;
                let first_run: i64 = r.try_get(1)?;
                let first_started_at: String = r.try_get(2)?;
                Ok(Island {
                    first_run,
                    first_started_at: first_started_at.clone(),
                    runs: r.try_get(3)?,
                    last: TrailEntry {
                        run_id: r.try_get(4)?,
                        started_at: r.try_get(5)?,
                        trigger: r.try_get(6)?,
                        dry_run: r.try_get(7)?,
                        run_status: r.try_get(8)?,
                        event: TrailEvent::LeftAlone {
                            reason: reason.clone(),
                            detail: r.try_get(9)?,
                            user_id: r.try_get(10)?,
                            first_run_id: first_run,
                            first_started_at,
                            runs: 0,
                        },
                    },
                    reason,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(|e| self.err(e))
    }

    /// Joins streaks of the same reason that only runs which never read Studio separate.
    /// `islands` are oldest first; so is the answer.
    pub(super) async fn join_streaks(
        &self,
        islands: Vec<Island>,
    ) -> Result<Vec<Island>, HistoryError> {
        let (Some(lo), Some(hi)) = (
            islands.iter().map(|i| i.first_run).min(),
            islands.iter().map(|i| i.last.run_id).max(),
        ) else {
            return Ok(islands);
        };
        let silent = self.runs_that_did_not_plan(lo, hi).await?;
        let mut joined: Vec<Island> = Vec::with_capacity(islands.len());
        // The open streak of each reason: its index in `joined`.
        let mut open: std::collections::HashMap<String, usize> = Default::default();
        for island in islands {
            if let Some(&at) = open.get(&island.reason) {
                let prev = &mut joined[at];
                if only_silent_between(&silent, prev.last.run_id, island.first_run) {
                    prev.last = island.last;
                    prev.runs += island.runs;
                    continue;
                }
            }
            open.insert(island.reason.clone(), joined.len());
            joined.push(island);
        }
        Ok(joined)
    }

    /// Ids of runs in `lo..=hi` that stopped before planning (sorted).
    async fn runs_that_did_not_plan(&self, lo: i64, hi: i64) -> Result<Vec<i64>, HistoryError> {
        Sql::new(format!(
            "SELECT id FROM runs WHERE status IN {MAY_NOT_HAVE_PLANNED} AND id BETWEEN ? AND ? \
             AND adds_planned = 0 AND removes_planned = 0 AND pending = 0 ORDER BY id"
        ))
        .bind(lo)
        .bind(hi)
        .scalars(&self.db)
        .await
        .map_err(|e| self.err(e))
    }
}

/// Whether every run id strictly between `a` and `b` is a run in `silent` (sorted ids). A
/// gap with an id missing (a deleted run) counts as broken: two entries rather than a claim
/// of continuity the history cannot back.
fn only_silent_between(silent: &[i64], a: i64, b: i64) -> bool {
    let gap = (b - a - 1).max(0) as usize;
    let from = silent.partition_point(|&id| id <= a);
    let to = silent.partition_point(|&id| id < b);
    to - from >= gap
}

#[cfg(test)]
mod tests;
