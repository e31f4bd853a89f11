//! The state tables, as both redb files hold them (`outpost.redb` on an appliance,
//! `lite.redb` on a Lite client; `docs/storage.md`):
//!
//! | table              | key                    | value                                          |
//! |--------------------|------------------------|------------------------------------------------|
//! | `zones`            | origin                 | `()`                                           |
//! | `rrsets`           | `(zone, owner, rtype)` | the RRset's records, DNS wire bytes            |
//! | `plugins`          | name                   | postcard `PluginDefinition`                    |
//! | `lite_tokens`      | name                   | postcard `LiteToken` (appliances only)         |
//! | `join_invites`     | SHA-256 of the secret  | postcard `JoinInvite` (appliances only)        |
//! | `idempotency_keys` | key                    | postcard `IdempotencyRecord` (appliances only) |
//! | `cookie_secrets`   | `"secrets"`            | postcard `CookieSecrets` (appliances only)     |
//! | `followed_zones`   | origin                 | postcard `FollowedZone` (appliances only)      |
//! | `record_sources`   | source name            | postcard `Vec<OwnedRRset>` (appliances only)   |
//! | `exports`          | name                   | postcard `Export` (appliances only)            |
//! | `export_peers`     | Raft node id (u64)     | postcard `ExportPeer` (appliances only)        |
//!
//! Each file adds its own tables beside these: an appliance's Raft log, `history` and
//! `sm_meta` (`appliance/src/store/tables.rs`), a Lite client's `meta`
//! (`lite-client/src/replica/tables.rs`).
//!
//! Names in keys are absolute and lowercase, as [`parse_name`] writes them. A Lite client
//! never receives tokens, invites, idempotency keys, cookie secrets, follow settings, record
//! sources or exports (`outpost_core::sync::from_wire` makes none), so its tables marked
//! "appliances only" stay empty. A file written before `cookie_secrets`, `followed_zones`,
//! `exports` or `export_peers` existed gets the table, empty, when it is opened.
//!
//! **Invariant:** [`StateTables::apply`] writes a change exactly as
//! [`ReplicatedState::apply_change`] applies it to the model, so the tables loaded back
//! ([`load`]) are the model that was written.

use outpost_core::state::{Change, ReplicatedState, parse_name};
use redb::{Database, ReadTransaction, ReadableTable, Table, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const ZONES: TableDefinition<&str, ()> = TableDefinition::new("zones");
pub const RRSETS: TableDefinition<(&str, &str, u16), &[u8]> = TableDefinition::new("rrsets");
/// Plugin definitions by name (postcard `PluginDefinition`, component bytes included).
pub const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
/// Lite tokens by name (postcard `LiteToken`).
pub const LITE_TOKENS: TableDefinition<&str, &[u8]> = TableDefinition::new("lite_tokens");
/// Join invites by the SHA-256 of their secret (postcard `JoinInvite`).
pub const JOIN_INVITES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("join_invites");
/// Writes applied under an idempotency key, by key (postcard `IdempotencyRecord`).
pub const IDEMPOTENCY_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("idempotency_keys");
/// The DNS cookie secrets, one row under [`COOKIE_SECRETS_KEY`] (postcard `CookieSecrets`).
pub const COOKIE_SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("cookie_secrets");
/// The key of the one row of [`COOKIE_SECRETS`].
pub const COOKIE_SECRETS_KEY: &str = "secrets";
/// Zones followed from external primaries, by origin (postcard `FollowedZone`).
pub const FOLLOWED_ZONES: TableDefinition<&str, &[u8]> = TableDefinition::new("followed_zones");
/// The RRsets each record source owns, by source name (postcard `Vec<OwnedRRset>`).
pub const RECORD_SOURCES: TableDefinition<&str, &[u8]> = TableDefinition::new("record_sources");
/// iroh-docs exports, by name (postcard `Export`, its secrets included).
pub const EXPORTS: TableDefinition<&str, &[u8]> = TableDefinition::new("exports");
/// Each node's export endpoint, by Raft node id (postcard `ExportPeer`).
pub const EXPORT_PEERS: TableDefinition<u64, &[u8]> = TableDefinition::new("export_peers");

/// Why the state tables could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state storage failed: {0}")]
    Storage(#[from] redb::Error),
    /// What the tables hold (or were asked to hold) does not encode, decode or load.
    #[error("{0}")]
    Corrupt(String),
}

/// Creates every state table that does not exist yet, so read transactions never meet a
/// missing one.
pub fn create_tables(txn: &WriteTransaction) -> Result<(), redb::Error> {
    txn.open_table(ZONES)?;
    txn.open_table(RRSETS)?;
    txn.open_table(PLUGINS)?;
    txn.open_table(LITE_TOKENS)?;
    txn.open_table(JOIN_INVITES)?;
    txn.open_table(IDEMPOTENCY_KEYS)?;
    txn.open_table(COOKIE_SECRETS)?;
    txn.open_table(FOLLOWED_ZONES)?;
    txn.open_table(RECORD_SOURCES)?;
    txn.open_table(EXPORTS)?;
    txn.open_table(EXPORT_PEERS)?;
    Ok(())
}

/// Starts a write transaction that is on disk (fsynced) when `commit` returns.
pub fn begin_durable_write(db: &Database) -> Result<WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    Ok(txn)
}

