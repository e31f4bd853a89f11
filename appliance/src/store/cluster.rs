//! A store as one node of many: the membership changes a leader makes
//! ([`Store::add_learner`], [`Store::add_voters`], [`Store::remove_voters`],
//! [`Store::remove_node`]), `cluster status` ([`Store::cluster_status`]) and the consistent
//! read ([`Store::read_linearizable`]). A member that does not lead asks the leader with an
//! `rpc` request; how a store is told its place in a cluster is `options::ClusterOptions`.
//!
//! **Invariant:** a node id names one node, holding one log, for the cluster's whole life: it is
//! fixed when the data file is created and a different one is refused on open. An id must never
//! be given to a new data directory after its node was removed (openraft's rule; reuse can split
//! the cluster into two quorums).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::Instant as _;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, LinearizableReadError, RaftError};
use openraft::{ChangeMembers, ReadPolicy};
use outpost_core::state::Command;
use outpost_replica::View;
use serde::{Deserialize, Serialize};

use super::error::{LeaderError, MembershipError, ReadError, WriteError};
use super::handle::{NodeState, Store};
use super::network::codec;
use super::relay::RELAY_MARGIN;
use super::rpc::{PeerProgress, Progress, RaftReply, RaftRequest};
use super::types::{NodeInfo, TypeConfig};

/// A node the leader heard from within this long counts as reachable (for `cluster status`'s
/// health and for the quorum check of `cluster remove`): many heartbeats (50 ms) and a few
/// election timeouts.
pub const HEALTHY_WITHIN: Duration = Duration::from_secs(2);

/// How long `cluster status` waits for the leader's view of replication.
const STATUS_WAIT: Duration = Duration::from_secs(2);

/// Whether the leader heard from a node within [`HEALTHY_WITHIN`].
fn is_healthy(peer: &PeerProgress) -> bool {
    peer.last_contact_ms
        .is_some_and(|ms| u128::from(ms) <= HEALTHY_WITHIN.as_millis())
}

/// `outpost cluster status`: the cluster as one node sees it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ClusterStatus {
    pub cluster_id: String,
    /// The node that answered.
    pub node_id: u64,
    /// Its Raft role: leader, follower, learner, candidate.
    pub role: NodeState,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit_index: Option<u64>,
    pub applied_index: Option<u64>,
    pub nodes: Vec<NodeStatus>,
}

/// One member in [`ClusterStatus`]. The replication fields are the leader's view, `null` when
/// the leader could not be asked.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NodeStatus {
    pub id: u64,
    pub address: String,
    pub voter: bool,
    pub leader: bool,
    pub matched_index: Option<u64>,
    /// Entries the node is behind the leader's log.
    pub lag: Option<u64>,
    pub last_contact_ms: Option<u64>,
    pub healthy: Option<bool>,
}

fn unexpected(leader: u64, reply: &RaftReply) -> String {
    format!("node {leader} answered {reply:?}")
}

/// One node of the membership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: u64,
    pub node: NodeInfo,
    /// Counts in the quorum; a learner only receives the log.
    pub voter: bool,
}

impl Store {
    /// The state as of a moment after this call began, confirmed with a quorum (openraft's
    /// ReadIndex): it holds every write acknowledged before the call. On the leader the read
    /// index is confirmed here; on another node it is asked of the leader, and the view is
    /// returned once this node applied up to it. Bounded by
    /// [`RaftTiming::commit`](super::options::RaftTiming::commit).
    pub async fn read_linearizable(&self) -> Result<Arc<View>, ReadError> {
        let waited = self.inner.timing.commit;
        let index = match self.leader_elsewhere() {
            Some((leader, node)) => {
                match self
                    .ask(leader, &node, &RaftRequest::ReadIndex, waited)
                    .await
                {
                    Ok(RaftReply::ReadIndex(index)) => index?,
                    Ok(other) => return Err(ReadError::Raft(unexpected(leader, &other))),
                    Err(reason) => {
                        return Err(ReadError::Leader(LeaderError::Unreachable {
                            leader,
                            reason,
                        }));
                    }
                }
            }
            None => self.read_index().await?,
        };
        let applied = self
            .inner
            .raft
            .wait(Some(waited))
            .applied_index_at_least(Some(index), "applied up to the read index")
            .await;
        match applied {
            // The view is published before openraft hears of an apply, so it is at least this
            // recent.
            Ok(_) => Ok(self.view()),
            Err(_) => Err(ReadError::Timeout(waited)),
        }
    }

