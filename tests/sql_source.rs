//! The SQL source end to end: the real binary against the simulator, with the desired state
//! read from a real PostgreSQL server, a real MariaDB/MySQL server and a SQLite file.
//!
//! PostgreSQL and MariaDB tests need a server: set `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` and
//! `STUDIO_ROLE_SYNC_TEST_MYSQL_URL` (`.ci/run` does); without them those tests say they were
//! skipped and pass. SQLite tests always run. Every test uses its own table, dropped at the end.

mod common;

use common::{count, run_row, user, Opts, Run, Tenant};
use sqlx::{ConnectOptions, Connection, Executor};
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use studio_role_sync::sim::SimUser;

const PG_ENV: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";
const MYSQL_ENV: &str = "STUDIO_ROLE_SYNC_TEST_MYSQL_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

/// A table of `(id, email, role, n)` in one database, unique to this test.
struct Db {
    kind: Kind,
    /// The URL the tests use to set up (and the binary to read).
    url: String,
    table: String,
    _dir: Option<tempfile::TempDir>,
}

static TABLES: AtomicU32 = AtomicU32::new(0);

impl Db {
    /// The database of `kind` with a fresh table, or `None` (and a note on stderr) when the
    /// server's URL is not set.
    async fn new(kind: Kind) -> Option<Db> {
        let (url, dir) = match kind {
            Kind::Postgres | Kind::MySql => {
                let (var, name) = if kind == Kind::Postgres {
                    (PG_ENV, "PostgreSQL")
                } else {
                    (MYSQL_ENV, "MariaDB/MySQL")
                };
                match std::env::var(var) {
                    Ok(url) if !url.is_empty() => (url, None),
                    _ => {
                        eprintln!("skipped: set {var} to run against {name}");
                        return None;
                    }
                }
            }
            Kind::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("hr.db").display());
                (url, Some(dir))
            }
        };
        let table = format!(
            "srs_test_{}_{}",
            std::process::id(),
            TABLES.fetch_add(1, Ordering::SeqCst)
        );
        let db = Db {
            kind,
            url,
            table,
            _dir: dir,
        };
        db.exec(&format!(
            "CREATE TABLE {} (id INTEGER PRIMARY KEY, email VARCHAR(200), role VARCHAR(100), n INTEGER)",
            db.table
        ))
        .await;
        Some(db)
    }

    /// Runs `sql` (any number of statements) as the test's admin.
    async fn exec(&self, sql: &str) {
        self.try_exec(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    async fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        match self.kind {
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await?;
                c.execute(sql).await?;
                c.close().await
            }
            Kind::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await?;
                c.execute(sql).await?;
                c.close().await
            }
            Kind::Sqlite => {
                let mut c = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?
                    .create_if_missing(true)
                    .connect()
                    .await?;
                c.execute(sql).await?;
                c.close().await
            }
        }
    }

    /// Appends rows of `(email, role)`; `None` is NULL. Row order is insertion order.
    async fn insert(&self, rows: &[(Option<&str>, Option<&str>)]) {
        if rows.is_empty() {
            return;
        }
        let lit = |v: Option<&str>| match v {
            Some(s) => format!("'{}'", s.replace('\'', "''")),
            None => "NULL".into(),
        };
        let base = TABLES.fetch_add(1000, Ordering::SeqCst) as usize;
        let values: Vec<String> = rows
            .iter()
            .enumerate()
            .map(|(i, (e, r))| format!("({}, {}, {}, {i})", base + i, lit(*e), lit(*r)))
            .collect();
        self.exec(&format!(
            "INSERT INTO {} (id, email, role, n) VALUES {}",
            self.table,
            values.join(", ")
        ))
        .await;
    }

    async fn rows(&self) -> i64 {
        let sql = format!("SELECT COUNT(*) FROM {}", self.table);
        match self.kind {
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
            }
            Kind::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
            }
            Kind::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(&sql).fetch_one(&mut c).await.unwrap()
            }
        }
    }

    /// The query the binary runs, in insertion order.
    fn query(&self) -> String {
        format!("SELECT email, role FROM {} ORDER BY id", self.table)
    }

    async fn drop_table(self) {
        self.exec(&format!("DROP TABLE IF EXISTS {}", self.table))
            .await;
    }
}