/// The state tables, open in one write transaction.
pub struct StateTables<'txn> {
    zones: Table<'txn, &'static str, ()>,
    rrsets: Table<'txn, (&'static str, &'static str, u16), &'static [u8]>,
    plugins: Table<'txn, &'static str, &'static [u8]>,
    tokens: Table<'txn, &'static str, &'static [u8]>,
    invites: Table<'txn, &'static [u8], &'static [u8]>,
    keys: Table<'txn, &'static str, &'static [u8]>,
    cookies: Table<'txn, &'static str, &'static [u8]>,
    followed: Table<'txn, &'static str, &'static [u8]>,
    sources: Table<'txn, &'static str, &'static [u8]>,
    exports: Table<'txn, &'static str, &'static [u8]>,
    export_peers: Table<'txn, u64, &'static [u8]>,
}

impl<'txn> StateTables<'txn> {
    pub fn open(txn: &'txn WriteTransaction) -> Result<StateTables<'txn>, redb::Error> {
        Ok(StateTables {
            zones: txn.open_table(ZONES)?,
            rrsets: txn.open_table(RRSETS)?,
            plugins: txn.open_table(PLUGINS)?,
            tokens: txn.open_table(LITE_TOKENS)?,
            invites: txn.open_table(JOIN_INVITES)?,
            keys: txn.open_table(IDEMPOTENCY_KEYS)?,
            cookies: txn.open_table(COOKIE_SECRETS)?,
            followed: txn.open_table(FOLLOWED_ZONES)?,
            sources: txn.open_table(RECORD_SOURCES)?,
            exports: txn.open_table(EXPORTS)?,
            export_peers: txn.open_table(EXPORT_PEERS)?,
        })
    }

    /// Writes one change, as the model applies it.
    pub fn apply(&mut self, change: &Change) -> Result<(), StateError> {
        match change {
            Change::ZonePut { origin } => {
                self.zones
                    .insert(key_name(origin)?.as_str(), ())
                    .map_err(redb::Error::from)?;
            }
            Change::ZoneDeleted { origin } => self.delete_zone(&key_name(origin)?)?,
            Change::RRsetPut {
                zone,
                owner,
                rtype,
                records,
            } => {
                let (zone, owner) = (key_name(zone)?, key_name(owner)?);
                self.rrsets
                    .insert((zone.as_str(), owner.as_str(), *rtype), records.as_slice())
                    .map_err(redb::Error::from)?;
            }
            Change::RRsetDeleted { zone, owner, rtype } => {
                let (zone, owner) = (key_name(zone)?, key_name(owner)?);
                self.rrsets
                    .remove((zone.as_str(), owner.as_str(), *rtype))
                    .map_err(redb::Error::from)?;
            }
            Change::LiteTokenPut { token } => put(&mut self.tokens, token.name.as_str(), token)?,
            Change::LiteTokenRevoked { name } => remove(&mut self.tokens, name.as_str())?,
            Change::PluginPut { definition } => {
                put(&mut self.plugins, definition.name.as_str(), &**definition)?;
            }
            Change::PluginDeleted { name } => remove(&mut self.plugins, name.as_str())?,
            Change::JoinInvitePut { invite } => {
                put(&mut self.invites, invite.secret_sha256.as_slice(), invite)?;
            }
            Change::JoinInviteRemoved { secret_sha256 } => {
                remove(&mut self.invites, secret_sha256.as_slice())?;
            }
            Change::IdempotencyKeyPut { record } => {
                put(&mut self.keys, record.key.as_str(), record)?;
            }
            Change::IdempotencyKeyRemoved { key } => remove(&mut self.keys, key.as_str())?,
            Change::CookieSecretsPut { secrets } => {
                put(&mut self.cookies, COOKIE_SECRETS_KEY, secrets)?;
            }
            Change::FollowedZonePut { zone } => {
                put(&mut self.followed, zone.origin.as_str(), zone)?
            }
            Change::FollowedZoneRemoved { origin } => remove(&mut self.followed, origin.as_str())?,
            Change::SourcePut { name, owned } => put(&mut self.sources, name.as_str(), owned)?,
            Change::ExportPut { export } => put(&mut self.exports, export.name.as_str(), export)?,
            Change::ExportRemoved { name } => remove(&mut self.exports, name.as_str())?,
            Change::ExportPeerPut { node_id, peer } => put(&mut self.export_peers, *node_id, peer)?,
            Change::ExportPeerRemoved { node_id } => remove(&mut self.export_peers, *node_id)?,
        }
        Ok(())
    }

    /// A zone and its RRsets.
    fn delete_zone(&mut self, origin: &str) -> Result<(), StateError> {
        self.zones.remove(origin).map_err(redb::Error::from)?;
        // Keys sort by zone first, so the zone's RRsets are one contiguous run.
        let mut doomed = Vec::new();
        for item in self
            .rrsets
            .range::<(&str, &str, u16)>((origin, "", 0)..)
            .map_err(redb::Error::from)?
        {
            let (key, _) = item.map_err(redb::Error::from)?;
            let (zone, owner, rtype) = key.value();
            if zone != origin {
                break;
            }
            doomed.push((owner.to_owned(), rtype));
        }
        for (owner, rtype) in &doomed {
            self.rrsets
                .remove((origin, owner.as_str(), *rtype))
                .map_err(redb::Error::from)?;
        }
        Ok(())
    }

    /// Empties every state table (before a whole new state is written).
    pub fn clear(&mut self) -> Result<(), redb::Error> {
        self.zones.retain(|_, _| false)?;
        self.rrsets.retain(|_, _| false)?;
        self.plugins.retain(|_, _| false)?;
        self.tokens.retain(|_, _| false)?;
        self.invites.retain(|_, _| false)?;
        self.keys.retain(|_, _| false)?;
        self.cookies.retain(|_, _| false)?;
        self.followed.retain(|_, _| false)?;
        self.sources.retain(|_, _| false)?;
        self.exports.retain(|_, _| false)?;
        self.export_peers.retain(|_, _| false)?;
        Ok(())
    }

    /// Writes a whole model into emptied tables: the rows its changes from nothing
    /// would write, taken from the model without making those changes.
    pub fn write_all(&mut self, zones: &ReplicatedState) -> Result<(), StateError> {
        for zone in zones.iter() {
            let origin = zone.origin().to_ascii();
            self.zones
                .insert(origin.as_str(), ())
                .map_err(redb::Error::from)?;
            for rrset in zone.rrsets() {
                let owner = rrset.owner().to_ascii();
                let key = (
                    origin.as_str(),
                    owner.as_str(),
                    u16::from(rrset.record_type()),
                );
                self.rrsets
                    .insert(key, rrset.to_wire().as_slice())
                    .map_err(redb::Error::from)?;
            }
        }
        for definition in zones.plugins() {
            self.plugins
                .insert(definition.name.as_str(), encode(&**definition)?.as_slice())
                .map_err(redb::Error::from)?;
        }
        for token in zones.lite_tokens() {
            self.tokens
                .insert(token.name.as_str(), encode(token)?.as_slice())
                .map_err(redb::Error::from)?;
        }
        for invite in zones.join_invites() {
            self.invites
                .insert(invite.secret_sha256.as_slice(), encode(invite)?.as_slice())
                .map_err(redb::Error::from)?;
        }
        for record in zones.idempotency_records() {
            self.keys
                .insert(record.key.as_str(), encode(record)?.as_slice())
                .map_err(redb::Error::from)?;
        }
        if let Some(secrets) = zones.cookie_secrets() {
            put(&mut self.cookies, COOKIE_SECRETS_KEY, secrets)?;
        }
        for zone in zones.followed_zones() {
            put(&mut self.followed, zone.origin.as_str(), zone)?;
        }
        for (name, owned) in zones.sources() {
            let owned: Vec<_> = owned.iter().collect();
            put(&mut self.sources, name.as_str(), &owned)?;
        }
        for export in zones.exports() {
            put(&mut self.exports, export.name.as_str(), export)?;
        }
        for (node_id, peer) in zones.export_peers() {
            put(&mut self.export_peers, node_id, peer)?;
        }
        Ok(())
    }
}

/// The state tables as the changes that rebuild them from nothing, each handed to `each`
/// as it is read: a `ZonePut` per zone, the Lite tokens, the plugins, the join invites,
/// the idempotency keys, the cookie secrets, the followed zones, the record sources, the
/// exports, the export endpoints, then an `RRsetPut` per RRset in key order.
pub fn read_state(
    txn: &ReadTransaction,
    mut each: impl FnMut(Change) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let zones = txn.open_table(ZONES).map_err(redb::Error::from)?;
    for item in zones.iter().map_err(redb::Error::from)? {
        let (origin, _) = item.map_err(redb::Error::from)?;
        each(Change::ZonePut {
            origin: origin.value().to_owned(),
        })?;
    }
    let tokens = txn.open_table(LITE_TOKENS).map_err(redb::Error::from)?;
    for item in tokens.iter().map_err(redb::Error::from)? {
        let (name, token) = item.map_err(redb::Error::from)?;
        let token = decode(token.value(), || format!("Lite token {}", name.value()))?;
        each(Change::LiteTokenPut { token })?;
    }
    let plugins = txn.open_table(PLUGINS).map_err(redb::Error::from)?;
    for item in plugins.iter().map_err(redb::Error::from)? {
        let (name, definition) = item.map_err(redb::Error::from)?;
        let definition = decode(definition.value(), || format!("plugin {}", name.value()))?;
        each(Change::PluginPut { definition })?;
    }
    let invites = txn.open_table(JOIN_INVITES).map_err(redb::Error::from)?;
    for item in invites.iter().map_err(redb::Error::from)? {
        let (_, invite) = item.map_err(redb::Error::from)?;
        let invite = decode(invite.value(), || "a join invite".to_string())?;
        each(Change::JoinInvitePut { invite })?;
    }
    let keys = txn
        .open_table(IDEMPOTENCY_KEYS)
        .map_err(redb::Error::from)?;
    for item in keys.iter().map_err(redb::Error::from)? {
        let (key, record) = item.map_err(redb::Error::from)?;
        let record = decode(record.value(), || {
            format!("idempotency key {}", key.value())
        })?;
        each(Change::IdempotencyKeyPut { record })?;
    }
    let cookies = txn.open_table(COOKIE_SECRETS).map_err(redb::Error::from)?;
    if let Some(secrets) = cookies.get(COOKIE_SECRETS_KEY).map_err(redb::Error::from)? {
        let secrets = decode(secrets.value(), || "the DNS cookie secrets".to_string())?;
        each(Change::CookieSecretsPut { secrets })?;
    }
    let followed = txn.open_table(FOLLOWED_ZONES).map_err(redb::Error::from)?;
    for item in followed.iter().map_err(redb::Error::from)? {
        let (origin, zone) = item.map_err(redb::Error::from)?;
        let zone = decode(zone.value(), || format!("followed zone {}", origin.value()))?;
        each(Change::FollowedZonePut { zone })?;
    }
    let sources = txn.open_table(RECORD_SOURCES).map_err(redb::Error::from)?;
    for item in sources.iter().map_err(redb::Error::from)? {
        let (name, owned) = item.map_err(redb::Error::from)?;
        let owned = decode(owned.value(), || format!("record source {}", name.value()))?;
        each(Change::SourcePut {
            name: name.value().to_owned(),
            owned,
        })?;
    }
    read_exports(txn, &mut each)?;
    let rrsets = txn.open_table(RRSETS).map_err(redb::Error::from)?;
    for item in rrsets.iter().map_err(redb::Error::from)? {
        let (key, records) = item.map_err(redb::Error::from)?;
        let (zone, owner, rtype) = key.value();
        each(Change::RRsetPut {
            zone: zone.to_owned(),
            owner: owner.to_owned(),
            rtype,
            records: records.value().to_vec(),
        })?;
    }
    Ok(())
}

/// The exports, then the nodes' export endpoints, as changes handed to `each`.
fn read_exports(
    txn: &ReadTransaction,
    each: &mut impl FnMut(Change) -> Result<(), StateError>,
) -> Result<(), StateError> {
    let exports = txn.open_table(EXPORTS).map_err(redb::Error::from)?;
    for item in exports.iter().map_err(redb::Error::from)? {
        let (name, export) = item.map_err(redb::Error::from)?;
        let export = decode(export.value(), || format!("export {}", name.value()))?;
        each(Change::ExportPut { export })?;
    }
    let peers = txn.open_table(EXPORT_PEERS).map_err(redb::Error::from)?;
    for item in peers.iter().map_err(redb::Error::from)? {
        let (node_id, peer) = item.map_err(redb::Error::from)?;
        let node_id = node_id.value();
        let peer = decode(peer.value(), || {
            format!("export endpoint of node {node_id}")
        })?;
        each(Change::ExportPeerPut { node_id, peer })?;
    }
    Ok(())
}

/// The model the state tables hold, loaded change by change: each change is applied as
/// it is read and dropped, so loading holds nothing but the model.
pub fn load(txn: &ReadTransaction) -> Result<ReplicatedState, StateError> {
    let mut zones = ReplicatedState::default();
    read_state(txn, |change| {
        zones.apply_change(&change).map_err(|e| {
            StateError::Corrupt(format!("stored {} does not load: {e}", describe(&change)))
        })
    })?;
    Ok(zones)
}

/// Writes `value` (postcard) under `key`.
fn put<'k, K: redb::Key + 'static, T: Serialize + ?Sized>(
    table: &mut Table<'_, K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
    value: &T,
) -> Result<(), StateError> {
    table
        .insert(key, encode(value)?.as_slice())
        .map_err(redb::Error::from)?;
    Ok(())
}

fn remove<'k, K: redb::Key + 'static>(
    table: &mut Table<'_, K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> Result<(), StateError> {
    table.remove(key).map_err(redb::Error::from)?;
    Ok(())
}

/// A name as the tables key it: absolute and lowercase.
fn key_name(text: &str) -> Result<String, StateError> {
    parse_name(text)
        .map(|name| name.to_ascii())
        .map_err(|e| StateError::Corrupt(e.to_string()))
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, StateError> {
    postcard::to_allocvec(value)
        .map_err(|e| StateError::Corrupt(format!("a state value does not encode: {e}")))
}

fn decode<T: DeserializeOwned>(bytes: &[u8], what: impl Fn() -> String) -> Result<T, StateError> {
    postcard::from_bytes(bytes)
        .map_err(|e| StateError::Corrupt(format!("stored {} does not decode: {e}", what())))
}

/// A change for messages: what and where, no record data.
fn describe(change: &Change) -> String {
    match change {
        Change::ZonePut { origin } => format!("zone {origin}"),
        Change::RRsetPut {
            owner, rtype, zone, ..
        } => format!("RRset {owner} type {rtype} in zone {zone}"),
        Change::LiteTokenPut { token } => format!("Lite token {}", token.name),
        Change::PluginPut { definition } => format!("plugin {}", definition.name),
        Change::JoinInvitePut { .. } => "a join invite".to_string(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests;
