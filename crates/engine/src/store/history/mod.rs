//! The run history: a SQLite file that records every run and every action.
//!
//! Admins read it (`history`, or plain `sqlite3`), so its tables are a contract. It is written
//! as a run progresses, not at its end: the run row first (`running`), the planned actions
//! next (`planned`), then each batch's outcomes as they come back. A process killed at any
//! moment leaves the truth behind, and the next process marks its run `interrupted`. WAL mode
//! and one transaction per write keep the file consistent through `kill -9`.
//!
//! The same file keeps small working tables: the emails once found ambiguous (`identity.rs`),
//! the emails left alone as spans of runs (`pending.rs`, read through the `run_pending` view)
//! and the newest OAuth tokens. That is why a new file is created `0600`. Approvals and run
//! requests (`approvals.rs`) are how people reach the daemon through it.
//!
//! Times come from a [`Clock`]: the system clock, or a manual one that a benchmark drives
//! through a simulated year.

mod approvals;
#[cfg(test)]
pub(crate) mod backends;
mod browse;
mod clock;
mod copy;
mod day_totals;
mod db;
mod identity;
mod interrupted;
mod missing;
pub mod notifications;
mod pending;
mod people;
mod pool;
mod postgres;
mod reminders;
mod retention;
mod status;
mod tokens;
mod trail;

pub use browse::{AuthRecord, RunFilter};
pub use day_totals::DayStats;
pub use trail::{
    action_reason, history_time, left_alone_why, parse_time, reason_words, short_time,
    TrailColumns, TrailEntry, TrailEvent,
};

pub use approvals::{ApprovalRow, ApproveError};
pub use clock::Clock;
pub use copy::{CopiedTable, CopyReport};
pub use missing::MissingGrant;
pub use pending::{PendingChanges, PendingNow, PendingUpdate};
pub use people::{AccountSeen, AppliedChange, DesiredSeen, Person};
pub use retention::Pruned;
pub use status::{RecentRun, RunContext, StatusFacts, STREAK_WINDOW};

