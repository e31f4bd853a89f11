//! The messages of the model: the [`Command`]s proposed through Raft and the
//! [`Change`]s applying them produces, with the [`LiteToken`] both carry.
//!
//! **Boundary:** both are serialized (postcard) into the Raft log, redb and snapshots;
//! the sync stream sends its own wire types ([`crate::sync`]). A new variant goes at the
//! end.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    CookieSecrets, Export, ExportPeer, FollowedZone, IdempotencyRecord, JoinInvite,
    PluginDefinition, TransferredRRset,
};

/// A write, as proposed through Raft. Names are absolute, in presentation form.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Command {
    /// Creates a zone from its initial records, which must include the SOA.
    CreateZone {
        origin: String,
        records: Vec<u8>,
    },
    /// Creates or replaces a whole zone in one step (a master-file import).
    ReplaceZone {
        origin: String,
        records: Vec<u8>,
    },
    DeleteZone {
        origin: String,
    },
    /// Adds records to the RRsets of their owners, in the deepest zone holding each;
    /// the RRset takes the TTL of the added record.
    AddRecords {
        records: Vec<u8>,
    },
    /// Replaces one RRset; an empty `records` deletes it.
    ReplaceRRset {
        owner: String,
        rtype: u16,
        records: Vec<u8>,
    },
    /// Deletes the given records (matched by data) or, when `records` is empty, the
    /// RRset of `rtype` or every RRset at `owner` when `rtype` is `None`.
    DeleteRecords {
        owner: String,
        rtype: Option<u16>,
        records: Vec<u8>,
    },
    /// Creates a Lite token (only the hash of its secret is replicated).
    PutLiteToken {
        token: LiteToken,
    },
    /// Revokes a Lite token: its sessions are closed and it is refused from now on.
    RevokeLiteToken {
        name: String,
    },
    /// Installs a plugin, or replaces the one of the same name (the version is set
    /// by the model). The same definition again changes nothing unless `restart`:
    /// then it gets a new version, which every node loads afresh (a plugin stopped
    /// after repeated failures runs again).
    PutPlugin {
        definition: PluginDefinition,
        restart: bool,
    },
    DeletePlugin {
        name: String,
    },
    /// Several commands as one write: all of them apply, or none (a write whose
    /// record transform adds records outside the RRset or zone it replaces).
    Batch {
        #[serde(deserialize_with = "super::nesting::nested")]
        commands: Vec<Command>,
    },
    /// Adds a join invite (only the hash of its secret is replicated) after pruning
    /// the invites expired at `now_unix`, the proposer's clock.
    PutJoinInvite {
        invite: JoinInvite,
        now_unix: u64,
    },
    /// Marks a join invite used by `node_id`, which is about to be added.
    UseJoinInvite {
        secret_sha256: [u8; 32],
        node_id: u64,
    },
    /// Forgets the invites `node_id` used, as it leaves the cluster: its old ticket no
    /// longer admits it (a removed node comes back only as a new node).
    RetireNode {
        node_id: u64,
    },
    /// `command` under an idempotency key: applied once; applied again with the same key
    /// (a retry), it changes nothing and answers [`CommandError::AlreadyApplied`].
    /// `now_unix` is the proposer's clock, against which old keys expire.
    Once {
        key: String,
        now_unix: u64,
        #[serde(deserialize_with = "super::nesting::nested")]
        command: Box<Command>,
    },
    /// Makes `secret` the DNS cookie secret, the current one the previous; refused unless
    /// the current one is the one made at `replaces` (`None`: none yet), so racing
    /// proposers rotate once. `now_unix` is the proposer's clock.
    RotateCookieSecret {
        secret: [u8; 16],
        now_unix: u64,
        replaces: Option<u64>,
    },
    /// Follows a zone from external primaries (or changes how), keeping what the last
    /// refresh found. Refused for a zone written here.
    FollowZone {
        zone: FollowedZone,
    },
    /// Stops following a zone; its data stays as a zone written here, or goes.
    UnfollowZone {
        origin: String,
        keep_data: bool,
    },
    /// A followed zone as the primary sent it whole (AXFR), at `now_unix` (the leader's
    /// clock).
    TransferZone {
        origin: String,
        records: Vec<u8>,
        now_unix: u64,
    },
    /// An IXFR's result: each changed RRset as it now is, applied only to the zone at
    /// `from_serial`.
    TransferChanges {
        origin: String,
        from_serial: u32,
        rrsets: Vec<TransferredRRset>,
        now_unix: u64,
    },
    /// A refresh that transferred nothing: the zone was current (`error` none), or the
    /// refresh failed with `error` and the zone is `expired` or not.
    FollowStatus {
        origin: String,
        now_unix: u64,
        error: Option<String>,
        expired: bool,
    },
    /// A record source's whole desired set (hosts file, DHCP leases): the RRsets it owns
    /// become these, under the conflict rule of `state::sources`.
    SyncSource {
        name: String,
        records: Vec<u8>,
    },
    /// Creates an iroh-docs export; its secrets were drawn by the proposer.
    PutExport {
        export: Export,
    },
    /// Removes an export: no node writes or serves its document any more.
    RemoveExport {
        name: String,
    },
    /// Records where node `node_id` serves the exports (`None`: it no longer does).
    SetExportPeer {
        node_id: u64,
        peer: Option<ExportPeer>,
    },
}

