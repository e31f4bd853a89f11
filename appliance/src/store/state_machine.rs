//! The zone state machine in redb (`openraft::RaftStateMachine` and `RaftSnapshotBuilder`),
//! and the in-memory views published after each applied batch.
//!
//! **Invariant:** only committed entries reach [`StateMachine::apply`] (openraft calls it after
//! commit; the log store never applies). A batch is applied in one durable write transaction
//! (state changes, their history, last applied id and membership together), then published,
//! then clients are answered.
//!
//! **Invariant:** every change of the state (the load at start, an applied batch, an installed
//! snapshot) goes through [`StateMachine::publish`], the one place that swaps the views and
//! tells the observers, so nothing downstream (the Lite hub, the plugin watcher) can miss a
//! step of the state: a snapshot install reaches them as [`StateEvent::Replaced`].
//!
//! **Invariant:** a command that [`ReplicatedState::apply`] refuses changes nothing, but its entry is
//! still applied: the applied id advances and the client receives the refusal.
//!
//! [`StateMachine::apply`] is three steps: `apply_entries` runs each entry's command on a copy
//! of the published model, `AppliedBatch::write` makes the batch durable, then `publish` and
//! the answers.
//!
//! A snapshot is the whole state as a list of `Change`s (`outpost_replica::read_state`: a
//! `ZonePut` per zone, the tokens, plugins, invites and idempotency keys, then an `RRsetPut`
//! per RRset) read in one read transaction; the last one built or installed is kept in
//! `sm_meta` so it can be sent to a follower as is.

use std::io;
use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{ApplyResponder, EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use outpost_core::state::{Change, ReplicatedState};
use outpost_replica::{Published, Rebuild, StateError, StateTables};
use redb::{Database, ReadableDatabase, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::events::{CommitObserver, CommittedBatch, CommittedEntry, StateEvent};
use super::tables::{
    HISTORY, HISTORY_FLOOR, LAST_APPLIED, LAST_MEMBERSHIP, SM_META, SNAPSHOT, begin_durable_write,
    blocking, decode, encode, get_value, io_error, put_value,
};
use super::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, WriteResponse};

/// Version of the snapshot data encoding ([`SnapshotBody`]). A node refuses a snapshot of
/// another version rather than misreading it.
const SNAPSHOT_FORMAT: u32 = 1;

/// The data of a snapshot: the full state as changes that rebuild it from empty.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    format: u32,
    changes: Vec<Change>,
}

/// A snapshot as kept in `sm_meta`, so that the one openraft last saw is served unchanged.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

/// This store's Raft node: openraft over the redb log store and this state machine. Clones
/// share the node.
pub(crate) type Raft = openraft::Raft<TypeConfig, StateMachine>;

pub(crate) struct StateMachine {
    db: Arc<Database>,
    published: Published,
    /// Told of every applied batch, after it is on disk and published.
    observer: Option<Arc<dyn CommitObserver>>,
    /// How many log indexes of change history are kept for Lite sessions to resume.
    history_entries: u64,
}

impl StateMachine {
    /// Loads the state tables into a [`ReplicatedState`] and publishes its first [`ZoneSet`].
    pub(crate) async fn open(
        db: Arc<Database>,
        observer: Option<Arc<dyn CommitObserver>>,
        history_entries: u64,
    ) -> io::Result<StateMachine> {
        let (zones, applied) = blocking(&db, |db| {
            let txn = db.begin_read().map_err(io_error)?;
            let zones = outpost_replica::load(&txn).map_err(state_error)?;
            let meta = txn.open_table(SM_META).map_err(io_error)?;
            let applied: Option<LogId> = get_value(&meta, LAST_APPLIED)?;
            Ok((zones, applied.map_or(0, |id| id.index)))
        })
        .await?;
        let state_machine = StateMachine {
            db,
            published: Published::new(),
            observer,
            history_entries,
        };
        state_machine.publish(zones, StateEvent::Loaded { as_of: applied });
        Ok(state_machine)
    }

