//! The commands: each takes plain arguments, calls the engine, prints for a person, and
//! returns the contract's exit code. One file per command (or group); `main.rs` only maps the
//! command line onto them. What several commands share lives here: loading the config with
//! its error printed, and opening the history with or without the instance lock.

mod auth_login;
mod daemon;
#[cfg(feature = "demo")]
mod demo;
mod export;
mod history;
mod run;
mod validate;

pub use auth_login::auth_login;
pub use daemon::daemon;
#[cfg(feature = "demo")]
pub use demo::demo;
pub use export::export;
pub use history::{history, HistoryQuery};
pub use run::run;
pub use validate::validate;

use crate::exit::Exit;
use std::path::Path;
use studio_role_sync_engine::config::Config;
use studio_role_sync_engine::history::History;
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

/// Opens the history; takes the instance lock when `exclusive`, else takes it only if free.
async fn open_history(
    config: &Config,
    exclusive: bool,
) -> Result<(History, Option<InstanceLock>), Exit> {
    let lock = match InstanceLock::acquire(&config.history) {
        Ok(l) => Some(l),
        Err(e @ LockError::Held { .. }) if exclusive => return Err(fail(e)),
        Err(LockError::Held { .. }) => None,
        Err(e) => return Err(fail(e)),
    };
    let history = History::open(&config.history).await.map_err(fail)?;
    if lock.is_some() {
        let n = history.mark_interrupted().await.map_err(fail)?;
        if n > 0 {
            tracing::warn!(
                runs = n,
                "marked runs left running by a process that died as interrupted"
            );
        }
    }
    Ok((history, lock))
}
