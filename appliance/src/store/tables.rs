//! The layout of `outpost.redb`, the value codec and the bridge from async code to redb.
//!
//! One file holds the Raft log and the state machine, in separate tables (the state tables,
//! `zones` to `cookie_secrets`, are `outpost_replica`'s, written the same way on a Lite
//! client; `docs/storage.md` has every field):
//!
//! | table      | key                         | value                                      |
//! |------------|-----------------------------|--------------------------------------------|
//! | `log`      | index `u64`                 | postcard `Entry`                           |
//! | `log_meta` | `"format"`, `"cluster_id"`, `"node_id"`, `"vote"`, `"last_purged"`, `"committed"` | postcard `u32` / `String` / `u64` / `Vote` / `LogId` / `LogId` |
//! | `zones`    | origin                      | `()`                                       |
//! | `rrsets`   | `(zone, owner, rtype)`      | the RRset's records, wire bytes            |
//! | `lite_tokens`, `plugins` | name          | postcard `LiteToken` / `PluginDefinition`  |
//! | `join_invites` | SHA-256 of the secret   | postcard `JoinInvite`                      |
//! | `idempotency_keys` | key                 | postcard `IdempotencyRecord`               |
//! | `cookie_secrets` | `"secrets"`           | postcard `CookieSecrets`                   |
//! | `history`  | log index `u64`             | postcard `Vec<Change>`, what that entry changed (absent when nothing) |
//! | `sm_meta`  | `"last_applied"`, `"last_membership"`, `"snapshot"`, `"history_floor"` | postcard `LogId` / `StoredMembership` / stored snapshot / `u64` |
//!
//! **Invariant:** the state tables, `history` and `sm_meta.last_applied` change only
//! together, in one write transaction, so the state on disk is always exactly the state after
//! `last_applied`, and the history leads up to it.

use std::io;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableTable, TableDefinition, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const LOG_META: TableDefinition<&str, &[u8]> = TableDefinition::new("log_meta");
pub(crate) const SM_META: TableDefinition<&str, &[u8]> = TableDefinition::new("sm_meta");
/// The changes each applied entry made, by log index: the history Lite sessions resume
/// from. Entries that changed nothing are absent. Pruned to the retention window.
pub(crate) const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// Version of everything this file holds: the tables above, their postcard values and the
/// wire-format records inside them. Bumped on any incompatible change; a node refuses a file
/// of another version instead of misreading it (see docs/storage.md).
pub(crate) const FORMAT_VERSION: u32 = 1;
/// `log_meta` key of the [`FORMAT_VERSION`] the file was created with.
pub(crate) const FORMAT: &str = "format";
/// `log_meta` key of the last vote (persisted before it is acted on).
pub(crate) const VOTE: &str = "vote";
/// `log_meta` key of the id of the last entry removed by a purge.
pub(crate) const LAST_PURGED: &str = "last_purged";
/// `log_meta` key of the last committed log id (advisory: the state machine is durable itself).
pub(crate) const COMMITTED: &str = "committed";
/// `sm_meta` key of the lowest log index from which `history` is complete.
pub(crate) const HISTORY_FLOOR: &str = "history_floor";
/// `log_meta` key of this cluster's random id, created with the file: a Lite cursor from
/// another cluster (a wiped appliance) must not be resumed.
pub(crate) const CLUSTER_ID: &str = "cluster_id";
/// `log_meta` key of this node's Raft id, fixed when the file is created. Files from before
/// node ids were stored belong to node 1, the only node there was.
pub(crate) const NODE_ID: &str = "node_id";
/// The node id of a file created before [`NODE_ID`] was stored.
const LEGACY_NODE_ID: u64 = 1;
/// `sm_meta` key of the id of the last applied entry.
pub(crate) const LAST_APPLIED: &str = "last_applied";
/// `sm_meta` key of the last applied membership.
pub(crate) const LAST_MEMBERSHIP: &str = "last_membership";
/// `sm_meta` key of the current snapshot (its meta and data, as sent to a follower).
pub(crate) const SNAPSHOT: &str = "snapshot";

/// redb's page cache, at most (redb's own default is 1 GiB). The state machine is read
/// whole once at start and the log is read back only by followers catching up, so the
/// cache mostly holds pages just written; past this bound they are read from the
/// file (and the kernel's page cache) again.
const REDB_CACHE_BYTES: usize = 16 << 20;

