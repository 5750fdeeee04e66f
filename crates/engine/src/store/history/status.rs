//! How things stand, as the console's status strip and an aborted run's page read it: the last
//! scheduled run, the streaks of failing and flapping runs, a tripped guard with the role
//! holders it protected, who asked for a manual run, and long-pending emails.
//!
//! Every read is bounded: the newest [`STREAK_WINDOW`] real runs by primary key, one row by
//! id, or an index walk (`pending_spans_open`, `runs_changes`), so the strip costs the same
//! on a year of history as on a week.

use super::db::Sql;
use super::{History, HistoryError, RunRecord};
use crate::model::run_status::RunStatus;

/// How many of the newest real runs the streaks look at.
pub const STREAK_WINDOW: i64 = 50;

/// The newest real (not dry) runs, for streaks: `(id, status, flapping actions, guard)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecentRun {
    pub id: i64,
    pub status: RunStatus,
    pub flapping: i64,
    pub guard: Option<String>,
}

/// What the status strip needs, read in one go.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatusFacts {
    /// The newest scheduled run that was not a dry run.
    pub last_scheduled: Option<RunRecord>,
    /// The newest real runs, newest first, at most [`STREAK_WINDOW`].
    pub recent: Vec<RecentRun>,
    /// The newest real run, in full.
    pub latest: Option<RunRecord>,
    /// Emails Studio has not known for longer than the `since` given.
    pub pending_old: i64,
    /// On a PostgreSQL history, the daemon that leads now (`None`: a history file, or no
    /// daemon's lease is live).
    pub leader: Option<crate::store::lease::LeaderInfo>,
}

impl StatusFacts {
    /// How many of the newest real runs in a row satisfy `f`.
    pub fn streak(&self, f: impl Fn(&RecentRun) -> bool) -> usize {
        self.recent.iter().take_while(|r| f(r)).count()
    }
}

