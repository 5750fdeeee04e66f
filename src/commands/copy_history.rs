//! `copy-history --from FILE`: the upgrade step from one machine to several. It copies a
//! SQLite history into the PostgreSQL history the config names (`history: url_env …`), which
//! must be empty, and prints what it copied, table by table, as counted on both sides.
//!
//! The SQLite file is held under its instance lock while it is read, so a daemon still
//! writing it makes the copy refuse instead of copying half a run; stop the daemon first.

use super::{fail, load_config};
use crate::exit::Exit;
use std::path::Path;
use studio_role_sync_engine::history::History;
use studio_role_sync_engine::lock::InstanceLock;

pub async fn copy_history(config_path: &Path, from: &Path) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(config.log.format, "warn");
    let Some(target) = &config.history_postgres else {
        return fail(format!(
            "{}: `history` names no PostgreSQL history (url_env, url_file or url) to copy into",
            config_path.display()
        ));
    };
    if !from.is_file() {
        return fail(format!("{}: no such history file", from.display()));
    }
    let _lock = match InstanceLock::acquire(from) {
        Ok(l) => l,
        Err(e) => return fail(format!("{e} (stop the daemon that uses it before copying)")),
    };
    let source = match History::open(from).await {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let history = match History::open_postgres(&target.url, &target.schema).await {
        Ok(h) => h,
        Err(e) => return fail(e),
    };
    let result = source.copy_into(&history).await;
    source.close().await;
    history.close().await;
    match result {
        Ok(report) => {
            println!(
                "copied {} into {}",
                from.display(),
                history.path().display()
            );
            for t in &report.tables {
                println!(
                    "  {:<24} {:>10} rows (the same on both sides)",
                    t.name, t.rows
                );
            }
            if report.oauth_clients > 0 {
                println!(
                    "  the newest OAuth refresh token of {} client(s) is the same on both sides",
                    report.oauth_clients
                );
            }
            println!(
                "next: start the daemons with this config; keep {} until the first runs \
                 look right, then remove it",
                from.display()
            );
            Exit::Success
        }
        Err(e) => fail(e),
    }
}