/// What [`open_database`] found in (or gave to) the file.
pub(crate) struct OpenedDatabase {
    pub(crate) db: Database,
    /// The file's format version (a new file gets [`FORMAT_VERSION`]).
    pub(crate) format: u32,
    pub(crate) cluster_id: String,
    /// The node id stored in the file: `new_node_id` for a file created now.
    pub(crate) node_id: u64,
}

/// Opens or creates the database file and makes sure every table exists, so that read
/// transactions never meet a missing table. A file created now takes `new_node_id`, and
/// `new_cluster_id` or else a random cluster id.
pub(crate) fn open_database(
    path: &Path,
    new_node_id: u64,
    new_cluster_id: Option<String>,
) -> Result<OpenedDatabase, redb::Error> {
    let db = Database::builder()
        .set_cache_size(REDB_CACHE_BYTES)
        .create(path)?;
    let txn = db.begin_write()?;
    txn.open_table(LOG)?;
    let (format, created) = {
        let mut meta = txn.open_table(LOG_META)?;
        let stored = meta.get(FORMAT)?.map(|bytes| decode::<u32>(bytes.value()));
        match stored {
            Some(format) => (format?, false),
            None => {
                put_value(&mut meta, FORMAT, &FORMAT_VERSION)?;
                (FORMAT_VERSION, true)
            }
        }
    };
    let node_id = {
        let mut meta = txn.open_table(LOG_META)?;
        let stored = meta.get(NODE_ID)?.map(|bytes| decode::<u64>(bytes.value()));
        match stored {
            Some(id) => id?,
            None => {
                let id = if created { new_node_id } else { LEGACY_NODE_ID };
                put_value(&mut meta, NODE_ID, &id)?;
                id
            }
        }
    };
    let cluster_id = {
        let mut meta = txn.open_table(LOG_META)?;
        let stored = meta
            .get(CLUSTER_ID)?
            .map(|bytes| decode::<String>(bytes.value()));
        match (stored, new_cluster_id.filter(|_| created)) {
            (Some(id), _) => id?,
            (None, Some(id)) => {
                put_value(&mut meta, CLUSTER_ID, &id)?;
                id
            }
            (None, None) => {
                let mut random = [0u8; 16];
                getrandom::fill(&mut random).map_err(io::Error::other)?;
                let id: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
                put_value(&mut meta, CLUSTER_ID, &id)?;
                id
            }
        }
    };
    // `join_invites` and `cookie_secrets` are created on open too, so a format 1 file
    // written before clusters or cookies gains them empty.
    outpost_replica::create_tables(&txn)?;
    txn.open_table(SM_META)?;
    txn.open_table(HISTORY)?;
    txn.commit()?;
    Ok(OpenedDatabase {
        db,
        format,
        cluster_id,
        node_id,
    })
}

/// Starts a write transaction that is on disk (fsynced) when `commit` returns.
pub(crate) fn begin_durable_write(db: &Database) -> io::Result<WriteTransaction> {
    outpost_replica::begin_durable_write(db).map_err(io_error)
}

/// Reads one postcard value from a `&str -> &[u8]` table.
pub(crate) fn get_value<T, Tbl>(table: &Tbl, key: &str) -> io::Result<Option<T>>
where
    T: DeserializeOwned,
    Tbl: redb::ReadableTable<&'static str, &'static [u8]>,
{
    match table.get(key).map_err(io_error)? {
        Some(bytes) => decode(bytes.value()).map(Some),
        None => Ok(None),
    }
}

/// Writes one postcard value into a `&str -> &[u8]` table.
pub(crate) fn put_value<T: Serialize>(
    table: &mut redb::Table<&str, &[u8]>,
    key: &str,
    value: &T,
) -> io::Result<()> {
    table
        .insert(key, encode(value)?.as_slice())
        .map_err(io_error)?;
    Ok(())
}

pub(crate) fn encode<T: Serialize>(value: &T) -> io::Result<Vec<u8>> {
    postcard::to_allocvec(value).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> io::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Any redb error as the `io::Error` that openraft's storage traits return.
pub(crate) fn io_error(e: impl Into<redb::Error>) -> io::Error {
    io::Error::other(e.into())
}

/// Runs redb work (which blocks, and fsyncs on durable commits) off the async worker threads.
pub(crate) async fn blocking<T, F>(db: &Arc<Database>, work: F) -> io::Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Database) -> io::Result<T> + Send + 'static,
{
    let db = Arc::clone(db);
    tokio::task::spawn_blocking(move || work(&db))
        .await
        .map_err(|e| io::Error::other(format!("storage task failed: {e}")))?
}
