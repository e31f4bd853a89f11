//! The Lite client's replica: the zones its token may see and the cursor, durable in
//! `<data-dir>/lite.redb`, and the in-memory views the DNS path answers from.
//!
//! Every write is one durable redb transaction holding the changes and the new
//! cursor together (a `Changes` frame), or the whole new replica and its cursor (a
//! snapshot at `SnapshotEnd`). Only after the commit are the in-memory [`ReplicatedState`] and
//! the [`ZoneSet`] swapped, so DNS never answers from state that a crash would lose,
//! and the cursor never claims more than the disk holds.
//!
//! **Invariant:** after [`ReplicaStore::open`] the DNS path has the replica as it was
//! last committed, before any appliance is reached: the client answers offline.
//! **Invariant:** the replica only holds zones of the last announced scope: changes
//! for other zones are refused, and zones that left the scope are dropped at
//! `Welcome`.

mod staging;
mod tables;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use outpost_core::state::{Change, CommandError, ReplicatedState, parse_name};
use outpost_core::sync::{Changes, from_wire, to_wire};
use outpost_dns::plugin_runtime::PluginWatch;
use outpost_replica::{Rebuild, StateError, StateTables};
use redb::Database;
use serde::{Deserialize, Serialize};

pub use staging::{MAX_SNAPSHOT_BYTES, SnapshotStaging, StagedSnapshot, StagingError, footprint};
use tables::{
    CLIENT_ID, CURSOR, HEAD, META, SCOPE, begin_durable_write, get_value, open_database, put_value,
};

/// The replica's file in the data directory.
pub const REPLICA_FILE: &str = "lite.redb";