    pub(crate) fn published(&self) -> Published {
        self.published.clone()
    }

    /// Makes a new state visible, after it is on disk: the query index (rebuilt for the
    /// zones a batch touched, built whole after a load or a snapshot), then the view, then
    /// the observers. **Invariant:** the view is swapped before the observers hear of the
    /// event, so a Lite session that registers and then reads the view misses nothing.
    fn publish(&self, zones: ReplicatedState, event: StateEvent) {
        match &event {
            StateEvent::Applied(batch) => {
                let changes: Vec<Change> = batch
                    .entries
                    .iter()
                    .flat_map(|entry| entry.changes.iter().cloned())
                    .collect();
                self.published
                    .publish(event.as_of(), zones, Rebuild::Changes(&changes));
            }
            StateEvent::Loaded { .. } | StateEvent::Replaced { .. } => {
                self.published.publish(event.as_of(), zones, Rebuild::Whole);
            }
        }
        if let Some(observer) = &self.observer {
            observer.observe(&event);
        }
    }
}

/// What one applied batch writes to disk.
struct AppliedBatch {
    history: Vec<CommittedEntry>,
    last_applied: LogId,
    last_membership: Option<StoredMembership>,
    history_entries: u64,
}

/// A client's answer, sent once its entry is on disk and published.
type Reply = (ApplyResponder<TypeConfig>, WriteResponse);

/// Applies each committed entry of a batch to `zones` (a copy of the published state), and
/// collects what the batch must write and answer; `None` for an empty batch.
async fn apply_entries<Strm>(
    zones: &mut ReplicatedState,
    mut entries: Strm,
    history_entries: u64,
) -> Result<Option<(AppliedBatch, Vec<Reply>)>, io::Error>
where
    Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin,
{
    let mut history = Vec::new();
    let mut last_applied = None;
    let mut last_membership = None;
    let mut replies = Vec::new();
    while let Some((entry, responder)) = entries.try_next().await? {
        let response = match entry.payload {
            EntryPayload::Blank => Ok(Vec::new()),
            EntryPayload::Normal(proposal) => {
                let result = zones.apply_at(entry.log_id.index, &proposal.0);
                if let Ok(made) = &result
                    && !made.is_empty()
                {
                    history.push(CommittedEntry {
                        index: entry.log_id.index,
                        changes: made.clone(),
                    });
                }
                result
            }
            EntryPayload::Membership(membership) => {
                last_membership = Some(StoredMembership::new(Some(entry.log_id), membership));
                Ok(Vec::new())
            }
        };
        last_applied = Some(entry.log_id);
        if let Some(responder) = responder {
            replies.push((responder, WriteResponse(response)));
        }
    }
    Ok(last_applied.map(|last_applied| {
        let batch = AppliedBatch {
            history,
            last_applied,
            last_membership,
            history_entries,
        };
        (batch, replies)
    }))
}

