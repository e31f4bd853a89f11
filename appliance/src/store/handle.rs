//! The handle every caller holds ([`Store`]) and what its clones share ([`Inner`]: the Raft
//! node, the published views, the database, the node's identity, timing and transport),
//! with the reads that need nothing but that: the published views, the history, this node's
//! Raft status.
//!
//! The other `impl Store` blocks build on this one, each in its module: writes in `relay`,
//! membership and consistent reads in `cluster`, joins in `join`, opening and shutting down in
//! the store's root. This module depends on none of them, only on what `Inner` holds.

use std::fmt;
use std::sync::{Arc, Weak};

use arc_swap::{ArcSwap, ArcSwapOption};
use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use outpost_core::answer::ZoneSet;
use outpost_core::state::{CookieSecrets, ReplicatedState};
use outpost_replica::{Published, View};
use redb::Database;
use serde::{Deserialize, Serialize};

use super::events::CommittedEntry;
use super::network::transport::RaftTransport;
use super::options::RaftTiming;
use super::state_machine::{self, Raft};
use super::tables;

/// Handle on the store; clones share the same Raft node and database.
#[derive(Clone)]
pub struct Store {
    pub(super) inner: Arc<Inner>,
}

/// What every clone of a [`Store`] shares. The fields are the store's own (its modules reach
/// them through `self.inner`); the rest of the appliance sees the methods.
pub(super) struct Inner {
    pub(super) raft: Raft,
    pub(super) published: Published,
    /// Watches the database without keeping it open: openraft's tasks hold the only strong
    /// handles, so `shutdown` can tell when the file is closed.
    pub(super) db: Weak<Database>,
    /// Random id of this cluster, made when the data file was created.
    pub(super) cluster_id: String,
    /// This node's Raft id, from the data file.
    pub(super) node_id: u64,
    pub(super) timing: RaftTiming,
    /// How this node reaches its peers: Raft's network and relayed writes.
    pub(super) transport: Arc<dyn RaftTransport>,
    /// Whether Raft's tick loop runs (`quiet.rs`: off while this node leads alone).
    pub(super) ticking: Arc<std::sync::atomic::AtomicBool>,
}

/// A [`Store`] that does not keep it open. The RPC handler holds one: a transport holds the
/// handler and the store holds its transport, so a strong handle there would never let go.
#[derive(Clone)]
pub(crate) struct WeakStore(Weak<Inner>);

impl WeakStore {
    /// The store, unless it was shut down (every strong handle dropped).
    pub(crate) fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(|inner| Store { inner })
    }
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

/// Role of a node in its Raft cluster. In the admin API's bodies (`role`) it is spelled as
/// [`fmt::Display`] writes it: `leader`, `follower`, `candidate`, `learner`, `shutdown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
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
    /// A handle that does not keep the store open.
    pub(crate) fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.inner))
    }

    /// This node's Raft node; clones share it.
    pub(crate) fn raft(&self) -> &Raft {
        &self.inner.raft
    }

    /// Whether Raft ticks here now: off while this node leads a membership of one.
    #[cfg(test)]
    pub(crate) fn raft_ticking(&self) -> bool {
        self.inner
            .ticking
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Raft's clock for this node.
    pub(crate) fn timing(&self) -> &RaftTiming {
        &self.inner.timing
    }

    /// The query index, swapped after every applied batch; load it per query, lock-free.
    pub fn zone_set(&self) -> Arc<ArcSwap<ZoneSet>> {
        Arc::clone(&self.inner.published.zone_set)
    }

    /// The DNS cookie secrets, swapped when a rotation is applied; empty until the leader
    /// made the first.
    pub fn cookie_secrets(&self) -> Arc<ArcSwapOption<CookieSecrets>> {
        Arc::clone(&self.inner.published.cookie_secrets)
    }

    /// The zones model as of the last applied batch, for admin reads.
    pub fn zones(&self) -> Arc<ReplicatedState> {
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

    /// Whether this node leads the cluster now (a single node always does).
    pub fn is_leader(&self) -> bool {
        let metrics = self.inner.raft.metrics();
        let leader = metrics.borrow_watched().current_leader;
        leader == Some(self.inner.node_id)
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
}
