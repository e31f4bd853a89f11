//! What a store needs to be one node of many ([`ClusterOptions`]), the membership changes a
//! leader makes ([`Store::add_learner`], [`Store::add_voters`], [`Store::remove_voters`]), and
//! the consistent read ([`Store::read_linearizable`]).
//!
//! **Invariant:** a node id names one node, holding one log, for the cluster's whole life: it is
//! fixed when the data file is created and a different one is refused on open. An id must never
//! be given to a new data directory after its node was removed (openraft's rule; reuse can split
//! the cluster into two quorums).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy};

use super::network::{NoPeers, Transport};
use super::types::NodeInfo;
use super::{Store, View};

/// The id a new data directory takes when none is given: a first node, as every node was
/// before clusters.
pub const FIRST_NODE_ID: u64 = 1;

/// How a store takes part in a cluster. The default is today's single node: node
/// [`FIRST_NODE_ID`], no peers, initialising a cluster of one on first start.
#[derive(Clone)]
pub struct ClusterOptions {
    /// The node id a data directory created now takes (`None`: [`FIRST_NODE_ID`]). An existing
    /// directory keeps its own and refuses to open with a different one.
    pub node_id: Option<u64>,
    /// The cluster id a data directory created now takes: a joining node takes its cluster's
    /// (from the join ticket), so Lite cursors carry over between the cluster's nodes.
    /// `None`: a new random id, as for a first node. An existing directory keeps its own.
    pub cluster_id: Option<String>,
    /// How peers reach this node; recorded in the membership when it initialises a cluster.
    pub node_info: NodeInfo,
    /// How this node reaches its peers.
    pub transport: Arc<dyn Transport>,
    /// What a pristine store does.
    pub start: ClusterStart,
    pub timing: RaftTiming,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            node_id: None,
            cluster_id: None,
            node_info: NodeInfo::default(),
            transport: Arc::new(NoPeers),
            start: ClusterStart::Initialise,
            timing: RaftTiming::DEFAULT,
        }
    }
}

/// What a store that never was part of a cluster does when it opens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterStart {
    /// Initialise a cluster of one with itself and wait to lead it (`outpost serve`'s first
    /// start).
    Initialise,
    /// Wait for a cluster's leader to add it: open returns at once.
    Join,
}

/// Raft's clock. Openraft's defaults, which suit a LAN; a wider network needs longer ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RaftTiming {
    /// How often a leader tells followers it is alive.
    pub heartbeat: Duration,
    /// A follower that hears no leader for a random time in this range starts an election.
    pub election_min: Duration,
    pub election_max: Duration,
    /// How long a leader gives one snapshot message to arrive and be installed. Openraft's
    /// 200 ms is too short for a snapshot of many zones: 30 s.
    pub install_snapshot: Duration,
    /// How long [`Store::write`] and the membership changes wait for the commit before giving
    /// up with a timeout (the entry may still commit later). Bounds a write in a minority
    /// partition, which can never commit.
    pub commit: Duration,
}

impl RaftTiming {
    pub const DEFAULT: RaftTiming = RaftTiming {
        heartbeat: Duration::from_millis(50),
        election_min: Duration::from_millis(150),
        election_max: Duration::from_millis(300),
        install_snapshot: Duration::from_secs(30),
        commit: Duration::from_secs(60),
    };
}

impl Default for RaftTiming {
    fn default() -> Self {
        RaftTiming::DEFAULT
    }
}

/// One node of the membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub node: NodeInfo,
    /// Counts in the quorum; a learner only receives the log.
    pub voter: bool,
}

/// Why a membership change did not happen.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes the membership.
    #[error("this node is not the raft leader (leader: {})", leader.map_or("unknown".to_string(), |id| format!("node {id}")))]
    NotLeader { leader: Option<u64> },
    /// Raft refused the change (another one in progress, a voter that is not a learner yet).
    #[error("membership change refused: {0}")]
    Refused(String),
    /// Not committed in time; it may still be.
    #[error("membership change not committed within {0:?}; it may still take effect")]
    Timeout(Duration),
    #[error("raft: {0}")]
    Raft(String),
}

