//! Opening a history kept in PostgreSQL: one schema per tenant, on a server several daemons
//! share.
//!
//! Every connection's `search_path` is the tenant's schema, so the history's queries name
//! their tables unqualified, exactly as on SQLite, and two tenants on one database never see
//! each other's rows, leases or locks. The schema's tables come from the PostgreSQL
//! migrations (`migrations/postgres/`), embedded and applied at open inside that schema; the
//! migrator serialises two daemons starting at once with an advisory lock.
//!
//! The URL is a secret (it may carry a password): it is never shown. What errors and logs
//! name is [`place`]: host, port, database and schema.

use super::db::{Db, DbError, WriteTerm};
use super::{Clock, History, HistoryError, HistoryFailure};
use crate::model::history_place::HistoryPlace;
use crate::store::lease::{fence, Epoch, LeaderInfo, Lease};
use crate::studio::ChangeGate;
use futures::future::BoxFuture;
use futures::FutureExt;
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// Connections per daemon: runs write one at a time; the console and status share the rest.
const MAX_CONNECTIONS: u32 = 8;

/// How long a statement may wait for a connection: PostgreSQL down or restarting must make
/// a run fail (and be retried), not hang it.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a PostgreSQL history is, in words that hold no secret:
/// `postgresql://HOST:PORT/DATABASE, schema SCHEMA`.
pub(crate) fn place(options: &PgConnectOptions, schema: &str) -> String {
    format!(
        "postgresql://{}:{}/{}, schema {schema}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("(default database)"),
    )
}

/// How the history's connections name themselves to the server (`pg_stat_activity`): which
/// tenant each one serves.
pub(crate) fn application_name(schema: &str) -> String {
    format!("studio-role-sync ({schema})")
}

/// Parses the URL without ever echoing it: sqlx's own message may quote it.
fn connect_options(url: &SecretString, schema: &str) -> Result<PgConnectOptions, HistoryError> {
    PgConnectOptions::from_str(url.expose_secret())
        .map(|o| {
            o.options([("search_path", schema)])
                .application_name(&application_name(schema))
        })
        .map_err(|_| HistoryError {
            path: PathBuf::from(format!("PostgreSQL history (schema {schema})")),
            failure: HistoryFailure::Setup(
                "the URL is not a valid postgres:// URL (it is not shown: it may hold a \
                 password)"
                    .into(),
            ),
        })
}

