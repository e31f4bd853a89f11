//! The zone state machine in redb (`openraft::RaftStateMachine` and `RaftSnapshotBuilder`),
//! and the in-memory views published after each applied batch.
//!
//! **Invariant:** only committed entries reach [`StateMachine::apply`] (openraft calls it after
//! commit; the log store never applies). A batch is applied in one durable write transaction
//! (state changes, last applied id and membership together), then the in-memory [`Zones`] is
//! swapped, then the next [`ZoneSet`] is published, then clients are answered.
//!
//! **Invariant:** a command that [`Zones::apply`] refuses changes nothing, but its entry is
//! still applied: the applied id advances and the client receives the refusal.
//!
//! A snapshot is the whole state as a list of `Change`s (a `ZonePut` per zone, then an
//! `RRsetPut` per RRset) read in one read transaction; the last one built or installed is kept
//! in `sm_meta` so it can be sent to a follower as is.

use std::io;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftSnapshotBuilder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend};
use outpost_core::answer::ZoneSet;
use outpost_core::zones::{Change, Zones};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::tables::{
    HISTORY, HISTORY_FLOOR, JOIN_INVITES, LAST_APPLIED, LAST_MEMBERSHIP, LITE_TOKENS, PLUGINS,
    RRSETS, SM_META, SNAPSHOT, ZONES, begin_durable_write, blocking, decode, encode, get_value,
    io_error, put_value,
};
use super::types::{LogId, Snapshot, SnapshotMeta, StoredMembership, TypeConfig, WriteResponse};
use super::{CommitObserver, CommittedBatch, CommittedEntry, View};

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

/// The in-memory views of the state, swapped after each applied batch; readers never lock.
#[derive(Clone)]
pub(crate) struct Published {
    /// The authoritative model with its applied index, for admin reads, Lite snapshots
    /// and as the base of the next apply.
    pub(crate) view: Arc<ArcSwap<View>>,
    /// The query index the DNS path answers from.
    pub(crate) zone_set: Arc<ArcSwap<ZoneSet>>,
}

pub(crate) struct StateMachine {
    db: Arc<Database>,
    published: Published,
    /// Told of every applied batch, after it is on disk and published.
    observer: Option<Arc<dyn CommitObserver>>,
    /// How many log indexes of change history are kept for Lite sessions to resume.
    history_entries: u64,
}

impl StateMachine {
    /// Loads the state tables into a [`Zones`] and publishes its first [`ZoneSet`].
    pub(crate) async fn open(
        db: Arc<Database>,
        observer: Option<Arc<dyn CommitObserver>>,
        history_entries: u64,
    ) -> io::Result<StateMachine> {
        let (zones, applied) = blocking(&db, |db| {
            let txn = db.begin_read().map_err(io_error)?;
            let mut zones = Zones::default();
            for change in read_state(&txn)? {
                zones.apply_change(&change).map_err(|e| {
                    invalid_data(format!("stored state does not load ({change:?}): {e}"))
                })?;
            }
            let meta = txn.open_table(SM_META).map_err(io_error)?;
            let applied: Option<LogId> = get_value(&meta, LAST_APPLIED)?;
            Ok((zones, applied.map_or(0, |id| id.index)))
        })
        .await?;
        let zone_set = ZoneSet::build(&zones);
        let view = View {
            applied,
            zones: Arc::new(zones),
        };
        Ok(StateMachine {
            db,
            published: Published {
                view: Arc::new(ArcSwap::from_pointee(view)),
                zone_set: Arc::new(ArcSwap::from_pointee(zone_set)),
            },
            observer,
            history_entries,
        })
    }

    pub(crate) fn published(&self) -> Published {
        self.published.clone()
    }

