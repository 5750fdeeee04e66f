//! `export`: the current holders of the managed roles, read from Studio and printed as a
//! roles file, the starting point of a new installation.

use super::{fail, load_config, open_history};
use crate::exit::Exit;
use crate::render;
use std::path::Path;
use studio_role_sync_engine::metrics::Metrics;
use studio_role_sync_engine::reconcile::make_client;

/// `export`: the current holders of the managed roles, as a roles file.
pub async fn export(config_path: &Path) -> Exit {
    let config = match load_config(config_path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    crate::logging::init(config.log.format, "warn");
    let (history, hold) = match open_history(&config, false).await {
        Ok(h) => h,
        Err(code) => return code,
    };
    let client = match make_client(&config, &history, &Metrics::new()).await {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    let holders = studio_role_sync_engine::read::list_holders(
        &client,
        &config.roles.managed,
        config.studio.concurrency,
    )
    .await;
    // A PostgreSQL lease goes back now, before the command ends.
    if let Some(hold) = hold {
        hold.release().await;
    }
    match holders {
        Ok(holders) => {
            print!(
                "{}",
                render::render_export(
                    &holders,
                    &config.roles.managed,
                    config.studio.base_url.as_str()
                )
            );
            Exit::Success
        }
        Err(e) => fail(format!("reading Studio failed: {e}")),
    }
}
