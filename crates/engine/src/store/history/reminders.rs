//! The `grant_expiring` reminders already sent (`grant_reminders`): one per grant, that is
//! per (email, role, end). Kept in the history, not in memory, so a restart or a one-shot
//! `apply` between daemon runs never reminds of the same grant twice; an end moved later is a
//! new grant and is reminded of again.

use super::db::Sql;
use super::{History, HistoryError};

/// A grant as the reminders key it: email, role name, `until` (`YYYY-MM-DD`).
pub(crate) type ReminderKey = (String, String, String);

impl History {
    /// Of `grants` (ending soon, seen by run `run_id`), those not reminded of yet, now marked
    /// reminded: the caller sends them. Rows of grants that ended before `today`
    /// (`YYYY-MM-DD`) are dropped, so the table holds only grants still to come.
    pub async fn grant_reminders_due(
        &self,
        run_id: i64,
        today: &str,
        grants: &[ReminderKey],
    ) -> Result<Vec<usize>, HistoryError> {
        let at = self.now();
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        Sql::new("DELETE FROM grant_reminders WHERE until < ?")
            .bind(today)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        let mut due = Vec::new();
        for (i, (email, role, until)) in grants.iter().enumerate() {
            let done = Sql::new(
                "INSERT INTO grant_reminders (email, role, until, run_id, sent_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(email)
            .bind(role)
            .bind(until)
            .bind(run_id)
            .bind(&at)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
            if done == 1 {
                due.push(i);
            }
        }
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(due)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::history::backends::history_tests;

    history_tests! {
        async fn each_grant_is_reminded_of_once(h: History) {
            let k = |e: &str, u: &str| (e.to_string(), "Admin".to_string(), u.to_string());
            let first = [k("a@x.edu", "2027-01-31"), k("b@x.edu", "2027-02-01")];
            assert_eq!(
                h.grant_reminders_due(1, "2027-01-25", &first)
                    .await
                    .unwrap(),
                [0, 1]
            );
            // The next run: nothing again; an end moved later is a new grant.
            let next = [k("a@x.edu", "2027-01-31"), k("b@x.edu", "2027-02-07")];
            assert_eq!(
                h.grant_reminders_due(2, "2027-01-26", &next).await.unwrap(),
                [1]
            );
            assert!(h
                .grant_reminders_due(3, "2027-01-27", &next)
                .await
                .unwrap()
                .is_empty());
        }
    }
}
