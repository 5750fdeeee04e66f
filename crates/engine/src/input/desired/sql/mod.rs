//! Desired roles from a SQL query: rows of `(email, role)` from PostgreSQL, MySQL/MariaDB or
//! SQLite.
//!
//! The source is opened per run and closed after it, and it can neither write to nor hang the
//! database it reads, at three levels:
//! - [`sql_query`](crate::input::sql_query): before anything is sent, the query is parsed in the
//!   database's dialect and must be exactly one query that only reads (no DDL, no DML, no `INTO OUTFILE`, no `COPY`,
//!   no locking read, no function that sleeps, touches files or other sessions). The config
//!   loader runs the same check, so a bad query is a config error with its line.
//! - the session: PostgreSQL and MySQL/MariaDB run it in a `READ ONLY` transaction; a SQLite
//!   file is opened read-only with `query_only`. One prepared statement, never a script.
//! - [`deadline`]: at `statement_timeout_seconds` the query is cancelled on the server
//!   (`pg_cancel_backend`, `KILL QUERY`, SQLite's progress handler), not merely abandoned, and
//!   a server-side limit set a little later is the backstop if this process dies.
//!
//! One file per database (`postgres`, `mysql`, `sqlite`) holds its session set-up and its
//! cancel, each compiled in with the engine feature of that name (all three by default; the
//! history's own SQLite is always there). A URL naming a database left out of the build is a
//! config error that says so; [`rows`] turns the streamed rows into the desired state. The connection URL is a
//! secret (it holds a password): messages show it only without its credentials, and database
//! errors are scrubbed of it.

// A build with no database reader at all keeps the shared machinery below unused.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, unused_variables)
)]

mod deadline;
#[cfg(feature = "mysql")]
mod mysql;
#[cfg(feature = "postgres")]
mod postgres;
mod rows;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use rows::MAX_BAD_ROWS;

use super::{DesiredBuilder, DesiredError, DesiredState, SourceName};
use crate::input::config::SqlSourceConfig;
use crate::input::roles::ManagedRoles;
pub use crate::input::sql_query::Database;
use crate::input::sql_query::{self, Refusal};
use deadline::Cancelled;
use secrecy::ExposeSecret;
use std::time::Duration;

/// What a successful read saw, for `validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlReadStats {
    pub rows: u64,
}

/// Time allowed to connect, log in and learn the session's id.
const CONNECT_ALLOWANCE: Duration = Duration::from_secs(10);

/// Time allowed to close the connection politely after a read.
const CLOSE_ALLOWANCE: Duration = Duration::from_secs(2);

/// Runs the query and builds the desired state from its rows.
pub async fn load(
    config: &SqlSourceConfig,
    managed: &ManagedRoles,
) -> Result<(DesiredState, SqlReadStats), DesiredError> {
    let source = describe(config);
    let url = config.url.expose_secret();
    let mut b = DesiredBuilder::new(managed, SourceName::new("sql"));
    // Every step below has its own bound; this one is the last resort, for a driver that
    // ignores them.
    let limit = CONNECT_ALLOWANCE
        + config.statement_timeout
        + deadline::CANCEL_ALLOWANCE * 2
        + CLOSE_ALLOWANCE;
    let outcome = match tokio::time::timeout(limit, read(config, &mut b)).await {
        Err(_) => Err(format!(
            "no answer from the database within {} s; nothing was sent to Studio",
            fmt_secs(limit),
        )),
        Ok(Err(e)) => Err(e.message(config)),
        Ok(Ok(rows)) => Ok(rows),
    };
    let rows = outcome.map_err(|message| DesiredError::Unavailable {
        place: source.clone(),
        message: scrub(&message, url),
    })?;
    let state = b.finish(&source)?;
    Ok((state, SqlReadStats { rows }))
}

