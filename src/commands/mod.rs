//! The commands: each takes plain arguments, calls the engine, prints for a person, and
//! returns the contract's exit code. One file per command (or group); `main.rs` only maps the
//! command line onto them. What several commands share lives here: loading the config with
//! its error printed, and opening the history with or without the instance lock.

mod approve;
mod auth_login;
mod copy_history;
mod daemon;
#[cfg(feature = "demo")]
mod demo;
mod export;
mod history;
mod lease_hold;
mod run;
mod trigger;
mod validate;

pub use approve::approve;
pub use auth_login::auth_login;
pub use copy_history::copy_history;
pub use daemon::daemon;
#[cfg(feature = "demo")]
pub use demo::demo;
pub use export::export;
pub use history::{history, history_approvals, HistoryQuery};
pub use run::{apply, plan, run};
pub use trigger::trigger;
pub use validate::validate;

use crate::exit::Exit;
use std::path::Path;
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::history::History;
use studio_role_sync_engine::history_place::HistoryPlace;
use studio_role_sync_engine::lock::{InstanceLock, LockError};

/// Loads the config, printing the error (with file and line) when it is bad.
fn load_config(path: &Path) -> Result<Config, Exit> {
    Config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        Exit::Error
    })
}

fn fail(message: impl std::fmt::Display) -> Exit {
    eprintln!("error: {message}");
    Exit::Error
}

/// What keeps a one-shot command the only writer of its history while it runs: the instance
/// lock of a history file, or the lease of a PostgreSQL history (renewed while held). Dropping
/// it lets go; [`release`](Self::release) also waits until a lease is handed back, so a
/// daemon standing by takes over at once.
pub(crate) enum Hold {
    Lock(InstanceLock),
    Lease(lease_hold::LeaseHold),
}

impl Hold {
    pub(crate) async fn release(self) {
        match self {
            Hold::Lock(lock) => drop(lock),
            Hold::Lease(lease) => lease.release().await,
        }
    }
}

/// Opens the history. A history file: takes the instance lock when `exclusive`, else takes
/// it only if free. A PostgreSQL history: takes the lease (waiting a bounded time) or
/// refuses, naming the daemon that leads; every write of the command is fenced by it.
async fn open_history(config: &Config, exclusive: bool) -> Result<(History, Option<Hold>), Exit> {
    let path = match config.history_place() {
        HistoryPlace::File(path) => path,
        place @ HistoryPlace::Postgres { .. } => {
            let history = History::open_place(&place).await.map_err(fail)?;
            let (history, lease) = lease_hold::take(history, config).await?;
            let n = history.mark_taken_over().await.map_err(fail)?;
            if n > 0 {
                tracing::warn!(
                    runs = n,
                    "marked runs left running by a daemon that stopped leading as interrupted"
                );
            }
            return Ok((history, Some(Hold::Lease(lease))));
        }
    };
    let lock = match InstanceLock::acquire(&path) {
        Ok(l) => Some(l),
        Err(e @ LockError::Held { .. }) if exclusive => return Err(fail(e)),
        Err(LockError::Held { .. }) => None,
        Err(e) => return Err(fail(e)),
    };
    let history = History::open(&path).await.map_err(fail)?;
    if lock.is_some() {
        let n = history.mark_interrupted().await.map_err(fail)?;
        if n > 0 {
            tracing::warn!(
                runs = n,
                "marked runs left running by a process that died as interrupted"
            );
        }
    }
    Ok((history, lock.map(Hold::Lock)))
}

/// Who approves or asks: `--by NAME`, else the OS user (`SUDO_USER` through sudo). A name is
/// one line of at most 100 characters.
fn who(by: Option<String>) -> Result<String, Exit> {
    let name = match by {
        Some(b) => b.trim().to_string(),
        None => {
            let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
            match (var("SUDO_USER"), var("USER").or_else(|| var("LOGNAME"))) {
                (Some(sudo), Some(user)) if sudo != user => format!("{sudo} (sudo as {user})"),
                (_, Some(user)) => user,
                (Some(sudo), None) => sudo,
                (None, None) => "unknown user".into(),
            }
        }
    };
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(fail(
            "--by: a name is one line of 1 to 100 characters, without control characters",
        ));
    }
    Ok(name)
}

/// Loads the config without its secrets and opens an existing history: for `approve` and
/// `trigger`, which need neither the Studio token nor the instance lock.
async fn open_existing_history(config_path: &Path) -> Result<(Config, History), Exit> {
    let config = Config::load_without_secrets(config_path).map_err(fail)?;
    crate::logging::init(config.log.format, "warn");
    // Approvals and run requests are people's writes, not a run's: no lease needed.
    if let place @ HistoryPlace::Postgres { .. } = config.history_place() {
        let history = History::open_place(&place).await.map_err(fail)?;
        return Ok((config, history));
    }
    if !config.history.exists() {
        return Err(fail(format!(
            "no history yet at {} (no run has been recorded)",
            config.history.display()
        )));
    }
    let history = History::open(&config.history).await.map_err(fail)?;
    Ok((config, history))
}

/// Opens an existing history for a read command (`history` in all its forms). With write
/// access it is opened as usual (migrated, tightened); an auditor who may only read the file
/// gets a read-only connection, as the console uses, so every read command works for them.
async fn open_history_to_read(config: &Config) -> Result<History, Exit> {
    if let place @ HistoryPlace::Postgres { .. } = config.history_place() {
        return History::open_place_read_only(&place).map_err(fail);
    }
    if !config.history.exists() {
        return Err(fail(format!(
            "no history yet at {} (no run has been recorded)",
            config.history.display()
        )));
    }
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(&config.history)
        .is_ok();
    if writable {
        return History::open(&config.history).await.map_err(fail);
    }
    // SQLite shares a WAL file's index through `-shm`: readable, it is used (a daemon may be
    // writing); otherwise the file is read as it is on disk.
    let mut shm = config.history.clone().into_os_string();
    shm.push("-shm");
    if std::fs::File::open(&shm).is_ok() {
        return Ok(History::open_read_only(&config.history));
    }
    // The newest runs may still be in the service's `-wal`, which this user cannot read (a
    // daemon running now, or a writer that died before folding it in): say so, not less.
    if History::has_unfolded_writes(&config.history) {
        eprintln!(
            "warning: the newest runs may be missing: they are still in {}-wal, which this user \
             cannot read; they appear here once the service writes them into the file (when it \
             stops, or at its next checkpoint), or read as the service's user",
            config.history.display()
        );
    }
    Ok(History::open_read_only_unshared(&config.history))
}
