//! Desired roles from a SQL query: rows of `(email, role)` from PostgreSQL, MySQL/MariaDB or
//! SQLite.
//!
//! The source is opened per run and closed after it, read-only where the database allows it,
//! with a statement timeout, so a sync can never write to or hang an HR database. Rows are
//! streamed straight into the [`DesiredBuilder`]: a million-row result costs the desired state
//! and nothing more. The connection URL is a secret (it holds a password): messages show it
//! only without its credentials, and database errors are scrubbed of it.

use super::{DesiredBuilder, DesiredError, DesiredState, Origin};
use crate::config::SqlSourceConfig;
use crate::roles::ManagedRoles;
use futures::TryStreamExt;
use secrecy::ExposeSecret;
use sqlx::{Column, ConnectOptions, Connection, Executor, Row};
use std::str::FromStr;

/// What a successful read saw, for `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlReadStats {
    pub rows: u64,
}

/// Runs the query and builds the desired state from its rows.
pub async fn load(
    config: &SqlSourceConfig,
    managed: &ManagedRoles,
) -> Result<(DesiredState, SqlReadStats), DesiredError> {
    let source = describe(config);
    let unavailable = |message: String| DesiredError::Unavailable {
        place: source.clone(),
        message: scrub(&message, config.url.expose_secret()),
    };
    let url = config.url.expose_secret();
    let scheme = url.split(':').next().unwrap_or_default();
    let mut b = DesiredBuilder::new(managed);
    let read = async {
        match scheme {
            "postgres" | "postgresql" => read_postgres(config, &mut b).await,
            "mysql" | "mariadb" => read_mysql(config, &mut b).await,
            "sqlite" => read_sqlite(config, &mut b).await,
            _ => Err(ReadError::Setup(format!(
                "unsupported database URL scheme {scheme:?}; use postgres://, mysql:// or sqlite://"
            ))),
        }
    };
    // The database enforces the statement timeout too; this one also covers connecting.
    let limit = config.statement_timeout + std::time::Duration::from_secs(10);
    let rows = match tokio::time::timeout(limit, read).await {
        Err(_) => {
            return Err(unavailable(format!(
                "no answer within {} s",
                limit.as_secs()
            )))
        }
        Ok(Err(ReadError::Setup(m))) => return Err(unavailable(m)),
        Ok(Err(ReadError::Database(e))) => return Err(unavailable(describe_error(&e))),
        Ok(Ok(rows)) => rows,
    };
    let state = b.finish(&source)?;
    Ok((state, SqlReadStats { rows }))
}

/// "SQL source (env ROLE_SOURCE_URL: postgres://db.example.edu:5432/hr)": where the URL
/// came from and where it points, without user or password.
pub fn describe(config: &SqlSourceConfig) -> String {
    let shown = match url::Url::parse(config.url.expose_secret()) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.set_query(None);
            u.to_string()
        }
        Err(_) => "an unparsable URL".to_string(),
    };
    format!("SQL source ({}: {shown})", config.url_origin)
}

enum ReadError {
    Setup(String),
    Database(sqlx::Error),
}

impl From<sqlx::Error> for ReadError {
    fn from(e: sqlx::Error) -> Self {
        ReadError::Database(e)
    }
}

fn describe_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!("the query failed: {}", db.message()),
        sqlx::Error::Io(io) => format!("cannot reach the database: {io}"),
        sqlx::Error::Tls(t) => format!("TLS to the database failed: {t}"),
        sqlx::Error::PoolTimedOut => "timed out connecting to the database".into(),
        sqlx::Error::Configuration(c) => format!("bad connection URL: {c}"),
        other => format!("database error: {other}"),
    }
}

/// Removes the URL and its password from a message, wherever a driver echoed them.
fn scrub(message: &str, url: &str) -> String {
    let mut out = message.replace(url, "<url>");
    if let Ok(u) = url::Url::parse(url) {
        if let Some(pw) = u.password().filter(|p| p.len() >= 3) {
            out = out.replace(pw, "<password>");
            if let Ok(decoded) = urlencoding_decode(pw) {
                out = out.replace(&decoded, "<password>");
            }
        }
    }
    out
}

fn urlencoding_decode(s: &str) -> Result<String, ()> {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .ok_or(())
}