impl History {
    /// Opens a history in PostgreSQL schema `schema` (created if missing, when the role may),
    /// applying the PostgreSQL migrations inside it.
    pub async fn open_postgres(url: &SecretString, schema: &str) -> Result<History, HistoryError> {
        let options = connect_options(url, schema)?;
        let at = PathBuf::from(place(&options, schema));
        let err = |message: String| HistoryError {
            path: at.clone(),
            failure: HistoryFailure::Setup(message),
        };
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| err(format!("cannot connect: {e}")))?;
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
                .bind(schema)
                .fetch_one(&pool)
                .await
                .map_err(|e| err(format!("cannot read the schemas: {e}")))?;
        if !exists {
            // The name is checked by the config (a plain lower-case identifier); quoted anyway.
            // Two daemons starting at once on a new schema race here, and PostgreSQL may
            // refuse the second `IF NOT EXISTS` (a unique violation in its catalog): what
            // counts is that the schema exists afterwards.
            let created = sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&pool)
                .await;
            if let Err(e) = created {
                let now_exists: bool = sqlx::query_scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                )
                .bind(schema)
                .fetch_one(&pool)
                .await
                .unwrap_or(false);
                if !now_exists {
                    return Err(err(format!(
                        "schema {schema} does not exist and cannot be created ({e}); \
                         create it for this role (docs/operations.md, high availability)"
                    )));
                }
            }
        }
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| err(format!("cannot migrate: {e}")))?;
        Ok(History {
            db: Db::Postgres(pool, None),
            path: at,
            clock: Clock::system(),
            writable: true,
        })
    }

    /// Opens a history in PostgreSQL for reading only (the console, an auditor): every
    /// transaction is read-only on the server, nothing is created or migrated, and it
    /// connects on first use.
    pub fn open_postgres_read_only(
        url: &SecretString,
        schema: &str,
    ) -> Result<History, HistoryError> {
        let options = connect_options(url, schema)?;
        let at = PathBuf::from(place(&options, schema));
        let options = options.options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(History {
            db: Db::Postgres(pool, None),
            path: at,
            clock: Clock::system(),
            writable: false,
        })
    }

    /// The same history, every write of it fenced by `term` (see [`WriteTerm`]): for the
    /// processes that talk to Studio on a history several daemons share. A SQLite history
    /// has one writer by its instance lock, and is returned as it is.
    pub fn with_write_term(mut self, term: WriteTerm) -> History {
        if let Db::Postgres(pool, _) = self.db {
            self.db = Db::Postgres(pool, Some(term));
        }
        self
    }

    /// Whether this process still leads, asked of the database right before a batch is sent
    /// to Studio: a leader paused past its lease (a stopped process, a frozen VM) learns
    /// here that it was deposed, before it sends anything. Always `Ok` for a history with
    /// no write term (SQLite, or a PostgreSQL history without `ha`).
    pub async fn still_leads(&self) -> Result<(), HistoryError> {
        let Db::Postgres(pool, Some(term)) = &self.db else {
            return Ok(());
        };
        let epoch = term
            .get()
            .ok_or_else(|| self.err(DbError::LeadershipLost(Epoch::NONE)))?;
        let mut conn = pool.acquire().await.map_err(|e| self.err(e))?;
        fence(&mut conn, epoch)
            .await
            .map_err(|e| self.err(DbError::from(e)))
    }

    /// Who leads a PostgreSQL history now (host, pid, since), as its lease row says; `None`
    /// for a history file, or when no daemon's lease is live.
    pub async fn leader(&self) -> Result<Option<LeaderInfo>, HistoryError> {
        let Db::Postgres(pool, _) = &self.db else {
            return Ok(None);
        };
        // Any lease object reads the same row; its duration and holder play no part here.
        Lease::new(pool.clone(), Duration::from_secs(1))
            .leader()
            .await
            .map_err(|e| self.err(e))
    }

    /// The pool of a PostgreSQL history (its lease lives in the same schema).
    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        match &self.db {
            Db::Postgres(pool, _) => Some(pool),
            Db::Sqlite(_) => None,
        }
    }

    /// Opens the history at `place`, creating and migrating it as [`History::open`] and
    /// [`History::open_postgres`] do.
    pub async fn open_place(place: &HistoryPlace) -> Result<History, HistoryError> {
        match place {
            HistoryPlace::File(path) => History::open(path).await,
            HistoryPlace::Postgres { url, schema } => History::open_postgres(url, schema).await,
        }
    }

    /// Opens the history at `place` for reading only ([`History::open_read_only`],
    /// [`History::open_postgres_read_only`]): it connects on first use.
    pub fn open_place_read_only(place: &HistoryPlace) -> Result<History, HistoryError> {
        match place {
            HistoryPlace::File(path) => Ok(History::open_read_only(path)),
            HistoryPlace::Postgres { url, schema } => History::open_postgres_read_only(url, schema),
        }
    }

    /// Whether this history is kept in PostgreSQL (several daemons may share it).
    pub fn is_postgres(&self) -> bool {
        matches!(self.db, Db::Postgres(..))
    }
}

/// Studio is changed only while [`History::still_leads`]: asked before every attempt of a
/// `PUT`, retries included.
impl ChangeGate for History {
    fn may_change(&self) -> BoxFuture<'_, Result<(), String>> {
        async move { self.still_leads().await.map_err(|e| e.to_string()) }.boxed()
    }
}