use crate::input::roles::ManagedRoles;
use crate::model::change::{Change, ChangeKind, ChangeResult, Outcome, PlannedAction};
use crate::model::run_status::RunStatus;
use crate::store::state_files;
pub use crate::studio::tokens::StoredTokens;
use chrono::{SecondsFormat, Utc};
pub use db::WriteTerm;
use db::{Db, DbError, Sql, Tx};
use serde::Serialize;
use sqlx::sqlite::{SqliteAutoVacuum, SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

/// Rows per multi-row INSERT: well under SQLite's limit of bound parameters.
const ROWS_PER_INSERT: usize = 500;
use std::path::{Path, PathBuf};
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// Applies the migrations. Two processes opening a new (or older) file at once (a daemon
/// starting while an admin runs `plan`) race: SQLite migrations take no lock, so the loser
/// fails on a migration the winner has just committed. Each migration commits with its record,
/// so trying again a few times sees it applied and goes on.
async fn migrate(pool: &sqlx::SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    let mut attempt = 0;
    loop {
        match MIGRATOR.run(pool).await {
            Err(e) if attempt < 5 => {
                attempt += 1;
                tracing::debug!(error = %e, attempt, "migration failed; another process may be migrating, trying again");
                tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
            }
            result => return result,
        }
    }
}

/// The history could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
#[error("history database {}: {failure}", path.display())]
pub struct HistoryError {
    pub path: PathBuf,
    #[source]
    pub failure: HistoryFailure,
}

/// What went wrong with the history: a query (with SQLite's own error kept as the source), or
/// setting the file up.
#[derive(Debug, thiserror::Error)]
pub enum HistoryFailure {
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A write of a process whose lease ended: refused, not merged (docs/operations.md, high
    /// availability).
    #[error("leadership lost: the lease of term {0} expired or another daemon took it over")]
    LeadershipLost(crate::store::lease::Epoch),
    #[error("{0}")]
    Setup(String),
}

impl From<DbError> for HistoryFailure {
    fn from(e: DbError) -> HistoryFailure {
        match e {
            DbError::Sql(e) => HistoryFailure::Sql(e),
            DbError::LeadershipLost(epoch) => HistoryFailure::LeadershipLost(epoch),
        }
    }
}

impl HistoryError {
    /// Whether the write was refused because this process no longer leads.
    pub fn is_leadership_lost(&self) -> bool {
        matches!(self.failure, HistoryFailure::LeadershipLost(_))
    }
}

/// Now, as the history writes times: RFC 3339, UTC, milliseconds.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[derive(Clone, Debug)]
pub struct History {
    db: Db,
    path: PathBuf,
    clock: Clock,
    /// Opened by [`open`](History::open): this process may write, and checkpoints on close.
    writable: bool,
}

/// A row of `runs`.
#[derive(Clone, Debug, Default, Serialize, sqlx::FromRow, PartialEq)]
pub struct RunRecord {
    pub id: i64,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub trigger: String,
    pub dry_run: bool,
    pub status: RunStatus,
    pub desired_users: Option<i64>,
    pub adds_planned: i64,
    pub removes_planned: i64,
    pub adds_applied: i64,
    pub removes_applied: i64,
    pub failed: i64,
    pub pending: i64,
    pub api_requests: i64,
    pub error: Option<String>,
    pub retries: i64,
    pub throttled: i64,
    /// `incremental` or `full`; `None` before the run read Studio.
    pub verification: Option<String>,
}

/// A row of `run_actions`.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct ActionRow {
    pub email: Option<String>,
    pub user_id: i64,
    pub role: String,
    pub action: ChangeKind,
    pub outcome: Outcome,
    pub http_status: Option<i64>,
    pub detail: Option<String>,
    /// The sources that gave an added grant (`roles.yaml, ldap`); `None` for a removal.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The grant's end (`YYYY-MM-DD`): of an added grant that ends, or of a grant that ended
    /// and is removed.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// The reason the source gave for that grant.
    #[sqlx(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl ActionRow {
    /// The row of a planned change, before anything is sent (`outcome` says otherwise when a
    /// guard or flapping keeps it back). `source`: which sources gave an added grant.
    pub(crate) fn planned(
        change: &Change,
        managed: &ManagedRoles,
        outcome: Outcome,
        detail: Option<String>,
        source: Option<String>,
    ) -> ActionRow {
        let named = change.named(managed);
        ActionRow {
            email: named.email,
            user_id: named.user_id,
            role: named.role,
            action: named.action,
            outcome,
            http_status: None,
            detail,
            source,
            until: None,
            reason: None,
        }
    }

    /// The row of a change after sending.
    pub(crate) fn sent(result: &ChangeResult, managed: &ManagedRoles) -> ActionRow {
        ActionRow {
            http_status: result.http_status.map(i64::from),
            ..ActionRow::planned(
                &result.change,
                managed,
                result.outcome,
                result.detail.clone(),
                None,
            )
        }
    }

    /// The change this row records, by its role's name.
    pub fn named(&self) -> PlannedAction {
        PlannedAction {
            user_id: self.user_id,
            email: self.email.clone(),
            role: self.role.clone(),
            action: self.action,
        }
    }
}

/// A row of `run_pending`.
#[derive(Clone, Debug, Serialize, sqlx::FromRow, PartialEq, Eq)]
pub struct PendingRow {
    pub email: String,
    pub reason: String,
    pub user_id: Option<i64>,
    pub detail: Option<String>,
}

/// Refuses a history file with several hard links: SQLite keeps its journal (`-wal`) beside
/// the name it was opened by, so two names of one file keep two journals, and a checkpoint
/// through one overwrites the runs recorded through the other. (A symlink is fine: SQLite
/// resolves it.)
fn check_single_name(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) if m.nlink() > 1 => Err(format!(
            "the file has {} hard links (names); SQLite keeps a journal per name, so runs \
             recorded through one name would be lost through the other. Remove the extra \
             hard links (find / -samefile {}) and use one path, or a symbolic link",
            m.nlink(),
            path.display()
        )),
        _ => Ok(()),
    }
}

