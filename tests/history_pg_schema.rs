//! The PostgreSQL history's schema (`migrations/postgres/`) against the SQLite one
//! (`migrations/`, as `History::open` leaves a new file): the same tables and views, each with
//! the same columns in the same order and the same NOT NULLs, the same indexes (by table,
//! columns, uniqueness and partialness, primary keys included), and no 32-bit integer
//! column (Rust reads every integer as i64). The same queries then find the same things.
//!
//! Needs a server: set `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` (`.ci/run` does). Without it the
//! test is reported *ignored*, never passed; with `CI=true` it fails instead. It uses its own
//! schema, dropped at the end.

mod support;

use libtest_mimic::{Completion, Trial};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor, Row};
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use studio_role_sync_engine::history::History;

const PG_ENV: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";

/// A table or view: its name, whether it is a view, and its columns in order as
/// `(name, not null)`.
type Relation = (String, bool, Vec<(String, bool)>);
/// An index: its table, columns in order, unique, partial.
type Index = (String, Vec<String>, bool, bool);

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let trials = vec![Trial::ignorable_test(
        "postgres_schema_matches_sqlite",
        || {
            let Some(url) = std::env::var(PG_ENV).ok().filter(|u| !u.trim().is_empty()) else {
                return support::unavailable(format!("set {PG_ENV} to run against PostgreSQL"));
            };
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(postgres_schema_matches_sqlite(url));
            Ok(Completion::Completed)
        },
    )];
    libtest_mimic::run(&args, trials).exit_code()
}

async fn postgres_schema_matches_sqlite(url: String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("history.db");
    drop(
        History::open(&file)
            .await
            .expect("the SQLite history opens"),
    );
    let (sqlite_relations, sqlite_indexes) = sqlite_schema(&file).await;

    let schema = format!(
        "s28_parity_{}_{}",
        std::process::id(),
        chrono::Utc::now().timestamp_micros()
    );
    let admin = PgConnectOptions::from_str(&url).unwrap();
    let mut conn = admin.connect().await.expect("PostgreSQL answers");
    conn.execute(format!("CREATE SCHEMA {schema}").as_str())
        .await
        .unwrap();
    let found = postgres_schema(admin.clone(), &schema).await;
    conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (pg_relations, pg_indexes, narrow) = found;

    assert!(
        !sqlite_relations.is_empty() && !sqlite_indexes.is_empty(),
        "the SQLite schema was read"
    );
    assert_eq!(pg_relations, sqlite_relations, "tables, views and columns");
    assert_eq!(pg_indexes, sqlite_indexes, "indexes");
    assert!(narrow.is_empty(), "32-bit integer columns: {narrow:?}");
}

/// The relations and indexes of the SQLite history at `file`, without sqlx's and SQLite's own.
async fn sqlite_schema(file: &Path) -> (BTreeSet<Relation>, BTreeSet<Index>) {
    let mut db = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    // `leader_lease` (0002) exists on PostgreSQL only: a history file has one writer.
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') \
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    let mut relations = BTreeSet::new();
    let mut indexes = BTreeSet::new();
    for (name, kind) in names {
        let view = kind == "view";
        // A primary key column is NOT NULL in PostgreSQL; SQLite reports it nullable.
        let columns: Vec<(String, bool, i64, String)> = sqlx::query_as(
            "SELECT name, \"notnull\" = 1, pk, type FROM pragma_table_info(?) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(&mut db)
        .await
        .unwrap();
        let list: Vec<(String, i64)> =
            sqlx::query_as("SELECT name, \"unique\" FROM pragma_index_list(?)")
                .bind(&name)
                .fetch_all(&mut db)
                .await
                .unwrap();
        let mut has_pk_index = false;
        for (index, unique) in list {
            let cols: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_index_info(?) ORDER BY seqno")
                    .bind(&index)
                    .fetch_all(&mut db)
                    .await
                    .unwrap();
            let (origin, partial): (String, bool) = sqlx::query_as(
                "SELECT origin, partial = 1 FROM pragma_index_list(?) WHERE name = ?",
            )
            .bind(&name)
            .bind(&index)
            .fetch_one(&mut db)
            .await
            .unwrap();
            has_pk_index |= origin == "pk";
            indexes.insert((name.clone(), cols, unique == 1, partial));
        }
        // `INTEGER PRIMARY KEY` is the rowid: a key without an index entry.
        let mut pk: Vec<(i64, String)> = columns
            .iter()
            .filter(|c| c.2 > 0)
            .map(|c| (c.2, c.0.clone()))
            .collect();
        pk.sort();
        if !view && !pk.is_empty() && !has_pk_index {
            let cols = pk.into_iter().map(|(_, c)| c).collect();
            indexes.insert((name.clone(), cols, true, false));
        }
        let columns = columns
            .into_iter()
            .map(|(c, not_null, pk, _)| (c, not_null || pk > 0))
            .collect();
        relations.insert((name, view, columns));
    }
    (relations, indexes)
}

/// Applies `migrations/postgres` inside `schema` and reads back its relations, its indexes and
/// its 32-bit integer columns (as `table.column`).
async fn postgres_schema(
    admin: PgConnectOptions,
    schema: &str,
) -> (BTreeSet<Relation>, BTreeSet<Index>, Vec<String>) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(admin.options([("search_path", schema)]))
        .await
        .unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
    sqlx::migrate::Migrator::new(dir)
        .await
        .unwrap()
        .run(&pool)
        .await
        .expect("the PostgreSQL migrations apply");
    // `leader_lease` (0002) exists on PostgreSQL only: a history file has one writer.
    let names: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, table_type::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_name NOT IN ('_sqlx_migrations', 'leader_lease')",
    )
    .bind(schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut relations = BTreeSet::new();
    for (name, kind) in names {
        let view = kind == "VIEW";
        let columns: Vec<(String, bool)> = sqlx::query_as(
            "SELECT column_name::text, is_nullable = 'NO' FROM information_schema.columns \
             WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
        )
        .bind(schema)
        .bind(&name)
        .fetch_all(&pool)
        .await
        .unwrap();
        // A view's columns are nullable to PostgreSQL; SQLite says the same (notnull = 0).
        relations.insert((name, view, columns));
    }
    let indexes = sqlx::query(
        "SELECT t.relname::text AS tbl, \
                array_agg(a.attname::text ORDER BY k.ord) AS cols, \
                i.indisunique AS uniq, i.indpred IS NOT NULL AS partial \
           FROM pg_index i \
           JOIN pg_class t ON t.oid = i.indrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
           CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord) \
           JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
          WHERE n.nspname = $1 AND t.relname NOT IN ('_sqlx_migrations', 'leader_lease') \
          GROUP BY i.indexrelid, t.relname, i.indisunique, i.indpred IS NOT NULL",
    )
    .bind(schema)
    .fetch_all(&pool)
    .await
    .unwrap()
    .into_iter()
    .map(|r| (r.get("tbl"), r.get("cols"), r.get("uniq"), r.get("partial")))
    .collect();
    let narrow = sqlx::query_scalar(
        "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name <> 'leader_lease' \
         AND data_type IN ('integer', 'smallint', 'real')",
    )
    .bind(schema)
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    (relations, indexes, narrow)
}
