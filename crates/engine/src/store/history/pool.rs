//! The history's connection pool, and the rule that keeps one failed write from locking the
//! history for every later one.
//!
//! When a `COMMIT` fails on a full disk (SQLITE_FULL) or an I/O error, SQLite may roll the
//! whole transaction back by itself. sqlx's rollback of the dropped transaction then fails
//! ("no transaction is active"), so sqlx goes on counting the pooled connection as one level
//! deep in a transaction. The next `begin()` on it sends `SAVEPOINT` instead of `BEGIN` (which
//! opens a real transaction), and when that write fails too, its `ROLLBACK TO SAVEPOINT` leaves
//! the transaction open: the connection keeps SQLite's write lock, every other connection
//! answers "database is locked" after its busy wait, and what is later "committed" through it
//! is only a nested savepoint that nobody else ever sees. A daemon whose run hit a full disk
//! could then not record its next run, nor the end of the failed one.
//!
//! So a connection that comes back to the pool still counted inside a transaction is closed
//! (closing rolls back and lets go of the lock) and the pool opens a fresh one when needed.

use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Connection, Sqlite, SqlitePool, TransactionManager};
use std::time::Duration;

/// Connections per pool: runs write one at a time; readers (status, the console) share.
const MAX_CONNECTIONS: u32 = 4;

/// The pool options every history pool uses.
pub(super) fn options() -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .after_release(|conn, _| {
            Box::pin(async move {
                // The rollback of a dropped transaction is queued on the connection's worker;
                // a ping goes through the same queue, so after it the count is settled.
                conn.ping().await?;
                let depth =
                    <Sqlite as sqlx::Database>::TransactionManager::get_transaction_depth(conn);
                if depth > 0 {
                    tracing::warn!(
                        "closed a history connection that a failed write left inside a \
                         transaction; the next write uses a fresh one"
                    );
                }
                Ok(depth == 0)
            })
        })
}

/// Opens the pool. Switching a new file to WAL needs a moment alone with it, and SQLite
/// answers "database is locked" at once (no busy wait) when another process is opening it
/// too: try again a few times.
pub(super) async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let mut attempt = 0;
    loop {
        match self::options().connect_with(options.clone()).await {
            Err(e) if attempt < 10 && e.to_string().contains("database is locked") => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteJournalMode;

    fn file(path: &std::path::Path, busy: Duration) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(busy)
    }

    /// What a full disk does to a pooled connection, without a full disk: SQLite rolls a
    /// transaction back by itself (here: a `ROLLBACK` sent inside it, as SQLite does after
    /// SQLITE_FULL), then a later transaction on the same connection fails and is dropped.
    /// Another process must still be able to write, and a later write must be seen.
    #[tokio::test]
    async fn a_transaction_sqlite_rolled_back_itself_does_not_keep_the_write_lock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.db");
        // One connection, so every step below meets the same one.
        let ours = options()
            .max_connections(1)
            .connect_with(file(&path, Duration::from_secs(5)))
            .await
            .unwrap();
        sqlx::query("CREATE TABLE runs (id INTEGER PRIMARY KEY, status TEXT NOT NULL)")
            .execute(&ours)
            .await
            .unwrap();

        let mut tx = ours.begin().await.unwrap();
        sqlx::query("INSERT INTO runs (status) VALUES ('running')")
            .execute(&mut *tx)
            .await
            .unwrap();
        sqlx::query("ROLLBACK").execute(&mut *tx).await.unwrap();
        drop(tx);

        // A later write that fails midway, its transaction dropped on the error.
        let mut tx = ours.begin().await.unwrap();
        sqlx::query("INSERT INTO runs (status) VALUES ('running')")
            .execute(&mut *tx)
            .await
            .unwrap();
        let failed = sqlx::query("INSERT INTO runs (status) VALUES (NULL)")
            .execute(&mut *tx)
            .await;
        assert!(failed.is_err());
        drop(tx);

        // Another process writes; without the rule it waits for a lock that is never let go.
        let theirs = SqlitePool::connect_with(file(&path, Duration::from_millis(500)))
            .await
            .unwrap();
        sqlx::query("INSERT INTO runs (status) VALUES ('theirs')")
            .execute(&theirs)
            .await
            .expect("the history takes writes from another connection");
        // And what this pool records is there for everyone.
        sqlx::query("INSERT INTO runs (status) VALUES ('ours')")
            .execute(&ours)
            .await
            .unwrap();
        let mut tx = ours.begin().await.unwrap();
        sqlx::query("UPDATE runs SET status = 'failed' WHERE status = 'ours'")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        let seen: Vec<String> = sqlx::query_scalar("SELECT status FROM runs ORDER BY id")
            .fetch_all(&theirs)
            .await
            .unwrap();
        assert_eq!(seen, ["theirs", "failed"]);
        ours.close().await;
        theirs.close().await;
    }
}
