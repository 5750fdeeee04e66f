//! Moving a history from its SQLite file into an empty PostgreSQL schema: the upgrade step
//! from one machine to several (`copy-history`).
//!
//! Every table is copied row for row, ids included: runs, actions, pending spans,
//! approvals and run requests, the OAuth lineage, notification state, retention's day
//! totals, what is known of people. The tables and their column types are read from the
//! PostgreSQL schema (the migrations made it), so a table added by a later migration is
//! copied without a change here; tables are taken in the order their foreign keys need.
//!
//! All of it is one PostgreSQL transaction: a copy that fails leaves the target empty, and
//! can be run again. The target must be empty: a copy never merges into a history that
//! already has runs. At the end it checks what it wrote: the row count of every table, and
//! that the newest OAuth refresh token is the same on both sides (compared, never shown).

use super::db::{Arg, Dialect, HistoryRow, Sql};
use super::{History, HistoryError, HistoryFailure};
use std::collections::{BTreeMap, BTreeSet};

/// Tables that belong to one database and are not history: the migrator's own record, and
/// the leader lease of the PostgreSQL schema.
const NOT_COPIED: &[&str] = &["_sqlx_migrations", "leader_lease"];

/// Rows per INSERT: well under PostgreSQL's 65,535 bound values for the widest table.
const ROWS_PER_INSERT: usize = 500;

/// What a copy wrote, table by table (in the order copied), as counted in both histories.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    pub tables: Vec<CopiedTable>,
    /// Whether the source holds OAuth tokens; when it does, the newest refresh token of each
    /// client was checked equal in the target.
    pub oauth_clients: usize,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopiedTable {
    pub name: String,
    pub rows: i64,
}

/// A column of the target, and how its values are read from the source.
struct Column {
    name: String,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Int,
    Text,
    Bool,
    Real,
}

impl Kind {
    fn of(data_type: &str) -> Option<Kind> {
        match data_type {
            "bigint" | "integer" | "smallint" => Some(Kind::Int),
            "text" | "character varying" | "character" => Some(Kind::Text),
            "boolean" => Some(Kind::Bool),
            "double precision" | "real" => Some(Kind::Real),
            _ => None,
        }
    }

    fn read(self, row: &HistoryRow, i: usize) -> Result<Arg, sqlx::Error> {
        Ok(match self {
            Kind::Int => Arg::Int(row.try_get(i)?),
            Kind::Text => Arg::Text(row.try_get(i)?),
            Kind::Bool => Arg::Bool(row.try_get(i)?),
            Kind::Real => Arg::Real(row.try_get(i)?),
        })
    }
}

