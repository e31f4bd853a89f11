//! The layout of `lite.redb` and the few helpers that read and write it.
//!
//! | table    | key                     | value                                     |
//! |----------|-------------------------|-------------------------------------------|
//! | `zones`  | origin                  | `()`                                      |
//! | `rrsets` | `(zone, owner, rtype)`  | the RRset's records, DNS wire bytes       |
//! | `meta`   | `"format"`, `"client_id"`, `"cursor"`, `"head"`, `"scope"` | postcard values |
//!
//! Names in keys are absolute and lowercase (as [`parse_name`] returns them).
//!
//! **Invariant:** `zones`, `rrsets` and `meta.cursor` change only together, in one
//! durable write transaction, so the replica on disk is always exactly the state
//! after `cursor`.

use std::path::Path;
use std::sync::Arc;

use outpost_core::zones::{Change, Zones, parse_name};
use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ReplicaError;

pub(super) const ZONES: TableDefinition<&str, ()> = TableDefinition::new("zones");
pub(super) const RRSETS: TableDefinition<(&str, &str, u16), &[u8]> = TableDefinition::new("rrsets");
/// Plugin definitions by name (postcard `PluginDefinition`, component bytes included).
pub(super) const PLUGINS: TableDefinition<&str, &[u8]> = TableDefinition::new("plugins");
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// Version of everything `lite.redb` holds. A client refuses a file of another version
/// instead of misreading it; the fix is to delete the file (the next session then
/// takes a snapshot).
pub(super) const FORMAT_VERSION: u32 = 1;
/// `meta` key of the [`FORMAT_VERSION`] the file was created with.
pub(super) const FORMAT: &str = "format";
/// `meta` key of this installation's random id, sent in `Hello` for the server's logs.
pub(super) const CLIENT_ID: &str = "client_id";
/// `meta` key of the cursor (`StoredCursor`): the last change applied.
pub(super) const CURSOR: &str = "cursor";
/// `meta` key of the latest head index the server announced and we persisted.
pub(super) const HEAD: &str = "head";
/// `meta` key of the zone origins the token could see at the last session.
pub(super) const SCOPE: &str = "scope";

/// Starts a write transaction that is on disk (fsynced) when `commit` returns.
pub(super) fn begin_durable_write(db: &Database) -> Result<WriteTransaction, redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate)?;
    Ok(txn)
}

pub(super) fn get_value<T, Tbl>(table: &Tbl, key: &str) -> Result<Option<T>, ReplicaError>
where
    T: DeserializeOwned,
    Tbl: ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key).map_err(redb::Error::from)? {
        Some(bytes) => postcard::from_bytes(bytes.value())
            .map(Some)
            .map_err(|e| ReplicaError::Corrupt(format!("meta value {key:?} does not decode: {e}"))),
        None => Ok(None),
    }
}

pub(super) fn put_value<T: Serialize>(
    table: &mut redb::Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), ReplicaError> {
    let bytes = postcard::to_allocvec(value)
        .map_err(|e| ReplicaError::Corrupt(format!("meta value {key:?} does not encode: {e}")))?;
    table
        .insert(key, bytes.as_slice())
        .map_err(redb::Error::from)?;
    Ok(())
}

/// Writes one change into the state tables, as [`outpost_core::zones::Zones::apply_change`]
/// applies it to the model.
pub(super) fn write_change(
    zones: &mut redb::Table<&str, ()>,
    rrsets: &mut redb::Table<(&str, &str, u16), &[u8]>,
    plugins: &mut redb::Table<&str, &[u8]>,
    change: &Change,
) -> Result<(), ReplicaError> {
    let name = |text: &str| {
        parse_name(text)
            .map(|name| name.to_ascii())
            .map_err(|e| ReplicaError::Corrupt(e.to_string()))
    };
    match change {
        Change::ZonePut { origin } => {
            zones
                .insert(name(origin)?.as_str(), ())
                .map_err(redb::Error::from)?;
        }
        Change::ZoneDeleted { origin } => {
            let origin = name(origin)?;
            zones.remove(origin.as_str()).map_err(redb::Error::from)?;
            rrsets
                .retain(|(zone, _, _), _| zone != origin)
                .map_err(redb::Error::from)?;
        }
        Change::RRsetPut {
            zone,
            owner,
            rtype,
            records,
        } => {
            rrsets
                .insert(
                    (name(zone)?.as_str(), name(owner)?.as_str(), *rtype),
                    records.as_slice(),
                )
                .map_err(redb::Error::from)?;
        }
        Change::RRsetDeleted { zone, owner, rtype } => {
            rrsets
                .remove((name(zone)?.as_str(), name(owner)?.as_str(), *rtype))
                .map_err(redb::Error::from)?;
        }
        Change::PluginPut { definition } => {
            let bytes = postcard::to_allocvec(&**definition).map_err(|e| {
                ReplicaError::Corrupt(format!("plugin {} does not encode: {e}", definition.name))
            })?;
            plugins
                .insert(definition.name.as_str(), bytes.as_slice())
                .map_err(redb::Error::from)?;
        }
        Change::PluginDeleted { name } => {
            plugins.remove(name.as_str()).map_err(redb::Error::from)?;
        }
        // Not zone data; never sent to Lite clients (`from_wire` does not make them).
        Change::LiteTokenPut { .. }
        | Change::LiteTokenRevoked { .. }
        | Change::JoinInvitePut { .. }
        | Change::JoinInviteRemoved { .. } => {}
    }
    Ok(())
}

