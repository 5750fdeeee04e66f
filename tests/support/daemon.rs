//! The real `daemon` process in a test: started against a tenant, its stderr captured line by
//! line (shown when a test fails, or always with `DAEMON_TEST_LOG` set), signalled with
//! `kill`, and conditions on it awaited by polling under a deadline, never by a fixed sleep.
//! Test files add the few methods only they need in an `impl Daemon` block of their own.

use super::Tenant;
use sqlx::SqlitePool;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

/// A schedule that does not fire during a test.
pub const YEARLY: &str = "schedule: \"0 0 0 1 1 *\"\n";

/// A daemon process with its stderr captured.
pub struct Daemon {
    pub child: Child,
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(t: &Tenant) -> Daemon {
        Daemon::start_with_env(t, &[])
    }

    /// Starts `daemon` with `envs` set for the child only (a test never changes its own
    /// environment).
    pub fn start_with_env(t: &Tenant, envs: &[(&str, String)]) -> Daemon {
        Daemon::start_config(&t.config_path(), envs)
    }

    /// Starts `daemon` with the config at `config` (several daemons of one tenant).
    pub fn start_config(config: &std::path::Path, envs: &[(&str, String)]) -> Daemon {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .arg("--config")
            .arg(config)
            .arg("daemon")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("NO_COLOR", "1")
            .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("daemon starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut log = sink.lock().unwrap();
                log.push_str(&strip_ansi(&line));
                log.push('\n');
            }
        });
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The HTTP base URL, from the first `listening on ADDR` line (within `within`).
    pub async fn base_url(&self, within: Duration) -> String {
        let addr = wait_for("the `listening on` log line", within, || async {
            self.log().lines().find_map(|l| {
                l.split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .map(str::to_string)
            })
        })
        .await;
        format!("http://{addr}")
    }

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill {signal} {pid}");
    }
}

impl Daemon {
    /// The exit code once the process has exited (`None`: killed by a signal).
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("wait works").code(),
            Err(_) => panic!("daemon did not exit within {within:?}\n{}", self.log()),
        }
    }
}

/// The tenant's history once the daemon has created and migrated it far enough that `table`
/// exists.
pub async fn wait_for_history(t: &Tenant, table: &str, within: Duration) -> SqlitePool {
    wait_for(&format!("the {table} table"), within, || async {
        if !t.history_path().exists() {
            return None;
        }
        let db = t.history().await;
        let ok = sqlx::query(&format!("SELECT 1 FROM {table} LIMIT 1"))
            .fetch_optional(&db)
            .await
            .is_ok();
        ok.then_some(db)
    })
    .await
}

impl Drop for Daemon {
    /// On a failed assertion (or with `DAEMON_TEST_LOG` set), show what the daemon logged.
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("DAEMON_TEST_LOG").is_some() {
            eprintln!("--- daemon log\n{}", self.log());
        }
    }
}

/// Polls `check` every 50 ms until it gives a value; panics with `what` after `within`.
pub async fn wait_for<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() > end {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The line without ANSI escape sequences (colour), should any reach the log.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