impl AppliedBatch {
    /// Writes the batch in one durable transaction: its changes to the state tables, its
    /// history, and the last applied id and membership.
    fn write(self, db: &Database) -> io::Result<AppliedBatch> {
        let txn = begin_durable_write(db)?;
        {
            let mut tables = StateTables::open(&txn).map_err(io_error)?;
            for change in self.history.iter().flat_map(|entry| &entry.changes) {
                tables.apply(change).map_err(state_error)?;
            }
        }
        write_history(
            &txn,
            &self.history,
            self.last_applied.index,
            self.history_entries,
        )?;
        {
            let mut meta = txn.open_table(SM_META).map_err(io_error)?;
            put_value(&mut meta, LAST_APPLIED, &self.last_applied)?;
            if let Some(membership) = &self.last_membership {
                put_value(&mut meta, LAST_MEMBERSHIP, membership)?;
            }
        }
        txn.commit().map_err(io_error)?;
        Ok(self)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotData = Vec<u8>;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(io_error)?;
            let meta = txn.open_table(SM_META).map_err(io_error)?;
            let last_applied = get_value(&meta, LAST_APPLIED)?;
            let membership = get_value(&meta, LAST_MEMBERSHIP)?.unwrap_or_default();
            Ok((last_applied, membership))
        })
        .await
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // Commands run against a copy (cheap: the model shares each zone behind an `Arc`), so a
        // failed write transaction leaves memory as it was.
        let (mut zones, before) = {
            let view = self.published.view.load();
            (ReplicatedState::clone(&view.zones), view.applied)
        };
        let Some((batch, replies)) =
            apply_entries(&mut zones, entries, self.history_entries).await?
        else {
            return Ok(());
        };
        tracing::debug!(
            last_applied = batch.last_applied.index,
            entries_with_changes = batch.history.len(),
            "applying batch"
        );
        let batch = blocking(&self.db, move |db| batch.write(db)).await?;

        let applied = StateEvent::Applied(Arc::new(CommittedBatch {
            first: before + 1,
            up_to: batch.last_applied.index,
            entries: batch.history,
        }));
        self.publish(zones, applied);
        for (responder, response) in replies {
            responder.send(response);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: Arc::clone(&self.db),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Vec<u8>,
    ) -> Result<(), io::Error> {
        let body: SnapshotBody = decode(&snapshot)?;
        if body.format != SNAPSHOT_FORMAT {
            return Err(invalid_data(format!(
                "snapshot format {} is not supported (this node reads format {SNAPSHOT_FORMAT})",
                body.format
            )));
        }
        let mut zones = ReplicatedState::default();
        for change in &body.changes {
            zones
                .apply_change(change)
                .map_err(|e| invalid_data(format!("snapshot does not load ({change:?}): {e}")))?;
        }
        tracing::info!(
            last_log_id = ?meta.last_log_id,
            changes = body.changes.len(),
            "installing snapshot"
        );

        let stored = encode(&StoredSnapshot {
            meta: meta.clone(),
            data: snapshot,
        })?;
        let meta = meta.clone();
        let zones = blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            {
                let mut tables = StateTables::open(&txn).map_err(io_error)?;
                tables.clear().map_err(io_error)?;
                tables.write_all(&zones).map_err(state_error)?;
                // The history no longer leads to this state: Lite sessions behind the
                // snapshot take a snapshot themselves.
                let mut history = txn.open_table(HISTORY).map_err(io_error)?;
                history.retain(|_, _| false).map_err(io_error)?;
            }
            {
                let mut sm_meta = txn.open_table(SM_META).map_err(io_error)?;
                match &meta.last_log_id {
                    Some(log_id) => put_value(&mut sm_meta, LAST_APPLIED, log_id)?,
                    None => {
                        sm_meta.remove(LAST_APPLIED).map_err(io_error)?;
                    }
                }
                put_value(&mut sm_meta, LAST_MEMBERSHIP, &meta.last_membership)?;
                let floor = meta.last_log_id.map_or(0, |id| id.index + 1);
                put_value(&mut sm_meta, HISTORY_FLOOR, &floor)?;
                sm_meta
                    .insert(SNAPSHOT, stored.as_slice())
                    .map_err(io_error)?;
            }
            txn.commit().map_err(io_error)?;
            Ok(zones)
        })
        .await?;

        let as_of = meta.last_log_id.map_or(0, |id| id.index);
        self.publish(zones, StateEvent::Replaced { as_of });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        blocking(&self.db, |db| {
            let txn = db.begin_read().map_err(io_error)?;
            let meta = txn.open_table(SM_META).map_err(io_error)?;
            let stored: Option<StoredSnapshot> = get_value(&meta, SNAPSHOT)?;
            Ok(stored.map(|stored| Snapshot {
                meta: stored.meta,
                snapshot: stored.data,
            }))
        })
        .await
    }
}

