//! The store checked three ways: openraft's own storage suite against the redb log store and
//! state machine; snapshots built on one state machine and installed on another; and the
//! public `Store` across restarts.

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream;
use hickory_proto::rr::Name;
use openraft::entry::RaftEntry;
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine};
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::type_config::TypeConfigExt;
use openraft::vote::RaftLeaderIdExt;
use openraft::{EntryPayload, RaftTypeConfig, StorageError};
use outpost_core::state::{Change, Command, CommandError};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use redb::Database;
use tempfile::TempDir;

use super::types::{Entry, LogId, Proposal, TypeConfig};
use super::*;

mod chaos;
mod cluster;
mod harness;
mod history;
mod over_iroh;

const SITE: &str = "site.internal.";

/// Wire bytes of the records in a master-file fragment of zone `origin`.
fn records(origin: &str, zone_file: &str) -> Vec<u8> {
    let origin = Name::from_ascii(origin).expect("origin is a name");
    let records = parse_zone(zone_file, &origin, 300).expect("zone file parses");
    encode_records(&records).expect("records encode")
}

fn create_zone(origin: &str) -> Command {
    Command::CreateZone {
        origin: origin.to_string(),
        records: records(
            origin,
            "@ SOA ns1 hostmaster 1 7200 3600 1209600 300\nwww A 10.0.0.1\n",
        ),
    }
}

fn add_host(number: u8) -> Command {
    Command::AddRecords {
        records: records(SITE, &format!("host{number} A 10.0.1.{number}\n")),
    }
}

fn log_id(index: u64) -> LogId {
    type LeaderId = <TypeConfig as RaftTypeConfig>::LeaderId;
    LogId::new(LeaderId::new_committed(1, FIRST_NODE_ID), index)
}

fn normal_entry(index: u64, command: Command) -> Entry {
    Entry::new(log_id(index), EntryPayload::Normal(Proposal(command)))
}

/// The log store and state machine over a fresh database in a temporary directory.
async fn open_parts(dir: &Path) -> std::io::Result<(Arc<Database>, LogStore, StateMachine)> {
    let opened = tables::open_database(&dir.join(DB_FILE_NAME), FIRST_NODE_ID, None)
        .map_err(std::io::Error::other)?;
    let db = Arc::new(opened.db);
    let state_machine = StateMachine::open(Arc::clone(&db), None, DEFAULT_HISTORY_ENTRIES).await?;
    Ok((Arc::clone(&db), LogStore::new(db), state_machine))
}

/// Applies entries the way openraft does after commit, with no client waiting.
async fn apply(state_machine: &mut StateMachine, entries: Vec<Entry>) -> std::io::Result<()> {
    let entries = entries.into_iter().map(|entry| Ok((entry, None)));
    state_machine.apply(stream::iter(entries)).await
}

struct RedbStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for RedbStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<TypeConfig>> {
        let error = |e: std::io::Error| StorageError::write(TypeConfig::err_from_error(&e));
        let dir = tempfile::tempdir().map_err(error)?;
        let (_, log_store, state_machine) = open_parts(dir.path()).await.map_err(error)?;
        Ok((dir, log_store, state_machine))
    }
}

#[tokio::test]
async fn passes_the_openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RedbStoreBuilder).await {
        panic!("openraft storage suite: {e}");
    }
}

