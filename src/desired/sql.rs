//! Desired roles from a SQL query: rows of `(email, role)` from PostgreSQL, MySQL/MariaDB or
//! SQLite.
//!
//! The source is opened per run and closed after it, read-only where the database allows it,
//! with a statement timeout, so a sync can never write to or hang an HR database:
//! - the query is sent as one prepared statement, so it cannot smuggle a second statement
//!   (`...; COMMIT; DELETE ...`) past the read-only transaction;
//! - PostgreSQL: `READ ONLY` transaction with `SET LOCAL statement_timeout`;
//! - MySQL/MariaDB: `START TRANSACTION READ ONLY` with `max_statement_time` (MariaDB) or
//!   `max_execution_time` (MySQL);
//! - SQLite: the file is opened read-only (`query_only` too), and a progress handler cancels
//!   the query at the timeout.
//!
//! Rows are streamed straight into the [`DesiredBuilder`]: a million-row result costs the
//! desired state and nothing more (and a result full of bad rows stops being read after
//! [`MAX_BAD_ROWS`]). The connection URL is a secret (it holds a password): messages show it
//! only without its credentials, and database errors are scrubbed of it.

use super::{DesiredBuilder, DesiredError, DesiredState, Origin};
use crate::config::SqlSourceConfig;
use crate::roles::ManagedRoles;
use futures::{Stream, TryStreamExt};
use secrecy::ExposeSecret;
use sqlx::{Column, ConnectOptions, Connection, Executor, Row, TypeInfo};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// What a successful read saw, for `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlReadStats {
    pub rows: u64,
}

/// After this many bad rows the rest of the result is not read: the admin has enough to fix,
/// and a broken query returning millions of bad rows must not buffer millions of messages.
pub const MAX_BAD_ROWS: u64 = 1000;

/// Time allowed to connect and log in, on top of the statement timeout.
const CONNECT_ALLOWANCE: Duration = Duration::from_secs(10);

/// Runs the query and builds the desired state from its rows.
pub async fn load(
    config: &SqlSourceConfig,
    managed: &ManagedRoles,
) -> Result<(DesiredState, SqlReadStats), DesiredError> {
    let source = describe(config);
    let url = config.url.expose_secret();
    let mut b = DesiredBuilder::new(managed);
    // The database enforces the statement timeout; this one also covers connecting, and a
    // server that stops answering.
    let limit = config.statement_timeout + CONNECT_ALLOWANCE;
    let outcome = match tokio::time::timeout(limit, read(config, &mut b)).await {
        Err(_) => Err(format!(
            "no answer from the database within {} s (statement_timeout_seconds + {} s to \
             connect); nothing was sent to Studio",
            fmt_secs(limit),
            CONNECT_ALLOWANCE.as_secs()
        )),
        Ok(Err(e)) => {
            let mut m = e.message(config.statement_timeout);
            if matches!(e, ReadError::Query(_)) && is_several_statements(&config.query) {
                m.push_str(" (the query must be a single SELECT statement)");
            }
            Err(m)
        }
        Ok(Ok(rows)) => Ok(rows),
    };
    let rows = outcome.map_err(|message| DesiredError::Unavailable {
        place: source.clone(),
        message: scrub(&message, url),
    })?;
    let state = b.finish(&source)?;
    Ok((state, SqlReadStats { rows }))
}

/// A `;` before the end: likely more than one statement, which is refused.
fn is_several_statements(query: &str) -> bool {
    query.trim_end().trim_end_matches(';').contains(';')
}

/// "SQL source (env ROLE_SOURCE_URL: postgres://db.example.edu:5432/hr)": where the URL
/// came from and where it points, without user, password or parameters.
pub fn describe(config: &SqlSourceConfig) -> String {
    let shown = match url::Url::parse(config.url.expose_secret()) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "an unparsable URL".to_string(),
    };
    format!("SQL source ({}: {shown})", config.url_origin)
}

async fn read(config: &SqlSourceConfig, b: &mut DesiredBuilder<'_>) -> Result<u64, ReadError> {
    let url = config.url.expose_secret();
    let scheme = url
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match scheme.as_str() {
        "postgres" | "postgresql" => read_postgres(config, b).await,
        "mysql" | "mariadb" => read_mysql(config, b).await,
        "sqlite" => read_sqlite(config, b).await,
        _ => Err(ReadError::Setup(format!(
            "unsupported database URL scheme {scheme:?}; use postgres://, mysql:// or sqlite://"
        ))),
    }
}

enum ReadError {
    /// Not the database's answer: a bad URL scheme, a missing SQLite file.
    Setup(String),
    /// Connecting or logging in failed.
    Connect(sqlx::Error),
    /// The session set-up or the query failed.
    Query(sqlx::Error),
    /// SQLite: the progress handler cancelled the query at the statement timeout.
    TimedOut,
}

