//! The appliance's persistent store: zone writes go through Raft, are applied to a state
//! machine in redb, and each applied batch publishes a new query index.
//!
//! The write path through this module: [`Store::write`] → `Raft::client_write` → the log store
//! appends and fsyncs → commit → `state_machine` applies the batch in one redb transaction →
//! the new [`Zones`] and [`ZoneSet`] are published → the caller gets its [`Written`].
//!
//! # Layout
//! One submodule per Raft trait, plus the shared pieces:
//! - `log_store`: the Raft log and vote (`RaftLogStorage`, `RaftLogReader`).
//! - `state_machine`: the zones state, snapshots and the published views
//!   (`RaftStateMachine`, `RaftSnapshotBuilder`), and the `Raft` node type over them.
//! - `events`: what observers hear after every change of the state ([`StateEvent`],
//!   [`CommitObserver`]).
//! - `network`: Raft RPCs between nodes (`RaftNetworkFactory`) over a [`Transport`] of ours,
//!   their codec (bytes to `rpc` messages and back), the [`RaftRpcHandler`] that serves them,
//!   and the iroh transport ([`RaftEndpoint`], [`IrohTransport`], [`RaftServer`]).
//! - `cluster`: node identity, [`ClusterOptions`] and membership changes.
//! - `forward`: writes taken by a follower, sent to the leader.
//! - `join`: join tickets and the join itself.
//! - `rpc`: the Raft RPC messages and their payloads, the wire between nodes; depends on
//!   nothing above it (`cluster`, `forward`, `join` and `network` use it, never the reverse).
//! - `error`: the errors callers see, and their conversions to and from `rpc`'s wire errors.
//! - `types`: the openraft type configuration and the log entry payloads; the bottom of the
//!   store, depending on nothing in it.
//! - `tables`: the redb tables of `outpost.redb` and their encoding.
//!
//! # Invariants
//! - **Apply only what is committed.** Entries reach the state machine only through
//!   openraft's apply after commit; appending to the log never touches the state.
//! - **One write transaction per applied batch**: state changes and the last applied log id are
//!   committed together, so the state on disk is always the state after some log index.
//! - **An acknowledged write is fsynced**: log appends, votes and applied batches are
//!   `Durability::Immediate` commits, and openraft hears an append is done only after its
//!   commit returns.
//!
//! # Boundary
//! Openraft types do not leave this module: callers see [`Command`], [`Change`],
//! [`CommandError`], [`Zones`], [`ZoneSet`] and the types defined here; peers exchange bytes
//! through a [`Transport`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cluster;
mod error;
mod events;
mod forward;
mod join;
mod log_store;
mod network;
mod rpc;
mod state_machine;
mod tables;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use openraft::async_runtime::WatchReceiver;
use openraft::{ServerState, SnapshotPolicy};
use outpost_core::answer::ZoneSet;
use outpost_core::zones::{Change, Command, CommandError, Zones};
use redb::Database;

pub use self::cluster::{
    ClusterOptions, ClusterStart, ClusterStatus, FIRST_NODE_ID, HEALTHY_WITHIN, Member, NodeStatus,
    RaftTiming,
};
pub use self::error::{MembershipError, ReadError, StoreError, WriteError};
pub use self::events::{CommitObserver, CommittedBatch, CommittedEntry, StateEvent};
pub use self::join::{
    DEFAULT_INVITE_TTL, InviteError, JoinError, JoinTicket, MAX_INVITE_TTL, TICKET_PREFIX,
    TicketError, node_id_for,
};
use self::log_store::LogStore;
use self::network::PeerNetwork;
pub use self::network::iroh::{
    IrohError, IrohTransport, NODE_KEY_FILE_NAME, PeerAddr, PeerAddrError, RAFT_ALPN, RaftEndpoint,
    RaftServer, load_or_create_node_key,
};
pub use self::network::{
    CodecError, MAX_PROPOSAL_BYTES, MAX_RAFT_MESSAGE, MAX_SNAPSHOT_BYTES, NoPeers, RaftRpcHandler,
    Transport, TransportError,
};
use self::state_machine::{Raft, StateMachine};
pub use self::types::NodeInfo;
use outpost_replica::Published;
pub use outpost_replica::View;

/// Name of the database file inside the data directory.
pub const DB_FILE_NAME: &str = "outpost.redb";