#[tokio::test]
async fn installing_a_snapshot_replaces_the_state_with_the_built_one() {
    let built_dir = tempfile::tempdir().expect("tempdir");
    let (_, _, mut source) = open_parts(built_dir.path()).await.expect("open source");
    apply(
        &mut source,
        vec![
            normal_entry(1, create_zone(SITE)),
            normal_entry(2, add_host(7)),
            normal_entry(3, create_zone("lab.internal.")),
            // The DNS cookie secrets travel in the snapshot too (the state, not the zones).
            normal_entry(
                4,
                Command::RotateCookieSecret {
                    secret: [5; 16],
                    now_unix: 1,
                    replaces: None,
                },
            ),
        ],
    )
    .await
    .expect("apply to source");
    let snapshot = source
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .expect("build snapshot");
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(4)));

    let installed_dir = tempfile::tempdir().expect("tempdir");
    let (db, _, mut target) = open_parts(installed_dir.path()).await.expect("open target");
    // State the snapshot must replace, not merge with.
    apply(
        &mut target,
        vec![normal_entry(1, create_zone("old.internal."))],
    )
    .await
    .expect("apply to target");
    target
        .install_snapshot(&snapshot.meta, snapshot.snapshot.clone())
        .await
        .expect("install snapshot");

    let expected = source.published().view.load().zones.to_changes();
    assert_eq!(target.published().view.load().zones.to_changes(), expected);
    assert_eq!(target.published().zone_set.load().len(), 2);
    let secrets = target.published().cookie_secrets.load_full();
    assert_eq!(secrets.map(|secrets| secrets.current), Some([5; 16]));
    assert_eq!(
        target.applied_state().await.expect("applied state"),
        source.applied_state().await.expect("applied state")
    );
    let current = target.get_current_snapshot().await.expect("read snapshot");
    assert_eq!(current.map(|s| s.meta), Some(snapshot.meta.clone()));

    // The install reached redb, not only memory.
    drop(target);
    let reloaded = StateMachine::open(db, None, DEFAULT_HISTORY_ENTRIES)
        .await
        .expect("reload target");
    assert_eq!(
        reloaded.published().view.load().zones.to_changes(),
        expected
    );
    assert!(reloaded.published().cookie_secrets.load().is_some());
}

#[tokio::test]
async fn a_snapshot_of_another_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, mut state_machine) = open_parts(dir.path()).await.expect("open");
    let meta = types::SnapshotMeta {
        last_log_id: Some(log_id(9)),
        ..Default::default()
    };
    let data = tables::encode(&(2u32, Vec::<Change>::new())).expect("encode");
    let err = state_machine
        .install_snapshot(&meta, data)
        .await
        .expect_err("format 2 is refused");
    assert!(err.to_string().contains("snapshot format 2"), "{err}");
    let (applied, _) = state_machine.applied_state().await.expect("applied state");
    assert_eq!(applied, None);
}

#[tokio::test]
async fn writes_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    let status = store.status();
    assert_eq!(
        (status.node_id, status.state),
        (FIRST_NODE_ID, NodeState::Leader)
    );

    let created = store.write(create_zone(SITE)).await.expect("create zone");
    assert!(created.changes.contains(&Change::ZonePut {
        origin: SITE.to_string()
    }));
    let added = store.write(add_host(7)).await.expect("add host");
    assert_eq!(added.index, created.index + 1);
    assert_eq!(store.status().applied_index, Some(added.index));
    assert_eq!(store.zone_set().load().len(), 1);
    let before = store.zones().to_changes();
    store.shutdown().await.expect("shutdown");

    let store = Store::open(dir.path()).await.expect("reopen");
    assert_eq!(store.zones().to_changes(), before);
    assert_eq!(store.zone_set().load().len(), 1);
    let status = store.status();
    assert_eq!(status.state, NodeState::Leader);
    assert_eq!(status.applied_index, Some(added.index));
    let next = store.write(add_host(8)).await.expect("write after restart");
    assert!(next.index > added.index);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_refused_write_changes_nothing_but_is_applied() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    let created = store.write(create_zone(SITE)).await.expect("create zone");
    let before = store.zones();

    let err = store
        .write(create_zone(SITE))
        .await
        .expect_err("a second create is refused");
    assert!(
        matches!(err, WriteError::Rejected(CommandError::ZoneExists { .. })),
        "{err}"
    );
    assert_eq!(*store.zones(), *before);
    assert_eq!(store.status().applied_index, Some(created.index + 1));
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_second_open_of_the_same_data_dir_names_the_likely_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    let Err(err) = Store::open(dir.path()).await else {
        panic!("a second open of the same data dir succeeded");
    };
    let message = err.to_string();
    assert!(message.contains(DB_FILE_NAME), "{message}");
    assert!(
        message.contains("is another outpost running with this data dir?"),
        "{message}"
    );
    store.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_file_of_another_storage_format_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(DB_FILE_NAME);
    {
        let opened = tables::open_database(&path, FIRST_NODE_ID, None).expect("create");
        let db = opened.db;
        assert_eq!(
            opened.format,
            tables::FORMAT_VERSION,
            "a new file gets the current format"
        );
        let txn = db.begin_write().expect("write");
        {
            let mut meta = txn.open_table(tables::LOG_META).expect("table");
            tables::put_value(&mut meta, tables::FORMAT, &(tables::FORMAT_VERSION + 1))
                .expect("put");
        }
        txn.commit().expect("commit");
    }
    let Err(err) = Store::open(dir.path()).await else {
        panic!("a file of a newer format was opened");
    };
    let message = err.to_string();
    assert!(
        message.contains(&format!("storage format {}", tables::FORMAT_VERSION + 1)),
        "{message}"
    );
}

