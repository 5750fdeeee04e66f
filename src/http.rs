//! The daemon's HTTP endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! `/healthz` answers while the process serves at all (a liveness probe restarts a hung
//! process, not a failing tenant). `/readyz` says whether the daemon is doing its job: the
//! config and desired state last loaded are valid and the last run did not fail; otherwise
//! `503` with a short JSON reason. Both read [`Readiness`], which the daemon updates.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// Why the daemon is not ready, if it is not.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    /// The config or desired state last loaded is invalid: the message (with file and line).
    pub invalid_input: Option<String>,
    /// The last run failed: its id and error.
    pub failed_run: Option<(i64, String)>,
    /// No run has finished yet.
    pub starting: bool,
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
            get(|| async { Json(serde_json::json!({"status": "alive"})) }),
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
    let reason = if let Some(e) = r.invalid_input {
        Some(serde_json::json!({"ready": false, "reason": "invalid_input", "detail": e}))
    } else if let Some((id, e)) = r.failed_run {
        Some(
            serde_json::json!({"ready": false, "reason": "last_run_failed", "run_id": id, "detail": e}),
        )
    } else if r.starting {
        Some(
            serde_json::json!({"ready": false, "reason": "starting", "detail": "the first run has not finished"}),
        )
    } else {
        None
    };
    match reason {
        Some(body) => (StatusCode::SERVICE_UNAVAILABLE, Json(body)),
        None => (StatusCode::OK, Json(serde_json::json!({"ready": true}))),
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

/// Binds `listen` and serves until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    state: HttpState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving /healthz, /readyz and /metrics");
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP endpoint failed");
        }
    }))
}