/// How long [`Store::open`] waits for the node to lead its single-node cluster. An election
/// takes one election timeout (150–300 ms by openraft's default), a restart that restores
/// leadership takes less; ten seconds only runs out when storage is stuck.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// How long a write taken while no leader is known waits for an election to name one
/// before it is proposed here (and refused as not-leader, if this node still does not lead):
/// a few election timeouts.
const ELECTION_WAIT: Duration = Duration::from_secs(2);

/// How long a follower that forwarded a write waits, once the leader acknowledged it, to
/// apply it itself before it answers: a follower in touch with the leader applies it within
/// a heartbeat. Past it the write is reported committed but not yet visible here
/// ([`WriteError::NotAppliedHere`]).
pub const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How long [`Store::shutdown`] waits, after Raft stopped, for its tasks to release the
/// database file.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// A snapshot is built once this many entries were applied since the last one. Building reads
/// the whole state, so this trades snapshot work against log length (and replay on a follower
/// that needs the log). Zone writes are infrequent; 5000 is openraft's default.
const SNAPSHOT_EVERY_ENTRIES: u64 = 5000;

/// Entries already covered by a snapshot that stay in the log, so a follower slightly behind
/// (issue 3) catches up from the log instead of receiving a full snapshot. The log is purged
/// down to this many entries after each snapshot.
const LOG_ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 1000;

/// How many log indexes of change history are kept by default for Lite sessions to
/// resume from; a session further behind takes a snapshot.
pub const DEFAULT_HISTORY_ENTRIES: u64 = 100_000;

/// What [`Store::open_with`] can be told.
#[derive(Clone)]
pub struct StoreOptions {
    pub history_entries: u64,
    pub observer: Option<Arc<dyn CommitObserver>>,
    /// This node's place in a cluster; the default is a node alone.
    pub cluster: ClusterOptions,
    /// When snapshots are built and how much log stays behind them.
    pub tuning: Tuning,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            history_entries: DEFAULT_HISTORY_ENTRIES,
            observer: None,
            cluster: ClusterOptions::default(),
            tuning: Tuning::DEFAULT,
        }
    }
}

/// Handle on the store; clones share the same Raft node and database.
#[derive(Clone)]
pub struct Store {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    raft: Raft,
    published: Published,
    /// Watches the database without keeping it open: openraft's tasks hold the only strong
    /// handles, so `shutdown` can tell when the file is closed.
    db: Weak<Database>,
    /// Random id of this cluster, made when the data file was created.
    cluster_id: String,
    /// This node's Raft id, from the data file.
    node_id: u64,
    timing: RaftTiming,
    /// How this node reaches its peers: Raft's network and forwarded writes.
    transport: Arc<dyn Transport>,
}

/// A committed and applied write.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// Raft log index of the entry; changes carry it downstream (sync cursors).
    pub index: u64,
    /// What the command changed, in order (nothing when `replayed`).
    pub changes: Vec<Change>,
    /// A retry under an idempotency key whose write was applied before, at `index`:
    /// nothing was applied now.
    pub replayed: bool,
}

/// The Raft view of this node, from openraft's metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreStatus {
    pub node_id: u64,
    pub state: NodeState,
    pub term: u64,
    /// The node this one believes leads the cluster.
    pub leader: Option<u64>,
    /// Index of the last entry in the log (`None` before the cluster is initialised).
    pub last_log_index: Option<u64>,
    /// Index of the last entry applied to the zones.
    pub applied_index: Option<u64>,
    /// Index of the last entry covered by the current snapshot.
    pub snapshot_index: Option<u64>,
    /// Index of the last entry purged from the log.
    pub purged_index: Option<u64>,
}

/// Role of a node in its Raft cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    Leader,
    Follower,
    Candidate,
    Learner,
    Shutdown,
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeState::Leader => "leader",
            NodeState::Follower => "follower",
            NodeState::Candidate => "candidate",
            NodeState::Learner => "learner",
            NodeState::Shutdown => "shutdown",
        })
    }
}

impl From<ServerState> for NodeState {
    fn from(state: ServerState) -> NodeState {
        match state {
            ServerState::Leader => NodeState::Leader,
            ServerState::Follower => NodeState::Follower,
            ServerState::Candidate => NodeState::Candidate,
            ServerState::Learner => NodeState::Learner,
            ServerState::Shutdown => NodeState::Shutdown,
        }
    }
}

