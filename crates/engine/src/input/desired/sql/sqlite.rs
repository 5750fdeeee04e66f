//! SQLite: the file is opened read-only (and `query_only`), never created. The database runs
//! inside this process, so the cancel at the deadline is SQLite's progress handler, which
//! interrupts the statement between steps; nothing is left running anywhere.

use super::rows::consume;
use super::{close, deadline, Database, ReadError};
use crate::input::config::SqlSourceConfig;
use crate::input::desired::DesiredBuilder;
use secrecy::ExposeSecret;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::ConnectOptions;
use std::str::FromStr;
use std::time::Instant;

pub(super) async fn read(
    config: &SqlSourceConfig,
    b: &mut DesiredBuilder<'_>,
) -> Result<u64, ReadError> {
    let options = SqliteConnectOptions::from_str(config.url.expose_secret())
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
    let read = async {
        let rows = sqlx::query(&config.query)
            .persistent(false)
            .fetch(&mut conn);
        match consume(rows, b).await {
            // The progress handler stopped it, a moment before the timer below fired.
            Err(ReadError::Query(_)) if Instant::now() >= deadline => Err(ReadError::TimedOut(
                Database::Sqlite,
                deadline::Cancelled::Confirmed(Default::default()),
            )),
            other => other,
        }
    };
    // The progress handler is the cancel: it fires at the same deadline.
    let n = deadline::run(Database::Sqlite, config.statement_timeout, read, async {
        Ok(())
    })
    .await?;
    close(conn).await;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{config, managed};
    use super::super::{load, MAX_BAD_ROWS};
    use sqlx::{ConnectOptions, Connection, Executor};
    use std::str::FromStr;
    use std::time::{Duration, Instant};

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

    /// Each write attempt is refused with its reason before it is sent, and the table keeps
    /// its row.
    #[tokio::test]
    async fn sqlite_is_read_only_and_single_statement() {
        let (_dir, url) = sqlite_with(&[("a@x.edu", "Admin")]).await;
        for (query, refusal) in [
            (
                "DELETE FROM t RETURNING email, role",
                "source.sql.query: a DELETE statement is refused",
            ),
            (
                "SELECT email, role FROM t; DELETE FROM t",
                "source.sql.query: several statements are refused (the second starts at line \
                 1, column 28 of the query)",
            ),
        ] {
            let c = config(&url, query, 5.0);
            let e = load(&c, &managed()).await.unwrap_err().to_string();
            assert!(e.contains(refusal), "{query}: {e}");
            assert!(e.ends_with("nothing was sent to the database"), "{e}");
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
        assert!(
            e.contains(&format!("({} problems)", MAX_BAD_ROWS + 1)),
            "{e}"
        );
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
            e.contains(
                "the query was interrupted: it ran longer than statement_timeout_seconds (0.5 s)"
            ),
            "{e}"
        );
    }

    /// A million valid rows: run with `cargo test -p studio-role-sync-engine --release --lib -- --ignored million` and watch the
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