/// The `source:` block for a SQL source read from `ROLE_SOURCE_URL`.
fn sql_source(query: &str) -> String {
    format!("  sql:\n    url_env: ROLE_SOURCE_URL\n    query: \"{query}\"\n")
}

fn opts(query: &str) -> Opts {
    Opts {
        source: sql_source(query),
        ..Opts::default()
    }
}

fn staff() -> Vec<SimUser> {
    vec![
        user(1, Some("alice@school.edu"), &["Admin"]),
        user(2, Some("Bob@School.edu"), &[]),
        user(3, Some("carol@school.edu"), &["Admin", "CaptionEditor"]),
        user(4, Some("dave@school.edu"), &["Admin", "Teacher"]),
    ]
}

async fn cli(t: &Tenant, args: &[&str], url: &str) -> Run {
    t.cli_env(args, &[("ROLE_SOURCE_URL", url)]).await
}

async fn runs(t: &Tenant) -> i64 {
    count(&t.history().await, "SELECT COUNT(*) FROM runs").await
}

/// Nothing reached Studio's write endpoint and the roles are as they started.
fn nothing_sent(t: &Tenant) {
    assert_eq!(t.sim.stats().put_roles, 0, "a PUT reached Studio");
    assert_eq!(
        t.holders("Admin"),
        vec!["alice@school.edu", "carol@school.edu", "dave@school.edu"]
    );
}

/// Declares `$body(kind)` as three tests: `$body::postgres`, `::mysql`, `::sqlite`.
macro_rules! per_database {
    ($($body:ident),* $(,)?) => {$(
        mod $body {
            use super::*;
            #[tokio::test]
            async fn postgres() {
                super::$body(Kind::Postgres).await
            }
            #[tokio::test]
            async fn mysql() {
                super::$body(Kind::MySql).await
            }
            #[tokio::test]
            async fn sqlite() {
                super::$body(Kind::Sqlite).await
            }
        }
    )*};
}

per_database!(
    converges,
    bad_rows_are_listed_and_nothing_is_sent,
    wrong_column_types,
    wrong_column_count,
    empty_result_is_refused,
    query_error_fails_the_run,
    the_query_cannot_write,
    statement_timeout_cancels_the_query,
);

async fn converges(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    db.insert(&[
        (Some("alice@school.edu"), Some("Admin")),
        (Some(" BOB@school.edu"), Some("Admin")),
        (Some("bob@school.edu"), Some("CaptionEditor")),
        (Some("carol@school.edu"), Some("CaptionEditor")),
        (Some("carol@school.edu"), Some("CaptionEditor")),
    ])
    .await;
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&db.query()));

    let v = cli(&t, &["validate"], &db.url).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("ok (5 rows, 3 users, 4 grants)"), "{v:?}");
    assert_eq!(t.sim.stats().total, 0, "validate called Studio");

    let plan = cli(&t, &["plan"], &db.url).await;
    assert_eq!(plan.code, 2, "{plan:?}");
    assert_eq!(t.sim.stats().put_roles, 0);

    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        t.holders("Admin"),
        vec!["Bob@School.edu", "alice@school.edu"]
    );
    assert_eq!(
        t.holders("CaptionEditor"),
        vec!["Bob@School.edu", "carol@school.edu"]
    );
    // Unmanaged roles are untouched.
    assert_eq!(t.sim.user(4).unwrap().role_names, vec!["Teacher"]);
    let h = t.history().await;
    let (status, adds, removes, failed, _, _) = run_row(&h, 2).await;
    assert_eq!(
        (status.as_str(), adds, removes, failed),
        ("succeeded", 2, 2, 0)
    );
    let desired: i64 = count(&h, "SELECT desired_users FROM runs WHERE id = 2").await;
    assert_eq!(desired, 3);

    // Converged: the next run changes nothing.
    let again = cli(&t, &["apply"], &db.url).await;
    assert_eq!(again.code, 0, "{again:?}");
    let (status, adds, removes, ..) = run_row(&t.history().await, 3).await;
    assert_eq!((status.as_str(), adds, removes), ("succeeded", 0, 0));
    db.drop_table().await;
}

