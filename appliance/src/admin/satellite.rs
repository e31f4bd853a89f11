//! A satellite's admin API (`outpost serve --satellite`): `/health`, `/ready`, `/metrics`
//! (the Lite client's: DNS counters and the sync state), `/v1/status` (the export
//! followed, its state, the replica) and `/v1/querylog` (`/stats` too) with a member's
//! parameters and answers; every other `/v1` request is refused with 403 and the reason,
//! since a satellite holds a read-only copy.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use outpost_dns::querylog::QueryLog;

use super::error::{ApiError, QueryParams};
use super::listener::{ConnectionCounters, accept_loop};
use super::querylog::{Found, Search, Window, search_in, stats_of};

/// What a satellite's admin handlers read.
pub struct SatelliteAdmin {
    pub token: String,
    /// The satellite's data directory, where the replica's `status.json` is.
    pub data_dir: PathBuf,
    /// The export's name, for messages.
    pub export: String,
    /// The DNS path's query log.
    pub query_log: Arc<QueryLog>,
    /// Prometheus text of the DNS path and the sync state, as the Lite client renders it.
    pub metrics: Box<dyn Fn() -> String + Send + Sync>,
}

/// Serves until `shutdown` (the same accept loop and limits as a member's admin API).
pub async fn serve(listener: TcpListener, state: SatelliteAdmin, shutdown: CancellationToken) {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "satellite admin API listening");
    }
    let state = Arc::new(state);
    let v1 = Router::new()
        .route("/v1/status", get(status))
        .route("/v1/querylog", get(querylog))
        .route("/v1/querylog/stats", get(querylog_stats))
        .route("/v1/{*rest}", axum::routing::any(refuse))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            require_token,
        ));
    let router = Router::new()
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .merge(v1)
        .fallback(|| async {
            ApiError::NotFound(
                "no such route on a satellite (it serves /v1/status and /v1/querylog)".to_string(),
            )
        })
        .with_state(state);
    accept_loop(
        listener,
        router,
        Arc::new(ConnectionCounters::default()),
        shutdown,
    )
    .await;
}

async fn require_token(
    State(state): State<Arc<SatelliteAdmin>>,
    request: Request,
    next: Next,
) -> Response {
    match super::auth::bearer_matches(request.headers(), &state.token) {
        Some(true) => next.run(request).await,
        _ => ApiError::Unauthorized.into_response(),
    }
}

/// The replica's status as the satellite last wrote it, under `"satellite"`.
async fn status(State(state): State<Arc<SatelliteAdmin>>) -> Result<Response, ApiError> {
    let path = state.data_dir.join("status.json");
    let text = tokio::fs::read_to_string(&path).await.map_err(|error| {
        ApiError::Unavailable(format!("cannot read {}: {error}", path.display()))
    })?;
    let replica: serde_json::Value = serde_json::from_str(&text).map_err(|error| {
        ApiError::Unavailable(format!("{} does not parse: {error}", path.display()))
    })?;
    let body = serde_json::json!({
        "role": "satellite",
        "export": state.export,
        "satellite": replica,
    });
    Ok(axum::Json(body).into_response())
}

async fn querylog(
    State(state): State<Arc<SatelliteAdmin>>,
    QueryParams(search): QueryParams<Search>,
) -> Result<Json<Found>, ApiError> {
    search_in(&state.query_log, search).map(Json)
}

async fn querylog_stats(
    State(state): State<Arc<SatelliteAdmin>>,
    QueryParams(window): QueryParams<Window>,
) -> Result<Response, ApiError> {
    stats_of(&state.query_log, window).map(|stats| Json(stats).into_response())
}

async fn metrics(State(state): State<Arc<SatelliteAdmin>>) -> Response {
    let headers = [(
        axum::http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4",
    )];
    (headers, (state.metrics)()).into_response()
}

/// 200 once a snapshot of the export is held (from this run or the last), 503 before.
async fn ready(State(state): State<Arc<SatelliteAdmin>>) -> (StatusCode, &'static str) {
    let path = state.data_dir.join("status.json");
    let holds = tokio::fs::read_to_string(&path)
        .await
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .is_some_and(|status| status["cursor"].is_u64());
    if holds {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no snapshot of the export yet",
        )
    }
}

async fn refuse(State(state): State<Arc<SatelliteAdmin>>) -> ApiError {
    ApiError::Forbidden(format!(
        "this node is a satellite of export {}: it serves a read-only copy and takes no writes (write to the cluster that made the ticket; a satellite answers /v1/status and /v1/querylog only)",
        state.export
    ))
}
