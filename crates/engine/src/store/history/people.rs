//! Who a person is, as the latest run that planned saw them (`studio_accounts`,
//! `desired_people`, migration 0012): the Studio account with its name and the managed roles
//! it held, and the roles the desired state gave with their sources. The console's person page
//! says from it who someone is and whether they are in the desired state, and pages put names
//! beside user ids.
//!
//! A run hands over what it read; only the rows that differ from what is stored are written
//! (one read of both tables, then the changes), so the tables grow with people and a run
//! that changed nothing about anyone writes nothing but its run id.

use super::db::{email_domain, Sql};
use super::{History, HistoryError};
use crate::model::change::{ChangeKind, Outcome};
use serde::Serialize;
use std::collections::HashMap;

/// A Studio account as a run read it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct AccountSeen {
    pub user_id: i64,
    pub full_name: Option<String>,
    pub email: Option<String>,
    /// Managed roles held before the run changed anything, comma-separated.
    pub held: String,
}

/// A listed email of the desired state, with its roles and sources in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DesiredSeen {
    pub email: String,
    /// `Admin (roles.yaml, ldap); Teacher (sql)`; empty when listed without a managed role.
    pub roles: String,
}

/// A change the run that recorded people applied to one of a person's accounts: the roles an
/// account holds now are its `held` (read before the run's changes) with these folded in.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AppliedChange {
    pub user_id: i64,
    pub role: String,
    pub action: ChangeKind,
}

/// What the history knows of one email: its accounts and its desired roles.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Person {
    /// The latest run that recorded people; `None` before any did.
    pub as_of_run: Option<i64>,
    /// The Studio accounts with this email (several: ambiguous).
    pub accounts: Vec<AccountSeen>,
    /// What run `as_of_run` applied to these accounts (Studio answered that it made them),
    /// oldest first: their roles after that run are `held` with these changes.
    pub applied: Vec<AppliedChange>,
    /// `Some` when listed in the desired state: the roles, and the run since when it is
    /// listed (`None`: listed already when people were first recorded).
    pub desired: Option<(String, Option<i64>)>,
}