impl History {
    /// The facts of the status strip; `pending_before`: an email pending since before this
    /// time (RFC 3339 UTC) counts as waiting long.
    pub async fn status_facts(&self, pending_before: &str) -> Result<StatusFacts, HistoryError> {
        let last_scheduled = Sql::new(format!(
            "SELECT {} FROM runs WHERE trigger = 'schedule' AND dry_run = FALSE ORDER BY id DESC LIMIT 1",
            Self::RUN_COLUMNS
        ))
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let latest: Option<RunRecord> = Sql::new(format!(
            "SELECT {} FROM runs WHERE dry_run = FALSE ORDER BY id DESC LIMIT 1",
            Self::RUN_COLUMNS
        ))
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let recent: Vec<(i64, RunStatus, i64, Option<String>)> = Sql::new(
            "SELECT id, status, flapping, guard FROM runs WHERE dry_run = FALSE \
             ORDER BY id DESC LIMIT ?",
        )
        .bind(STREAK_WINDOW)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let pending_old: i64 = Sql::new(
            "SELECT COUNT(*) FROM pending_spans WHERE ended_run_id IS NULL \
             AND reason = 'not_in_studio' AND first_seen_at < ?",
        )
        .bind(pending_before)
        .scalar(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let leader = self.leader().await?;
        Ok(StatusFacts {
            leader,
            last_scheduled,
            recent: recent
                .into_iter()
                .map(|(id, status, flapping, guard)| RecentRun {
                    id,
                    status,
                    flapping,
                    guard,
                })
                .collect(),
            latest,
            pending_old,
        })
    }

    /// Records, for a run a safety guard stopped, how many people held each managed role.
    pub async fn set_role_holders(
        &self,
        run_id: i64,
        holders: &[(String, usize)],
    ) -> Result<(), HistoryError> {
        let text: Vec<String> = holders.iter().map(|(r, n)| format!("{r}={n}")).collect();
        Sql::new("UPDATE runs SET role_holders = ? WHERE id = ?")
            .bind(text.join("\n"))
            .bind(run_id)
            .execute(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Records who asked for a manual run (`trigger --by`, `SIGHUP`, an approval).
    pub async fn set_requested_by(&self, run_id: i64, by: &str) -> Result<(), HistoryError> {
        Sql::new("UPDATE runs SET requested_by = ? WHERE id = ?")
            .bind(by)
            .bind(run_id)
            .execute(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// What a run page adds to the run's row: the guard that stopped it, the role holders it
    /// protected (`(role, holders)`), and who asked for it.
    pub async fn run_context(&self, run_id: i64) -> Result<RunContext, HistoryError> {
        /// guard, role_holders, requested_by, flapping.
        type Row = (Option<String>, Option<String>, Option<String>, i64);
        let row: Option<Row> =
            Sql::new("SELECT guard, role_holders, requested_by, flapping FROM runs WHERE id = ?")
                .bind(run_id)
                .fetch_optional(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        let Some((guard, holders, requested_by, flapping)) = row else {
            return Ok(RunContext::default());
        };
        Ok(RunContext {
            guard,
            role_holders: holders
                .as_deref()
                .unwrap_or("")
                .lines()
                .filter_map(|l| {
                    let (role, n) = l.rsplit_once('=')?;
                    Some((role.to_string(), n.parse().ok()?))
                })
                .collect(),
            requested_by,
            flapping,
        })
    }

    /// Who asked for each of `runs` (`None` where nobody was recorded), by id.
    pub async fn requested_by(&self, runs: &[i64]) -> Result<Vec<(i64, String)>, HistoryError> {
        if runs.is_empty() {
            return Ok(Vec::new());
        }
        let mut q =
            Sql::new("SELECT id, requested_by FROM runs WHERE requested_by IS NOT NULL AND id IN ");
        q.push_list(runs.iter().copied());
        q.fetch_all(&self.db).await.map_err(|e| self.err(e))
    }

    /// How many real runs in a row, ending with `run_id`, found flapping actions.
    pub async fn flapping_streak(&self, run_id: i64) -> Result<usize, HistoryError> {
        let flags: Vec<i64> = Sql::new(
            "SELECT flapping FROM runs WHERE id <= ? AND dry_run = FALSE ORDER BY id DESC LIMIT ?",
        )
        .bind(run_id)
        .bind(STREAK_WINDOW)
        .scalars(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(flags.iter().take_while(|f| **f > 0).count())
    }

    /// The newest runs that found a change of `email` flapping: `(run_id, role, action)`,
    /// newest first, at most `limit` (the person page).
    pub async fn flapping_of_email(
        &self,
        email: &str,
        limit: u32,
    ) -> Result<Vec<(i64, String, crate::model::change::ChangeKind)>, HistoryError> {
        Sql::new(
            "SELECT run_id, role, action FROM run_actions WHERE email = ? AND flapping = TRUE \
             ORDER BY run_id DESC LIMIT ?",
        )
        .bind(email)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// The newest real runs after `run_id`, oldest first (what became of an aborted run).
    pub async fn runs_after(
        &self,
        run_id: i64,
        limit: u32,
    ) -> Result<Vec<RunRecord>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM runs WHERE id > ? AND dry_run = FALSE ORDER BY id LIMIT ?",
            Self::RUN_COLUMNS
        ))
        .bind(run_id)
        .bind(i64::from(limit))
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }
}

/// What a run page adds to the run's row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunContext {
    /// `runs.guard`: the guard that stopped the run, if one did.
    pub guard: Option<String>,
    /// Holders of each managed role when the guard tripped.
    pub role_holders: Vec<(String, usize)>,
    pub requested_by: Option<String>,
    /// Actions found flapping in this run.
    pub flapping: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::backends::history_tests;

    history_tests! {
        async fn streaks_holders_and_who_asked(h: History) {
            for (trigger, status) in [
                ("schedule", RunStatus::Succeeded),
                ("schedule", RunStatus::Failed),
                ("manual", RunStatus::Failed),
            ] {
                let id = h.start_run(trigger, false).await.unwrap();
                h.finish_run(&RunRecord {
                    id,
                    status,
                    ..Default::default()
                })
                .await
                .unwrap();
            }
            h.set_role_holders(2, &[("Admin".into(), 152), ("Caption=Editor".into(), 3)])
                .await
                .unwrap();
            h.set_requested_by(3, "trigger --by alice").await.unwrap();
            let facts = h.status_facts("2000-01-01T00:00:00.000Z").await.unwrap();
            assert_eq!(facts.last_scheduled.as_ref().unwrap().id, 2);
            assert_eq!(facts.latest.as_ref().unwrap().id, 3);
            assert_eq!(facts.streak(|r| r.status == RunStatus::Failed), 2);
            assert_eq!(facts.pending_old, 0);
            let c = h.run_context(2).await.unwrap();
            assert_eq!(
                c.role_holders,
                [
                    ("Admin".to_string(), 152),
                    ("Caption=Editor".to_string(), 3)
                ]
            );
            assert_eq!(
                h.requested_by(&[1, 2, 3]).await.unwrap(),
                [(3, "trigger --by alice".to_string())]
            );
            assert_eq!(
                h.runs_after(1, 5)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.id)
                    .collect::<Vec<_>>(),
                [2, 3]
            );
        }
    }
}
