//! `daemon`: loads the config, sets up logging at its level, and hands over to the engine's
//! daemon until SIGTERM/SIGINT, with the history console when `console:` is configured (the
//! engine serves it without knowing what it is). A daemon that cannot start (the lock is held, the history
//! cannot be opened, `http.listen` is taken) says why in the log and on stderr, and exits 1.

use crate::exit::Exit;
use std::path::Path;
use studio_role_sync_engine::config::Config;

pub async fn daemon(config_path: &Path) -> Exit {
    let (config, text) = match Config::load_with_text(config_path) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("error: {e}");
            return Exit::Error;
        }
    };
    crate::logging::init(config.log.format, &config.log.level);
    let console = studio_role_sync_console::extension(&config);
    match studio_role_sync_engine::daemon::run_with(config, config_path, text, console).await {
        Ok(()) => Exit::Success,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            Exit::Error
        }
    }
}