impl History {
    /// Records what run `run_id` read: `accounts` (every account it read) and `desired` (every
    /// listed email). Writes only the differences.
    pub async fn record_people(
        &self,
        run_id: i64,
        accounts: &[AccountSeen],
        desired: &[DesiredSeen],
    ) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        // A write first, so the transaction holds the write lock before it reads: a read
        // first would have to upgrade its snapshot, which fails at once ("database is locked")
        // when `plan` beside the daemon wrote in between.
        let first_fill = Sql::new("UPDATE people_seen SET run_id = ? WHERE id = 1")
            .bind(run_id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?
            == 0;
        if first_fill {
            Sql::new("INSERT INTO people_seen (id, run_id) VALUES (1, ?)")
                .bind(run_id)
                .execute(&mut tx)
                .await
                .map_err(|e| self.err(e))?;
        }

        let stored: HashMap<i64, AccountSeen> =
            Sql::new("SELECT user_id, full_name, email, held FROM studio_accounts")
                .fetch_all::<AccountSeen>(&mut tx)
                .await
                .map_err(|e| self.err(e))?
                .into_iter()
                .map(|a| (a.user_id, a))
                .collect();
        let read: HashMap<i64, &AccountSeen> = accounts.iter().map(|a| (a.user_id, a)).collect();
        for a in accounts {
            if stored.get(&a.user_id) == Some(a) {
                continue;
            }
            Sql::new(
                "INSERT INTO studio_accounts (user_id, full_name, email, held, changed_run_id) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET \
                 full_name = COALESCE(excluded.full_name, studio_accounts.full_name), email = excluded.email, \
                 held = excluded.held, changed_run_id = excluded.changed_run_id",
            )
            .bind(a.user_id)
            .bind(&a.full_name)
            .bind(&a.email)
            .bind(&a.held)
            .bind(run_id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        // Not read this run: it holds no managed role any more (every run lists all holders).
        for gone in stored
            .values()
            .filter(|s| !s.held.is_empty() && !read.contains_key(&s.user_id))
        {
            Sql::new("UPDATE studio_accounts SET held = '', changed_run_id = ? WHERE user_id = ?")
                .bind(run_id)
                .bind(gone.user_id)
                .execute(&mut tx)
                .await
                .map_err(|e| self.err(e))?;
        }

        let stored: HashMap<String, String> = Sql::new("SELECT email, roles FROM desired_people")
            .fetch_all(&mut tx)
            .await
            .map_err(|e| self.err(e))?
            .into_iter()
            .collect();
        let listed: HashMap<&str, &str> = desired
            .iter()
            .map(|d| (d.email.as_str(), d.roles.as_str()))
            .collect();
        for (email, roles) in &listed {
            match stored.get(*email) {
                Some(r) if r == roles => continue,
                Some(_) => Sql::new(
                    "UPDATE desired_people SET roles = ?, changed_run_id = ? WHERE email = ?",
                )
                .bind(roles)
                .bind(run_id)
                .bind(email),
                None => Sql::new(
                    "INSERT INTO desired_people (email, roles, listed_since_run_id, \
                     changed_run_id) VALUES (?3, ?1, ?4, ?2)",
                )
                .bind(roles)
                .bind(run_id)
                .bind(email)
                .bind((!first_fill).then_some(run_id)),
            }
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        for email in stored.keys().filter(|e| !listed.contains_key(e.as_str())) {
            Sql::new("DELETE FROM desired_people WHERE email = ?")
                .bind(email)
                .execute(&mut tx)
                .await
                .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// What the history knows of `email` (normalised): its accounts, its desired roles.
    pub async fn person(&self, email: &str) -> Result<Person, HistoryError> {
        let as_of_run: Option<i64> = Sql::new("SELECT run_id FROM people_seen")
            .scalar_optional(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        let accounts = Sql::new(
            "SELECT user_id, full_name, email, held FROM studio_accounts WHERE email = ? \
             ORDER BY user_id LIMIT 20",
        )
        .bind(email)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let desired: Option<(String, Option<i64>)> =
            Sql::new("SELECT roles, listed_since_run_id FROM desired_people WHERE email = ?")
                .bind(email)
                .fetch_optional(&self.db)
                .await
                .map_err(|e| self.err(e))?;
        let applied = match as_of_run {
            Some(run) => self.applied_to(run, &accounts).await?,
            None => Vec::new(),
        };
        Ok(Person {
            as_of_run,
            accounts,
            applied,
            desired,
        })
    }

    /// The changes run `run_id` applied to `accounts` (through `run_actions_key`: run first).
    async fn applied_to(
        &self,
        run_id: i64,
        accounts: &[AccountSeen],
    ) -> Result<Vec<AppliedChange>, HistoryError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; accounts.len()].join(",");
        let sql = format!(
            "SELECT user_id, role, action FROM run_actions \
             WHERE run_id = ? AND planned_user_id IN ({marks}) AND outcome = ? ORDER BY id"
        );
        let mut q = Sql::new(&sql).bind(run_id);
        for a in accounts {
            q = q.bind(a.user_id);
        }
        q.bind(Outcome::Applied.as_str())
            .fetch_all(&self.db)
            .await
            .map_err(|e| self.err(e))
    }

    /// The names Studio gave `user_ids` (those it gave one for), for names beside ids.
    pub async fn names_of(&self, user_ids: &[i64]) -> Result<HashMap<i64, String>, HistoryError> {
        let mut names = HashMap::new();
        // Bounded batches: SQLite limits the parameters of one statement.
        for chunk in user_ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!(
                "SELECT user_id, full_name FROM studio_accounts \
                 WHERE full_name IS NOT NULL AND user_id IN ({marks})"
            );
            let mut q = Sql::new(&sql);
            for id in chunk {
                q = q.bind(id);
            }
            names.extend(
                q.fetch_all::<(i64, String)>(&self.db)
                    .await
                    .map_err(|e| self.err(e))?,
            );
        }
        Ok(names)
    }

    /// The desired roles (with sources) of `emails`, those listed: what each waits for.
    pub async fn desired_of(
        &self,
        emails: &[&str],
    ) -> Result<HashMap<String, String>, HistoryError> {
        let mut roles = HashMap::new();
        for chunk in emails.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(",");
            let sql = format!("SELECT email, roles FROM desired_people WHERE email IN ({marks})");
            let mut q = Sql::new(&sql);
            for e in chunk {
                q = q.bind(*e);
            }
            roles.extend(
                q.fetch_all::<(String, String)>(&self.db)
                    .await
                    .map_err(|e| self.err(e))?,
            );
        }
        Ok(roles)
    }

    /// The domains of the listed emails (`desired_people`) with how many use each, the most
    /// used first (ties by name), at most `limit` of them: the console's typo hint compares a
    /// pending email's domain with the one most listed emails use.
    pub async fn listed_domains(&self, limit: u32) -> Result<Vec<(String, i64)>, HistoryError> {
        let domain = email_domain(self.db.dialect(), "email");
        Sql::new(format!(
            "SELECT {domain} AS domain, COUNT(*) AS emails FROM desired_people \
             WHERE email LIKE '%@%' GROUP BY {domain} ORDER BY emails DESC, domain LIMIT ?"
        ))
        .bind(limit)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    /// The accounts with `email` (for an ambiguous email: each with its name).
    pub async fn accounts_of(&self, email: &str) -> Result<Vec<AccountSeen>, HistoryError> {
        Ok(self.person(email).await?.accounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::history::backends::history_tests;

    fn account(id: i64, name: &str, email: &str, held: &str) -> AccountSeen {
        AccountSeen {
            user_id: id,
            full_name: Some(name.into()),
            email: Some(email.into()),
            held: held.into(),
        }
    }

    fn listed(email: &str, roles: &str) -> DesiredSeen {
        DesiredSeen {
            email: email.into(),
            roles: roles.into(),
        }
    }

    history_tests! {
        async fn people_follow_the_latest_run_and_write_only_changes(h: History) {
            let r1 = h.start_run("schedule", false).await.unwrap();
            h.record_people(
                r1,
                &[account(7, "Ada Lovelace", "ada@x.edu", "Admin")],
                &[listed("ada@x.edu", "Admin (roles.yaml)")],
            )
            .await
            .unwrap();
            let p = h.person("ada@x.edu").await.unwrap();
            assert_eq!(p.as_of_run, Some(r1));
            assert_eq!(p.accounts[0].full_name.as_deref(), Some("Ada Lovelace"));
            assert_eq!(p.desired, Some(("Admin (roles.yaml)".into(), None)));

            // Run 2: a new hire listed, ada's account no longer read (she holds nothing now).
            let r2 = h.start_run("schedule", false).await.unwrap();
            h.record_people(
                r2,
                &[],
                &[
                    listed("ada@x.edu", "Admin (roles.yaml)"),
                    listed("new@x.edu", "Admin (ldap)"),
                ],
            )
            .await
            .unwrap();
            let p = h.person("ada@x.edu").await.unwrap();
            assert_eq!(p.accounts[0].held, "", "not read: holds no managed role");
            assert_eq!(p.accounts[0].full_name.as_deref(), Some("Ada Lovelace"));
            let new = h.person("new@x.edu").await.unwrap();
            assert_eq!(new.desired, Some(("Admin (ldap)".into(), Some(r2))));
            assert_eq!(h.names_of(&[7, 8]).await.unwrap()[&7], "Ada Lovelace");

            // Run 3 changes nothing: no row is rewritten.
            let r3 = h.start_run("schedule", false).await.unwrap();
            h.record_people(
                r3,
                &[],
                &[
                    listed("ada@x.edu", "Admin (roles.yaml)"),
                    listed("new@x.edu", "Admin (ldap)"),
                ],
            )
            .await
            .unwrap();
            let changed: i64 = Sql::new(
                "SELECT (SELECT COUNT(*) FROM studio_accounts WHERE changed_run_id = ?1) + \
                 (SELECT COUNT(*) FROM desired_people WHERE changed_run_id = ?1)",
            )
            .bind(r3)
            .scalar(&h.db)
            .await
            .unwrap();
            assert_eq!(changed, 0);
            assert_eq!(h.person("new@x.edu").await.unwrap().as_of_run, Some(r3));

            // Unlisted: the row goes; listed again later, it is listed since that run.
            let r4 = h.start_run("schedule", false).await.unwrap();
            h.record_people(r4, &[], &[listed("new@x.edu", "Admin (ldap)")])
                .await
                .unwrap();
            assert_eq!(h.person("ada@x.edu").await.unwrap().desired, None);
        }

        async fn a_person_carries_what_the_latest_run_applied_to_them(h: History) {
            use crate::history::{ActionRow, PendingUpdate};
            let change = |user_id: i64, role: &str, action, outcome| ActionRow {
                email: Some("grace@x.edu".into()),
                user_id,
                role: role.into(),
                action,
                outcome,
                http_status: None,
                detail: None,
                source: None,
                until: None,
                reason: None,
            };
            let r1 = h.start_run("schedule", false).await.unwrap();
            h.record_people(
                r1,
                &[
                    account(2, "Grace Hopper", "grace@x.edu", "Editor"),
                    account(3, "Alan Turing", "alan@x.edu", ""),
                ],
                &[listed("grace@x.edu", "Admin (roles.yaml)")],
            )
            .await
            .unwrap();
            h.record_plan(
                r1,
                &[
                    change(2, "Admin", ChangeKind::Add, Outcome::Applied),
                    change(2, "Editor", ChangeKind::Remove, Outcome::Applied),
                    change(2, "Teacher", ChangeKind::Add, Outcome::Failed),
                    change(3, "Admin", ChangeKind::Add, Outcome::Applied),
                ],
                &PendingUpdate::default(),
            )
            .await
            .unwrap();
            let p = h.person("grace@x.edu").await.unwrap();
            assert_eq!(p.accounts[0].held, "Editor", "as read, before the changes");
            let applied: Vec<(i64, &str, ChangeKind)> = p
                .applied
                .iter()
                .map(|c| (c.user_id, c.role.as_str(), c.action))
                .collect();
            assert_eq!(
                applied,
                [(2, "Admin", ChangeKind::Add), (2, "Editor", ChangeKind::Remove)],
                "only grace's, only what Studio made"
            );
            // A later run that recorded people and changed nothing: nothing to fold.
            let r2 = h.start_run("schedule", false).await.unwrap();
            h.record_people(r2, &[account(2, "Grace Hopper", "grace@x.edu", "Admin")], &[])
                .await
                .unwrap();
            assert!(h.person("grace@x.edu").await.unwrap().applied.is_empty());
        }

        async fn listed_domains_most_used_first(h: History) {
            assert!(h.listed_domains(10).await.unwrap().is_empty());
            let r1 = h.start_run("schedule", false).await.unwrap();
            h.record_people(
                r1,
                &[],
                &[
                    listed("a@school.edu", "Admin (roles.yaml)"),
                    listed("b@school.edu", "Admin (roles.yaml)"),
                    listed("c@school.edu", ""),
                    listed("user15@shcool.edu", "Admin (roles.yaml)"),
                    listed("x@gmail.com", "Admin (ldap)"),
                    listed("y@gmail.com", "Admin (ldap)"),
                ],
            )
            .await
            .unwrap();
            assert_eq!(
                h.listed_domains(10).await.unwrap(),
                [
                    ("school.edu".to_string(), 3),
                    ("gmail.com".to_string(), 2),
                    ("shcool.edu".to_string(), 1),
                ]
            );
            assert_eq!(h.listed_domains(1).await.unwrap().len(), 1);
        }
    }
}
