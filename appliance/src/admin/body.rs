//! The JSON bodies of the admin API's answers, declared once: the handlers serialize them and
//! the `outpost` CLI ([`crate::client`]) reads them back.
//!
//! **Boundary:** these are the compatibility surface of the CLI and of scripts; a field renamed
//! here is renamed on the wire. The internal types stay separate.

use serde::{Deserialize, Serialize};

use crate::store::NodeState;

/// The log index a write was committed at: `DELETE /v1/zones/{origin}`,
/// `DELETE /v1/records`.
#[derive(Debug, Serialize, Deserialize)]
pub struct IndexBody {
    pub index: u64,
}

/// One zone in `GET /v1/zones`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ZoneSummary {
    pub origin: String,
    pub records: usize,
    pub serial: u32,
}

/// Body of `POST /v1/zones`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedZone {
    pub origin: String,
    pub index: u64,
}

/// Body of `PUT /v1/zones/{origin}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportedZone {
    pub origin: String,
    pub records: usize,
    pub index: u64,
}

/// One record in `GET /v1/zones/{origin}/records`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordBody {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub data: String,
}

/// Body of `POST /v1/records` and `PUT /v1/records`: the zone written and the index.
#[derive(Debug, Serialize, Deserialize)]
pub struct RecordsWritten {
    pub zone: String,
    pub index: u64,
}

/// Body of `POST /v1/lite-tokens`: the only place the secret is ever shown.
#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedToken {
    pub name: String,
    pub zones: Vec<String>,
    /// `<name>:<secret>`, for `outpost-lite run --token`.
    pub token: String,
    pub index: u64,
}

/// One token in `GET /v1/lite-tokens`.
#[derive(Debug, Serialize, Deserialize)]
pub struct TokenSummary {
    pub name: String,
    pub zones: Vec<String>,
    /// Sessions connected with it now, on this node.
    pub sessions: usize,
}

/// Body of `DELETE /v1/lite-tokens/{name}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RevokedToken {
    pub name: String,
    pub index: u64,
}

/// Body of a made invite. The ticket is shown this once; the cluster keeps only its hash.
#[derive(Debug, Serialize, Deserialize)]
pub struct InviteBody {
    pub ticket: String,
    pub expires_unix: u64,
    /// The nodes the ticket names, `<endpoint id>@<ip:port>`.
    pub nodes: Vec<String>,
}

/// Body of a removal.
#[derive(Debug, Serialize, Deserialize)]
pub struct RemovedBody {
    pub removed: u64,
}

/// Body of `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct StatusBody {
    pub node_id: u64,
    /// The node's Raft role: leader, follower, learner, candidate.
    pub role: NodeState,
    /// Kept for scripts written before `role`; the same value.
    pub raft_state: NodeState,
    /// The leader this node knows (`null`: none).
    pub leader: Option<u64>,
    pub cluster_id: String,
    pub term: u64,
    /// `null` before the cluster was initialised.
    pub last_log_index: Option<u64>,
    pub applied_index: Option<u64>,
    /// The last index the latest snapshot covers (`null` before the first).
    pub snapshot_index: Option<u64>,
    /// The last index removed from the log (`null` before the first purge): a follower
    /// behind it catches up by snapshot.
    pub purged_index: Option<u64>,
    pub zones: usize,
    pub records: usize,
    pub version: String,
    /// The SHA-256 pin of the DoT/DoH/DoQ certificate (absent when they are off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_tls_fingerprint: Option<String>,
    /// The export endpoint and its writer (absent without `[export] listen`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportStatus>,
}

/// The export part of `GET /v1/status`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportStatus {
    /// `<endpoint id>@<ip:port>`, what tickets from this node name.
    pub endpoint: String,
    pub exports: usize,
    /// The index of the state last written into the documents.
    pub written_index: u64,
    pub entries_written: u64,
    pub write_failures: u64,
}

/// One export in `GET /v1/exports`, `GET /v1/exports/{name}` and `POST /v1/exports`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExportBody {
    pub name: String,
    pub zones: Vec<String>,
    /// The read-only ticket (`outpost-export-v1:…`), naming this node's export endpoint,
    /// then the other members' that serve exports;
    /// `null` when this node has none (then `ticket_unavailable` says why).
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket_unavailable: Option<String>,
    /// The index of the write that created it (`POST` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
}

/// Body of `DELETE /v1/exports/{name}`.
#[derive(Debug, Serialize, Deserialize)]
pub struct RemovedExport {
    pub name: String,
    pub index: u64,
}