/// A Lite client's credential: which zones it may see. The secret itself is shown to
/// the operator once and never stored; only its SHA-256 travels through Raft.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LiteToken {
    pub name: String,
    /// Origins of the zones the holder may see (absolute, lowercase).
    pub zones: Vec<String>,
    pub secret_sha256: [u8; 32],
}

/// Longest Lite token name.
pub const MAX_TOKEN_NAME: usize = 64;

/// What a command did, RRset by RRset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub enum Change {
    ZonePut {
        origin: String,
    },
    ZoneDeleted {
        origin: String,
    },
    /// The whole RRset as it now is (records in wire form).
    RRsetPut {
        zone: String,
        owner: String,
        rtype: u16,
        records: Vec<u8>,
    },
    RRsetDeleted {
        zone: String,
        owner: String,
        rtype: u16,
    },
    LiteTokenPut {
        token: LiteToken,
    },
    LiteTokenRevoked {
        name: String,
    },
    /// A plugin definition as it now is (installed or updated).
    PluginPut {
        definition: Arc<PluginDefinition>,
    },
    PluginDeleted {
        name: String,
    },
    /// A join invite as it now is (open, or used by a node).
    JoinInvitePut {
        invite: JoinInvite,
    },
    /// An expired invite, pruned.
    JoinInviteRemoved {
        secret_sha256: [u8; 32],
    },
    /// A write applied under an idempotency key.
    IdempotencyKeyPut {
        record: IdempotencyRecord,
    },
    /// An idempotency key forgotten (expired, or the oldest when full).
    IdempotencyKeyRemoved {
        key: String,
    },
    /// The DNS cookie secrets as they now are. Never sent to Lite clients.
    CookieSecretsPut {
        secrets: CookieSecrets,
    },
    /// A followed zone's settings and refresh state as they now are. Never sent to Lite
    /// clients (it holds the TSIG secret).
    FollowedZonePut {
        zone: FollowedZone,
    },
    FollowedZoneRemoved {
        origin: String,
    },
    /// The RRsets a record source owns, as they now are. Never sent to Lite clients.
    SourcePut {
        name: String,
        owned: Vec<super::OwnedRRset>,
    },
    /// An export as it now is. Never sent to Lite clients: it holds the document's
    /// secrets.
    ExportPut {
        export: Export,
    },
    ExportRemoved {
        name: String,
    },
    /// A node's export endpoint as it now is. Never sent to Lite clients.
    ExportPeerPut {
        node_id: u64,
        peer: ExportPeer,
    },
    ExportPeerRemoved {
        node_id: u64,
    },
}

impl Change {
    /// The zone this change touches; `None` for changes that are not zone data.
    pub fn zone(&self) -> Option<&str> {
        match self {
            Change::ZonePut { origin } | Change::ZoneDeleted { origin } => Some(origin),
            Change::RRsetPut { zone, .. } | Change::RRsetDeleted { zone, .. } => Some(zone),
            Change::LiteTokenPut { .. }
            | Change::LiteTokenRevoked { .. }
            | Change::PluginPut { .. }
            | Change::PluginDeleted { .. }
            | Change::JoinInvitePut { .. }
            | Change::JoinInviteRemoved { .. }
            | Change::IdempotencyKeyPut { .. }
            | Change::IdempotencyKeyRemoved { .. }
            | Change::CookieSecretsPut { .. }
            | Change::FollowedZonePut { .. }
            | Change::FollowedZoneRemoved { .. }
            | Change::SourcePut { .. }
            | Change::ExportPut { .. }
            | Change::ExportRemoved { .. }
            | Change::ExportPeerPut { .. }
            | Change::ExportPeerRemoved { .. } => None,
        }
    }
}