impl ReadError {
    fn message(&self, timeout: Duration) -> String {
        match self {
            ReadError::Setup(m) => m.clone(),
            ReadError::Connect(e) => connect_message(e),
            ReadError::Query(e) => query_message(e),
            ReadError::TimedOut => format!(
                "the query was cancelled: it ran longer than statement_timeout_seconds ({} s)",
                fmt_secs(timeout)
            ),
        }
    }
}

fn fmt_secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0}")
    } else {
        format!("{s:.1}")
    }
}

fn db_message(db: &dyn sqlx::error::DatabaseError) -> String {
    match db.code() {
        Some(code) => format!("{} (code {code})", db.message()),
        None => db.message().to_string(),
    }
}

fn connect_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Io(io) => format!("cannot reach the database server: {io}"),
        sqlx::Error::Tls(t) => format!("cannot connect to the database: TLS failed: {t}"),
        sqlx::Error::Database(db) => {
            format!("cannot connect to the database: {}", db_message(&**db))
        }
        sqlx::Error::Configuration(c) => format!("bad connection URL: {c}"),
        other => format!("cannot connect to the database: {other}"),
    }
}

fn query_message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!("the query failed: {}", db_message(&**db)),
        sqlx::Error::Io(io) => format!("lost the connection to the database: {io}"),
        other => format!("the query failed: {other}"),
    }
}

/// Removes the URL and its password from a message, wherever a driver echoed them.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, "<url>");
    if let Ok(u) = url::Url::parse(url) {
        if let Some(pw) = u.password().filter(|p| p.len() >= 3) {
            out = out.replace(pw, "<password>");
            let decoded = percent_encoding::percent_decode_str(pw).decode_utf8().ok();
            if let Some(decoded) = decoded.filter(|d| d.len() >= 3) {
                out = out.replace(&*decoded, "<password>");
            }
        }
    }
    out
}

async fn read_postgres(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let options = sqlx::postgres::PgConnectOptions::from_str(config.url.expose_secret())
        .map_err(ReadError::Connect)?
        .application_name("studio-role-sync")
        .disable_statement_logging();
    let mut conn = options.connect().await.map_err(ReadError::Connect)?;
    let mut tx = conn.begin().await.map_err(ReadError::Query)?;
    tx.execute("SET TRANSACTION READ ONLY")
        .await
        .map_err(ReadError::Query)?;
    // 0 would mean "no timeout".
    let ms = config.statement_timeout.as_millis().max(1);
    tx.execute(format!("SET LOCAL statement_timeout = {ms}").as_str())
        .await
        .map_err(ReadError::Query)?;
    let rows = sqlx::query(&config.query).persistent(false).fetch(&mut *tx);
    let n = consume(rows, b).await?;
    // Nothing to keep: dropping the transaction rolls it back, without waiting for the rest of
    // a result that was not read to the end.
    drop(tx);
    let _ = conn.close().await;
    Ok(n)
}

async fn read_mysql(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let url = config
        .url
        .expose_secret()
        .replacen("mariadb://", "mysql://", 1);
    let options = sqlx::mysql::MySqlConnectOptions::from_str(&url)
        .map_err(ReadError::Connect)?
        .disable_statement_logging();
    let mut conn = options.connect().await.map_err(ReadError::Connect)?;
    // MariaDB and MySQL name the statement timeout differently; whichever the server knows.
    let secs = config.statement_timeout.as_secs_f64().max(0.001);
    if conn
        .execute(format!("SET SESSION max_statement_time = {secs}").as_str())
        .await
        .is_err()
    {
        let ms = config.statement_timeout.as_millis().max(1);
        conn.execute(format!("SET SESSION max_execution_time = {ms}").as_str())
            .await
            .map_err(ReadError::Query)?;
    }
    conn.execute("START TRANSACTION READ ONLY")
        .await
        .map_err(ReadError::Query)?;
    let rows = sqlx::query(&config.query)
        .persistent(false)
        .fetch(&mut conn);
    let n = consume(rows, b).await?;
    // Closing the connection ends the (read-only) transaction.
    let _ = conn.close().await;
    Ok(n)
}

