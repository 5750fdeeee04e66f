//! The history's identity state: remembered ambiguous emails, and when the last full
//! verification ran.
//!
//! Kept apart from the run records because it is working state the next run reads, not a
//! record of what happened; it grows with the number of shared emails, not with runs.

use super::db::Sql;
use super::{now, History, HistoryError, ROWS_PER_INSERT};
use crate::model::run_memory::AmbiguityUpdate;
use chrono::{DateTime, Utc};
use std::collections::HashSet;

impl History {
    /// Emails found shared by several accounts and not resolved since.
    pub async fn ambiguous_emails(&self) -> Result<HashSet<String>, HistoryError> {
        let rows: Vec<(String,)> = Sql::new("SELECT email FROM ambiguous_emails")
            .fetch_all(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(rows.into_iter().map(|(e,)| e).collect())
    }

    /// Remembers newly seen ambiguity and forgets emails that resolved to one account.
    pub async fn update_ambiguous(&self, update: &AmbiguityUpdate) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        let at = now();
        for chunk in update.remember.chunks(ROWS_PER_INSERT) {
            let mut q =
                Sql::new("INSERT INTO ambiguous_emails (email, user_ids, first_seen, last_seen) ");
            q.push_values(chunk, |row, (email, ids)| {
                let ids: Vec<String> = ids.iter().map(u64::to_string).collect();
                row.bind(email).bind(ids.join(",")).bind(&at).bind(&at);
            });
            q.push(
                " ON CONFLICT (email) DO UPDATE SET user_ids = excluded.user_ids, \
                 last_seen = excluded.last_seen",
            );
            q.execute(&mut tx).await.map_err(|e| self.err(e))?;
        }
        for email in &update.forget {
            Sql::new("DELETE FROM ambiguous_emails WHERE email = ?")
                .bind(email)
                .execute(&mut tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Records the kind of run as soon as it is decided (a run that dies later keeps it).
    pub async fn set_verification(&self, run_id: i64, kind: &str) -> Result<(), HistoryError> {
        Sql::new("UPDATE runs SET verification = ? WHERE id = ?")
            .bind(kind)
            .bind(run_id)
            .execute(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// When the last full verification that read Studio to the end started (it finished
    /// `succeeded`, `partial` or `aborted`: all of them completed their searches).
    pub async fn last_full_verification(&self) -> Result<Option<DateTime<Utc>>, HistoryError> {
        let at: Option<String> = Sql::new(
            "SELECT MAX(started_at) FROM runs WHERE verification = 'full' \
             AND status IN ('succeeded', 'partial', 'aborted')",
        )
        .scalar(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(at
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::backends::history_tests;

    history_tests! {
        async fn ambiguity_is_remembered_until_resolved(h: History) {
            let update = AmbiguityUpdate {
                remember: vec![
                    ("twin@x.edu".into(), vec![1, 2]),
                    ("b@x.edu".into(), vec![3, 4]),
                ],
                forget: vec![],
            };
            h.update_ambiguous(&update).await.unwrap();
            h.update_ambiguous(&update).await.unwrap();
            assert_eq!(h.ambiguous_emails().await.unwrap().len(), 2);
            h.update_ambiguous(&AmbiguityUpdate {
                remember: vec![],
                forget: vec!["b@x.edu".into()],
            })
            .await
            .unwrap();
            let left = h.ambiguous_emails().await.unwrap();
            assert_eq!(left.into_iter().collect::<Vec<_>>(), vec!["twin@x.edu"]);

            assert_eq!(h.last_full_verification().await.unwrap(), None);
            let id = h.start_run("manual", false).await.unwrap();
            h.set_verification(id, "full").await.unwrap();
            assert_eq!(
                h.last_full_verification().await.unwrap(),
                None,
                "still running"
            );
            let mut r = h.run(id).await.unwrap().unwrap();
            r.status = crate::model::run_status::RunStatus::Succeeded;
            h.finish_run(&r).await.unwrap();
            assert!(h.last_full_verification().await.unwrap().is_some());
            assert_eq!(
                h.run(id).await.unwrap().unwrap().verification.as_deref(),
                Some("full")
            );
        }
    }
}