async fn bad_rows_are_listed_and_nothing_is_sent(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    db.insert(&[
        (Some("alice@school.edu"), Some("Admin")),
        (Some("not-an-email"), Some("Admin")),
        (Some("carol@school.edu"), Some("Superuser")),
        (None, Some("Admin")),
        (Some("dave@school.edu"), None),
        (Some("bob@school.edu"), Some("admin")),
    ])
    .await;
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&db.query()));

    for command in ["validate", "apply"] {
        let run = cli(&t, &[command], &db.url).await;
        assert_eq!(run.code, 1, "{command}: {run:?}");
        let e = &run.stderr;
        for expected in [
            "desired roles are invalid (5 problems); nothing was sent to Studio",
            "row 2: \"not-an-email\" is not an email address",
            "row 3: carol@school.edu: role \"Superuser\" is not in roles.managed",
            "row 4: email is NULL (role \"Admin\")",
            "row 5: role is NULL (email \"dave@school.edu\")",
            "row 6: bob@school.edu: role \"admin\" is not in roles.managed",
            "did you mean \"Admin\"?",
        ] {
            assert!(
                e.contains(expected),
                "{command}: missing {expected:?} in {run:?}"
            );
        }
        assert!(!e.contains("row 1:"), "{run:?}");
    }
    nothing_sent(&t);
    assert_eq!(runs(&t).await, 0, "an invalid desired state started a run");
    db.drop_table().await;
}

async fn wrong_column_types(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    db.insert(&[
        (Some("alice@school.edu"), Some("Admin")),
        (Some("bob@school.edu"), Some("Admin")),
    ])
    .await;
    let t = Tenant::start(staff()).await;
    // The role column is the integer `n`, the email column the integer `id`.
    t.write_config(&opts(&format!(
        "SELECT email, n FROM {} ORDER BY id",
        db.table
    )));
    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 1, "{run:?}");
    let ty = match kind {
        Kind::Postgres => "INT4",
        Kind::MySql => "INT",
        Kind::Sqlite => "INTEGER",
    };
    for expected in [
        format!("row 1: role (column 2) is of type {ty}, not text: cast it in the query (email \"alice@school.edu\")"),
        format!("row 2: role (column 2) is of type {ty}, not text"),
    ] {
        assert!(run.stderr.contains(&expected), "missing {expected:?}: {run:?}");
    }

    t.write_config(&opts(&format!(
        "SELECT id, role FROM {} ORDER BY id",
        db.table
    )));
    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 1, "{run:?}");
    let expected = format!("row 1: email (column 1) is of type {ty}, not text");
    assert!(
        run.stderr.contains(&expected),
        "missing {expected:?}: {run:?}"
    );
    nothing_sent(&t);
    db.drop_table().await;
}

async fn wrong_column_count(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    db.insert(&[(Some("alice@school.edu"), Some("Admin"))])
        .await;
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&format!(
        "SELECT email, role, id FROM {} ORDER BY id",
        db.table
    )));
    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "row 1: the query returns 3 column(s) (email, role, id); it must return exactly two: email, role"
        ),
        "{run:?}"
    );
    t.write_config(&opts(&format!("SELECT email FROM {}", db.table)));
    let run = cli(&t, &["validate"], &db.url).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("returns 1 column(s) (email)"),
        "{run:?}"
    );
    nothing_sent(&t);
    db.drop_table().await;
}

async fn empty_result_is_refused(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&db.query()));

    let v = cli(&t, &["validate"], &db.url).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("ok (0 rows, 0 users, 0 grants)"), "{v:?}");
    assert!(v.stdout.contains("every run will be refused"), "{v:?}");

    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 3, "{run:?}");
    nothing_sent(&t);
    let (status, adds, removes, ..) = run_row(&t.history().await, 1).await;
    assert_eq!((status.as_str(), adds, removes), ("aborted", 0, 0));

    // With removals off, an empty result is harmless: nothing to add, nothing removed.
    t.write_config(&Opts {
        remove_unlisted: false,
        ..opts(&db.query())
    });
    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 0, "{run:?}");
    nothing_sent(&t);
    db.drop_table().await;
}

async fn query_error_fails_the_run(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    let t = Tenant::start(staff()).await;
    t.write_config(&opts("SELECT email, role FROM srs_no_such_table"));
    for command in ["validate", "apply"] {
        let run = cli(&t, &[command], &db.url).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(run.stderr.contains("the query failed: "), "{run:?}");
        assert!(run.stderr.contains("srs_no_such_table"), "{run:?}");
    }
    nothing_sent(&t);
    assert_eq!(runs(&t).await, 0);
    db.drop_table().await;
}

