//! Liveness, readiness, Prometheus metrics and the node status.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use outpost_dns::metrics::{write_header, write_labelled, write_sample};

use super::AdminState;
use super::body::{ExportStatus, StatusBody};
use crate::store::{NodeState, Store};

/// The Prometheus text exposition format.
const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4";

pub async fn health() -> &'static str {
    "ok"
}

/// 200 once the node serves, knows a leader and has applied every entry it knows to be
/// committed; 503 with the reason otherwise.
pub async fn ready(State(state): State<Arc<AdminState>>) -> (StatusCode, &'static str) {
    if !state.ready.load(Ordering::Acquire) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting or stopping",
        )
    } else if !state.store.caught_up() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: no raft leader known, or behind the commit index",
        )
    } else {
        (StatusCode::OK, "ready")
    }
}

pub async fn metrics(State(state): State<Arc<AdminState>>) -> impl IntoResponse {
    let mut out = String::with_capacity(4096);
    state.metrics.render(&mut out);
    let status = state.store.status();
    let members = state.store.members();
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
        (
            "outpost_raft_commit_index",
            "Highest Raft index this node knows to be committed.",
            state.store.commit_index().unwrap_or(0),
        ),
        (
            "outpost_raft_is_leader",
            "1 when this node leads its cluster.",
            u64::from(status.state == NodeState::Leader),
        ),
        (
            "outpost_raft_leader_id",
            "Node id of the leader this node knows (0: none).",
            status.leader.unwrap_or(0),
        ),
        (
            "outpost_raft_voters",
            "Voters in the membership this node knows.",
            members.iter().filter(|member| member.voter).count() as u64,
        ),
        (
            "outpost_raft_learners",
            "Learners in the membership this node knows.",
            members.iter().filter(|member| !member.voter).count() as u64,
        ),
        (
            "outpost_zones",
            "ReplicatedState served here.",
            zones.len() as u64,
        ),
        (
            "outpost_records",
            "Records in all zones served here.",
            records as u64,
        ),
    ] {
        write_sample(&mut out, name, "gauge", help, value);
    }
    render_exports(&mut out, state.exports.as_deref());
    render_replication(&mut out, &state.store);
    state.hub.render_metrics(&mut out);
    state.connections.render(&mut out);
    outpost_dns::metrics::render_plugins(&mut out, &state.plugins.loaded().plugins());
    ([(CONTENT_TYPE, PROMETHEUS_CONTENT_TYPE)], out)
}

/// The export writer's counters, when this node has an export endpoint.
fn render_exports(out: &mut String, exports: Option<&crate::exports::ExportService>) {
    if let Some(service) = exports {
        for (name, kind, help, value) in [
            (
                "outpost_export_written_index",
                "gauge",
                "Index of the state last written into the export documents.",
                service.index.load(Ordering::Relaxed),
            ),
            (
                "outpost_export_entries_written_total",
                "counter",
                "Export document entries (values and heads) written by this node.",
                service.entries.load(Ordering::Relaxed),
            ),
            (
                "outpost_export_write_failures_total",
                "counter",
                "Writes of the export documents that failed and were tried again.",
                service.failures.load(Ordering::Relaxed),
            ),
        ] {
            write_sample(out, name, kind, help, value);
        }
    }
}

/// On the leader, each node's replication lag and time since it last answered.
fn render_replication(out: &mut String, store: &Store) {
    let Ok(progress) = store.progress() else {
        return;
    };
    let last = progress.last_log_index.unwrap_or(0);
    write_header(
        out,
        "outpost_raft_replication_lag",
        "gauge",
        "Entries a node is behind the leader's log (on the leader only).",
    );
    for peer in &progress.peers {
        let lag = last.saturating_sub(peer.matched_index.unwrap_or(0));
        write_labelled(
            out,
            "outpost_raft_replication_lag",
            &[("node", &peer.id.to_string())],
            lag,
        );
    }
    write_header(
        out,
        "outpost_raft_last_contact_seconds",
        "gauge",
        "Seconds since a node last answered the leader (on the leader only; absent before it ever did).",
    );
    for peer in &progress.peers {
        if let Some(ms) = peer.last_contact_ms {
            let seconds = ms as f64 / 1000.0;
            write_labelled(
                out,
                "outpost_raft_last_contact_seconds",
                &[("node", &peer.id.to_string())],
                seconds,
            );
        }
    }
}

pub async fn status(State(state): State<Arc<AdminState>>) -> Json<StatusBody> {
    let status = state.store.status();
    let zones = state.store.zones();
    Json(StatusBody {
        node_id: status.node_id,
        role: status.state,
        raft_state: status.state,
        leader: status.leader,
        cluster_id: state.store.cluster_id().to_string(),
        term: status.term,
        last_log_index: status.last_log_index,
        applied_index: status.applied_index,
        snapshot_index: status.snapshot_index,
        purged_index: status.purged_index,
        zones: zones.len(),
        records: zones.iter().map(|zone| zone.record_count()).sum(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        dns_tls_fingerprint: state.dns_tls.as_ref().map(|tls| tls.fingerprint()),
        export: state.exports.as_ref().map(|service| ExportStatus {
            endpoint: service.endpoint(),
            exports: zones.exports().count(),
            written_index: service.index.load(Ordering::Relaxed),
            entries_written: service.entries.load(Ordering::Relaxed),
            write_failures: service.failures.load(Ordering::Relaxed),
        }),
    })
}
