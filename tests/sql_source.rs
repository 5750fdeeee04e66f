//! The SQL source end to end: the real binary against the simulator, with the desired state
//! read from a real PostgreSQL server, a real MariaDB/MySQL server and a SQLite file.
//!
//! PostgreSQL and MariaDB tests need a server: set `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` and
//! `STUDIO_ROLE_SYNC_TEST_MYSQL_URL` (`.ci/run` does). Without them those tests are reported
//! *ignored*, with the variable to set, never passed; with `CI=true` they fail instead. That
//! is decided when the test runs, so this binary has its own harness (`libtest-mimic`, see
//! `main`), with the usual filters and flags. SQLite tests always run. Every test uses its
//! own table, dropped at the end.

mod support;

use libtest_mimic::{Completion, Trial};
use sqlx::{ConnectOptions, Connection, Executor};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use studio_sim::SimUser;
use support::{count, run_row, user, Opts, Run, Tenant};

const PG_ENV: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";
const MYSQL_ENV: &str = "STUDIO_ROLE_SYNC_TEST_MYSQL_URL";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Postgres,
    MySql,
    Sqlite,
}

impl Kind {
    /// The variable holding the server's URL, and the server's name; `None` for SQLite.
    fn server(self) -> Option<(&'static str, &'static str)> {
        match self {
            Kind::Postgres => Some((PG_ENV, "PostgreSQL")),
            Kind::MySql => Some((MYSQL_ENV, "MariaDB/MySQL")),
            Kind::Sqlite => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Postgres => "postgres",
            Kind::MySql => "mysql",
            Kind::Sqlite => "sqlite",
        }
    }

    /// Whether the binary under test reads this database (its feature of the same name).
    fn built_in(self) -> bool {
        match self {
            Kind::Postgres => cfg!(feature = "postgres"),
            Kind::MySql => cfg!(feature = "mysql"),
            Kind::Sqlite => cfg!(feature = "sqlite"),
        }
    }
}

fn server_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|u| !u.trim().is_empty())
}

/// One test: `body` on a fresh single-threaded runtime (as `#[tokio::test]` does), ignored
/// with the reason when the server it `needs` has no URL, failed instead under `CI=true`
/// (and ignored when the binary cannot read that database at all: a build without its feature).
fn trial<F, Fut>(name: String, needs: Option<Kind>, body: F) -> Trial
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    Trial::ignorable_test(name, move || {
        if let Some(kind) = needs.filter(|k| !k.built_in()) {
            return Ok(Completion::ignored_with(format!(
                "the binary was built without the `{}` feature",
                kind.name()
            )));
        }
        if let Some((var, server)) = needs.and_then(Kind::server) {
            if server_url(var).is_none() {
                let reason = format!("set {var} to run against {server}");
                return support::unavailable(reason);
            }
        }
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(body());
        Ok(Completion::Completed)
    })
}

/// Declares `$body(kind)` as three tests: `$body::postgres`, `::mysql`, `::sqlite`.
macro_rules! per_database {
    ($trials:ident; $($body:ident),* $(,)?) => {$(
        for kind in [Kind::Postgres, Kind::MySql, Kind::Sqlite] {
            $trials.push(trial(
                format!("{}::{}", stringify!($body), kind.name()),
                Some(kind),
                move || $body(kind),
            ));
        }
    )*};
}

/// Declares `$body()` as one test that needs the server of `$kind` (or none).
macro_rules! single {
    ($trials:ident; $($body:ident: $kind:expr),* $(,)?) => {$(
        $trials.push(trial(stringify!($body).to_string(), $kind, $body));
    )*};
}

fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let mut trials = Vec::new();
    per_database!(trials;
        converges,
        bad_rows_are_listed_and_nothing_is_sent,
        wrong_column_types,
        wrong_column_count,
        until_and_reason_columns,
        empty_result_is_refused,
        query_error_fails_the_run,
        the_query_cannot_write,
        statement_timeout_cancels_the_query,
    );
    single!(trials;
        unreachable_server_fails_the_run_without_the_password: None,
        unsupported_scheme_and_missing_sqlite_file: Some(Kind::Sqlite),
        url_file_sqlite: Some(Kind::Sqlite),
        mysql_wrong_password_and_read_only_user: Some(Kind::MySql),
        postgres_missing_database_and_unknown_user: Some(Kind::Postgres),
        postgres_read_only_account: Some(Kind::Postgres),
    );
    libtest_mimic::run(&args, trials).exit_code()
}