/// Why a consistent read did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Only the leader serves consistent reads.
    #[error("this node is not the raft leader (leader: {})", leader.map_or("unknown".to_string(), |id| format!("node {id}")))]
    NotLeader { leader: Option<u64> },
    /// This node could not confirm it still leads: a quorum did not answer.
    #[error("no quorum confirmed this node still leads: {0}")]
    NoQuorum(String),
    #[error("consistent read not confirmed within {0:?}")]
    Timeout(Duration),
    #[error("raft: {0}")]
    Raft(String),
}

impl Store {
    /// The state as of a moment after this call began, confirmed with a quorum (openraft's
    /// ReadIndex): it holds every write acknowledged before the call. Only the leader serves
    /// it; bounded by [`RaftTiming::commit`].
    pub async fn read_linearizable(&self) -> Result<Arc<View>, ReadError> {
        let waited = self.inner.timing.commit;
        let confirmed = self.inner.raft.ensure_linearizable(ReadPolicy::ReadIndex);
        let Ok(confirmed) = tokio::time::timeout(waited, confirmed).await else {
            return Err(ReadError::Timeout(waited));
        };
        match confirmed {
            // Openraft returns once the state machine applied up to the read index; the view
            // is published before openraft hears of an apply, so it is at least that recent.
            Ok(_) => Ok(self.view()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(forward))) => {
                Err(ReadError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                Err(ReadError::NoQuorum(e.to_string()))
            }
            Err(e) => Err(ReadError::Raft(e.to_string())),
        }
    }

    /// Adds `id`, reached at `node`, as a learner, and returns once it has caught up with the
    /// leader's log (or the commit timeout passed).
    pub async fn add_learner(&self, id: u64, node: NodeInfo) -> Result<(), MembershipError> {
        let timeout = self.inner.timing.commit;
        let change = self.inner.raft.add_learner(id, node, true);
        let result = tokio::time::timeout(timeout, change)
            .await
            .map_err(|_| MembershipError::Timeout(timeout))?;
        result.map(drop).map_err(membership_error)
    }

    /// Makes learners `ids` voters.
    pub async fn add_voters(&self, ids: BTreeSet<u64>) -> Result<(), MembershipError> {
        self.change_membership(ChangeMembers::AddVoterIds(ids))
            .await
    }

    /// Takes `ids` out of the voters (and the membership).
    pub async fn remove_voters(&self, ids: BTreeSet<u64>) -> Result<(), MembershipError> {
        self.change_membership(ChangeMembers::RemoveVoters(ids))
            .await
    }

    async fn change_membership(
        &self,
        change: ChangeMembers<u64, NodeInfo>,
    ) -> Result<(), MembershipError> {
        let timeout = self.inner.timing.commit;
        let change = self.inner.raft.change_membership(change, false);
        let result = tokio::time::timeout(timeout, change)
            .await
            .map_err(|_| MembershipError::Timeout(timeout))?;
        result.map(drop).map_err(membership_error)
    }

    /// The membership this node last applied or appended, voters and learners.
    pub fn members(&self) -> Vec<Member> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        let membership = metrics.membership_config.membership();
        let voters: BTreeSet<u64> = membership.voter_ids().collect();
        let nodes: BTreeMap<u64, NodeInfo> = membership
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        nodes
            .into_iter()
            .map(|(id, node)| Member {
                id,
                node,
                voter: voters.contains(&id),
            })
            .collect()
    }
}

fn membership_error(
    error: RaftError<super::types::TypeConfig, ClientWriteError<super::types::TypeConfig>>,
) -> MembershipError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => {
            MembershipError::NotLeader {
                leader: forward.leader_id,
            }
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(refused)) => {
            MembershipError::Refused(refused.to_string())
        }
        other => MembershipError::Raft(other.to_string()),
    }
}
