//! The bodies of sync frames, as they travel.
//!
//! These types are separate from the internal ones ([`crate::state::Change`] and
//! friends) on purpose: deriving `Serialize` on an internal type would make every
//! refactor of it a protocol change. Here a change of a field, its type or its place
//! is one, so it needs a new protocol version (`docs/sync-protocol.md`).
//!
//! **Boundary:** postcard encodes fields in declaration order without tags and enum
//! variants by index: never reorder, insert or remove anything here within a protocol
//! version. `core/tests/sync-vectors.txt` fails when one does.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::state::{Change, FailureMode, Hook, PluginDefinition};

/// `DefinitionPut::kind` and `DefinitionDeleted::kind` of a WASM plugin.
pub const PLUGIN_KIND: &str = "plugin";

/// Frame type 1, client to server: who the client is and where it stands.
///
/// **Invariant:** this body is the same in every protocol version, since the server
/// must read it before a version is chosen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Stable per installation, for logs and per-session metrics.
    pub client_id: String,
    /// The Lite token secret, checked against the replicated hashes.
    pub token: String,
    /// The last change the client applied; `None` on first start.
    pub cursor: Option<Cursor>,
    pub min_version: u16,
    pub max_version: u16,
}

/// Frame type 2, server to client: the negotiated version and how the session starts.
///
/// **Invariant:** this body is the same in every protocol version, since the client
/// reads the chosen version out of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Welcome {
    pub version: u16,
    pub cluster_id: String,
    /// The server's applied Raft index when the session was registered.
    pub head: u64,
    /// Origins of the zones the token may see.
    pub zones: Vec<String>,
    pub mode: SyncMode,
}

/// How a session starts (postcard variant index 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMode {
    /// `Changes` from the client's cursor onwards.
    Resume,
    /// A full snapshot that replaces the client's replica.
    Snapshot,
}

/// Frame type 3: a snapshot as of Raft index `as_of` follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotBegin {
    pub as_of: u64,
}

/// Frame type 4: part of a snapshot, as `ZonePut` and `RRsetPut` changes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    pub changes: Vec<WireChange>,
}

/// Frame type 5: the snapshot is complete; the client swaps it in atomically.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEnd {
    pub as_of: u64,
}

/// Frame type 6: committed changes; after applying them the client's cursor is
/// `up_to` (which may be below the last entry's index when that entry continues in
/// the next frame, see [`super::split_batch`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    pub up_to: u64,
    pub entries: Vec<ChangeEntry>,
}

/// Frame type 11 (protocol 3), server to client: [`Changes`] that follow the index
/// `after`. The first frame of a batch has `after` = the index the session stood at
/// before the batch; each later frame has `after` = the previous frame's `up_to`. A
/// client whose cursor is not `after` has missed something: it applies nothing of the
/// frame and resumes from its cursor instead (`docs/sync-protocol.md`, Gaps).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesAfter {
    pub after: u64,
    /// Encoded in place, as `up_to` then `entries`, right after `after`.
    pub changes: Changes,
}

/// What the Raft entry at `index` changed, filtered to the session's zones.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeEntry {
    pub index: u64,
    pub changes: Vec<WireChange>,
}

/// Frame type 7: sent every 5 s when idle, so the client knows it is current.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub head: u64,
}

/// Frame type 8: the session fell behind; the server closes with 4004 next.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResyncRequired {
    pub reason: String,
}

/// Frame type 9: why the server is about to close (`code` is the close code).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: u16,
    pub message: String,
}

/// Frame type 10, client to server: the client has applied everything up to
/// `cursor` (the server reports the session's lag from it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ack {
    pub cursor: u64,
}

/// Where a client stands: a Raft log index only means something in its cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    pub cluster_id: String,
    pub index: u64,
}

/// One change as it travels. Records are DNS wire format (RFC 1035 section 4.1.3),
/// uncompressed, concatenated; names are absolute and lowercase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireChange {
    ZonePut {
        origin: String,
    },
    ZoneDeleted {
        origin: String,
    },
    /// The whole RRset as it now is.
    RRsetPut {
        zone: String,
        owner: String,
        rtype: u16,
        records: Vec<u8>,
    },
    /// A tombstone.
    RRsetDeleted {
        zone: String,
        owner: String,
        rtype: u16,
    },
    /// A plugin or policy definition; it rides the same ordered stream as records, so
    /// it takes effect before the records committed after it.
    DefinitionPut {
        kind: String,
        name: String,
        version: u64,
        body: Vec<u8>,
    },
    DefinitionDeleted {
        kind: String,
        name: String,
    },
}

impl WireChange {
    /// A short description for error messages and logs (no record data).
    pub fn describe(&self) -> String {
        match self {
            WireChange::ZonePut { origin } => format!("ZonePut {origin}"),
            WireChange::ZoneDeleted { origin } => format!("ZoneDeleted {origin}"),
            WireChange::RRsetPut {
                owner,
                rtype,
                records,
                ..
            } => format!("RRsetPut {owner} type {rtype} ({} bytes)", records.len()),
            WireChange::RRsetDeleted { owner, rtype, .. } => {
                format!("RRsetDeleted {owner} type {rtype}")
            }
            WireChange::DefinitionPut {
                kind, name, body, ..
            } => format!("DefinitionPut {kind} {name} ({} bytes)", body.len()),
            WireChange::DefinitionDeleted { kind, name } => {
                format!("DefinitionDeleted {kind} {name}")
            }
        }
    }
}

