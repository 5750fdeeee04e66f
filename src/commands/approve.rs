//! `approve RUN_ID [--by NAME]`: a person approves the plan of a run a removal guard aborted.
//!
//! It only writes an `approvals` row to the history (with the plan's digest); it needs neither
//! the Studio token nor the instance lock, so it works while the daemon runs, from another
//! container too. The daemon sees the row within about 2 s and runs; the next `apply` uses it
//! when no daemon runs. Either sends the plan only if it is still the same.

use super::{fail, open_existing_history, who};
use crate::exit::Exit;
use std::path::Path;
use studio_role_sync_engine::digest;
use studio_role_sync_engine::lock::InstanceLock;

pub async fn approve(config_path: &Path, run_id: i64, by: Option<String>) -> Exit {
    let by = match who(by) {
        Ok(b) => b,
        Err(code) => return code,
    };
    let (config, history) = match open_existing_history(config_path).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let result = history.approve(run_id, &by).await;
    history.close().await;
    let row = match result {
        Ok(row) => row,
        Err(e) => return fail(e),
    };
    println!(
        "Approved the plan of run {run_id} as {by}: {} actions, digest {} (approval {}).",
        row.actions,
        digest::short(&row.digest),
        row.id
    );
    match InstanceLock::holder(&config.history) {
        Some(pid) => println!(
            "The daemon{} runs within a few seconds and sends this plan only if it is still \
             the same; otherwise it refuses again and says what changed.\n\
             Follow it: studio-role-sync history --approvals",
            pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
        ),
        None => println!(
            "No daemon is running: the next `studio-role-sync apply` sends this plan if it is \
             still the same; otherwise it refuses again and says what changed."
        ),
    }
    Exit::Success
}