    /// The leader's read index: the commit index, confirmed by a quorum to still be the
    /// leader's, that a linearizable read must see applied.
    pub(crate) async fn read_index(&self) -> Result<u64, ReadError> {
        let waited = self.inner.timing.commit;
        let linearizer = self.inner.raft.get_read_linearizer(ReadPolicy::ReadIndex);
        let Ok(linearizer) = tokio::time::timeout(waited, linearizer).await else {
            return Err(ReadError::Timeout(waited));
        };
        match linearizer {
            Ok(linearizer) => Ok(linearizer.read_log_id().index()),
            Err(RaftError::APIError(LinearizableReadError::ForwardToLeader(to_leader))) => {
                Err(ReadError::Leader(LeaderError::NotLeader {
                    leader: to_leader.leader_id,
                }))
            }
            Err(RaftError::APIError(LinearizableReadError::QuorumNotEnough(e))) => {
                Err(ReadError::NoQuorum(e.to_string()))
            }
            Err(e) => Err(ReadError::Raft(e.to_string())),
        }
    }

    /// Sends `request` to the leader and returns its reply, or why there is none.
    async fn ask(
        &self,
        leader: u64,
        node: &NodeInfo,
        request: &RaftRequest,
        waited: Duration,
    ) -> Result<RaftReply, String> {
        let request = codec::encode(request).map_err(|e| e.to_string())?;
        let call = self.inner.transport.call(leader, node, request);
        match tokio::time::timeout(waited + RELAY_MARGIN, call).await {
            Err(_elapsed) => Err(format!("no answer within {waited:?}")),
            Ok(Err(e)) => Err(e.to_string()),
            Ok(Ok(reply)) => codec::decode(&reply).map_err(|e| e.to_string()),
        }
    }

    /// Takes node `id` out of the cluster (a voter or a learner). A voter is refused when the
    /// voters left would not make a quorum with the nodes the leader hears from now, or when it
    /// is the last one. On a node that does not lead, the request is relayed to the leader.
    pub async fn remove_node(&self, id: u64) -> Result<(), MembershipError> {
        let Some((leader, node)) = self.leader_elsewhere() else {
            return self.remove_on_leader(id).await;
        };
        let waited = self.inner.timing.commit;
        match self
            .ask(
                leader,
                &node,
                &RaftRequest::RemoveNode { node_id: id },
                waited,
            )
            .await
        {
            Ok(RaftReply::RemoveNode(result)) => result.map_err(MembershipError::from),
            Ok(other) => Err(MembershipError::Raft(unexpected(leader, &other))),
            Err(reason) => Err(MembershipError::Leader(LeaderError::Unreachable {
                leader,
                reason,
            })),
        }
    }