async fn the_query_cannot_write(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    db.insert(&[(Some("alice@school.edu"), Some("Admin"))])
        .await;
    let t = Tenant::start(staff()).await;
    let table = &db.table;
    let mut attempts = vec![
        // A second statement would escape the read-only transaction: refused.
        format!("SELECT email, role FROM {table}; DELETE FROM {table}"),
        format!("SELECT email, role FROM {table}; COMMIT; DELETE FROM {table}"),
    ];
    match kind {
        Kind::Postgres => attempts.push(format!(
            "WITH d AS (DELETE FROM {table} RETURNING email, role) SELECT email, role FROM d"
        )),
        Kind::MySql => attempts.push(format!("DELETE FROM {table}")),
        Kind::Sqlite => attempts.push(format!("DELETE FROM {table} RETURNING email, role")),
    }
    for query in attempts {
        t.write_config(&opts(&query));
        let run = cli(&t, &["apply"], &db.url).await;
        assert_eq!(run.code, 1, "{query}: {run:?}");
        assert!(run.stderr.contains("the query failed: "), "{run:?}");
        assert_eq!(db.rows().await, 1, "{query} deleted rows");
    }
    nothing_sent(&t);
    db.drop_table().await;
}

async fn statement_timeout_cancels_the_query(kind: Kind) {
    let Some(db) = Db::new(kind).await else {
        return;
    };
    let slow = match kind {
        Kind::Postgres => "SELECT 'alice@school.edu', 'Admin' FROM pg_sleep(20)".to_string(),
        Kind::MySql => "SELECT 'alice@school.edu', 'Admin' FROM (SELECT SLEEP(20)) s".to_string(),
        Kind::Sqlite => "SELECT 'alice@school.edu', 'Admin' FROM (WITH RECURSIVE c(n) AS \
             (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT max(n) FROM c)"
            .to_string(),
    };
    let t = Tenant::start(staff()).await;
    t.write_config(&Opts {
        source: format!("{}    statement_timeout_seconds: 1\n", sql_source(&slow)),
        ..Opts::default()
    });
    let started = std::time::Instant::now();
    let run = cli(&t, &["apply"], &db.url).await;
    assert!(started.elapsed().as_secs() < 10, "{run:?}");
    assert_eq!(run.code, 1, "{run:?}");
    let expected = match kind {
        Kind::Postgres => "statement timeout",
        Kind::MySql => "max_statement_time exceeded",
        Kind::Sqlite => "ran longer than statement_timeout_seconds (1 s)",
    };
    assert!(run.stderr.contains(expected), "{run:?}");
    nothing_sent(&t);
    db.drop_table().await;
}

/// A closed port on 127.0.0.1.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test]
async fn unreachable_server_fails_the_run_without_the_password() {
    for scheme in ["postgres", "mysql"] {
        let port = closed_port();
        let url = format!("{scheme}://sync:Secr3tPassw0rd@127.0.0.1:{port}/hr");
        let t = Tenant::start(staff()).await;
        t.write_config(&opts("SELECT email, role FROM grants"));
        for command in ["validate", "apply"] {
            let run = cli(&t, &[command], &url).await;
            assert_eq!(run.code, 1, "{run:?}");
            let shown = format!(
                "error: SQL source (source.sql.url_env: {scheme}://127.0.0.1:{port}/hr): \
                 cannot reach the database server: "
            );
            assert!(run.stderr.contains(&shown), "{run:?}");
            assert!(!run.stderr.contains("Secr3t"), "{run:?}");
            assert!(!run.stdout.contains("Secr3t"), "{run:?}");
        }
        nothing_sent(&t);
        assert_eq!(runs(&t).await, 0);
    }
}

#[tokio::test]
async fn unsupported_scheme_and_missing_sqlite_file() {
    let t = Tenant::start(staff()).await;
    t.write_config(&opts("SELECT email, role FROM grants"));
    let run = cli(&t, &["apply"], "oracle://sync:Secr3tPassw0rd@db/hr").await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .contains("unsupported database URL scheme \"oracle\""),
        "{run:?}"
    );
    assert!(!run.stderr.contains("Secr3t"), "{run:?}");

    let missing = t.path("no-such.db");
    let run = cli(&t, &["apply"], &format!("sqlite://{}", missing.display())).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "cannot open the database: no file at {}",
            missing.display()
        )),
        "{run:?}"
    );
    assert!(!missing.exists(), "the missing database was created");
    nothing_sent(&t);
}