/// Writes a whole replica into emptied state tables: the rows its changes from
/// nothing would write, taken from the model without making those changes.
pub(super) fn write_zones(
    zones_table: &mut redb::Table<&str, ()>,
    rrsets: &mut redb::Table<(&str, &str, u16), &[u8]>,
    plugins: &mut redb::Table<&str, &[u8]>,
    zones: &Zones,
) -> Result<(), ReplicaError> {
    for zone in zones.iter() {
        let origin = zone.origin().to_ascii();
        zones_table
            .insert(origin.as_str(), ())
            .map_err(redb::Error::from)?;
        for rrset in zone.rrsets() {
            let owner = rrset.owner().to_ascii();
            let key = (
                origin.as_str(),
                owner.as_str(),
                u16::from(rrset.record_type()),
            );
            rrsets
                .insert(key, rrset.to_wire().as_slice())
                .map_err(redb::Error::from)?;
        }
    }
    for definition in zones.plugins() {
        let definition = Arc::clone(definition);
        let change = Change::PluginPut { definition };
        write_change(zones_table, rrsets, plugins, &change)?;
    }
    Ok(())
}

/// The replica in the state tables, loaded change by change: each zone's `ZonePut`,
/// the plugins, then the RRsets in key order. Each change is applied as it is read and
/// dropped, so loading holds nothing but the model.
pub(super) fn load_state(db: &Database) -> Result<Zones, ReplicaError> {
    use redb::ReadableDatabase as _;
    let txn = db.begin_read().map_err(redb::Error::from)?;
    let zones_table = txn.open_table(ZONES).map_err(redb::Error::from)?;
    let rrsets = txn.open_table(RRSETS).map_err(redb::Error::from)?;
    let plugins = txn.open_table(PLUGINS).map_err(redb::Error::from)?;
    let mut zones = Zones::default();
    let mut apply = |change: Change| {
        zones.apply_change(&change).map_err(|e| {
            ReplicaError::Corrupt(format!(
                "stored {} does not load: {e}",
                super::describe(&change)
            ))
        })
    };
    for entry in zones_table.iter().map_err(redb::Error::from)? {
        let (origin, _) = entry.map_err(redb::Error::from)?;
        apply(Change::ZonePut {
            origin: origin.value().to_string(),
        })?;
    }
    for entry in plugins.iter().map_err(redb::Error::from)? {
        let (name, definition) = entry.map_err(redb::Error::from)?;
        let definition = postcard::from_bytes(definition.value()).map_err(|e| {
            ReplicaError::Corrupt(format!("plugin {} does not decode: {e}", name.value()))
        })?;
        apply(Change::PluginPut { definition })?;
    }
    for entry in rrsets.iter().map_err(redb::Error::from)? {
        let (key, records) = entry.map_err(redb::Error::from)?;
        let (zone, owner, rtype) = key.value();
        apply(Change::RRsetPut {
            zone: zone.to_string(),
            owner: owner.to_string(),
            rtype,
            records: records.value().to_vec(),
        })?;
    }
    Ok(zones)
}

/// redb's page cache. The replica is read whole once at start and then only written,
/// so a large cache only holds pages nobody reads again; on a laptop that memory is
/// better left to the user.
const REDB_CACHE_BYTES: usize = 4 << 20;

/// Opens or creates the file with every table present, and checks its format.
pub(super) fn open_database(path: &Path) -> Result<Database, ReplicaError> {
    let db = Database::builder()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => ReplicaError::InUse {
                path: path.to_owned(),
            },
            other => ReplicaError::Storage(other.into()),
        })?;
    let txn = begin_durable_write(&db)?;
    {
        let mut meta = txn.open_table(META).map_err(redb::Error::from)?;
        match get_value::<u32, _>(&meta, FORMAT)? {
            Some(FORMAT_VERSION) => {}
            Some(found) => {
                return Err(ReplicaError::Format {
                    path: path.to_owned(),
                    found,
                });
            }
            None => put_value(&mut meta, FORMAT, &FORMAT_VERSION)?,
        }
        if get_value::<String, _>(&meta, CLIENT_ID)?.is_none() {
            put_value(&mut meta, CLIENT_ID, &random_id()?)?;
        }
    }
    txn.open_table(ZONES).map_err(redb::Error::from)?;
    txn.open_table(RRSETS).map_err(redb::Error::from)?;
    txn.open_table(PLUGINS).map_err(redb::Error::from)?;
    txn.commit().map_err(redb::Error::from)?;
    Ok(db)
}

/// 16 random bytes in hex.
fn random_id() -> Result<String, ReplicaError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(|e| ReplicaError::NoRandomness(e.to_string()))?;
    Ok(random.iter().map(|byte| format!("{byte:02x}")).collect())
}
