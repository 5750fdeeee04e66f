//! The grants found missing from the sources and waiting out `safety.remove_after`.
//!
//! State, not a record: one row per waiting grant with when a run first saw it missing. How
//! many runs have seen it since is counted from `runs` at the next run, so a restart (or a
//! one-shot `apply` between daemon runs) sees exactly what the daemon would. Dry runs read it
//! and never write it: `plan` changes nothing.

use super::clock::text;
use super::db::Sql;
use super::{History, HistoryError, ROWS_PER_INSERT};
use crate::model::run_memory::MissingSince;
use chrono::{DateTime, Utc};
use std::collections::HashMap;

/// A grant a run found missing: Studio user id, role name, email.
pub type MissingGrant = (u64, String, Option<String>);

impl History {
    /// When each waiting grant was first seen missing, and how many runs (not dry runs, that
    /// got as far as a plan) have seen it missing before run `run_id`. Keyed by (user id,
    /// role name).
    pub async fn missing_grants(
        &self,
        run_id: i64,
    ) -> Result<HashMap<(u64, String), MissingSince>, HistoryError> {
        let rows: Vec<(i64, String, String, i64)> =
            Sql::new("SELECT user_id, role, since, first_run_id FROM missing_grants")
                .fetch_all(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        let Some(oldest) = rows.iter().map(|r| r.3).min() else {
            return Ok(HashMap::new());
        };
        let runs: Vec<i64> = Sql::new(
            "SELECT id FROM runs WHERE dry_run = FALSE AND plan_recorded = TRUE AND id >= ? AND id < ? \
             ORDER BY id",
        )
        .bind(oldest)
        .bind(run_id)
        .scalars(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(user_id, role, since, first)| {
                let at = DateTime::parse_from_rfc3339(&since)
                    .ok()?
                    .with_timezone(&Utc);
                let seen = runs.len() - runs.partition_point(|&id| id < first);
                let runs = u32::try_from(seen).unwrap_or(u32::MAX);
                Some((
                    (u64::try_from(user_id).ok()?, role),
                    MissingSince { at, runs },
                ))
            })
            .collect())
    }

    /// Replaces the waiting grants with `missing`, the grants run `run_id` found missing: a
    /// grant already waiting keeps when it was first seen; the others start now; a grant no
    /// longer missing is forgotten.
    pub async fn record_missing(
        &self,
        run_id: i64,
        missing: &[MissingGrant],
    ) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        Sql::new("CREATE TEMP TABLE IF NOT EXISTS missing_now (user_id BIGINT, role TEXT)")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        Sql::new("DELETE FROM missing_now")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        let at = text(self.clock.now());
        for chunk in missing.chunks(ROWS_PER_INSERT) {
            let mut q = Sql::new("INSERT INTO missing_now (user_id, role) ");
            q.push_values(chunk, |row, (user_id, role, _)| {
                row.bind(*user_id as i64).bind(role);
            });
            q.execute(&mut tx).await.map_err(|e| self.err(e))?;
            let mut q =
                Sql::new("INSERT INTO missing_grants (user_id, role, email, since, first_run_id) ");
            q.push_values(chunk, |row, (user_id, role, email)| {
                row.bind(*user_id as i64)
                    .bind(role)
                    .bind(email)
                    .bind(&at)
                    .bind(run_id);
            });
            q.push(" ON CONFLICT (user_id, role) DO NOTHING");
            q.execute(&mut tx).await.map_err(|e| self.err(e))?;
        }
        Sql::new(
            "DELETE FROM missing_grants WHERE NOT EXISTS (SELECT 1 FROM missing_now m \
             WHERE m.user_id = missing_grants.user_id AND m.role = missing_grants.role)",
        )
        .execute(&mut tx)
        .await
        .map_err(|e| self.err(e))?;
        Sql::new("DELETE FROM missing_now")
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))
    }
}