impl History {
    /// Opens (creating it and its folder if missing) and migrates the history database.
    pub async fn open(path: &Path) -> Result<History, HistoryError> {
        let err = |message: String| HistoryError {
            path: path.to_path_buf(),
            failure: HistoryFailure::Setup(message),
        };
        // Private whatever the umask: a new folder 0700, the files 0600 (see `state_files`).
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            state_files::create_private_dir(dir)
                .map_err(|e| err(format!("cannot create its folder: {e}")))?;
        }
        state_files::create_private_file(path)
            .map_err(|e| err(format!("cannot create the file: {e}")))?;
        check_single_name(path).map_err(err)?;
        for companion in state_files::sqlite_companions(path) {
            state_files::tighten(&companion);
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // Takes effect on a new file (set before its first table); an older file keeps
            // its mode until one VACUUM (docs/operations.md).
            .auto_vacuum(SqliteAutoVacuum::Incremental)
            .foreign_keys(true);
        let pool = pool::connect(options)
            .await
            .map_err(|e| err(format!("cannot open: {e}")))?;
        migrate(&pool)
            .await
            .map_err(|e| err(format!("cannot migrate: {e}")))?;
        // SQLite gives its -wal/-shm the database's mode; checked in case they predate it.
        for companion in state_files::sqlite_companions(path) {
            state_files::tighten(&companion);
        }
        Ok(History {
            db: Db::Sqlite(pool),
            path: path.to_path_buf(),
            clock: Clock::system(),
            writable: true,
        })
    }

