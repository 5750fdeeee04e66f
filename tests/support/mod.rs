//! Shared test fixtures: a simulated Studio tenant on 127.0.0.1, a temporary folder with a
//! config and a roles file, and the real binary run against them.
// Each test binary compiles this module and uses only part of it; every item is used by some test.
#![allow(dead_code)]

pub mod daemon;
pub mod test_ca;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Row, SqlitePool};
use std::path::PathBuf;
use std::process::Output;
use studio_sim::{Faults, Sim, SimConfig, SimUser};

pub const TOKEN: &str = "test-token-5ecret";

/// A roles file giving `Admin` to each of `emails`.
pub fn admins(emails: &[&str]) -> String {
    let mut text = String::from("users:\n");
    for e in emails {
        text.push_str(&format!("  {e}: [Admin]\n"));
    }
    text
}

/// `n` Studio users `u1@example.edu` ... `un@example.edu`, holding no role.
pub fn people(n: u64) -> Vec<SimUser> {
    (1..=n)
        .map(|i| user(i, Some(&format!("u{i}@example.edu")), &[]))
        .collect()
}

/// A roles file giving `Admin` to the [`people`] numbered `from` to `to`.
pub fn numbered_admins(from: u64, to: u64) -> String {
    let mut text = String::from("users:\n");
    for i in from..=to {
        text.push_str(&format!("  u{i}@example.edu: [Admin]\n"));
    }
    text
}

/// A tenant whose simulator injects `faults`.
pub async fn faulty_tenant(faults: Faults, users: Vec<SimUser>) -> Tenant {
    Tenant::start_with(
        SimConfig {
            token: Some(TOKEN.into()),
            faults,
            ..SimConfig::default()
        },
        users,
    )
    .await
}

/// Asserts that `secret` is nowhere in `log`, and that `log` is not empty: a secret is
/// trivially absent from a log that was never captured.
pub fn assert_secret_absent(log: &str, secret: &str, what: &str) {
    assert!(
        !log.trim().is_empty(),
        "{what}: the log is empty, so the secret check would prove nothing"
    );
    assert!(!log.contains(secret), "{what}: a secret is in the log");
}

pub fn user(id: u64, email: Option<&str>, roles: &[&str]) -> SimUser {
    SimUser {
        id,
        full_name: format!("User {id}"),
        email: email.map(str::to_string),
        role_names: roles.iter().map(|r| r.to_string()).collect(),
    }
}

/// The parts of the config a test changes; the rest is a sane default.
#[derive(Clone)]
pub struct Opts {
    pub managed: &'static str,
    pub remove_unlisted: bool,
    pub protected: &'static str,
    pub max_removals: usize,
    pub max_removal_ratio: f64,
    pub batch_size: usize,
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub max_retries: u32,
    pub timeout_seconds: f64,
    /// The `source:` block body (indented two spaces); default the YAML roles file.
    pub source: String,
    /// The auth lines under `studio:` (indented two spaces); default `token_file: token`.
    pub auth: String,
    /// Extra top-level YAML appended at the end.
    pub extra: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            managed: "[Admin, CaptionEditor]",
            remove_unlisted: true,
            protected: "[]",
            max_removals: 100,
            max_removal_ratio: 1.0,
            batch_size: 50,
            concurrency: 4,
            requests_per_second: 200.0,
            max_retries: 3,
            timeout_seconds: 5.0,
            source: "  yaml: roles.yaml\n".into(),
            auth: "  token_file: token\n".into(),
            extra: String::new(),
        }
    }
}

pub struct Tenant {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Tenant {
    pub async fn start(users: Vec<SimUser>) -> Tenant {
        Tenant::start_with(
            SimConfig {
                token: Some(TOKEN.into()),
                ..SimConfig::default()
            },
            users,
        )
        .await
    }

    pub async fn start_with(config: SimConfig, users: Vec<SimUser>) -> Tenant {
        let sim = Sim::start(config, users).await.expect("simulator starts");
        Tenant::with_sim(sim)
    }