    /// Replaces the in-memory views after the state on disk changed, then tells the
    /// observer. **Invariant:** the view is swapped before the observer hears of the
    /// batch, so a Lite session that registers and then reads the view misses nothing.
    fn publish(&self, zones: Zones, applied: u64, history: Vec<CommittedEntry>) {
        let changes: Vec<Change> = history
            .iter()
            .flat_map(|entry| entry.changes.iter().cloned())
            .collect();
        if !changes.is_empty() {
            let previous = self.published.zone_set.load();
            let zone_set = ZoneSet::rebuild(&zones, &previous, &changes);
            self.published.zone_set.store(Arc::new(zone_set));
        }
        self.published.view.store(Arc::new(View {
            applied,
            zones: Arc::new(zones),
        }));
        if let Some(observer) = &self.observer {
            observer.committed(Arc::new(CommittedBatch {
                up_to: applied,
                entries: history,
            }));
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

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        // Commands run against a copy (cheap: the model shares each zone behind an `Arc`), so a
        // failed write transaction leaves memory as it was.
        let mut zones = Zones::clone(&self.published.view.load().zones);
        let mut history = Vec::new();
        let mut last_applied = None;
        let mut last_membership = None;
        let mut replies = Vec::new();

        while let Some((entry, responder)) = entries.try_next().await? {
            let response = match entry.payload {
                EntryPayload::Blank => Ok(Vec::new()),
                EntryPayload::Normal(proposal) => {
                    let result = zones.apply(&proposal.0);
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
        let Some(last_applied) = last_applied else {
            return Ok(());
        };

        tracing::debug!(
            last_applied = last_applied.index,
            entries_with_changes = history.len(),
            "applying batch"
        );
        let batch = AppliedBatch {
            history,
            last_applied,
            last_membership,
            history_entries: self.history_entries,
        };
        let batch = blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            for entry in &batch.history {
                write_changes(&txn, &entry.changes)?;
            }
            write_history(
                &txn,
                &batch.history,
                batch.last_applied.index,
                batch.history_entries,
            )?;
            {
                let mut meta = txn.open_table(SM_META).map_err(io_error)?;
                put_value(&mut meta, LAST_APPLIED, &batch.last_applied)?;
                if let Some(membership) = &batch.last_membership {
                    put_value(&mut meta, LAST_MEMBERSHIP, membership)?;
                }
            }
            txn.commit().map_err(io_error)?;
            Ok(batch)
        })
        .await?;

        self.publish(zones, batch.last_applied.index, batch.history);
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
        let mut zones = Zones::default();
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
        blocking(&self.db, move |db| {
            let txn = begin_durable_write(db)?;
            {
                let mut zones = txn.open_table(ZONES).map_err(io_error)?;
                zones.retain(|_, _| false).map_err(io_error)?;
                let mut rrsets = txn.open_table(RRSETS).map_err(io_error)?;
                rrsets.retain(|_, _| false).map_err(io_error)?;
                let mut tokens = txn.open_table(LITE_TOKENS).map_err(io_error)?;
                tokens.retain(|_, _| false).map_err(io_error)?;
                let mut plugins = txn.open_table(PLUGINS).map_err(io_error)?;
                plugins.retain(|_, _| false).map_err(io_error)?;
                let mut invites = txn.open_table(JOIN_INVITES).map_err(io_error)?;
                invites.retain(|_, _| false).map_err(io_error)?;
                // The history no longer leads to this state: Lite sessions behind the
                // snapshot take a snapshot themselves.
                let mut history = txn.open_table(HISTORY).map_err(io_error)?;
                history.retain(|_, _| false).map_err(io_error)?;
            }
            write_changes(&txn, &body.changes)?;
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
            txn.commit().map_err(io_error)
        })
        .await?;

        let zone_set = ZoneSet::build(&zones);
        self.published.zone_set.store(Arc::new(zone_set));
        self.published.view.store(Arc::new(View {
            applied: meta.last_log_id.map_or(0, |id| id.index),
            zones: Arc::new(zones),
        }));
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
                let body = SnapshotBody {
                    format: SNAPSHOT_FORMAT,
                    changes: read_state(&txn)?,
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

/// The state tables as changes that rebuild them: a `ZonePut` per zone, the Lite tokens, the
/// plugins, the join invites, then an `RRsetPut` per RRset.
fn read_state(txn: &ReadTransaction) -> io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    let zones = txn.open_table(ZONES).map_err(io_error)?;
    for item in zones.iter().map_err(io_error)? {
        let (origin, _) = item.map_err(io_error)?;
        changes.push(Change::ZonePut {
            origin: origin.value().to_owned(),
        });
    }
    let tokens = txn.open_table(LITE_TOKENS).map_err(io_error)?;
    for item in tokens.iter().map_err(io_error)? {
        let (_, token) = item.map_err(io_error)?;
        changes.push(Change::LiteTokenPut {
            token: decode(token.value())?,
        });
    }
    let plugins = txn.open_table(PLUGINS).map_err(io_error)?;
    for item in plugins.iter().map_err(io_error)? {
        let (_, definition) = item.map_err(io_error)?;
        changes.push(Change::PluginPut {
            definition: decode(definition.value())?,
        });
    }
    let invites = txn.open_table(JOIN_INVITES).map_err(io_error)?;
    for item in invites.iter().map_err(io_error)? {
        let (_, invite) = item.map_err(io_error)?;
        changes.push(Change::JoinInvitePut {
            invite: decode(invite.value())?,
        });
    }
    let rrsets = txn.open_table(RRSETS).map_err(io_error)?;
    for item in rrsets.iter().map_err(io_error)? {
        let (key, records) = item.map_err(io_error)?;
        let (zone, owner, rtype) = key.value();
        changes.push(Change::RRsetPut {
            zone: zone.to_owned(),
            owner: owner.to_owned(),
            rtype,
            records: records.value().to_vec(),
        });
    }
    Ok(changes)
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

/// Writes changes, in order, into the state tables.
fn write_changes(txn: &WriteTransaction, changes: &[Change]) -> io::Result<()> {
    let mut zones = txn.open_table(ZONES).map_err(io_error)?;
    let mut rrsets = txn.open_table(RRSETS).map_err(io_error)?;
    let mut tokens = txn.open_table(LITE_TOKENS).map_err(io_error)?;
    let mut plugins = txn.open_table(PLUGINS).map_err(io_error)?;
    let mut invites = txn.open_table(JOIN_INVITES).map_err(io_error)?;
    for change in changes {
        match change {
            Change::ZonePut { origin } => {
                zones.insert(origin.as_str(), ()).map_err(io_error)?;
            }
            Change::ZoneDeleted { origin } => {
                zones.remove(origin.as_str()).map_err(io_error)?;
                // Keys sort by zone first, so the zone's RRsets are one contiguous run.
                let mut doomed = Vec::new();
                for item in rrsets
                    .range::<(&str, &str, u16)>((origin.as_str(), "", 0)..)
                    .map_err(io_error)?
                {
                    let (key, _) = item.map_err(io_error)?;
                    let (zone, owner, rtype) = key.value();
                    if zone != origin {
                        break;
                    }
                    doomed.push((owner.to_owned(), rtype));
                }
                for (owner, rtype) in &doomed {
                    rrsets
                        .remove((origin.as_str(), owner.as_str(), *rtype))
                        .map_err(io_error)?;
                }
            }
            Change::RRsetPut {
                zone,
                owner,
                rtype,
                records,
            } => {
                rrsets
                    .insert((zone.as_str(), owner.as_str(), *rtype), records.as_slice())
                    .map_err(io_error)?;
            }
            Change::RRsetDeleted { zone, owner, rtype } => {
                rrsets
                    .remove((zone.as_str(), owner.as_str(), *rtype))
                    .map_err(io_error)?;
            }
            Change::LiteTokenPut { token } => {
                tokens
                    .insert(token.name.as_str(), encode(token)?.as_slice())
                    .map_err(io_error)?;
            }
            Change::LiteTokenRevoked { name } => {
                tokens.remove(name.as_str()).map_err(io_error)?;
            }
            Change::PluginPut { definition } => {
                plugins
                    .insert(definition.name.as_str(), encode(definition)?.as_slice())
                    .map_err(io_error)?;
            }
            Change::PluginDeleted { name } => {
                plugins.remove(name.as_str()).map_err(io_error)?;
            }
            Change::JoinInvitePut { invite } => {
                invites
                    .insert(invite.secret_sha256.as_slice(), encode(invite)?.as_slice())
                    .map_err(io_error)?;
            }
            Change::JoinInviteRemoved { secret_sha256 } => {
                invites.remove(secret_sha256.as_slice()).map_err(io_error)?;
            }
        }
    }
    Ok(())
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}