async fn read_sqlite(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(config.url.expose_secret())
        .map_err(ReadError::Connect)?
        .read_only(true)
        .create_if_missing(false)
        .pragma("query_only", "ON")
        .busy_timeout(config.statement_timeout)
        .disable_statement_logging();
    let file = options.get_filename();
    if file != std::path::Path::new(":memory:") && !file.is_file() {
        return Err(ReadError::Setup(format!(
            "cannot open the database: no file at {}",
            file.display()
        )));
    }
    let mut conn = options.connect().await.map_err(ReadError::Connect)?;
    let deadline = Instant::now() + config.statement_timeout;
    conn.lock_handle()
        .await
        .map_err(ReadError::Connect)?
        .set_progress_handler(1000, move || Instant::now() < deadline);
    let rows = sqlx::query(&config.query)
        .persistent(false)
        .fetch(&mut conn);
    let n = match consume(rows, b).await {
        Err(ReadError::Query(_)) if Instant::now() >= deadline => Err(ReadError::TimedOut),
        other => other,
    }?;
    let _ = conn.close().await;
    Ok(n)
}

/// One cell of a row, read as text.
enum Cell {
    Text(String),
    Null,
    NotText(String),
    Unreadable(String),
}

impl Cell {
    fn text(&self) -> Option<&str> {
        match self {
            Cell::Text(t) => Some(t),
            _ => None,
        }
    }
}

fn cell<R: Row>(row: &R, index: usize) -> Cell
where
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    match row.try_get::<Option<String>, _>(index) {
        Ok(Some(v)) => Cell::Text(v),
        Ok(None) => Cell::Null,
        Err(e) => {
            let ty = row.columns()[index].type_info();
            if <String as sqlx::Type<R::Database>>::compatible(ty) {
                Cell::Unreadable(e.to_string())
            } else {
                Cell::NotText(ty.name().to_string())
            }
        }
    }
}

/// Records the problem of a cell that is not text; `other` names the row's other value.
fn cell_problem(b: &mut DesiredBuilder<'_>, at: Origin, name: &str, c: &Cell, other: String) {
    let column = if name == "email" { 1 } else { 2 };
    let what = match c {
        Cell::Text(_) => return,
        Cell::Null => format!("{name} is NULL"),
        Cell::NotText(ty) => {
            format!("{name} (column {column}) is of type {ty}, not text: cast it in the query")
        }
        Cell::Unreadable(e) => format!("{name} (column {column}) cannot be read as text: {e}"),
    };
    b.problem(at, format!("{what}{other}"));
}