    /// A tenant folder (token file, default config) for a simulator already started.
    pub fn with_sim(sim: Sim) -> Tenant {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("token"), TOKEN).unwrap();
        let t = Tenant { sim, dir };
        t.write_config(&Opts::default());
        t
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("studio-role-sync.yaml")
    }

    pub fn history_path(&self) -> PathBuf {
        self.path("state/history.db")
    }

    pub fn config_text(&self, o: &Opts) -> String {
        format!(
            "studio:\n  base_url: {}\n{}  requests_per_second: {}\n  burst: 10\n  concurrency: {}\n  batch_size: {}\n  timeout_seconds: {}\n  max_retries: {}\n\
             roles:\n  managed: {}\n  remove_unlisted: {}\n  protected: {}\n\
             safety:\n  max_removals: {}\n  max_removal_ratio: {}\n\
             source:\n{}\
             history: state/history.db\n\
             http:\n  listen: 127.0.0.1:0\n{}",
            self.sim.base_url(),
            o.auth,
            o.requests_per_second,
            o.concurrency,
            o.batch_size,
            o.timeout_seconds,
            o.max_retries,
            o.managed,
            o.remove_unlisted,
            o.protected,
            o.max_removals,
            o.max_removal_ratio,
            o.source,
            o.extra
        )
    }

    pub fn write_config(&self, o: &Opts) {
        std::fs::write(self.config_path(), self.config_text(o)).unwrap();
    }

    pub fn write_roles(&self, text: &str) {
        std::fs::write(self.path("roles.yaml"), text).unwrap();
    }

    /// Runs the real binary with `--config` and `args`, with `envs` set.
    pub async fn cli_env(&self, args: &[&str], envs: &[(&str, &str)]) -> Run {
        let out: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_studio-role-sync"))
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .envs(envs.iter().copied())
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output()
            .await
            .expect("binary runs");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    pub async fn cli(&self, args: &[&str]) -> Run {
        self.cli_env(args, &[]).await
    }

    /// The history database, opened read-only for assertions.
    pub async fn history(&self) -> SqlitePool {
        let options = SqliteConnectOptions::new()
            .filename(self.history_path())
            .read_only(true);
        SqlitePool::connect_with(options)
            .await
            .expect("history opens")
    }

    /// Sorted emails of the holders of `role` in the simulator.
    pub fn holders(&self, role: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sim
            .holders(role)
            .into_iter()
            .map(|u| u.email.unwrap_or_else(|| format!("user {}", u.id)))
            .collect();
        v.sort();
        v
    }
}

/// `(status, adds_applied, removes_applied, failed, pending, api_requests)` of run `id`.
pub async fn run_row(db: &SqlitePool, id: i64) -> (String, i64, i64, i64, i64, i64) {
    let r = sqlx::query("SELECT status, adds_applied, removes_applied, failed, pending, api_requests FROM runs WHERE id = ?")
        .bind(id)
        .fetch_one(db)
        .await
        .expect("run exists");
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5))
}

pub async fn count(db: &SqlitePool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(db)
        .await
        .expect("count query")
}

/// What a test whose server (or mount, or browser) is missing reports: *ignored* with the
/// reason, never passed; under `CI=true` it fails instead, since CI must run everything.
pub fn unavailable(
    reason: impl Into<String>,
) -> Result<libtest_mimic::Completion, libtest_mimic::Failed> {
    let reason = reason.into();
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        return Err(libtest_mimic::Failed::from(format!(
            "CI is set, so this test must run: {reason}"
        )));
    }
    Ok(libtest_mimic::Completion::ignored_with(reason))
}

/// A PostgreSQL schema of a test's own: dropped, with everything in it, when the test ends,
/// passed or not (from a runtime of its own: the test's may be gone by then).
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (url, name) = (self.url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(async {
                    use sqlx::{Connection, Executor};
                    if let Ok(mut c) = sqlx::PgConnection::connect(&url).await {
                        let _ = c
                            .execute(format!("DROP SCHEMA IF EXISTS {name} CASCADE").as_str())
                            .await;
                    }
                });
        })
        .join();
    }
}
