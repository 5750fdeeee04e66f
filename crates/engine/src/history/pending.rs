//! Who is left alone now: the emails the latest run that read Studio left alone, each with
//! how long it has been so (the console's pending page).
//!
//! A stand-in computed from `run_pending`: the `long-life` branch keeps left-alone emails as
//! spans with first/last seen and recheck times, and its version of this file replaces this
//! one (same type, same method). Here `since` is the first run of the unbroken streak (as the
//! audit trail finds it) and the recheck times are unknown.

use super::{History, HistoryError};

/// An email left alone by the latest run that read Studio.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingNow {
    pub email: String,
    pub reason: String,
    pub user_id: Option<i64>,
    pub detail: Option<String>,
    /// When the streak of runs leaving it alone for this reason began (RFC 3339 UTC).
    pub since: String,
    pub last_checked_at: Option<String>,
    pub next_check_at: Option<String>,
}

impl History {
    /// The emails left alone now, by reason then email.
    pub async fn pending_now(&self) -> Result<Vec<PendingNow>, HistoryError> {
        let latest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(id) FROM runs WHERE status IN ('succeeded', 'partial', 'aborted')",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.err(e))?;
        let Some(latest) = latest else {
            return Ok(Vec::new());
        };
        let mut now = Vec::new();
        for row in self.pending(latest).await? {
            let streaks = self.pending_islands(&row.email, 1).await?;
            let since = self
                .join_streaks(streaks)
                .await?
                .into_iter()
                .find(|s| s.reason == row.reason && s.last.run_id == latest)
                .map(|s| s.first_started_at)
                .unwrap_or_default();
            now.push(PendingNow {
                email: row.email,
                reason: row.reason,
                user_id: row.user_id,
                detail: row.detail,
                since,
                last_checked_at: None,
                next_check_at: None,
            });
        }
        Ok(now)
    }
}

#[cfg(test)]
mod tests {
    use crate::history::{History, PendingRow, RunRecord};

    #[tokio::test]
    async fn the_latest_reading_run_with_the_start_of_each_streak() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(&dir.path().join("history.db")).await.unwrap();
        let p = |email: &str| PendingRow {
            email: email.into(),
            reason: "not_in_studio".into(),
            user_id: None,
            detail: None,
        };
        let mut started = Vec::new();
        for (status, pending) in [
            ("succeeded", vec![p("ada@x.edu")]),
            ("succeeded", vec![p("ada@x.edu"), p("bob@x.edu")]),
            ("succeeded", vec![p("ada@x.edu"), p("bob@x.edu")]),
            ("failed", vec![]),
        ] {
            let id = h.start_run("schedule", false).await.unwrap();
            if status != "failed" {
                h.record_plan(id, &[], &pending).await.unwrap();
            }
            let record = RunRecord {
                id,
                status: status.into(),
                pending: pending.len() as i64,
                ..Default::default()
            };
            h.finish_run(&record).await.unwrap();
            started.push(h.run(id).await.unwrap().unwrap().started_at);
        }
        let now = h.pending_now().await.unwrap();
        let got: Vec<(&str, &str)> = now
            .iter()
            .map(|n| (n.email.as_str(), n.since.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ada@x.edu", started[0].as_str()),
                ("bob@x.edu", started[1].as_str())
            ]
        );
    }
}
