//! The history's tests run on both databases: [`history_tests!`] writes each test once and
//! compiles it twice, `…::sqlite` on a fresh file and `…::postgres` on a fresh schema of the
//! server named by `STUDIO_ROLE_SYNC_TEST_POSTGRES_URL` (dropped at the end). Without that
//! variable the PostgreSQL half is reported ignored (see `build.rs`); under `CI=true` it runs
//! and fails.

use super::History;
use secrecy::SecretString;
use std::sync::atomic::{AtomicU32, Ordering};

pub(crate) const POSTGRES_URL: &str = "STUDIO_ROLE_SYNC_TEST_POSTGRES_URL";

/// A history on a fresh SQLite file; the folder lives as long as the guard.
pub(crate) async fn sqlite() -> (History, Box<dyn Send>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let h = History::open(&dir.path().join("history.db"))
        .await
        .expect("a new SQLite history opens");
    (h, Box::new(dir))
}

/// Drops its schema (and everything in it) when the test ends, passed or not.
struct DropSchema {
    url: String,
    schema: String,
}

impl Drop for DropSchema {
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
        // A test's runtime may be gone by now: drop it from a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async {
                use sqlx::Connection;
                if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                    // A test that failed may leave a transaction open on a connection its
                    // runtime can no longer roll back: end the schema's sessions first.
                    let _ = sqlx::query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    )
                    .bind(super::postgres::application_name(&schema))
                    .execute(&mut c)
                    .await;
                    let _ = sqlx::query("SET lock_timeout = '10s'")
                        .execute(&mut c)
                        .await;
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                        .execute(&mut c)
                        .await;
                }
            });
        })
        .join();
    }
}

/// A history on a fresh schema of the test server.
pub(crate) async fn postgres() -> (History, Box<dyn Send>) {
    static N: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var(POSTGRES_URL)
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| panic!("CI=true: set {POSTGRES_URL} to a PostgreSQL server"));
    let schema = format!(
        "srs_test_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let guard = DropSchema {
        url: url.clone(),
        schema: schema.clone(),
    };
    let h = History::open_postgres(&SecretString::from(url), &schema)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_URL}: {e}"));
    (h, Box::new(guard))
}

/// Writes each test once for both databases:
/// `history_tests! { async fn name(h: History) { … } }` makes `name::sqlite` and
/// `name::postgres`.
macro_rules! history_tests {
    ($(async fn $name:ident($h:ident: History) $body:block)*) => {
        $(mod $name {
            #[allow(unused_imports)]
            use super::*;

            async fn body($h: $crate::store::history::History) $body

            #[tokio::test]
            async fn sqlite() {
                let (h, _guard) = $crate::store::history::backends::sqlite().await;
                body(h).await;
            }

            #[tokio::test]
            #[cfg_attr(
                history_postgres_ignored,
                ignore = "needs PostgreSQL: set STUDIO_ROLE_SYNC_TEST_POSTGRES_URL (.ci/run does)"
            )]
            async fn postgres() {
                let (h, _guard) = $crate::store::history::backends::postgres().await;
                body(h).await;
            }
        })*
    };
}
pub(crate) use history_tests;