impl History {
    /// Copies this (SQLite) history into `target`, an empty PostgreSQL history (migrated by
    /// [`History::open_postgres`]). Nothing is written to the target unless every table
    /// copies and checks out.
    pub async fn copy_into(&self, target: &History) -> Result<CopyReport, HistoryError> {
        let refuse = |message: String| HistoryError {
            path: target.path.clone(),
            failure: HistoryFailure::Setup(message),
        };
        if self.db.dialect() != Dialect::Sqlite || target.db.dialect() != Dialect::Postgres {
            return Err(refuse(
                "a copy goes from a SQLite history file into a PostgreSQL history".into(),
            ));
        }
        let tables = target.tables_in_copy_order().await?;
        let source_tables: BTreeSet<String> = Sql::new(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .scalars(&self.db)
        .await
        .map_err(|e| self.err(e))?
        .into_iter()
        .collect();
        let mut tx = target.db.begin_write().await.map_err(|e| target.err(e))?;
        for (table, _) in &tables {
            let rows: i64 = Sql::new(format!("SELECT COUNT(*) FROM {table}"))
                .scalar(&mut tx)
                .await
                .map_err(|e| target.err(e))?;
            if rows > 0 {
                return Err(refuse(format!(
                    "the target is not empty (table {table} has {rows} rows): a copy goes \
                     into a new schema only, never merged into a history in use"
                )));
            }
        }
        let mut report = CopyReport::default();
        for (table, columns) in &tables {
            if !source_tables.contains(table) {
                return Err(refuse(format!(
                    "the SQLite history has no table {table}: open it once with this version \
                     (any command migrates it), then copy"
                )));
            }
            let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            let list = names.join(", ");
            let rows = Sql::new(format!("SELECT {list} FROM {table}"))
                .fetch_rows(&self.db)
                .await
                .map_err(|e| self.err(e))?;
            for chunk in rows.chunks(ROWS_PER_INSERT) {
                let values = chunk
                    .iter()
                    .map(|row| {
                        columns
                            .iter()
                            .enumerate()
                            .map(|(i, c)| c.kind.read(row, i))
                            .collect::<Result<Vec<Arg>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| self.err(e))?;
                let mut insert = Sql::new(format!("INSERT INTO {table} ({list})"));
                insert.push_values(values, |r, row| {
                    for v in row {
                        r.bind(v);
                    }
                });
                insert.execute(&mut tx).await.map_err(|e| target.err(e))?;
            }
            report.tables.push(CopiedTable {
                name: table.clone(),
                rows: rows.len() as i64,
            });
        }
        // Identity columns go on from the highest id copied, not from 1.
        let identities: Vec<(String, String)> = Sql::new(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema = current_schema() AND is_identity = 'YES'",
        )
        .fetch_all(&mut tx)
        .await
        .map_err(|e| target.err(e))?;
        for (table, column) in identities {
            Sql::new(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), \
                 COALESCE(MAX({column}), 1), MAX({column}) IS NOT NULL) FROM {table}"
            ))
            .fetch_rows(&mut tx)
            .await
            .map_err(|e| target.err(e))?;
        }
        // The check, inside the transaction: what the target now holds, table by table.
        for copied in &report.tables {
            let there: i64 = Sql::new(format!("SELECT COUNT(*) FROM {}", copied.name))
                .scalar(&mut tx)
                .await
                .map_err(|e| target.err(e))?;
            if there != copied.rows {
                return Err(refuse(format!(
                    "table {} has {there} rows after the copy, the source {}: nothing was \
                     copied",
                    copied.name, copied.rows
                )));
            }
        }
        let tokens = "SELECT client_id, refresh_token FROM oauth_tokens ORDER BY client_id";
        let source_tokens: Vec<(String, String)> = Sql::new(tokens)
            .fetch_all(&self.db)
            .await
            .map_err(|e| self.err(e))?;
        let target_tokens: Vec<(String, String)> = Sql::new(tokens)
            .fetch_all(&mut tx)
            .await
            .map_err(|e| target.err(e))?;
        if source_tokens != target_tokens {
            return Err(refuse(
                "the newest OAuth refresh token differs after the copy: nothing was copied".into(),
            ));
        }
        report.oauth_clients = source_tokens.len();
        tx.commit().await.map_err(|e| target.err(e))?;
        Ok(report)
    }

    /// The target's tables with their columns, each after the tables its foreign keys name.
    async fn tables_in_copy_order(&self) -> Result<Vec<(String, Vec<Column>)>, HistoryError> {
        let columns: Vec<(String, String, String)> = Sql::new(
            "SELECT c.table_name, c.column_name, c.data_type FROM information_schema.columns c \
             JOIN information_schema.tables t ON t.table_schema = c.table_schema \
              AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE' \
             WHERE c.table_schema = current_schema() ORDER BY c.table_name, c.ordinal_position",
        )
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        let mut tables: BTreeMap<String, Vec<Column>> = BTreeMap::new();
        for (table, name, data_type) in columns {
            if NOT_COPIED.contains(&table.as_str()) {
                continue;
            }
            let kind = Kind::of(&data_type).ok_or_else(|| HistoryError {
                path: self.path.clone(),
                failure: HistoryFailure::Setup(format!(
                    "column {table}.{name} has type {data_type}, which a copy cannot carry"
                )),
            })?;
            tables.entry(table).or_default().push(Column { name, kind });
        }
        let references: Vec<(String, String)> = Sql::new(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c \
             WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
        )
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))?;
        // Tables first whose references are all placed; a cycle cannot be ordered.
        let mut ordered = Vec::with_capacity(tables.len());
        let mut placed = BTreeSet::new();
        while !tables.is_empty() {
            let ready: Vec<String> = tables
                .keys()
                .filter(|t| {
                    references
                        .iter()
                        .filter(|(from, to)| from == *t && to != *t)
                        .all(|(_, to)| placed.contains(to) || !tables.contains_key(to))
                })
                .cloned()
                .collect();
            if ready.is_empty() {
                return Err(HistoryError {
                    path: self.path.clone(),
                    failure: HistoryFailure::Setup(
                        "the schema's foreign keys form a cycle; cannot order the copy".into(),
                    ),
                });
            }
            for t in ready {
                let columns = tables.remove(&t).unwrap_or_default();
                placed.insert(t.clone());
                ordered.push((t, columns));
            }
        }
        Ok(ordered)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::history::backends;

    /// Only the PostgreSQL half exists: a copy needs a SQLite source and a PostgreSQL target.
    #[tokio::test]
    #[cfg_attr(
        history_postgres_ignored,
        ignore = "needs PostgreSQL: set STUDIO_ROLE_SYNC_TEST_POSTGRES_URL (.ci/run does)"
    )]
    async fn a_copy_carries_every_row_and_refuses_a_target_in_use() {
        let (source, _dir) = backends::sqlite().await;
        let id = source.start_run("schedule", false).await.unwrap();
        source.mark_interrupted().await.unwrap();
        source.request_run("ada").await.unwrap();
        let (target, _schema) = backends::postgres().await;
        let report = source.copy_into(&target).await.unwrap();
        let runs = report.tables.iter().find(|t| t.name == "runs").unwrap();
        assert_eq!(runs.rows, 1);
        assert_eq!(
            target.run(id).await.unwrap().unwrap(),
            source.run(id).await.unwrap().unwrap()
        );
        // The next run goes on from the copied ids.
        assert_eq!(target.start_run("schedule", false).await.unwrap(), id + 1);
        let again = source.copy_into(&target).await.unwrap_err().to_string();
        assert!(again.contains("not empty"), "{again}");
    }
}