/// The last change applied, and the cluster whose log index it is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCursor {
    pub cluster_id: String,
    pub index: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error("replica storage failed: {0}")]
    Storage(#[from] redb::Error),
    #[error(
        "{path} is in use by another outpost-lite (one client per data directory; pick another with --data-dir)"
    )]
    InUse { path: PathBuf },
    #[error(
        "{path} has storage format {found}, this client reads format {} (delete the file: the next session takes a snapshot)",
        tables::FORMAT_VERSION
    )]
    Format { path: PathBuf, found: u32 },
    #[error(
        "the replica file is damaged: {0} (delete {REPLICA_FILE}: the next session takes a snapshot)"
    )]
    Corrupt(String),
    #[error(
        "the appliance sent Welcome {{ mode: Resume }}, which does not apply to the replica: the client holds no cursor of this cluster to resume from"
    )]
    NoCursorToResume,
    #[error("the appliance sent {change}, which does not apply to the replica: {reason}")]
    Inconsistent {
        change: String,
        #[source]
        reason: CommandError,
    },
    #[error("the appliance sent {0}")]
    BadChange(#[from] outpost_core::sync::WireChangeError),
    #[error("the appliance sent a change for zone {zone}, outside the token's zones {scope:?}")]
    OutOfScope { zone: String, scope: Vec<String> },
    #[error("no randomness for the client id: {0}")]
    NoRandomness(#[source] getrandom::Error),
    #[error("the storage task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// What the DNS path and the status file read: swapped after each commit.
#[derive(Clone)]
pub struct LiveState {
    /// The replica as of the cursor (`View::applied`) and its query index, published the
    /// way an appliance publishes its state (`outpost_replica::Published`).
    pub state: outpost_replica::Published,
    /// Told of every commit that changed the plugin definitions (a snapshot counts), once
    /// the new model is published.
    pub plugins: Arc<PluginWatch>,
}

impl From<StateError> for ReplicaError {
    fn from(error: StateError) -> ReplicaError {
        match error {
            StateError::Storage(error) => ReplicaError::Storage(error),
            StateError::Corrupt(message) => ReplicaError::Corrupt(message),
        }
    }
}

/// How a session may start, given the server's `Welcome` and the stored replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeCheck {
    /// The stored replica covers the announced scope: resume from the cursor.
    Covered,
    /// The token now sees zones the replica never received: only a snapshot brings
    /// them, so the cursor must be forgotten.
    Grew,
}

/// The replica on disk and in memory. Owned by the one task that runs sessions.
pub struct ReplicaStore {
    db: Arc<Database>,
    client_id: String,
    cursor: Option<StoredCursor>,
    head: u64,
    scope: Vec<String>,
    published: LiveState,
}

/// One durable write: state changes (or a whole new state) with the metadata that
/// must move with them.
struct WritePlan {
    content: Content,
    cursor: Option<StoredCursor>,
    head: u64,
    scope: Vec<String>,
}

/// What a write does to the state.
enum Content {
    /// Changes applied to the current replica.
    Changes(Vec<Change>),
    /// A whole new replica, in place of the current one (a snapshot).
    Replace(Box<ReplicatedState>),
}

impl ReplicaStore {
    /// Opens (or creates) `<data_dir>/lite.redb` and loads it into memory.
    pub async fn open(data_dir: &Path) -> Result<ReplicaStore, ReplicaError> {
        let path = data_dir.join(REPLICA_FILE);
        let loaded = tokio::task::spawn_blocking(move || -> Result<_, ReplicaError> {
            use redb::ReadableDatabase as _;
            let db = open_database(&path)?;
            let (client_id, cursor, head, scope) = {
                let txn = db.begin_read().map_err(redb::Error::from)?;
                let meta = txn.open_table(META).map_err(redb::Error::from)?;
                (
                    get_value::<String, _>(&meta, CLIENT_ID)?.unwrap_or_default(),
                    get_value::<StoredCursor, _>(&meta, CURSOR)?,
                    get_value::<u64, _>(&meta, HEAD)?.unwrap_or(0),
                    get_value::<Vec<String>, _>(&meta, SCOPE)?.unwrap_or_default(),
                )
            };
            let zones = outpost_replica::load(&db.begin_read().map_err(redb::Error::from)?)?;
            Ok((db, client_id, cursor, head, scope, zones))
        })
        .await
        .map_err(ReplicaError::Task)??;
        let (db, client_id, cursor, head, scope, zones) = loaded;
        let state = outpost_replica::Published::new();
        let applied = cursor.as_ref().map_or(0, |cursor| cursor.index);
        state.publish(applied, zones, Rebuild::Whole);
        Ok(ReplicaStore {
            db: Arc::new(db),
            client_id,
            cursor,
            head,
            scope,
            published: LiveState {
                state,
                plugins: Arc::new(PluginWatch::default()),
            },
        })
    }

    pub fn published(&self) -> LiveState {
        self.published.clone()
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    pub fn cursor(&self) -> Option<&StoredCursor> {
        self.cursor.as_ref()
    }

    /// The latest head persisted (as of the last commit or `Welcome`).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The zones of the last scope (a `Welcome`'s, or an export's), sorted.
    pub fn scope(&self) -> &[String] {
        &self.scope
    }

    /// ReplicatedState and records in the replica.
    pub fn counts(&self) -> (usize, usize) {
        counts(&self.published.state.load().zones)
    }

    /// Checks a resumed session's scope against the replica. When it is covered, drops
    /// the zones that left the scope and records the scope and `head`, durably.
    pub async fn resume(
        &mut self,
        scope: &[String],
        head: u64,
    ) -> Result<ScopeCheck, ReplicaError> {
        let scope = normalize_scope(scope)?;
        if scope.iter().any(|zone| !self.scope.contains(zone)) {
            return Ok(ScopeCheck::Grew);
        }
        let gone: Vec<Change> = self
            .published
            .state
            .load()
            .zones
            .iter()
            .map(|zone| zone.origin().to_ascii())
            .filter(|origin| !scope.contains(origin))
            .map(|origin| Change::ZoneDeleted { origin })
            .collect();
        self.commit(WritePlan {
            content: Content::Changes(gone),
            cursor: self.cursor.clone(),
            head,
            scope,
        })
        .await?;
        Ok(ScopeCheck::Covered)
    }

    /// Applies a `Changes` frame and advances the cursor to its `up_to`, in one
    /// transaction. Entries at or below the cursor were applied before and are
    /// skipped. Returns the new cursor index.
    pub async fn apply_changes(
        &mut self,
        cluster_id: &str,
        frame: Changes,
    ) -> Result<u64, ReplicaError> {
        let base = self
            .cursor
            .as_ref()
            .filter(|cursor| cursor.cluster_id == cluster_id)
            .map(|cursor| cursor.index);
        let mut changes = Vec::new();
        for entry in frame.entries {
            if base.is_some_and(|base| entry.index <= base) {
                continue;
            }
            for change in &entry.changes {
                changes.extend(from_wire(change)?);
            }
        }
        check_scope(changes.iter().filter_map(Change::zone), &self.scope)?;
        let index = frame.up_to.max(base.unwrap_or(0));
        self.commit(WritePlan {
            content: Content::Changes(changes),
            cursor: Some(StoredCursor {
                cluster_id: cluster_id.to_string(),
                index,
            }),
            head: self.head.max(index),
            scope: self.scope.clone(),
        })
        .await?;
        Ok(index)
    }

    /// Replaces the whole replica with a received snapshot, with the cursor at its
    /// `as_of`, the scope and the head, in one transaction.
    pub async fn install_snapshot(
        &mut self,
        cluster_id: &str,
        snapshot: StagedSnapshot,
        scope: &[String],
        head: u64,
    ) -> Result<(), ReplicaError> {
        let scope = normalize_scope(scope)?;
        let staged = snapshot.staged;
        check_scope(staged.zones_named.iter().map(String::as_str), &scope)?;
        if let Some((change, reason)) = staged.refused {
            return Err(ReplicaError::Inconsistent { change, reason });
        }
        self.commit(WritePlan {
            content: Content::Replace(Box::new(staged.zones)),
            cursor: Some(StoredCursor {
                cluster_id: cluster_id.to_string(),
                index: snapshot.as_of,
            }),
            head: head.max(snapshot.as_of),
            scope,
        })
        .await
    }

    /// Drops the cursor (keeping the data, which still answers): the next session
    /// asks for a snapshot.
    pub async fn forget_cursor(&mut self) -> Result<(), ReplicaError> {
        self.commit(WritePlan {
            content: Content::Changes(Vec::new()),
            cursor: None,
            head: self.head,
            scope: self.scope.clone(),
        })
        .await
    }

    /// Applies `plan` (its changes to a copy of the model, refusing those that do not
    /// apply, or its whole new model), builds the next query index, commits everything
    /// durably, then publishes. The CPU and disk work run on a blocking thread.
    async fn commit(&mut self, plan: WritePlan) -> Result<(), ReplicaError> {
        let db = Arc::clone(&self.db);
        let state = self.published.state.clone();
        let plan = tokio::task::spawn_blocking(move || {
            let mut plan = plan;
            let applied = plan.cursor.as_ref().map_or(0, |cursor| cursor.index);
            if let Content::Replace(zones) = &mut plan.content {
                let zones = std::mem::take(&mut **zones);
                write_plan(&db, &plan, Some(&zones))?;
                state.publish(applied, zones, Rebuild::Whole);
            } else if let Content::Changes(changes) = &plan.content {
                let mut zones = ReplicatedState::clone(&state.load().zones);
                for change in changes {
                    zones
                        .apply_change(change)
                        .map_err(|e| ReplicaError::Inconsistent {
                            change: describe(change),
                            reason: e,
                        })?;
                }
                write_plan(&db, &plan, None)?;
                state.publish(applied, zones, Rebuild::Changes(changes));
            }
            Ok::<_, ReplicaError>(plan)
        })
        .await
        .map_err(ReplicaError::Task)??;
        match &plan.content {
            Content::Replace(_) => self.published.plugins.replaced(),
            Content::Changes(changes) => self.published.plugins.applied(changes),
        }
        self.cursor = plan.cursor;
        self.head = plan.head;
        self.scope = plan.scope;
        Ok(())
    }
}

/// The durable transaction of [`ReplicaStore::commit`]: the plan's changes, or `whole`
/// (the replica that replaces everything), with the metadata that moves with them.
fn write_plan(
    db: &Database,
    plan: &WritePlan,
    whole: Option<&ReplicatedState>,
) -> Result<(), ReplicaError> {
    let txn = begin_durable_write(db)?;
    {
        let mut tables = StateTables::open(&txn)?;
        match (&plan.content, whole) {
            (_, Some(zones)) => {
                tables.clear()?;
                tables.write_all(zones)?;
            }
            (Content::Changes(changes), None) => {
                for change in changes {
                    tables.apply(change)?;
                }
            }
            (Content::Replace(_), None) => {}
        }
        let mut meta = txn.open_table(META).map_err(redb::Error::from)?;
        match &plan.cursor {
            Some(cursor) => put_value(&mut meta, CURSOR, cursor)?,
            None => {
                meta.remove(CURSOR).map_err(redb::Error::from)?;
            }
        }
        put_value(&mut meta, HEAD, &plan.head)?;
        put_value(&mut meta, SCOPE, &plan.scope)?;
    }
    txn.commit().map_err(redb::Error::from)?;
    Ok(())
}

/// The zones of changes (or of a snapshot) must all be in `scope`.
fn check_scope<'a>(
    zones: impl Iterator<Item = &'a str>,
    scope: &[String],
) -> Result<(), ReplicaError> {
    for zone in zones {
        let zone = parse_name(zone).map(|name| name.to_ascii()).map_err(|e| {
            ReplicaError::Inconsistent {
                change: format!("a change for zone {zone:?}"),
                reason: e,
            }
        })?;
        if !scope.contains(&zone) {
            return Err(ReplicaError::OutOfScope {
                zone,
                scope: scope.to_vec(),
            });
        }
    }
    Ok(())
}

/// ReplicatedState and records in `zones`.
pub fn counts(zones: &ReplicatedState) -> (usize, usize) {
    (
        zones.len(),
        zones.iter().map(|zone| zone.record_count()).sum(),
    )
}

/// Origins as the replica keys them: absolute, lowercase, sorted, unique.
fn normalize_scope(scope: &[String]) -> Result<Vec<String>, ReplicaError> {
    let mut normalized = scope
        .iter()
        .map(|zone| {
            parse_name(zone)
                .map(|name| name.to_ascii())
                .map_err(|e| ReplicaError::Inconsistent {
                    change: format!("a scope naming {zone:?}"),
                    reason: e,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    normalized.sort();
    normalized.dedup();
    Ok(normalized)
}

/// A change for messages: no record data.
fn describe(change: &Change) -> String {
    to_wire(change).map_or_else(|| "a non-zone change".to_string(), |wire| wire.describe())
}