/// The body of a `DefinitionPut` of kind [`PLUGIN_KIND`]: one installed plugin.
/// Enumerations travel as the names operators type, so a client skips a hook it does
/// not know instead of failing to decode the frame.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WirePlugin {
    /// `query-policy` or `record-transform`.
    pub hook: String,
    pub order: i32,
    /// `fail-open` or `fail-closed`.
    pub on_error: String,
    pub enabled: bool,
    pub sha256: [u8; 32],
    /// The WebAssembly component.
    pub component: Vec<u8>,
    /// The bytes the plugin's `init` receives.
    pub config: Vec<u8>,
}

/// A received change that cannot be taken in.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{change}: {reason}")]
pub struct WireChangeError {
    pub change: String,
    pub reason: String,
}

/// The wire form of an internal change, or `None` for changes that are never sent to
/// Lite clients (Lite tokens, and whatever internal variants come next).
pub fn to_wire(change: &Change) -> Option<WireChange> {
    match change {
        Change::PluginPut { definition } => {
            let body = WirePlugin {
                hook: definition.hook.world().to_string(),
                order: definition.order,
                on_error: definition.on_error.as_str().to_string(),
                enabled: definition.enabled,
                sha256: definition.sha256,
                component: definition.component.to_vec(),
                config: definition.config.to_vec(),
            };
            Some(WireChange::DefinitionPut {
                kind: PLUGIN_KIND.to_string(),
                name: definition.name.clone(),
                version: definition.version,
                // A struct of strings, integers and byte vectors always encodes.
                body: postcard::to_allocvec(&body).unwrap_or_default(),
            })
        }
        Change::PluginDeleted { name } => Some(WireChange::DefinitionDeleted {
            kind: PLUGIN_KIND.to_string(),
            name: name.clone(),
        }),
        Change::ZonePut { origin } => Some(WireChange::ZonePut {
            origin: origin.clone(),
        }),
        Change::ZoneDeleted { origin } => Some(WireChange::ZoneDeleted {
            origin: origin.clone(),
        }),
        Change::RRsetPut {
            zone,
            owner,
            rtype,
            records,
        } => Some(WireChange::RRsetPut {
            zone: zone.clone(),
            owner: owner.clone(),
            rtype: *rtype,
            records: records.clone(),
        }),
        Change::RRsetDeleted { zone, owner, rtype } => Some(WireChange::RRsetDeleted {
            zone: zone.clone(),
            owner: owner.clone(),
            rtype: *rtype,
        }),
        // Not zone data: stays inside the cluster. A catch-all, so that a new internal
        // variant is private until someone decides otherwise here.
        _ => None,
    }
}

/// The internal form of a received change; `None` for a definition of a kind or hook
/// this build does not know (skipped, so a newer server can add some). A plugin whose
/// body does not decode, or whose hash does not match its component, is an error.
pub fn from_wire(change: &WireChange) -> Result<Option<Change>, WireChangeError> {
    Ok(match change {
        WireChange::ZonePut { origin } => Some(Change::ZonePut {
            origin: origin.clone(),
        }),
        WireChange::ZoneDeleted { origin } => Some(Change::ZoneDeleted {
            origin: origin.clone(),
        }),
        WireChange::RRsetPut {
            zone,
            owner,
            rtype,
            records,
        } => Some(Change::RRsetPut {
            zone: zone.clone(),
            owner: owner.clone(),
            rtype: *rtype,
            records: records.clone(),
        }),
        WireChange::RRsetDeleted { zone, owner, rtype } => Some(Change::RRsetDeleted {
            zone: zone.clone(),
            owner: owner.clone(),
            rtype: *rtype,
        }),
        WireChange::DefinitionPut {
            kind,
            name,
            version,
            body,
        } if kind == PLUGIN_KIND => plugin_from_wire(name, *version, body)?,
        WireChange::DefinitionDeleted { kind, name } if kind == PLUGIN_KIND => {
            Some(Change::PluginDeleted { name: name.clone() })
        }
        WireChange::DefinitionPut { .. } | WireChange::DefinitionDeleted { .. } => None,
    })
}

fn plugin_from_wire(
    name: &str,
    version: u64,
    body: &[u8],
) -> Result<Option<Change>, WireChangeError> {
    let error = |reason: String| WireChangeError {
        change: format!("plugin {name} version {version}"),
        reason,
    };
    let body: WirePlugin =
        postcard::from_bytes(body).map_err(|e| error(format!("the body does not decode: {e}")))?;
    let hook = match body.hook.as_str() {
        "query-policy" => Hook::QueryPolicy,
        "record-transform" => Hook::RecordTransform,
        _ => return Ok(None),
    };
    let on_error: FailureMode = body.on_error.parse().map_err(error)?;
    crate::state::check_plugin_name(name).map_err(|e| error(e.to_string()))?;
    let sha256: [u8; 32] = Sha256::digest(&body.component).into();
    if sha256 != body.sha256 {
        return Err(error(
            "the component's SHA-256 does not match the one sent".into(),
        ));
    }
    Ok(Some(Change::PluginPut {
        definition: Arc::new(PluginDefinition {
            name: name.to_string(),
            hook,
            order: body.order,
            on_error,
            enabled: body.enabled,
            version,
            sha256,
            component: body.component.into(),
            config: body.config.into(),
        }),
    }))
}