    /// The same history, timed by `clock` (a benchmark's simulated time).
    pub fn with_clock(mut self, clock: Clock) -> History {
        self.clock = clock;
        self
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now by this history's clock, as the history writes times.
    pub fn now(&self) -> String {
        self.clock.now_text()
    }

    /// Opens an existing history for reading only (the console): SQLite itself refuses any
    /// write on these connections, and nothing is created or migrated. The file must have been
    /// opened by [`open`](Self::open) first (the daemon does, before it serves).
    /// It connects on first use, so it can be set up before the daemon has created the file.
    pub fn open_read_only(path: &Path) -> History {
        Self::read_only_with(path, false)
    }

    /// As [`open_read_only`](Self::open_read_only), for a reader who may not create SQLite's
    /// `-shm` beside the file nor read the service's (an auditor with read rights on the file
    /// alone): SQLite is told the file does not change while it reads (`immutable`), which is
    /// true of a history no process has open, and otherwise reads what was checkpointed.
    pub fn open_read_only_unshared(path: &Path) -> History {
        Self::read_only_with(path, true)
    }

    fn read_only_with(path: &Path, immutable: bool) -> History {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(true)
            .immutable(immutable)
            .busy_timeout(Duration::from_secs(5));
        let pool = pool::options()
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(options);
        History {
            db: Db::Sqlite(pool),
            path: path.to_path_buf(),
            clock: Clock::system(),
            writable: false,
        }
    }

    /// The SQLite pool of a file history (tests that look at the file itself).
    #[cfg(test)]
    pub(crate) fn sqlite_pool(&self) -> sqlx::SqlitePool {
        match &self.db {
            Db::Sqlite(pool) => pool.clone(),
            Db::Postgres(..) => panic!("not a SQLite history"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A write transaction ([`Db::begin_write`]).
    async fn begin_write(&self) -> Result<Tx, DbError> {
        self.db.begin_write().await
    }

    fn err(&self, e: impl Into<HistoryFailure>) -> HistoryError {
        HistoryError {
            path: self.path.clone(),
            failure: e.into(),
        }
    }

    /// Records a run as `running` and gives its id. (In a write transaction: on a shared
    /// PostgreSQL history it is fenced like every write of a run.)
    pub async fn start_run(&self, trigger: &str, dry_run: bool) -> Result<i64, HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        let id = Sql::new(
            "INSERT INTO runs (started_at, trigger, dry_run, status, pid) \
             VALUES (?, ?, ?, 'running', ?) RETURNING id",
        )
        .bind(self.now())
        .bind(trigger)
        .bind(dry_run)
        .bind(std::process::id() as i64)
        .scalar(&mut tx)
        .await
        .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(id)
    }

    /// Records the planned actions and the pending emails of a run, in one transaction: the
    /// actions as rows, the pending emails as changes to their spans (`pending.rs`).
    pub async fn record_plan(
        &self,
        run_id: i64,
        actions: &[ActionRow],
        pending: &PendingUpdate<'_>,
    ) -> Result<PendingChanges, HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        // A write first, so the transaction holds the write lock before it reads the spans.
        Sql::new("UPDATE runs SET plan_recorded = TRUE WHERE id = ?")
            .bind(run_id)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        let at = self.now();
        // Many rows per statement: a 20,000-action plan is 40 statements, not 20,000.
        for chunk in actions.chunks(ROWS_PER_INSERT) {
            let mut q = Sql::new(
                "INSERT INTO run_actions (run_id, email, user_id, role, action, outcome, http_status, detail, planned_user_id, updated_at, source, until, reason)",
            );
            q.push_values(chunk, |row, a| {
                row.bind(run_id)
                    .bind(&a.email)
                    .bind(a.user_id)
                    .bind(&a.role)
                    .bind(a.action)
                    .bind(a.outcome)
                    .bind(a.http_status)
                    .bind(&a.detail)
                    // `planned_user_id` (a column since 0001) is always the user id.
                    .bind(a.user_id)
                    .bind(&at)
                    .bind(&a.source)
                    .bind(&a.until)
                    .bind(&a.reason);
            });
            q.execute(&mut tx).await.map_err(|e| self.err(e))?;
        }
        let changes = pending::record(&mut tx, run_id, &self.clock, pending)
            .await
            .map_err(|e| self.err(e))?;
        tx.commit().await.map_err(|e| self.err(e))?;
        Ok(changes)
    }

    /// Writes the outcomes of actions recorded by [`record_plan`](Self::record_plan).
    pub async fn record_outcomes(
        &self,
        run_id: i64,
        outcomes: &[ActionRow],
    ) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        let at = self.now();
        for a in outcomes {
            Sql::new(
                "UPDATE run_actions SET outcome = ?, http_status = ?, detail = ?, updated_at = ? \
                 WHERE run_id = ? AND planned_user_id = ? AND role = ? AND action = ?",
            )
            .bind(a.outcome)
            .bind(a.http_status)
            .bind(&a.detail)
            .bind(&at)
            .bind(run_id)
            .bind(a.user_id)
            .bind(&a.role)
            .bind(a.action)
            .execute(&mut tx)
            .await
            .map_err(|e| self.err(e))?;
        }
        tx.commit().await.map_err(|e| self.err(e))
    }

    /// Writes the end of a run: its status, counts and error.
    /// The run's day is recounted in the same transaction (`day_totals.rs`).
    pub async fn finish_run(&self, run: &RunRecord) -> Result<(), HistoryError> {
        let mut tx = self.begin_write().await.map_err(|e| self.err(e))?;
        Sql::new(
            "UPDATE runs SET finished_at = ?, status = ?, desired_users = ?, adds_planned = ?, removes_planned = ?, \
             adds_applied = ?, removes_applied = ?, failed = ?, pending = ?, api_requests = ?, error = ?, \
             retries = ?, throttled = ? WHERE id = ?",
        )
        .bind(run.finished_at.clone().unwrap_or_else(|| self.now()))
        .bind(run.status)
        .bind(run.desired_users)
        .bind(run.adds_planned)
        .bind(run.removes_planned)
        .bind(run.adds_applied)
        .bind(run.removes_applied)
        .bind(run.failed)
        .bind(run.pending)
        .bind(run.api_requests)
        .bind(&run.error)
        .bind(run.retries)
        .bind(run.throttled)
        .bind(run.id)
        .execute(&mut tx)
        .await
        .map_err(|e| self.err(e))?;
        self.recount_run_day(&mut tx, run.id).await?;
        tx.commit().await.map_err(|e| self.err(e))
    }

    const RUN_COLUMNS: &'static str = "id, started_at, finished_at, trigger, dry_run, status, desired_users, adds_planned, \
        removes_planned, adds_applied, removes_applied, failed, pending, api_requests, error, retries, throttled, \
        verification";

    /// The latest runs, newest first.
    pub async fn runs(&self, limit: u32) -> Result<Vec<RunRecord>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM runs ORDER BY id DESC LIMIT ?",
            Self::RUN_COLUMNS
        ))
        .bind(limit as i64)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    pub async fn run(&self, id: i64) -> Result<Option<RunRecord>, HistoryError> {
        Sql::new(format!(
            "SELECT {} FROM runs WHERE id = ?",
            Self::RUN_COLUMNS
        ))
        .bind(id)
        .fetch_optional(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    pub async fn actions(&self, run_id: i64) -> Result<Vec<ActionRow>, HistoryError> {
        Sql::new(
            "SELECT email, user_id, role, action, outcome, http_status, detail FROM run_actions \
             WHERE run_id = ? ORDER BY role, action, email, id",
        )
        .bind(run_id)
        .fetch_all(&self.db)
        .await
        .map_err(|e| self.err(e))
    }

    pub async fn pending(&self, run_id: i64) -> Result<Vec<PendingRow>, HistoryError> {
        Sql::new("SELECT email, reason, user_id, detail FROM run_pending WHERE run_id = ? ORDER BY reason, email")
            .bind(run_id)
            .fetch_all(&self.db)
            .await
            .map_err(|e| self.err(e))
    }

    /// Closes the pool. A writer first folds the write-ahead log into the file and empties it
    /// (`wal_checkpoint(TRUNCATE)`): SQLite does that by itself only when the last connection
    /// closes cleanly, and a reader who may not open the service's `-wal` (an auditor with read
    /// rights on the file alone, [`open_read_only_unshared`](Self::open_read_only_unshared))
    /// sees the file as checkpointed. Without it, such a reader once found no tables at all
    /// after a first `apply`. A checkpoint that cannot run now (a reader holds an old snapshot)
    /// is left to SQLite.
    pub async fn close(&self) {
        if let (true, Db::Sqlite(pool)) = (self.writable, &self.db) {
            if !pool.is_closed() {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(pool)
                    .await
                {
                    tracing::debug!(error = %e, "history: checkpoint at close did not run");
                }
            }
        }
        self.db.close().await;
    }

    /// The write-ahead log beside the file holds writes not yet in the file itself.
    pub fn has_unfolded_writes(path: &Path) -> bool {
        let mut wal = path.as_os_str().to_os_string();
        wal.push("-wal");
        std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::backends::history_tests;
    use super::*;

    #[tokio::test]
    async fn a_new_history_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/history.db");
        History::open(&path).await.unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    history_tests! {
        async fn runs_round_trip_and_interrupted(h: History) {
            let id = h.start_run("manual", false).await.unwrap();
            let row = ActionRow {
                email: Some("a@x.edu".into()),
                user_id: 7,
                role: "Admin".into(),
                action: ChangeKind::Add,
                outcome: Outcome::Planned,
                http_status: None,
                detail: None,
                source: None,
                until: None,
                reason: None,
            };
            h.record_plan(id, std::slice::from_ref(&row), &PendingUpdate::default())
                .await
                .unwrap();
            let done = ActionRow {
                outcome: Outcome::Applied,
                http_status: Some(200),
                ..row.clone()
            };
            h.record_outcomes(id, &[done]).await.unwrap();
            let actions = h.actions(id).await.unwrap();
            assert_eq!(
                (actions[0].user_id, actions[0].outcome),
                (7, Outcome::Applied)
            );
            assert_eq!(h.mark_interrupted().await.unwrap(), 1);
            let run = h.run(id).await.unwrap().unwrap();
            assert_eq!(run.status, RunStatus::Interrupted);
            assert!(run.finished_at.is_some());
        }
    }
}