/// Builds a snapshot from a read transaction, concurrently with applies.
pub(crate) struct SnapshotBuilder {
    db: Arc<Database>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = Vec<u8>;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        blocking(&self.db, |db| {
            let (meta, data) = {
                let txn = db.begin_read().map_err(io_error)?;
                let sm_meta = txn.open_table(SM_META).map_err(io_error)?;
                let meta = SnapshotMeta {
                    last_log_id: get_value(&sm_meta, LAST_APPLIED)?,
                    last_membership: get_value(&sm_meta, LAST_MEMBERSHIP)?.unwrap_or_default(),
                };
                let mut changes = Vec::new();
                outpost_replica::read_state(&txn, |change| {
                    changes.push(change);
                    Ok(())
                })
                .map_err(state_error)?;
                let body = SnapshotBody {
                    format: SNAPSHOT_FORMAT,
                    changes,
                };
                (meta, encode(&body)?)
            };
            tracing::info!(last_log_id = ?meta.last_log_id, bytes = data.len(), "built snapshot");

            let stored = StoredSnapshot { meta, data };
            let txn = begin_durable_write(db)?;
            {
                let mut sm_meta = txn.open_table(SM_META).map_err(io_error)?;
                // An install may have stored a newer snapshot while this one was being built.
                let current: Option<StoredSnapshot> = get_value(&sm_meta, SNAPSHOT)?;
                if current.is_none_or(|current| current.meta.last_log_id <= stored.meta.last_log_id)
                {
                    put_value(&mut sm_meta, SNAPSHOT, &stored)?;
                }
            }
            txn.commit().map_err(io_error)?;
            Ok(Snapshot {
                meta: stored.meta,
                snapshot: stored.data,
            })
        })
        .await
    }
}

/// Records what each entry changed and drops history older than the retention window.
fn write_history(
    txn: &WriteTransaction,
    entries: &[CommittedEntry],
    last_applied: u64,
    keep: u64,
) -> io::Result<()> {
    let mut history = txn.open_table(HISTORY).map_err(io_error)?;
    for entry in entries {
        history
            .insert(entry.index, encode(&entry.changes)?.as_slice())
            .map_err(io_error)?;
    }
    let floor = (last_applied + 1).saturating_sub(keep);
    let mut meta = txn.open_table(SM_META).map_err(io_error)?;
    let current: u64 = get_value(&meta, HISTORY_FLOOR)?.unwrap_or(0);
    if floor > current {
        history.retain_in(..floor, |_, _| false).map_err(io_error)?;
        put_value(&mut meta, HISTORY_FLOOR, &floor)?;
    }
    Ok(())
}

/// The history after `after` up to `up_to`, or `None` when it no longer reaches back
/// that far.
pub(crate) fn read_history(
    db: &Database,
    after: u64,
    up_to: u64,
) -> io::Result<Option<Vec<CommittedEntry>>> {
    let txn = db.begin_read().map_err(io_error)?;
    let meta = txn.open_table(SM_META).map_err(io_error)?;
    let floor: u64 = get_value(&meta, HISTORY_FLOOR)?.unwrap_or(0);
    if after.saturating_add(1) < floor {
        return Ok(None);
    }
    let history = txn.open_table(HISTORY).map_err(io_error)?;
    let mut entries = Vec::new();
    for item in history
        .range(after.saturating_add(1)..=up_to)
        .map_err(io_error)?
    {
        let (index, changes) = item.map_err(io_error)?;
        entries.push(CommittedEntry {
            index: index.value(),
            changes: decode(changes.value())?,
        });
    }
    Ok(Some(entries))
}

/// A state-table failure as the `io::Error` openraft's storage traits return.
fn state_error(error: StateError) -> io::Error {
    match error {
        StateError::Storage(error) => io_error(error),
        StateError::Corrupt(message) => invalid_data(message),
    }
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
