//! The read-only history console: web pages for the admins who check what the daemon did but
//! have no shell on its server (or no `kubectl exec` into its pod).
//!
//! Shaped by who reads it and where it runs:
//! - **Read-only by construction**: the history is opened with a read-only SQLite connection
//!   ([`History::open_read_only`]), and there is no form that changes anything. An aborted run
//!   shows the `approve` command to run, never a button.
//! - **No secret on any page** and strict headers on every answer ([`security`]): a CSP
//!   without inline script, no framing, no caching, no referrer; the style sheet is a file.
//! - **No JavaScript at all**: pages and charts are rendered on the server (askama templates,
//!   checked when compiled and escaping everything; SVG charts drawn in [`charts`]), so they
//!   work with JavaScript off and on a daemon with no internet.
//! - **Bounded input** ([`params`]): every query parameter is validated against a short list
//!   and a range, with a clear `400` page otherwise.
//!
//! The engine knows nothing of this crate: the binary builds [`extension`] and hands it to the
//! daemon, which serves it on `http.listen` or on `console.listen` through its bounded
//! accept loop.

mod advice;
mod charts;
mod pages;
mod params;
mod remedy;
mod security;
mod strip;
mod views;

use axum::routing::get;
use axum::Router;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use studio_role_sync_engine::config::{AuthConfig, Config};
use studio_role_sync_engine::daemon::Slots;
use studio_role_sync_engine::history::History;
use studio_role_sync_engine::http::{HttpExtension, Readiness};

pub use security::Credentials;

/// Every page lives under this path, so the console can share `http.listen` with `/healthz`.
pub const PREFIX: &str = "/console";

/// What the console reads and shows.
pub struct ConsoleOptions {
    /// The history, opened read-only.
    pub history: History,
    /// Who may read; `None` only on loopback (the config check enforces it).
    pub credentials: Option<Credentials>,
    /// The daemon's schedule, for "next scheduled run".
    pub schedule: Option<Slots>,
    /// How the daemon authenticates to Studio, in words (never the secret).
    pub studio_auth: String,
    /// The daemon's own view of its health, when served by the daemon.
    pub readiness: Option<Arc<RwLock<Readiness>>>,
    /// `studio.base_url`, named when Studio cannot be reached.
    pub base_url: String,
    /// The daemon's config file, for the commands the console suggests (`--config PATH`
    /// where it is not the default).
    pub config_path: Option<PathBuf>,
}

/// Shared by every handler.
pub(crate) struct Console {
    pub history: History,
    pub schedule: Option<Slots>,
    pub studio_auth: String,
    pub readiness: Option<Arc<RwLock<Readiness>>>,
    pub base_url: String,
    /// `studio-role-sync`, with `--config PATH` when the daemon's config is not the default.
    pub command: String,
}

/// The console's routes (all under [`PREFIX`], and `/` redirecting there), with
/// authentication and the security headers on every answer.
pub fn router(options: ConsoleOptions) -> Router {
    let console = Arc::new(Console {
        history: options.history,
        schedule: options.schedule,
        studio_auth: options.studio_auth,
        readiness: options.readiness,
        base_url: options.base_url,
        command: remedy::command(options.config_path.as_deref()),
    });
    let credentials = Arc::new(options.credentials);
    Router::new()
        .route("/", get(pages::to_console))
        .route("/console", get(pages::to_console))
        .route("/console/", get(pages::runs))
        .route("/console/runs/{id}", get(pages::run))
        .route("/console/person", get(pages::person))
        .route("/console/pending", get(pages::pending))
        .route("/console/health", get(pages::health))
        .route("/console/style.css", get(pages::style))
        .fallback(pages::not_found)
        .with_state(console)
        .layer(axum::middleware::from_fn_with_state(
            credentials,
            security::authenticate,
        ))
        .layer(axum::middleware::from_fn(security::headers))
}

/// The console as the daemon serves it, when `console:` is configured: its routes over a
/// read-only connection to the history, on `console.listen` or else on `http.listen`.
pub fn extension(config: &Config) -> Option<HttpExtension> {
    let console = config.console.as_ref()?;
    let history = match History::open_place_read_only(&config.history_place()) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("the console cannot read the history: {e}");
            return None;
        }
    };
    let credentials = console
        .auth
        .as_ref()
        .map(|a| Credentials::new(a).reading(console.secret_file.clone()));
    let schedule = Slots::new(&config.schedule, config.timezone).ok();
    let studio_auth = match &config.studio.auth {
        AuthConfig::Token { file: Some(_), .. } => "access token from studio.token_file".into(),
        AuthConfig::Token { file: None, .. } => "access token from studio.token_env".into(),
        AuthConfig::OAuth(o) => format!("OAuth, client {}", o.client_id),
    };
    let base_url = config
        .studio
        .base_url
        .as_str()
        .trim_end_matches('/')
        .to_string();
    let config_path = config.path.clone();
    Some(HttpExtension {
        listen: console.listen,
        name: format!("console {PREFIX}/"),
        build: Box::new(move |state| {
            router(ConsoleOptions {
                history,
                credentials,
                schedule,
                studio_auth,
                readiness: Some(state.readiness.clone()),
                base_url,
                config_path: Some(config_path),
            })
        }),
    })
}