/// A table of `(id, email, role, n)` in one database, unique to this test.
struct Db {
    kind: Kind,
    /// The URL the tests use to set up (and the binary to read).
    url: String,
    table: String,
    _dir: Option<tempfile::TempDir>,
}

/// Numbers the tables of this process (zero-padded, so no name is the start of another) and
/// the ids of inserted rows.
static TABLES: AtomicU32 = AtomicU32::new(0);
static IDS: AtomicU32 = AtomicU32::new(0);

impl Db {
    /// The database of `kind` with a fresh table. The harness ignored the test if the
    /// server's URL is unset, so here it is a failure.
    async fn new(kind: Kind) -> Db {
        let (url, dir) = match kind.server() {
            Some((var, _)) => (
                server_url(var).unwrap_or_else(|| panic!("{var} is not set")),
                None,
            ),
            None => {
                let dir = tempfile::tempdir().unwrap();
                let url = format!("sqlite://{}", dir.path().join("hr.db").display());
                (url, Some(dir))
            }
        };
        let table = format!(
            "srs_test_{}_{:03}",
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
        db
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
        let base = IDS.fetch_add(1000, Ordering::SeqCst) as usize;
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

    /// The queries that mention `marker` running on the server now (other than this one).
    async fn running(&self, marker: &str) -> Vec<String> {
        match self.kind {
            Kind::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(
                    "SELECT concat_ws(' | ', pid, state, wait_event, query) FROM pg_stat_activity \
                     WHERE state = 'active' AND pid <> pg_backend_pid() AND strpos(query, $1) > 0",
                )
                .bind(marker)
                .fetch_all(&mut c)
                .await
                .unwrap()
            }
            Kind::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(
                    "SELECT CONCAT_WS(' | ', ID, COMMAND, STATE, TIME_MS, INFO) \
                     FROM information_schema.PROCESSLIST WHERE COMMAND <> 'Sleep' \
                     AND ID <> CONNECTION_ID() AND LOCATE(?, INFO) > 0",
                )
                .bind(marker)
                .fetch_all(&mut c)
                .await
                .unwrap()
            }
            // In-process: nothing runs once the binary has exited.
            Kind::Sqlite => Vec::new(),
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

async fn converges(kind: Kind) {
    let db = Db::new(kind).await;
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
    let db = Db::new(kind).await;
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
    let db = Db::new(kind).await;
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
    let db = Db::new(kind).await;
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
            "row 1: the query returns 3 column(s) (email, role, id); it must return email, role and optionally columns named until and reason"
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

/// `until` and `reason` columns: a row whose `until` has passed is no longer desired (a table
/// has no "last edited" day, so it is not an error) and its role goes at once, with the end
/// and reason in the history; a date that is not one names its row.
async fn until_and_reason_columns(kind: Kind) {
    let db = Db::new(kind).await;
    db.insert(&[
        (Some("alice@school.edu"), Some("Admin")),
        (Some("carol@school.edu"), Some("Admin")),
        (Some("dave@school.edu"), Some("Admin")),
    ])
    .await;
    let t = Tenant::start(staff()).await;
    // UNTIL is a reserved word in MariaDB: quoted there.
    let until = if kind == Kind::MySql {
        "`until`"
    } else {
        "until"
    };
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).to_string();
    let query = |end: &str| {
        format!(
            "SELECT email, role, CASE WHEN email = 'carol@school.edu' THEN '{end}' END AS {until}, \
             CASE WHEN email = 'carol@school.edu' THEN 'visiting, ticket 4411' END AS reason \
             FROM {} ORDER BY id",
            db.table
        )
    };
    t.write_config(&opts(&query(&yesterday)));
    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        t.holders("Admin"),
        vec!["alice@school.edu", "dave@school.edu"]
    );
    let h = t.history().await;
    assert_eq!(
        count(&h, &format!("SELECT COUNT(*) FROM run_actions WHERE email = 'carol@school.edu' AND role = 'Admin' AND action = 'remove' AND until = '{yesterday}' AND reason = 'visiting, ticket 4411'")).await,
        1
    );

    t.write_config(&opts(&query("31/01/2027")));
    let run = cli(&t, &["apply"], &db.url).await;
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(
            "row 2: carol@school.edu: until \"31/01/2027\" is not a date (write YYYY-MM-DD)"
        ),
        "{run:?}"
    );
    db.drop_table().await;
}

async fn empty_result_is_refused(kind: Kind) {
    let db = Db::new(kind).await;
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
    let db = Db::new(kind).await;
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

/// The line of `source.sql.query` in the tenant's config file.
fn query_line(t: &Tenant) -> usize {
    let text = std::fs::read_to_string(t.config_path()).unwrap();
    1 + text
        .lines()
        .position(|l| l.trim_start().starts_with("query:"))
        .expect("a query line")
}

/// Every statement that could write, lock, lift the timeout or run as a second statement is
/// refused by the config check, with the key, its line and the reason: `validate` and
/// `apply` exit 1, nothing reaches Studio or the database, and the table keeps its rows.
async fn the_query_cannot_write(kind: Kind) {
    let db = Db::new(kind).await;
    db.insert(&[
        (Some("alice@school.edu"), Some("Admin")),
        (Some("carol@school.edu"), Some("Admin")),
    ])
    .await;
    let t = Tenant::start(staff()).await;
    let table = &db.table;
    let only = "the query must be one SELECT (or WITH … SELECT, VALUES) that only reads";
    let file = format!("/tmp/{table}.csv");
    let attempts = [
        (format!("DROP TABLE {table}"), format!("a DROP statement is refused: {only}")),
        (format!("TRUNCATE TABLE {table}"), format!("a TRUNCATE statement is refused: {only}")),
        (format!("TRUNCATE {table}"), format!("a TRUNCATE statement is refused: {only}")),
        (format!("ALTER TABLE {table} RENAME TO {table}_old"), format!("an ALTER statement is refused: {only}")),
        (format!("RENAME TABLE {table} TO {table}_old"), format!("a RENAME statement is refused: {only}")),
        (format!("DELETE FROM {table}"), format!("a DELETE statement is refused: {only}")),
        (format!("UPDATE {table} SET role = 'CaptionEditor'"), format!("an UPDATE statement is refused: {only}")),
        (
            format!("INSERT INTO {table} (id, email, role, n) VALUES (9, 'bob@school.edu', 'Admin', 9)"),
            format!("an INSERT statement is refused: {only}"),
        ),
        (format!("COPY {table} TO '{file}'"), format!("a COPY statement is refused: {only}")),
        (format!("COPY (SELECT email, role FROM {table}) TO '{file}'"), format!("a COPY statement is refused: {only}")),
        (
            format!("SELECT email, role FROM {table} INTO OUTFILE '{file}'"),
            format!("SELECT … INTO OUTFILE (line 1, column {} of the query) is refused: it writes a file on the database server", 26 + table.len()),
        ),
        (
            format!("SELECT email, role INTO {table}_copy FROM {table}"),
            format!("SELECT … INTO {table}_copy (line 1, column 25 of the query) is refused: it creates a table or sets variables"),
        ),
        (
            format!("SET STATEMENT max_statement_time=0 FOR SELECT email, role FROM {table}"),
            format!("SET STATEMENT … FOR is refused: it would lift the statement timeout, and {only}"),
        ),
        (
            format!("SELECT email, role FROM {table}; DELETE FROM {table}"),
            format!("several statements are refused (the second starts at line 1, column {} of the query): {only}", 27 + table.len()),
        ),
        (
            format!("SELECT email, role FROM {table}; COMMIT; DROP TABLE {table}"),
            "several statements are refused".to_string(),
        ),
        (
            format!("WITH d AS (DELETE FROM {table} RETURNING email, role) SELECT email, role FROM d"),
            format!("a DELETE statement inside the query is refused: {only}"),
        ),
        (
            format!("SELECT email, role FROM {table} FOR UPDATE"),
            "FOR UPDATE is refused: a locking read makes the database's own writers wait".to_string(),
        ),
    ];
    for (query, refusal) in &attempts {
        t.write_config(&opts(query));
        let line = query_line(&t);
        for command in ["validate", "apply"] {
            let run = cli(&t, &[command], &db.url).await;
            assert_eq!(run.code, 1, "{command} {query}: {run:?}");
            let expected = format!(
                "error: {}:{line}: source.sql.query: {refusal}",
                t.config_path().display()
            );
            assert!(
                run.stderr.contains(&expected),
                "{command} {query}: missing {expected:?} in {run:?}"
            );
            assert_eq!(db.rows().await, 2, "{command} {query} changed the table");
        }
    }
    assert_eq!(t.sim.stats().total, 0, "a request reached Studio");
    nothing_sent(&t);
    assert!(
        !t.history_path().exists() || runs(&t).await == 0,
        "a refused query started a run"
    );
    db.drop_table().await;
}

/// A query on `table` much slower than a second, without a sleep function (those are
/// refused): a cross join that needs no privilege beyond reading `table`.
fn slow_query(kind: Kind, table: &str) -> String {
    match kind {
        Kind::Postgres => format!(
            "SELECT email, role FROM {table} WHERE (SELECT count(*) FROM pg_class a, pg_class b, \
             pg_class c, pg_class d) > 0"
        ),
        Kind::MySql => format!(
            "SELECT email, role FROM {table} WHERE (SELECT COUNT(*) FROM \
             information_schema.COLLATIONS a, information_schema.COLLATIONS b, \
             information_schema.COLLATIONS c, information_schema.COLLATIONS d) > 0"
        ),
        Kind::Sqlite => format!(
            "SELECT email, role FROM {table} WHERE (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL \
             SELECT n + 1 FROM c) SELECT max(n) FROM c) > 0"
        ),
    }
}

/// Runs `command` with the slow query on `table` and a 1 s statement timeout: exit 1, the
/// message says the query was cancelled (on the server, by the tool: within 1.5 s, where
/// the server's own backstop would take 2 s), and within moments nothing of it runs there.
async fn assert_cancelled(t: &Tenant, db: &Db, command: &str, url: &str, kind: Kind) {
    t.write_config(&Opts {
        source: format!(
            "{}    statement_timeout_seconds: 1\n",
            sql_source(&slow_query(kind, &db.table))
        ),
        ..Opts::default()
    });
    let started = Instant::now();
    let run = cli(t, &[command], url).await;
    let took = started.elapsed();
    assert_eq!(run.code, 1, "{run:?}");
    // The server may still be sending the cancel's error for a few milliseconds after the
    // client read it; the backstop would only stop the query 2 s later.
    let gone = Instant::now() + Duration::from_millis(1000);
    let mut running = db.running(&db.table).await;
    while !running.is_empty() && Instant::now() < gone {
        tokio::time::sleep(Duration::from_millis(20)).await;
        running = db.running(&db.table).await;
    }
    assert!(
        running.is_empty(),
        "{command}: still running on the server: {running:?}"
    );
    if kind == Kind::Sqlite {
        let expected =
            "the query was interrupted: it ran longer than statement_timeout_seconds (1 s)";
        assert!(run.stderr.contains(expected), "{run:?}");
    } else {
        let expected = "the query ran longer than statement_timeout_seconds (1 s) and was \
                        cancelled on the database server (confirmed in ";
        assert!(run.stderr.contains(expected), "{run:?}");
        let ms: u64 = run
            .stderr
            .split("confirmed in ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a time");
        assert!(ms < 1500, "{run:?}");
    }
    assert!(took < Duration::from_secs(10), "{took:?}: {run:?}");
}

/// A query slower than `statement_timeout_seconds` fails the run with exit 1 and is stopped
/// on the server by the tool itself.
async fn statement_timeout_cancels_the_query(kind: Kind) {
    let db = Db::new(kind).await;
    db.insert(&[(Some("alice@school.edu"), Some("Admin"))])
        .await;
    let t = Tenant::start(staff()).await;
    for command in ["validate", "apply"] {
        assert_cancelled(&t, &db, command, &db.url, kind).await;
    }
    nothing_sent(&t);
    db.drop_table().await;
}

/// A closed port on 127.0.0.1.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

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

async fn mysql_wrong_password_and_read_only_user() {
    let db = Db::new(Kind::MySql).await;
    db.insert(&[(Some("alice@school.edu"), Some("Admin"))])
        .await;
    // The recommended read-only account (docs/sql-source.md): SELECT on the one table, two
    // connections (the second is for the cancel).
    let right = "Right-Pa55word";
    let user = format!("srs_test_{}", std::process::id());
    for host in ["%", "localhost", "127.0.0.1"] {
        db.exec(&format!(
            "CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{right}'; \
             ALTER USER '{user}'@'{host}' IDENTIFIED BY '{right}' WITH MAX_USER_CONNECTIONS 2; \
             GRANT SELECT ON {} TO '{user}'@'{host}'",
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

    let wrong = format!("mysql://{user}:Wr0ng-Passw0rd@{at}");
    for command in ["validate", "apply"] {
        let run = cli(&t, &[command], &wrong).await;
        assert_eq!(run.code, 1, "{run:?}");
        assert!(
            run.stderr.contains(&format!(
                "error: SQL source (source.sql.url_env: mysql://{at}): \
                 cannot connect to the database: Access denied for user '{user}'"
            )),
            "{run:?}"
        );
        assert!(!run.stderr.contains("Wr0ng"), "{run:?}");
    }
    nothing_sent(&t);
    assert_eq!(runs(&t).await, 0);

    // The same account with its password reads the table, and can do nothing else.
    let good = format!("mysql://{user}:{right}@{at}");
    let v = cli(&t, &["validate"], &good).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("ok (1 rows, 1 users, 1 grants)"), "{v:?}");
    assert!(!v.stdout.contains(right), "{v:?}");
    // It may stop its own query: the cancel at the timeout needs no other right.
    assert_cancelled(&t, &db, "validate", &good, Kind::MySql).await;
    db.exec(&format!(
        "DROP USER IF EXISTS '{user}'@'%', '{user}'@'localhost', '{user}'@'127.0.0.1'"
    ))
    .await;
    db.drop_table().await;
}

/// The recommended PostgreSQL account (docs/sql-source.md): SELECT on the one table, read-only
/// by default, two connections. It reads, and it may cancel its own query at the timeout.
async fn postgres_read_only_account() {
    let db = Db::new(Kind::Postgres).await;
    db.insert(&[(Some("alice@school.edu"), Some("Admin"))])
        .await;
    let role = format!("srs_test_{}", std::process::id());
    db.exec(&format!(
        "DROP ROLE IF EXISTS {role}; \
         CREATE ROLE {role} LOGIN CONNECTION LIMIT 2; \
         ALTER ROLE {role} SET default_transaction_read_only = on; \
         GRANT USAGE ON SCHEMA public TO {role}; \
         GRANT SELECT ON {} TO {role}",
        db.table
    ))
    .await;
    let mut url = url::Url::parse(&db.url).unwrap();
    url.set_username(&role).unwrap();
    let _ = url.set_password(None);
    let url = url.to_string();
    let t = Tenant::start(staff()).await;
    t.write_config(&opts(&db.query()));
    let v = cli(&t, &["validate"], &url).await;
    assert_eq!(v.code, 0, "{v:?}");
    assert!(v.stdout.contains("ok (1 rows, 1 users, 1 grants)"), "{v:?}");
    assert_cancelled(&t, &db, "validate", &url, Kind::Postgres).await;
    nothing_sent(&t);
    db.exec(&format!(
        "REVOKE ALL ON {} FROM {role}; REVOKE ALL ON SCHEMA public FROM {role}; DROP ROLE {role}",
        db.table
    ))
    .await;
    db.drop_table().await;
}

async fn postgres_missing_database_and_unknown_user() {
    let db = Db::new(Kind::Postgres).await;
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

async fn url_file_sqlite() {
    let db = Db::new(Kind::Sqlite).await;
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