/// Feeds each `(email, role)` row to the builder as it arrives; returns the row count.
async fn consume<R, S>(mut rows: S, b: &mut DesiredBuilder<'_>) -> Result<u64, ReadError>
where
    S: Stream<Item = Result<R, sqlx::Error>> + Unpin,
    R: Row,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let mut n: u64 = 0;
    let mut bad: u64 = 0;
    while let Some(row) = rows.try_next().await.map_err(ReadError::Query)? {
        n += 1;
        let at = Origin::Row(n);
        let columns = row.columns();
        if columns.len() != 2 {
            let names: Vec<&str> = columns.iter().map(|c| c.name()).collect();
            b.problem(
                at,
                format!(
                    "the query returns {} column(s) ({}); it must return exactly two: email, role",
                    columns.len(),
                    names.join(", ")
                ),
            );
            break;
        }
        let email = cell(&row, 0);
        let role = cell(&row, 1);
        let ok = match (email.text(), role.text()) {
            (Some(e), Some(r)) => {
                let r = r.trim();
                match b.email(at, e) {
                    Some(email) => match b.role(at, &email, r) {
                        Some(index) => {
                            b.grant(at, email, index);
                            true
                        }
                        None => false,
                    },
                    None => {
                        // Report a bad role in the same row too: every problem at once.
                        let _ = b.role(at, e.trim(), r);
                        false
                    }
                }
            }
            (e, r) => {
                let with = |k: &str, v: Option<&str>| {
                    v.map(|v| format!(" ({k} {v:?})")).unwrap_or_default()
                };
                cell_problem(b, at, "email", &email, with("role", r));
                cell_problem(b, at, "role", &role, with("email", e));
                false
            }
        };
        if !ok {
            bad += 1;
            if bad >= MAX_BAD_ROWS {
                // Unlocated, so it is listed first, above the rows.
                b.problem(
                    Origin::Unknown,
                    format!(
                        "stopped reading the result at row {n}, after {MAX_BAD_ROWS} bad rows; \
                         the first ones follow"
                    ),
                );
                break;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, query: &str, timeout: f64) -> SqlSourceConfig {
        SqlSourceConfig {
            url: url.to_string().into(),
            url_origin: "env ROLE_SOURCE_URL".into(),
            query: query.into(),
            statement_timeout: Duration::from_secs_f64(timeout),
        }
    }

    fn managed() -> ManagedRoles {
        ManagedRoles::new(vec!["Admin".into(), "CaptionEditor".into()])
    }

    #[test]
    fn describe_hides_credentials() {
        let c = config(
            "postgres://sync:s3cr3tpw@db.example.edu:5432/hr?sslmode=require",
            "select 1",
            1.0,
        );
        let d = describe(&c);
        assert_eq!(
            d,
            "SQL source (env ROLE_SOURCE_URL: postgres://db.example.edu:5432/hr)"
        );
        let s = scrub(
            "failed for postgres://sync:s3cr3tpw@db: s3cr3tpw",
            c.url.expose_secret(),
        );
        assert!(!s.contains("s3cr3tpw"), "{s}");
    }

    #[test]
    fn scrub_decodes_the_password() {
        let url = "mysql://sync:p%40ss%2Fword@db/hr";
        let s = scrub("denied: p@ss/word and p%40ss%2Fword", url);
        assert_eq!(s, "denied: <password> and <password>");
    }

    /// A SQLite file with `rows`, in a fresh temp dir (kept alive by the returned guard).
    async fn sqlite_with(rows: &[(&str, &str)]) -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("roles.db");
        let url = format!("sqlite://{}", path.display());
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .create_if_missing(true);
        let mut conn = options.connect().await.unwrap();
        conn.execute("CREATE TABLE t (email TEXT, role TEXT)")
            .await
            .unwrap();
        for (e, r) in rows {
            sqlx::query("INSERT INTO t VALUES (?, ?)")
                .bind(e)
                .bind(r)
                .execute(&mut conn)
                .await
                .unwrap();
        }
        conn.close().await.unwrap();
        (dir, url)
    }

    #[tokio::test]
    async fn sqlite_rows_become_the_desired_state() {
        let (_dir, url) = sqlite_with(&[
            ("Alice@X.edu ", "Admin"),
            ("alice@x.edu", "CaptionEditor "),
            ("bob@x.edu", "Admin"),
            ("bob@x.edu", "Admin"),
        ])
        .await;
        let c = config(&url, "SELECT email, role FROM t", 5.0);
        let (d, stats) = load(&c, &managed()).await.unwrap();
        assert_eq!(stats.rows, 4);
        assert_eq!(d.users.len(), 2);
        assert_eq!(d.grants(), 3);
    }

    #[tokio::test]
    async fn sqlite_is_read_only_and_single_statement() {
        let (_dir, url) = sqlite_with(&[("a@x.edu", "Admin")]).await;
        for query in [
            "DELETE FROM t RETURNING email, role",
            "SELECT email, role FROM t; DELETE FROM t",
        ] {
            let c = config(&url, query, 5.0);
            let _ = load(&c, &managed()).await;
        }
        let c = config(&url, "SELECT email, role FROM t", 5.0);
        let (d, _) = load(&c, &managed()).await.unwrap();
        assert_eq!(d.grants(), 1, "the table was changed");
    }

    /// Streaming, not buffering: an endless result of bad rows is read only up to
    /// [`MAX_BAD_ROWS`], and an endless computation is cancelled at the statement timeout.
    #[tokio::test]
    async fn sqlite_endless_results_stop() {
        let (_dir, url) = sqlite_with(&[]).await;
        let endless = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) ";
        let c = config(
            &url,
            &format!("{endless} SELECT 'no-email-' || n, 'Admin' FROM c"),
            30.0,
        );
        let started = Instant::now();
        let e = load(&c, &managed()).await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(10), "{e}");
        assert!(e.contains("(1001 problems)"), "{e}");
        assert!(
            e.contains("roles.db): stopped reading the result at row 1000, after 1000 bad rows"),
            "{e}"
        );

        let c = config(
            &url,
            &format!("SELECT 'a@x.edu', 'Admin' FROM ({endless} SELECT max(n) FROM c)"),
            0.5,
        );
        let started = Instant::now();
        let e = load(&c, &managed()).await.unwrap_err().to_string();
        assert!(started.elapsed() < Duration::from_secs(5), "{e}");
        assert!(
            e.contains("ran longer than statement_timeout_seconds (0.5 s)"),
            "{e}"
        );
    }

    /// A million valid rows: run with `cargo test --release -- --ignored million` and watch the
    /// memory; the result is never held whole, only the desired state.
    #[tokio::test]
    #[ignore]
    async fn sqlite_million_rows() {
        let (_dir, url) = sqlite_with(&[]).await;
        let c = config(
            &url,
            "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 1000000) \
             SELECT 'user' || n || '@x.edu', 'Admin' FROM c",
            120.0,
        );
        let (d, stats) = load(&c, &managed()).await.unwrap();
        assert_eq!(stats.rows, 1_000_000);
        assert_eq!(d.users.len(), 1_000_000);
    }
}
