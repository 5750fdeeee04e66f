//! `trigger`: ask the running daemon for a run now, like SIGHUP (`systemctl reload`), but
//! through the history, so it works without signals, from another container or user.
//!
//! It needs neither the token nor the instance lock. With no process holding the lock there is
//! no daemon to ask: it says so and exits 1. Otherwise it writes a `run_requests` row and waits
//! a few seconds for the daemon's poller (every 2 s) to take it.

use super::{fail, open_existing_history, who};
use crate::exit::Exit;
use std::path::Path;
use std::time::Duration;
use studio_role_sync_engine::lock::InstanceLock;

/// How long `trigger` waits for the daemon to take the request: a few polls.
const TAKEN_WITHIN: Duration = Duration::from_secs(10);

pub async fn trigger(config_path: &Path, by: Option<String>) -> Exit {
    let by = match who(by) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let (config, history) = match open_existing_history(config_path).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let Some(pid) = InstanceLock::holder(&config.history) else {
        history.close().await;
        return fail(format!(
            "no daemon is running for {}: no process holds its lock. For one run now \
             without a daemon: studio-role-sync apply",
            config.history.display()
        ));
    };
    let holder = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    let id = match history.request_run(&by).await {
        Ok(id) => id,
        Err(e) => return fail(e),
    };
    let deadline = tokio::time::Instant::now() + TAKEN_WITHIN;
    let taken = loop {
        match history.run_request_taken(id).await {
            Ok(true) => break true,
            Ok(false) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Ok(false) => break false,
            Err(e) => return fail(e),
        }
    };
    history.close().await;
    if taken {
        println!(
            "The daemon{holder} took the request: a run (trigger manual) starts now, or right \
             after the run in progress.\nFollow it: studio-role-sync history --limit 3"
        );
        Exit::Success
    } else {
        fail(format!(
            "the request was not taken within {} s: the lock's holder{holder} may be an \
             `apply` or `plan`, not the daemon. The request stays; a daemon takes it when it \
             starts",
            TAKEN_WITHIN.as_secs()
        ))
    }
}