impl Store {
    /// Opens or creates `<data_dir>/outpost.redb`, starts Raft, initialises a single-node
    /// cluster with node id 1 on first start, and waits until this node is leader.
    ///
    /// With [`StoreOptions::cluster`], the node is one of many: it initialises or waits to join
    /// on first start (see [`ClusterStart`]), and waits to lead only when it is its cluster's
    /// only voter.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(data_dir, StoreOptions::default()).await
    }

    /// [`Store::open`] with a history window, an observer of applied batches and a place in a
    /// cluster.
    pub async fn open_with(data_dir: &Path, options: StoreOptions) -> Result<Store, StoreError> {
        Store::open_tuned(data_dir, options.tuning, options).await
    }

    async fn open_tuned(
        data_dir: &Path,
        tuning: Tuning,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        let path = data_dir.join(DB_FILE_NAME);
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|cause| StoreError::CreateDir {
                path: data_dir.to_owned(),
                cause,
            })?;
        let cluster = options.cluster;
        let wanted_id = cluster.node_id.unwrap_or(FIRST_NODE_ID);
        let (db, cluster_id, node_id) =
            open_db(&path, wanted_id, cluster.cluster_id.clone()).await?;
        if cluster.node_id.is_some_and(|wanted| wanted != node_id) {
            return Err(StoreError::NodeId {
                path,
                found: node_id,
                wanted: wanted_id,
            });
        }
        let state_machine =
            StateMachine::open(Arc::clone(&db), options.observer, options.history_entries)
                .await
                .map_err(|cause| StoreError::Load {
                    path: path.clone(),
                    cause,
                })?;
        let published = state_machine.published();
        let raft_error = |message: String| StoreError::Raft {
            path: path.clone(),
            message,
        };
        let config = tuning
            .raft_config(&cluster.timing)
            .map_err(|e| raft_error(format!("invalid raft config: {e}")))?;
        let raft = Raft::new(
            node_id,
            Arc::new(config),
            PeerNetwork::new(node_id, Arc::clone(&cluster.transport)),
            LogStore::new(Arc::clone(&db)),
            state_machine,
        )
        .await
        .map_err(|e| raft_error(e.to_string()))?;
        let store = Store {
            inner: Arc::new(Inner {
                raft,
                published,
                db: Arc::downgrade(&db),
                cluster_id,
                node_id,
                timing: cluster.timing,
                transport: cluster.transport,
            }),
        };
        drop(db);

        if let Err(e) = store.start(&path, cluster.start, cluster.node_info).await {
            // Stop Raft so that it releases the file; the caller may try again.
            if let Err(shutdown) = store.shutdown().await {
                tracing::warn!(error = %shutdown, "raft did not shut down after a failed open");
            }
            return Err(e);
        }
        let status = store.status();
        tracing::info!(
            path = %path.display(),
            node_id,
            state = %status.state,
            term = status.term,
            applied_index = ?status.applied_index,
            "store open"
        );
        Ok(store)
    }

    /// Initialises a cluster of one if this node never was in a cluster and `start` says so;
    /// then, if this node is its cluster's only voter, waits to lead it.
    async fn start(
        &self,
        path: &Path,
        start: ClusterStart,
        node_info: NodeInfo,
    ) -> Result<(), StoreError> {
        let raft = &self.inner.raft;
        let raft_error = |message: String| StoreError::Raft {
            path: path.to_owned(),
            message,
        };
        let initialized = raft
            .is_initialized()
            .await
            .map_err(|e| raft_error(e.to_string()))?;
        let node_id = self.inner.node_id;
        if !initialized {
            if start == ClusterStart::Join {
                tracing::info!(node_id, "waiting to be added to a cluster");
                return Ok(());
            }
            tracing::info!(node_id, "initialising a single-node cluster");
            let members = BTreeMap::from([(node_id, node_info)]);
            raft.initialize(members)
                .await
                .map_err(|e| raft_error(format!("cannot initialise the cluster: {e}")))?;
        }
        // The membership reaches the metrics shortly after `initialize` or the load returns.
        let metrics = raft
            .wait(Some(LEADER_WAIT))
            .metrics(
                |metrics| {
                    let membership = metrics.membership_config.membership();
                    membership.voter_ids().next().is_some()
                },
                "the membership is known",
            )
            .await
            .map_err(|e| raft_error(e.to_string()))?;
        let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
        if voters != [node_id] {
            // One of several: the cluster elects its leader, perhaps without this node.
            return Ok(());
        }
        // Leading is not enough: until its first entry commits, the membership it leads
        // with is uncommitted and a membership change right after start (a join) is
        // refused as "already undergoing a configuration change".
        raft.wait(Some(LEADER_WAIT))
            .metrics(
                |metrics| {
                    let membership = metrics.membership_config.log_id().map(|id| id.index);
                    metrics.state == ServerState::Leader
                        && metrics.last_applied.map(|id| id.index) >= membership
                },
                "this node leads its single-node cluster, its membership committed",
            )
            .await
            .map_err(|e| StoreError::NotLeader {
                path: path.to_owned(),
                waited: LEADER_WAIT,
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Proposes `cmd` through Raft; returns after it is committed and applied, with its log
    /// index and changes, or the refusal of the zones model (the entry is applied either way).
    ///
    /// On a node that knows another node leads, the write is forwarded there and the leader's
    /// answer returned; while no leader is known (an election), it first waits up to
    /// [`ELECTION_WAIT`] for one. Gives up with [`WriteError::Timeout`] when the entry is not committed
    /// within [`RaftTiming::commit`], and refuses a command over [`MAX_PROPOSAL_BYTES`].
    pub async fn write(&self, cmd: Command) -> Result<Written, WriteError> {
        let bytes = encoded_len(&cmd);
        if bytes > MAX_PROPOSAL_BYTES {
            return Err(WriteError::TooLarge { bytes });
        }
        if self.status().leader.is_none() {
            // An election is under way: give it a moment rather than failing at once.
            let waited = ELECTION_WAIT.min(self.inner.timing.commit);
            let _ = self
                .inner
                .raft
                .wait(Some(waited))
                .metrics(|m| m.current_leader.is_some(), "a leader is known")
                .await;
        }
        let forwarded = self.leader_elsewhere();
        let result = match forwarded.clone() {
            Some((leader, node)) => self.forward(leader, node, cmd).await,
            None => forward::propose(&self.inner.raft, cmd, self.inner.timing.commit).await,
        };
        let written = match result {
            // A retry under an idempotency key: answered as the first success was.
            Err(WriteError::Rejected(CommandError::AlreadyApplied { index })) => Written {
                index,
                changes: Vec::new(),
                replayed: true,
            },
            other => other?,
        };
        if forwarded.is_some() {
            // Read your writes: a node says "done" only once its own DNS answers it.
            self.wait_applied(written.index).await?;
        }
        Ok(written)
    }

    /// Waits, at most [`APPLY_WAIT`] (or the commit timeout, if shorter), until this node
    /// has applied (and so published) the entry at `index`.
    async fn wait_applied(&self, index: u64) -> Result<(), WriteError> {
        let waited = APPLY_WAIT.min(self.inner.timing.commit);
        self.inner
            .raft
            .wait(Some(waited))
            .applied_index_at_least(Some(index), "applied a write this node forwarded")
            .await
            .map(|_| ())
            .map_err(|_| WriteError::NotAppliedHere { index, waited })
    }

    /// The query index, swapped after every applied batch; load it per query, lock-free.
    pub fn zone_set(&self) -> Arc<ArcSwap<ZoneSet>> {
        Arc::clone(&self.inner.published.zone_set)
    }

    /// The zones model as of the last applied batch, for admin reads.
    pub fn zones(&self) -> Arc<Zones> {
        Arc::clone(&self.inner.published.view.load().zones)
    }

    /// The model together with the index it is the state after.
    pub fn view(&self) -> Arc<View> {
        self.inner.published.view.load_full()
    }

    /// This cluster's id, created with the data file.
    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    /// What the entries after `after`, up to `up_to`, changed; `None` when the history
    /// no longer reaches back that far (the caller sends a snapshot instead).
    pub async fn history(
        &self,
        after: u64,
        up_to: u64,
    ) -> Result<Option<Vec<CommittedEntry>>, std::io::Error> {
        let db = self
            .inner
            .db
            .upgrade()
            .ok_or_else(|| std::io::Error::other("the store is shut down"))?;
        tables::blocking(&db, move |db| state_machine::read_history(db, after, up_to)).await
    }

    /// This node's Raft id.
    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// Serves the Raft RPCs of this node's peers; a transport's accept loop calls it.
    pub fn rpc_handler(&self) -> RaftRpcHandler {
        RaftRpcHandler::new(self)
    }

    /// This node's Raft role and log positions.
    pub fn status(&self) -> StoreStatus {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        StoreStatus {
            node_id: metrics.id,
            state: metrics.state.into(),
            term: metrics.current_term,
            leader: metrics.current_leader,
            last_log_index: metrics.last_log_index,
            applied_index: metrics.last_applied.as_ref().map(|id| id.index),
            snapshot_index: metrics.snapshot.as_ref().map(|id| id.index),
            purged_index: metrics.purged.as_ref().map(|id| id.index),
        }
    }

    /// Stops Raft, then waits until the database file is closed (every commit was already
    /// fsynced). Other clones of this handle stop working.
    pub async fn shutdown(self) -> Result<(), StoreError> {
        let db = self.inner.db.clone();
        self.inner
            .raft
            .shutdown()
            .await
            .map_err(|e| StoreError::Shutdown(format!("raft task failed: {e}")))?;
        drop(self);
        // Openraft drops the log store and state machine as its tasks end.
        let deadline = tokio::time::Instant::now() + RELEASE_WAIT;
        while db.strong_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Shutdown(format!(
                    "the database is still in use {RELEASE_WAIT:?} after raft stopped"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tracing::info!("store shut down");
        Ok(())
    }
}

/// The length of a value's postcard encoding, counted without building it.
fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl Extend<u8> for Count {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
            self.0 += bytes.into_iter().count();
        }
    }
    // Serializing a `Command` into a counter cannot fail; were it to, nothing is refused here
    // and the log store reports the error.
    postcard::to_extend(value, Count(0)).map_or(0, |count| count.0)
}

/// Opens the database file off the async threads, naming the likely cause when it is locked.
/// Returns the database, the cluster id and the node id (`new_node_id` and `new_cluster_id`,
/// or a random cluster id, for a new file).
async fn open_db(
    path: &Path,
    new_node_id: u64,
    new_cluster_id: Option<String>,
) -> Result<(Arc<Database>, String, u64), StoreError> {
    let file = path.to_owned();
    let opened = tokio::task::spawn_blocking(move || {
        tables::open_database(&file, new_node_id, new_cluster_id)
    })
    .await
    .map_err(|e| StoreError::Open {
        path: path.to_owned(),
        cause: redb::Error::Io(std::io::Error::other(e)),
    })?;
    match opened {
        Ok(opened) if opened.format == tables::FORMAT_VERSION => {
            Ok((Arc::new(opened.db), opened.cluster_id, opened.node_id))
        }
        Ok(opened) => Err(StoreError::Format {
            path: path.to_owned(),
            found: opened.format,
            expected: tables::FORMAT_VERSION,
        }),
        Err(cause @ redb::Error::DatabaseAlreadyOpen) => Err(StoreError::AlreadyOpen {
            path: path.to_owned(),
            cause,
        }),
        Err(cause) => Err(StoreError::Open {
            path: path.to_owned(),
            cause,
        }),
    }
}

/// When a node snapshots its state and purges its log (`[cluster]` in the config; tests shrink
/// them to make followers catch up by snapshot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    /// A snapshot is built once this many entries were applied since the last one.
    pub snapshot_every_entries: u64,
    /// Entries already in a snapshot that stay in the log, for followers slightly behind.
    pub log_entries_kept_after_snapshot: u64,
}

impl Tuning {
    pub const DEFAULT: Tuning = Tuning {
        snapshot_every_entries: SNAPSHOT_EVERY_ENTRIES,
        log_entries_kept_after_snapshot: LOG_ENTRIES_KEPT_AFTER_SNAPSHOT,
    };

    fn raft_config(self, timing: &RaftTiming) -> Result<openraft::Config, openraft::ConfigError> {
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        openraft::Config {
            cluster_name: "outpost".to_string(),
            snapshot_policy: SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            max_in_snapshot_log_to_keep: self.log_entries_kept_after_snapshot,
            heartbeat_interval: millis(timing.heartbeat),
            election_timeout_min: millis(timing.election_min),
            election_timeout_max: millis(timing.election_max),
            install_snapshot_timeout: millis(timing.install_snapshot),
            // A node cut off (or restarted) asks before it campaigns, so coming back does not
            // raise the term and unseat a healthy leader. `pre_vote` goes over the wire.
            enable_pre_vote: Some(true),
            ..openraft::Config::default()
        }
        .validate()
    }
}
