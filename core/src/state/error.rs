//! Why a command is refused: [`CommandError`], each message naming the value and the fix.

use serde::{Deserialize, Serialize};

use super::{
    MAX_IDEMPOTENCY_KEY, MAX_JOIN_INVITES, MAX_PLUGIN_BYTES, MAX_PLUGIN_NAME, MAX_TOKEN_NAME,
    MAX_TTL,
};

/// Why a command was refused. Messages name the value and the fix.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("{name:?} is not a valid domain name: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("zone {origin} already exists (import a master file to replace it)")]
    ZoneExists { origin: String },
    #[error("zone {origin} does not exist")]
    NoSuchZone { origin: String },
    #[error("{name} is not inside any zone served here (create the zone first)")]
    NotInAnyZone { name: String },
    #[error("{name} is outside zone {zone}")]
    OutOfZone { name: String, zone: String },
    #[error(
        "{name} has a CNAME, which cannot coexist with other records at the same name (RFC 1034 section 3.6.2)"
    )]
    CnameConflict { name: String },
    #[error("{name} would have {count} CNAME records; a name has at most one")]
    CnameMultiple { name: String, count: usize },
    #[error(
        "zone {zone} has no SOA record at its apex (add one: \"@ SOA ns1 hostmaster 1 7200 3600 1209600 300\")"
    )]
    SoaMissing { zone: String },
    #[error("SOA record at {name} is not at the apex of zone {zone}")]
    SoaNotAtApex { name: String, zone: String },
    #[error("zone {zone} would have {count} SOA records; it must have exactly one")]
    SoaMultiple { zone: String, count: usize },
    #[error("the SOA of {zone} cannot be deleted (delete the zone instead)")]
    SoaDelete { zone: String },
    #[error("TTL {ttl} of {name} is out of range (0 to {MAX_TTL} seconds)")]
    TtlOutOfRange { name: String, ttl: u32 },
    #[error("record type {rtype} is not supported in zones here")]
    UnsupportedType { rtype: String },
    #[error("class {class} of {name} is not supported (only IN)")]
    WrongClass { name: String, class: String },
    #[error("{name}: \"*\" is only allowed as the leftmost label of a wildcard owner")]
    WildcardPosition { name: String },
    #[error("no {rtype} record at {name} matches")]
    NoSuchRecord { name: String, rtype: String },
    #[error("records could not be read: {0}")]
    BadRecords(String),
    #[error(
        "Lite token name {name:?} is not valid (use 1 to {MAX_TOKEN_NAME} of a-z, 0-9, '-' and '.')"
    )]
    InvalidTokenName { name: String },
    #[error("a Lite token named {name} already exists (revoke it first)")]
    TokenExists { name: String },
    #[error("no Lite token is named {name}")]
    NoSuchToken { name: String },
    #[error("a Lite token must name at least one zone")]
    TokenWithoutZones,
    #[error(
        "plugin name {name:?} is not valid (use 1 to {MAX_PLUGIN_NAME} of a-z, 0-9, '-' and '_')"
    )]
    InvalidPluginName { name: String },
    #[error(
        "plugin {name} is {bytes} bytes of component and configuration; at most {MAX_PLUGIN_BYTES} fit"
    )]
    PluginTooLarge { name: String, bytes: usize },
    #[error("plugin {name}: the component's SHA-256 does not match the one given")]
    PluginHashMismatch { name: String },
    #[error("no plugin is named {name}")]
    NoSuchPlugin { name: String },
    #[error("a join invite must be open and expire in the future")]
    InviteNotOpen,
    #[error("a join invite with this secret already exists")]
    InviteExists,
    #[error(
        "the cluster already holds {MAX_JOIN_INVITES} open join invites: use one or wait for one to expire"
    )]
    TooManyInvites,
    #[error("the join ticket's secret is not known to the cluster (never issued, or expired)")]
    NoSuchInvite,
    #[error("the join ticket was already used by node {node_id}: ask for a new invite")]
    InviteUsed { node_id: u64 },
    /// Not a refusal: the write under this idempotency key was applied before, at
    /// `index` (the store answers it as that first success).
    #[error("this write was already applied, at index {index}")]
    AlreadyApplied { index: u64 },
    #[error(
        "idempotency key {key:?} is not valid (use 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters)"
    )]
    InvalidIdempotencyKey { key: String },
    #[error("an idempotency key wraps one whole write, not another keyed write")]
    OnceNested,
    /// Another rotation of the cookie secret was applied first (not retried: the next
    /// scheduled check sees the new secret).
    #[error("the DNS cookie secret was rotated by another proposer first")]
    CookieSecretRotated,
    #[error(
        "zone {origin} is followed from its primary and changes only by transfer (outpost zone unfollow {origin} first)"
    )]
    ZoneFollowed { origin: String },
    #[error("zone {origin} is written here; delete it before following it from a primary")]
    ZoneIsLocal { origin: String },
    #[error("zone {origin} is not followed")]
    NotFollowed { origin: String },
    #[error("{0}")]
    BadFollow(String),
    /// The zone moved on since the IXFR was made (another transfer applied first).
    #[error("zone {origin} is at serial {serial}, not {from}, which the transfer starts from")]
    TransferStale {
        origin: String,
        serial: u32,
        from: u32,
    },
    #[error("{0}")]
    BadSource(String),
    #[error(
        "export name {name:?} is not valid (use 1 to {MAX_TOKEN_NAME} of a-z, 0-9, '-' and '.')"
    )]
    InvalidExportName { name: String },
    #[error("an export named {name} already exists (remove it first)")]
    ExportExists { name: String },
    #[error("no export is named {name}")]
    NoSuchExport { name: String },
    #[error("an export must name at least one zone")]
    ExportWithoutZones,
    #[error("the cluster has {max} exports, the most it keeps (remove one first)")]
    TooManyExports { max: usize },
    #[error("an export endpoint is recorded with 1 to {max} addresses, not {count}")]
    ExportPeerAddrs { count: usize, max: usize },
}