/// "SQL source (source.sql.url_env: postgres://db.example.edu:5432/hr)": where the URL
/// came from and where it points, without user, password or parameters.
pub(crate) fn describe(config: &SqlSourceConfig) -> String {
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
    let Some(db) = Database::from_url(url) else {
        let scheme = url.split(':').next().unwrap_or_default();
        return Err(ReadError::Setup(format!(
            "unsupported database URL scheme {:?}; use postgres://, mysql:// or sqlite://",
            scheme.to_ascii_lowercase()
        )));
    };
    // The config loader refused a bad query already; this is the check next to the send.
    sql_query::check(db, &config.query).map_err(ReadError::Refused)?;
    match db {
        #[cfg(feature = "postgres")]
        Database::Postgres => postgres::read(config, b).await,
        #[cfg(feature = "mysql")]
        Database::MySql => mysql::read(config, b).await,
        #[cfg(feature = "sqlite")]
        Database::Sqlite => sqlite::read(config, b).await,
        #[allow(unreachable_patterns)]
        db => Err(ReadError::Setup(db.not_built_in())),
    }
}

enum ReadError {
    /// Not the database's answer: a bad URL scheme, a missing SQLite file, no answer.
    Setup(String),
    /// The query is not one the source sends.
    Refused(Refusal),
    /// Connecting or logging in failed.
    Connect(sqlx::Error),
    /// The session set-up or the query failed.
    Query(sqlx::Error),
    /// The query ran past the statement timeout; how its cancel went.
    TimedOut(Database, Cancelled),
}

impl ReadError {
    fn message(&self, config: &SqlSourceConfig) -> String {
        let timeout = fmt_secs(config.statement_timeout);
        let backstop = || {
            format!(
                "the server's own limit stops it {} s later",
                deadline::SERVER_GRACE.as_secs()
            )
        };
        match self {
            ReadError::Setup(m) => m.clone(),
            ReadError::Refused(r) => {
                format!("source.sql.query: {r}; nothing was sent to the database")
            }
            ReadError::Connect(e) => connect_message(e),
            ReadError::Query(e) => query_message(e),
            ReadError::TimedOut(Database::Sqlite, _) => format!(
                "the query was interrupted: it ran longer than statement_timeout_seconds \
                 ({timeout} s)"
            ),
            ReadError::TimedOut(_, Cancelled::Confirmed(took)) => format!(
                "the query ran longer than statement_timeout_seconds ({timeout} s) and was \
                 cancelled on the database server (confirmed in {} ms)",
                took.as_millis()
            ),
            ReadError::TimedOut(_, Cancelled::Unconfirmed) => format!(
                "the query ran longer than statement_timeout_seconds ({timeout} s); it was \
                 cancelled on the database server, which did not confirm within {} s; {}",
                deadline::CANCEL_ALLOWANCE.as_secs(),
                backstop()
            ),
            ReadError::TimedOut(_, Cancelled::Failed(why)) => format!(
                "the query ran longer than statement_timeout_seconds ({timeout} s) and could not \
                 be cancelled on the database server ({why}); {}",
                backstop()
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

/// Connects and learns the session's id, within [`CONNECT_ALLOWANCE`] (a server's session;
/// a SQLite file has none).
#[cfg(any(feature = "postgres", feature = "mysql"))]
async fn within_connect_allowance<T>(
    connect: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, ReadError> {
    match tokio::time::timeout(CONNECT_ALLOWANCE, connect).await {
        Ok(r) => r.map_err(ReadError::Connect),
        Err(_) => Err(ReadError::Setup(format!(
            "cannot connect to the database: no answer within {} s",
            CONNECT_ALLOWANCE.as_secs()
        ))),
    }
}

/// Closes a connection after a read, without waiting long for a server that went quiet.
async fn close(conn: impl sqlx::Connection) {
    let _ = tokio::time::timeout(CLOSE_ALLOWANCE, conn.close()).await;
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub fn config(url: &str, query: &str, timeout: f64) -> SqlSourceConfig {
        SqlSourceConfig {
            url: url.to_string().into(),
            url_origin: "source.sql.url_env".into(),
            query: query.into(),
            statement_timeout: Duration::from_secs_f64(timeout),
        }
    }

    pub fn managed() -> ManagedRoles {
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
            "SQL source (source.sql.url_env: postgres://db.example.edu:5432/hr)"
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
}