#[tokio::test]
async fn mysql_wrong_password_and_read_only_user() {
    let Some(db) = Db::new(Kind::MySql).await else {
        return;
    };
    db.insert(&[(Some("alice@school.edu"), Some("Admin"))])
        .await;
    // The recommended read-only account (docs/sql-source.md): SELECT on the one table.
    let right = "Right-Pa55word";
    for host in ["%", "localhost", "127.0.0.1"] {
        db.exec(&format!(
            "CREATE USER IF NOT EXISTS 'srs_test'@'{host}' IDENTIFIED BY '{right}'; \
             ALTER USER 'srs_test'@'{host}' IDENTIFIED BY '{right}'; \
             GRANT SELECT ON {} TO 'srs_test'@'{host}'",
            db.table
        ))
        .await;
    }
    let u = url::Url::parse(&db.url).unwrap();
    let at = format!(
        "{}:{}{}",
        u.host_str().unwrap(),
        u.port().unwrap_or(3306),
        u.path()
    );
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&db.query()));

    let wrong = format!("mysql://srs_test:Wr0ng-Passw0rd@{at}");
    for command in ["validate", "apply"] {
        let run = cli(&t, &[command], &wrong).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains(&format!(
                "error: SQL source (source.sql.url_env: mysql://{at}): \
                 cannot connect to the database: Access denied for user 'srs_test'"
            )),
            "{run:?}"
        );
        assert!(!run.stderr.contains("Wr0ng"), "{run:?}");
    }
    nothing_sent(&t);
    assert_eq!(runs(&t).await, 0);

    // The same account with its password reads the table, and can do nothing else.
    let good = format!("mysql://srs_test:{right}@{at}");
    let v = cli(&t, &["validate"], &good).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("ok (1 rows, 1 users, 1 grants)"), "{v:?}");
    assert!(!v.stdout.contains(right), "{v:?}");
    db.exec("DROP USER IF EXISTS 'srs_test'@'%', 'srs_test'@'localhost', 'srs_test'@'127.0.0.1'")
        .await;
    db.drop_table().await;
}

#[tokio::test]
async fn postgres_missing_database_and_unknown_user() {
    let Some(db) = Db::new(Kind::Postgres).await else {
        return;
    };
    let u = url::Url::parse(&db.url).unwrap();
    let host = format!("{}:{}", u.host_str().unwrap(), u.port().unwrap_or(5432));
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&db.query()));

    let cases = [
        (
            format!("postgres://postgres:Secr3tPassw0rd@{host}/srs_no_such_db"),
            "database \"srs_no_such_db\" does not exist",
        ),
        (
            format!("postgres://srs_no_such_user:Secr3tPassw0rd@{host}/test"),
            "srs_no_such_user",
        ),
    ];
    for (url, expected) in cases {
        let run = cli(&t, &["apply"], &url).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains("cannot connect to the database: "),
            "{run:?}"
        );
        assert!(run.stderr.contains(expected), "{run:?}");
        assert!(!run.stderr.contains("Secr3t"), "{run:?}");
    }
    nothing_sent(&t);
    assert_eq!(runs(&t).await, 0);
    db.drop_table().await;
}

#[tokio::test]
async fn url_file_sqlite() {
    let Some(db) = Db::new(Kind::Sqlite).await else {
        return;
    };
    db.insert(&[
        (Some("alice@school.edu"), Some("Admin")),
        (Some("carol@school.edu"), Some("Admin")),
        (Some("dave@school.edu"), Some("Admin")),
    ])
    .await;
    let t = Tenant::start(staff()).await;
    std::fs::write(t.path("role-source-url"), format!("{}\n", db.url)).unwrap();
    t.write_config(&Opts {
        source: format!(
            "  sql:\n    url_file: role-source-url\n    query: {}\n",
            db.query()
        ),
        ..Opts::default()
    });
    let v = t.cli(&["validate"]).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(
        v.stdout.contains(&format!(
            "SQL source (source.sql.url_file: {}): ok (3 rows, 3 users, 3 grants)",
            db.url
        )),
        "{v:?}"
    );
    let run = t.cli(&["apply"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        t.holders("Admin"),
        vec!["alice@school.edu", "carol@school.edu", "dave@school.edu"]
    );
    assert_eq!(t.holders("CaptionEditor"), Vec::<String>::new());
    db.drop_table().await;
}
