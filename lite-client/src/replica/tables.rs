//! The layout of `lite.redb` and the few helpers that read and write it.
//!
//! | table    | key                     | value                                     |
//! |----------|-------------------------|-------------------------------------------|
//! | `zones`, `rrsets`, `plugins` (and `lite_tokens`, `join_invites`, `idempotency_keys`, always empty) | | the state tables of `outpost_replica`, written as an appliance writes them |
//! | `meta`   | `"format"`, `"client_id"`, `"cursor"`, `"head"`, `"scope"` | postcard values |
//!
//! **Invariant:** the state tables and `meta.cursor` change only together, in one
//! durable write transaction, so the replica on disk is always exactly the state
//! after `cursor`.

use std::path::Path;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::ReplicaError;

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
    outpost_replica::begin_durable_write(db)
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
    outpost_replica::create_tables(&txn)?;
    txn.commit().map_err(redb::Error::from)?;
    Ok(db)
}

/// 16 random bytes in hex.
fn random_id() -> Result<String, ReplicaError> {
    let mut random = [0u8; 16];
    getrandom::fill(&mut random).map_err(ReplicaError::NoRandomness)?;
    Ok(random.iter().map(|byte| format!("{byte:02x}")).collect())
}