async fn read_postgres(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let options = sqlx::postgres::PgConnectOptions::from_str(config.url.expose_secret())?
        .application_name("studio-role-sync")
        .disable_statement_logging();
    let mut conn = options.connect().await?;
    let mut tx = conn.begin().await?;
    tx.execute("SET TRANSACTION READ ONLY").await?;
    let ms = config.statement_timeout.as_millis();
    tx.execute(format!("SET LOCAL statement_timeout = {ms}").as_str())
        .await?;
    let rows = stream_rows(&mut *tx, &config.query, b).await?;
    tx.rollback().await?;
    conn.close().await?;
    Ok(rows)
}

async fn read_mysql(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let url = config
        .url
        .expose_secret()
        .replacen("mariadb://", "mysql://", 1);
    let options = sqlx::mysql::MySqlConnectOptions::from_str(&url)?.disable_statement_logging();
    let mut conn = options.connect().await?;
    // MariaDB and MySQL name the statement timeout differently; whichever the server knows.
    let secs = config.statement_timeout.as_secs_f64();
    if conn
        .execute(format!("SET SESSION max_statement_time = {secs}").as_str())
        .await
        .is_err()
    {
        let ms = config.statement_timeout.as_millis();
        let _ = conn
            .execute(format!("SET SESSION max_execution_time = {ms}").as_str())
            .await;
    }
    conn.execute("START TRANSACTION READ ONLY").await?;
    let rows = stream_rows(&mut conn, &config.query, b).await?;
    conn.execute("ROLLBACK").await?;
    conn.close().await?;
    Ok(rows)
}

async fn read_sqlite(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(config.url.expose_secret())?
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(config.statement_timeout)
        .disable_statement_logging();
    let mut conn = options.connect().await?;
    let rows = stream_rows(&mut conn, &config.query, b).await?;
    conn.close().await?;
    Ok(rows)
}

/// Feeds each `(email, role)` row to the builder as it arrives; returns the row count.
async fn stream_rows<'e, E>(
    exec: E,
    query: &'e str,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError>
where
    E: Executor<'e>,
    for<'r> Option<String>: sqlx::Decode<'r, E::Database> + sqlx::Type<E::Database>,
    usize: sqlx::ColumnIndex<<E::Database as sqlx::Database>::Row>,
{
    let mut rows = exec.fetch(query);
    let mut n: u64 = 0;
    while let Some(row) = rows.try_next().await? {
        n += 1;
        let at = Origin::Row(n);
        let columns = row.columns().len();
        if columns != 2 {
            let names: Vec<&str> = row.columns().iter().map(|c| c.name()).collect();
            return Err(ReadError::Setup(format!(
                "the query returns {columns} column(s) ({}); it must return exactly two: email, role",
                names.join(", ")
            )));
        }
        let email = text_column(&row, 0, "email", n, b);
        let role = text_column(&row, 1, "role", n, b);
        let (Some(email_raw), Some(role)) = (email, role) else {
            continue;
        };
        let Some(email) = b.email(at, &email_raw) else {
            continue;
        };
        if let Some(r) = b.role(at, &email, &role) {
            b.grant(email, r);
        }
    }
    Ok(n)
}

/// A text column's value; NULL and non-text values are problems of row `n`.
fn text_column<R: Row>(
    row: &R,
    index: usize,
    name: &str,
    n: u64,
    b: &mut DesiredBuilder<'_>,
) -> Option<String>
where
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    match row.try_get::<Option<String>, _>(index) {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            b.problem(Origin::Row(n), format!("{name} is NULL"));
            None
        }
        Err(e) => {
            let type_name = row.columns()[index].type_info().to_string();
            b.problem(
                Origin::Row(n),
                format!(
                    "{name} (column {}) is {type_name}, not text: {e}",
                    index + 1
                ),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_hides_credentials() {
        let c = SqlSourceConfig {
            url: "postgres://sync:s3cr3tpw@db.example.edu:5432/hr?sslmode=require"
                .to_string()
                .into(),
            url_origin: "env ROLE_SOURCE_URL".into(),
            query: "select 1".into(),
            statement_timeout: std::time::Duration::from_secs(1),
        };
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
}