    /// [`Store::remove_node`] on the leader; never relays.
    pub(crate) async fn remove_on_leader(&self, id: u64) -> Result<(), MembershipError> {
        let progress = self.progress().map_err(|e| match e {
            ReadError::Leader(refusal) => MembershipError::Leader(refusal),
            other => MembershipError::Raft(other.to_string()),
        })?;
        let members = self.members();
        let member = members
            .iter()
            .find(|member| member.id == id)
            .ok_or(MembershipError::NoSuchNode(id))?;
        if !member.voter {
            self.retire(id).await?;
            self.change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([id])))
                .await?;
            self.forget_export_endpoint(id).await;
            return Ok(());
        }
        let left: Vec<u64> = members
            .iter()
            .filter(|member| member.voter && member.id != id)
            .map(|member| member.id)
            .collect();
        if left.is_empty() {
            return Err(MembershipError::LastVoter(id));
        }
        let reachable = left
            .iter()
            .filter(|voter| {
                progress
                    .peers
                    .iter()
                    .any(|peer| peer.id == **voter && is_healthy(peer))
            })
            .count();
        let quorum = left.len() / 2 + 1;
        if reachable < quorum {
            return Err(MembershipError::QuorumLoss {
                node: id,
                voters_left: left.len(),
                reachable,
                quorum,
            });
        }
        self.retire(id).await?;
        tracing::info!(node_id = id, voters_left = ?left, "removing a voter");
        self.remove_voters(BTreeSet::from([id])).await?;
        self.forget_export_endpoint(id).await;
        Ok(())
    }

    /// Drops the export endpoint node `id` recorded, once it has left: `RetireNode` drops
    /// it too, but the node, a member until the change, may have recorded it again since.
    /// Best effort: tickets name members only either way.
    async fn forget_export_endpoint(&self, id: u64) {
        if !self.zones().export_peers().any(|(node, _)| node == id) {
            return;
        }
        let command = Command::SetExportPeer {
            node_id: id,
            peer: None,
        };
        if let Err(error) = self.write(command).await {
            tracing::debug!(node_id = id, %error, "the removed node's export endpoint stays recorded");
        }
    }

    /// Forgets the join invites node `id` used, before it leaves: retired means retired,
    /// its old ticket never admits it again.
    async fn retire(&self, id: u64) -> Result<(), MembershipError> {
        match self.write(Command::RetireNode { node_id: id }).await {
            Ok(_) => Ok(()),
            Err(WriteError::Leader(LeaderError::NotLeader { leader })) => {
                Err(MembershipError::Leader(LeaderError::NotLeader { leader }))
            }
            Err(other) => Err(MembershipError::Raft(format!(
                "cannot retire node {id}'s join ticket: {other}"
            ))),
        }
    }

    /// Records `node` as this node's address in the membership: directly on the leader, else
    /// asked of each other member in turn (a member that does not lead relays it), since the
    /// leader may not reach this node at its old address to tell it who leads.
    pub async fn set_own_address(&self, node: NodeInfo) -> Result<(), MembershipError> {
        let id = self.node_id();
        if self.status().state == NodeState::Leader {
            return self.set_address(id, node).await;
        }
        let request = RaftRequest::SetAddress {
            node_id: id,
            addr: node.addr.clone(),
        };
        let mut last = MembershipError::Leader(LeaderError::NotLeader { leader: None });
        for member in self.members().into_iter().filter(|member| member.id != id) {
            match self
                .ask(member.id, &member.node, &request, self.inner.timing.commit)
                .await
            {
                Ok(RaftReply::SetAddress(Ok(()))) => return Ok(()),
                Ok(RaftReply::SetAddress(Err(e))) => last = e.into(),
                Ok(other) => last = MembershipError::Raft(unexpected(member.id, &other)),
                Err(reason) => {
                    last = MembershipError::Leader(LeaderError::Unreachable {
                        leader: member.id,
                        reason,
                    })
                }
            }
        }
        Err(last)
    }

    /// Records `node` as the address of member `id`: on the leader, or relayed to it.
    pub(crate) async fn set_address(&self, id: u64, node: NodeInfo) -> Result<(), MembershipError> {
        if let Some((leader, leader_node)) = self.leader_elsewhere() {
            let request = RaftRequest::SetAddress {
                node_id: id,
                addr: node.addr,
            };
            return match self
                .ask(leader, &leader_node, &request, self.inner.timing.commit)
                .await
            {
                Ok(RaftReply::SetAddress(result)) => result.map_err(MembershipError::from),
                Ok(other) => Err(MembershipError::Raft(unexpected(leader, &other))),
                Err(reason) => Err(MembershipError::Leader(LeaderError::Unreachable {
                    leader,
                    reason,
                })),
            };
        }
        if !self.members().iter().any(|member| member.id == id) {
            return Err(MembershipError::NoSuchNode(id));
        }
        self.change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])))
            .await
    }

    /// The leader's view of how far each node got, from openraft's leader metrics.
    pub(crate) fn progress(&self) -> Result<Progress, ReadError> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.state != openraft::ServerState::Leader {
            return Err(ReadError::Leader(LeaderError::NotLeader {
                leader: metrics.current_leader,
            }));
        }
        let replication = metrics.replication.clone().unwrap_or_default();
        let heartbeat = metrics.heartbeat.clone().unwrap_or_default();
        let peers = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| {
                if *id == metrics.id {
                    return PeerProgress {
                        id: *id,
                        matched_index: metrics.last_log_index,
                        last_contact_ms: Some(0),
                    };
                }
                let contact = heartbeat.get(id).cloned().flatten();
                PeerProgress {
                    id: *id,
                    matched_index: replication.get(id).cloned().flatten().map(|id| id.index),
                    last_contact_ms: contact
                        .map(|at| u64::try_from(at.elapsed().as_millis()).unwrap_or(u64::MAX)),
                }
            })
            .collect();
        Ok(Progress {
            last_log_index: metrics.last_log_index,
            peers,
        })
    }

    /// The cluster as this node sees it, with the leader's view of replication (asked of the
    /// leader when this node does not lead; absent when it cannot be reached).
    pub async fn cluster_status(&self) -> ClusterStatus {
        let progress = match self.leader_elsewhere() {
            None => self.progress().ok(),
            Some((leader, node)) => {
                match self
                    .ask(leader, &node, &RaftRequest::Progress, STATUS_WAIT)
                    .await
                {
                    Ok(RaftReply::Progress(Ok(progress))) => Some(progress),
                    _ => None,
                }
            }
        };
        let status = self.status();
        let nodes = self
            .members()
            .into_iter()
            .map(|member| {
                let peer = progress
                    .as_ref()
                    .and_then(|progress| progress.peers.iter().find(|peer| peer.id == member.id));
                let matched_index = peer.and_then(|peer| peer.matched_index);
                let lag = progress.as_ref().and_then(|progress| {
                    let last = progress.last_log_index?;
                    Some(last.saturating_sub(matched_index.unwrap_or(0)))
                });
                NodeStatus {
                    id: member.id,
                    address: member.node.addr,
                    voter: member.voter,
                    leader: status.leader == Some(member.id),
                    matched_index,
                    lag,
                    last_contact_ms: peer.and_then(|peer| peer.last_contact_ms),
                    healthy: peer.map(is_healthy),
                }
            })
            .collect();
        ClusterStatus {
            cluster_id: self.cluster_id().to_string(),
            node_id: status.node_id,
            role: status.state,
            term: status.term,
            leader: status.leader,
            commit_index: self.commit_index(),
            applied_index: status.applied_index,
            nodes,
        }
    }

    /// Whether this node knows a leader and has applied every entry it knows to be committed:
    /// what `/ready` waits for, so a node that just joined or restarted is not sent traffic
    /// that expects the cluster's current state.
    pub fn caught_up(&self) -> bool {
        let status = self.status();
        status.leader.is_some() && status.applied_index >= self.commit_index()
    }

    /// The highest index this node knows to be committed by the cluster.
    pub fn commit_index(&self) -> Option<u64> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        let cluster = metrics.cluster_committed.as_ref().map(|id| id.index);
        let local = metrics.local_committed.as_ref().map(|id| id.index);
        cluster.max(local)
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

fn membership_error(error: RaftError<TypeConfig, ClientWriteError<TypeConfig>>) -> MembershipError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(to_leader)) => {
            MembershipError::Leader(LeaderError::NotLeader {
                leader: to_leader.leader_id,
            })
        }
        RaftError::APIError(ClientWriteError::ChangeMembershipError(refused)) => {
            MembershipError::Refused(refused.to_string())
        }
        other => MembershipError::Raft(other.to_string()),
    }
}
