//! Log setup: tracing-subscriber to stderr, `pretty` for people or `json` for machines.
//!
//! One-shot commands print their results on stdout and log only warnings unless asked
//! (`RUST_LOG`); the daemon logs at the configured level. Every line inside a run carries the
//! run id through the `run` span opened in `reconcile`.

use studio_role_sync_engine::config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once; later calls are ignored.
pub fn init(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        EnvFilter::try_new(format!(
            "{level},sqlx=warn,hyper=warn,reqwest=warn,tokio_cron_scheduler=warn"
        ))
        .unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}
