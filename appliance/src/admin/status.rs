//! Liveness, readiness, Prometheus metrics and the node status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use outpost_dns::metrics::write_sample;
use serde::Serialize;

use super::AdminState;

/// The Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub async fn health() -> &'static str {
    "ok"
}

pub async fn ready(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

pub async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let status = state.store.status();
    let zones = state.store.zones();
    let records: usize = zones.iter().map(|zone| zone.record_count()).sum();
    for (name, help, value) in [
        (
            "outpost_raft_applied_index",
            "Index of the last Raft entry applied to the zones.",
            status.applied_index.unwrap_or(0),
        ),
        (
            "outpost_raft_last_log_index",
            "Index of the last entry in the Raft log.",
            status.last_log_index.unwrap_or(0),
        ),
        ("outpost_raft_term", "Current Raft term.", status.term),
        ("outpost_zones", "Zones served here.", zones.len() as u64),
        (
            "outpost_records",
            "Records in all zones served here.",
            records as u64,
        ),
    ] {
        write_sample(&mut out, name, "gauge", help, value);
    }
    state.hub.render_metrics(&mut out);
    outpost_dns::metrics::render_plugins(&mut out, &state.plugins.loaded().plugins());
    ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], out)
}

/// Body of `GET /v1/status`.
#[derive(Debug, Serialize)]
pub struct StatusBody {
    pub node_id: u64,
    pub raft_state: String,
    pub term: u64,
    /// `null` before the cluster was initialised.
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub zones: usize,
    pub records: usize,
    pub version: &'static str,
}

pub async fn status(State(state): State<Arc<AdminState>>) -> Json<StatusBody> {
    let status = state.store.status();
    let zones = state.store.zones();
    Json(StatusBody {
        node_id: status.node_id,
        raft_state: status.state.to_string(),
        term: status.term,
        last_log_index: status.last_log_index,
        applied_index: status.applied_index,
        zones: zones.len(),
        records: zones.iter().map(|zone| zone.record_count()).sum(),
        version: env!("CARGO_PKG_VERSION"),
    })
}
