//! The appliance's persistent store: zone writes go through Raft, are applied to a state
//! machine in redb, and each applied batch publishes a new query index.
//!
//! The write path through this module: [`Store::write`] → `Raft::client_write` → the log store
//! appends and fsyncs → commit → `state_machine` applies the batch in one redb transaction →
//! the new [`ReplicatedState`](outpost_core::state::ReplicatedState) and [`ZoneSet`](outpost_core::answer::ZoneSet)
//! are published → the caller gets its [`Written`].
//!
//! # Layout
//! One submodule per Raft trait, plus the shared pieces, from the bottom up: each module uses
//! only modules listed before it (the `pub use`s of this file are a facade, not a dependency).
//! - `types`: the openraft type configuration and the log entry payloads.
//! - `tables`: the redb tables of `outpost.redb` and their encoding.
//! - `events`: what observers hear after every change of the state ([`StateEvent`],
//!   [`CommitObserver`]).
//! - `rpc`: the Raft RPC messages and their payloads, the wire between nodes.
//! - `network::codec`: `rpc`'s messages to bytes and back; `network::transport`: the
//!   [`RaftTransport`] trait that carries the bytes.
//! - `error`: the errors callers see, and their conversions to and from `rpc`'s wire errors.
//! - `options`: [`StoreOptions`], [`ClusterOptions`], [`RaftTiming`], [`Tuning`].
//! - `log_store`: the Raft log and vote (`RaftLogStorage`, `RaftLogReader`).
//! - `state_machine`: the zones state, snapshots and the published views
//!   (`RaftStateMachine`, `RaftSnapshotBuilder`), and the `Raft` node type over them.
//! - `handle`: [`Store`] and what its clones share, with the reads that need nothing more.
//! - `relay`: [`Store::write`]: proposed on the leader, relayed to it from a follower.
//! - `cluster`: membership changes, `cluster status` and the consistent read.
//! - `join`: join tickets and the join itself.
//! - `network`: openraft's `RaftNetworkFactory` over a [`RaftTransport`]; the [`RaftRpcHandler`]
//!   that serves peers' RPCs (it calls `relay`, `cluster` and `join`); the iroh transport
//!   ([`RaftEndpoint`], [`IrohTransport`], [`RaftServer`]).
//! - this file: [`Store::open`] and [`Store::shutdown`].
//!
//! # Invariants
//! - **Apply only what is committed.** Entries reach the state machine only through
//!   openraft's apply after commit; appending to the log never touches the state.
//! - **One write transaction per applied batch**: state changes and the last applied log id are
//!   committed together, so the state on disk is always the state after some log index.
//! - **An acknowledged write is fsynced**: log appends, votes and applied batches are
//!   `Durability::Immediate` commits, and openraft hears an append is done only after its
//!   commit returns.
//! - **Dependencies point down the layout above**: no two modules of the store use each
//!   other, directly or through others.
//!
//! # Boundary
//! Openraft types do not leave this module: callers see
//! [`Command`](outpost_core::state::Command), [`Change`](outpost_core::state::Change),
//! [`CommandError`](outpost_core::state::CommandError), `ReplicatedState`, `ZoneSet` and the types
//! defined here; peers exchange bytes through a [`RaftTransport`].
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cluster;
mod error;
mod events;
mod handle;
mod join;
mod log_store;
mod network;
mod options;
mod quiet;
mod relay;
mod rpc;
mod state_machine;
mod tables;
mod types;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::ServerState;
use redb::Database;

pub(crate) use self::cluster::ClusterStatus;
#[cfg(test)]
pub(crate) use self::error::LeaderError;
pub(crate) use self::error::{MembershipError, ReadError, StoreError, WriteError};
pub(crate) use self::events::{CommitObserver, CommittedBatch, CommittedEntry, StateEvent};
use self::handle::Inner;
#[cfg(test)]
pub(crate) use self::handle::StoreStatus;
pub(crate) use self::handle::{NodeState, Store};
/// Public for the `join_ticket` fuzz target.
pub use self::join::JoinTicket;
pub(crate) use self::join::{DEFAULT_INVITE_TTL, InviteError, JoinError, TicketError, node_id_for};
use self::log_store::LogStore;
use self::network::PeerNetwork;
/// Public for the `raft_rpc` fuzz target.
pub use self::network::codec::CodecError;
#[cfg(test)]
pub(crate) use self::network::codec::MAX_PROPOSAL_BYTES;
pub(crate) use self::network::handler::RaftRpcHandler;
pub(crate) use self::network::iroh_transport::{
    IrohError, NODE_KEY_FILE_NAME, PeerAddr, RaftEndpoint, RaftServer, load_or_create_node_key,
};
#[cfg(test)]
pub(crate) use self::network::transport::{RaftTransport, TransportError};
pub(crate) use self::options::{
    ClusterOptions, ClusterStart, DEFAULT_HISTORY_ENTRIES, FIRST_NODE_ID, RaftTiming, StoreOptions,
    Tuning,
};
#[cfg(test)]
pub(crate) use self::relay::Written;
use self::state_machine::{Raft, StateMachine};
pub(crate) use self::types::NodeInfo;
pub(crate) use outpost_replica::View;

/// Name of the database file inside the data directory.
pub const DB_FILE_NAME: &str = "outpost.redb";

/// How long [`Store::open`] waits for the node to lead its single-node cluster. An election
/// takes one election timeout (150–300 ms by openraft's default), a restart that restores
/// leadership takes less; ten seconds only runs out when storage is stuck.
const LEADER_WAIT: Duration = Duration::from_secs(10);

/// How long [`Store::shutdown`] waits, after Raft stopped, for its tasks to release the
/// database file.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

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
                ticking: Arc::new(std::sync::atomic::AtomicBool::new(true)),
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
        quiet::spawn(&store);
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

    /// Serves the Raft RPCs of this node's peers; a transport's accept loop calls it.
    pub fn rpc_handler(&self) -> RaftRpcHandler {
        RaftRpcHandler::new(self)
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