#[tokio::test]
async fn the_log_is_snapshotted_and_purged_and_still_reopens() {
    let tuning = Tuning {
        snapshot_every_entries: 10,
        log_entries_kept_after_snapshot: 2,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_tuned(dir.path(), tuning, StoreOptions::default())
        .await
        .expect("open");
    store.write(create_zone(SITE)).await.expect("create zone");
    for number in 1..=30 {
        store.write(add_host(number)).await.expect("add host");
    }
    store
        .inner
        .raft
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.purged.is_some(), "log purged after a snapshot")
        .await
        .expect("purge");
    let status = store.status();
    assert!(status.snapshot_index.is_some(), "{status:?}");
    let before = store.zones().to_changes();
    store.shutdown().await.expect("shutdown");

    let store = Store::open_tuned(dir.path(), tuning, StoreOptions::default())
        .await
        .expect("reopen");
    assert_eq!(store.zones().to_changes(), before);
    store
        .write(add_host(31))
        .await
        .expect("write after restart");
    store.shutdown().await.expect("shutdown");
}

/// Collects what the store reports after each change of state.
#[derive(Default)]
pub(super) struct Recorder(pub(super) std::sync::Mutex<Vec<StateEvent>>);

impl CommitObserver for Recorder {
    fn observe(&self, event: &StateEvent) {
        self.0.lock().expect("lock").push(event.clone());
    }
}

impl Recorder {
    /// The applied batches, in the order they were told.
    fn batches(&self) -> Vec<Arc<CommittedBatch>> {
        let events = self.0.lock().expect("lock");
        events
            .iter()
            .filter_map(|event| match event {
                StateEvent::Applied(batch) => Some(Arc::clone(batch)),
                _ => None,
            })
            .collect()
    }

    /// Checks that the events tell the whole story: each one starts right where the one
    /// before it left the state, except a snapshot install, which may jump ahead.
    pub(super) fn assert_unbroken(&self) {
        let events = self.0.lock().expect("lock");
        let mut at = None;
        for event in events.iter() {
            match (at, event) {
                (None, StateEvent::Loaded { .. }) => {}
                (None, other) => panic!("the first event is not the load: {other:?}"),
                (Some(at), StateEvent::Applied(batch)) => assert_eq!(
                    batch.first,
                    at + 1,
                    "a batch that does not follow index {at}: {events:?}"
                ),
                (Some(at), StateEvent::Replaced { as_of }) => {
                    assert!(*as_of >= at, "a snapshot behind the state: {events:?}");
                }
                (Some(_), StateEvent::Loaded { .. }) => panic!("loaded twice: {events:?}"),
            }
            at = Some(event.as_of());
        }
    }
}

#[tokio::test]
async fn applied_batches_reach_the_observer_and_the_history_in_log_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let recorder = Arc::new(Recorder::default());
    let options = StoreOptions {
        history_entries: 3,
        observer: Some(recorder.clone()),
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).await.expect("open");
    let created = store.write(create_zone(SITE)).await.expect("create");
    let mut indexes = vec![created.index];
    for number in 1..=4 {
        indexes.push(store.write(add_host(number)).await.expect("add").index);
    }
    let last = *indexes.last().expect("writes");
    assert_eq!(
        store.view().applied,
        last,
        "the view carries the applied index"
    );

    let observed: Vec<u64> = recorder
        .batches()
        .iter()
        .flat_map(|batch| batch.entries.iter().map(|entry| entry.index))
        .collect();
    assert_eq!(observed, indexes, "every change, once, in log order");
    recorder.assert_unbroken();
    assert_eq!(
        recorder.batches().last().map(|batch| batch.up_to),
        Some(last),
        "the last batch ends at the applied index"
    );

    // The window keeps the last 3 indexes: resuming after the second-to-last write works,
    // resuming from before the window does not.
    let recent = store
        .history(last - 2, last)
        .await
        .expect("read")
        .expect("in window");
    let recent: Vec<u64> = recent.iter().map(|entry| entry.index).collect();
    assert_eq!(recent, [last - 1, last]);
    assert!(
        store
            .history(created.index, last)
            .await
            .expect("read")
            .is_none()
    );
    store.shutdown().await.expect("shutdown");
}
