//! The daemon's HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! `/healthz` answers while the process serves at all (a liveness probe restarts a hung
//! process, not a failing tenant). `/readyz` says whether the daemon is doing its job: the
//! config and desired state last loaded are valid, a run has finished, and the last run
//! neither failed nor was aborted by a safety guard; otherwise `503` with a short JSON reason.
//! Both read [`Readiness`], which the daemon updates.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// What the daemon knows about its own health; `/readyz` is computed from it.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// The config file on disk is invalid (the daemon keeps the previous one): the message,
    /// with file and line.
    pub invalid_config: Option<String>,
    /// The desired state (roles file or SQL query) is invalid: the message, with file and line.
    pub invalid_desired: Option<String>,
    /// The last run, or the last attempt to start one; `None` until one has finished.
    pub last_run: Option<LastRun>,
}

/// How the last run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LastRun {
    /// The run's id in the history; `None` when the run could not even be recorded or set up.
    pub id: Option<i64>,
    /// `succeeded|partial|failed|aborted|interrupted`.
    pub status: String,
    pub error: Option<String>,
}

impl Readiness {
    /// `None` when ready; otherwise the JSON reason served with `503`.
    pub fn not_ready(&self) -> Option<Value> {
        if let Some(e) = &self.invalid_config {
            return Some(json!({"ready": false, "reason": "invalid_config", "detail": e}));
        }
        if let Some(e) = &self.invalid_desired {
            return Some(json!({"ready": false, "reason": "invalid_desired_state", "detail": e}));
        }
        match &self.last_run {
            None => Some(json!({
                "ready": false,
                "reason": "starting",
                "detail": "the first run has not finished",
            })),
            Some(r) if r.status == "failed" || r.status == "aborted" => Some(json!({
                "ready": false,
                "reason": format!("last_run_{}", r.status),
                "run_id": r.id,
                "detail": r.error,
            })),
            Some(_) => None,
        }
    }
}

#[derive(Clone)]
pub struct HttpState {
    pub readiness: Arc<RwLock<Readiness>>,
    pub metrics: Metrics,
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({"status": "alive"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    let r = s
        .readiness
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    match r.not_ready() {
        Some(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)),
        None => {
            let last = r.last_run.unwrap_or_default();
            (
                StatusCode::OK,
                Json(json!({
                    "ready": true,
                    "last_run": {"id": last.id, "status": last.status},
                })),
            )
        }
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// Binds `listen`, logs `listening on ADDR` with the address actually bound (so port `0`
/// works), and serves until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    tracing::info!("listening on {bound} (/healthz, /readyz, /metrics)");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP endpoint failed");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: &str) -> Option<LastRun> {
        Some(LastRun {
            id: Some(7),
            status: status.into(),
            error: Some("boom".into()),
        })
    }

    #[test]
    fn readiness_reasons_in_order() {
        let mut r = Readiness::default();
        assert_eq!(r.not_ready().unwrap()["reason"], "starting");
        r.last_run = run("succeeded");
        assert!(r.not_ready().is_none());
        r.last_run = run("partial");
        assert!(r.not_ready().is_none(), "a partial run still did its job");
        r.last_run = run("failed");
        let why = r.not_ready().unwrap();
        assert_eq!(why["reason"], "last_run_failed");
        assert_eq!(why["run_id"], 7);
        r.last_run = run("aborted");
        assert_eq!(r.not_ready().unwrap()["reason"], "last_run_aborted");
        r.invalid_desired = Some("roles.yaml:3: bad".into());
        assert_eq!(r.not_ready().unwrap()["reason"], "invalid_desired_state");
        r.invalid_config = Some("c.yaml:1: bad".into());
        assert_eq!(r.not_ready().unwrap()["reason"], "invalid_config");
    }
}
