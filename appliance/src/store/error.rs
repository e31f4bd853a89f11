//! Why a store call failed, as callers see it: [`WriteError`], [`MembershipError`],
//! [`ReadError`], [`StoreError`], and [`LeaderError`], the refusal the first three share.
//! Messages are lower case, name the value and say what to do.
//!
//! **Boundary:** these are not wire types. A member that relays a membership change or asks
//! the leader for a read index hears back the wire forms of `store::rpc`
//! ([`RemoteMembershipError`], [`RemoteReadError`]), converted here both ways variant for
//! variant, so a message reworded here changes no byte between nodes.

use std::path::PathBuf;
use std::time::Duration;

use outpost_core::state::CommandError;

use super::network::codec::MAX_PROPOSAL_BYTES;
use super::rpc::{RemoteMembershipError, RemoteReadError};

/// Why a write did not happen.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The zones model refused the command when it was applied; nothing changed.
    #[error("write refused: {0}")]
    Rejected(#[source] CommandError),
    /// This node does not lead the cluster and did not reach the leader; nothing was written.
    #[error("{0}{advice}", advice = nothing_written(.0))]
    Leader(#[from] LeaderError),
    /// Raft stopped or failed; the write may or may not have been committed.
    #[error("raft: {0}")]
    Raft(String),
    /// Not committed in time (this node may be cut off from a quorum); the write may still
    /// commit later.
    #[error(
        "write not committed within {waited:?} (is a quorum of the cluster reachable?); it may still take effect"
    )]
    Timeout { waited: Duration },
    /// The command is too large for one Raft entry; nothing was proposed.
    #[error(
        "write of {bytes} bytes exceeds the {MAX_PROPOSAL_BYTES} byte limit of one raft entry: split it into smaller writes"
    )]
    TooLarge { bytes: usize },
    /// Committed by the leader (at `index`), but this node, which took the write, had not
    /// applied it within `waited`: it lags the leader. The write stands; reads here show
    /// it once this node catches up.
    #[error(
        "the write was committed at index {index}, but this node had not applied it within {waited:?} (it lags the leader): the write stands, do not repeat it; read it from the leader or retry the read shortly"
    )]
    NotAppliedHere { index: u64, waited: Duration },
}

/// Why a request did not reach a leader that could serve it: the refusal writes
/// ([`WriteError`]), membership changes ([`MembershipError`]) and consistent reads
/// ([`ReadError`]) share.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaderError {
    /// Another node leads the cluster, or none is known; the request must go to the leader.
    #[error("{}", not_leader(*leader))]
    NotLeader { leader: Option<u64> },
    /// This node does not lead and could not reach the one it knows.
    #[error("the leader, node {leader}, cannot be reached from this node: {reason}")]
    Unreachable { leader: u64, reason: String },
}

/// What a write adds when the leader could not be reached: the write never left this node.
fn nothing_written(error: &LeaderError) -> &'static str {
    match error {
        LeaderError::NotLeader { .. } => "",
        LeaderError::Unreachable { .. } => "; nothing was written: retry, or write to another node",
    }
}

/// What a refusal for not leading says: whom to ask, or why nobody can be asked.
fn not_leader(leader: Option<u64>) -> String {
    match leader {
        Some(id) => format!("this node is not the raft leader (node {id} is)"),
        None => "no raft leader is known: an election is under way, or this node cannot reach a quorum of the cluster; nothing was done: retry".to_string(),
    }
}

/// Why the store did not open or shut down cleanly. Each message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {}: {cause}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("cannot open {}: {cause}: is another outpost running with this data dir?", path.display())]
    AlreadyOpen {
        path: PathBuf,
        #[source]
        cause: redb::Error,
    },
    #[error("cannot open {}: {cause}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        cause: redb::Error,
    },
    #[error("{} has storage format {found}, this outpost reads format {expected}: run the outpost version that wrote it", path.display())]
    Format {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("cannot load the zones stored in {}: {cause}", path.display())]
    Load {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error("{} belongs to node {found}, not node {wanted}: use the data directory of node {wanted}", path.display())]
    NodeId {
        path: PathBuf,
        found: u64,
        wanted: u64,
    },
    #[error("raft on {}: {message}", path.display())]
    Raft { path: PathBuf, message: String },
    #[error("raft on {} did not elect this node leader within {waited:?}: {message}", path.display())]
    NotLeader {
        path: PathBuf,
        waited: Duration,
        message: String,
    },
    #[error("shutdown: {0}")]
    Shutdown(String),
}

/// Why a membership change did not happen. A member that relays `cluster remove` (or its new
/// address) to the leader hears this back as its wire form, `rpc::RemoteMembershipError`.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// Only the leader changes the membership, and this node did not reach it.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// Raft refused the change (another one in progress, a voter that is not a learner yet).
    #[error("membership change refused: {0}")]
    Refused(String),
    /// Not committed in time; it may still be.
    #[error("membership change not committed within {0:?}; it may still take effect")]
    Timeout(Duration),
    #[error("raft: {0}")]
    Raft(String),
    #[error("node {0} is not a member of this cluster")]
    NoSuchNode(u64),
    #[error("node {0} is the cluster's last voter: a cluster cannot remove its last voter")]
    LastVoter(u64),
    /// The voters left would not make a quorum with the nodes the leader hears from now.
    #[error(
        "removing node {node} would leave {voters_left} voters of which only {reachable} answer the leader, less than a quorum of {quorum}: bring a node back first"
    )]
    QuorumLoss {
        node: u64,
        voters_left: usize,
        reachable: usize,
        quorum: usize,
    },
}

/// Why a consistent read did not happen. A member that asks the leader for its read index (or
/// its progress) hears this back as its wire form, `rpc::RemoteReadError`.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Only the leader serves consistent reads, and this node did not reach it.
    #[error(transparent)]
    Leader(#[from] LeaderError),
    /// This node could not confirm it still leads: a quorum did not answer.
    #[error("no quorum confirmed this node still leads: {0}")]
    NoQuorum(String),
    #[error("consistent read not confirmed within {0:?}")]
    Timeout(Duration),
    #[error("raft: {0}")]
    Raft(String),
}

impl From<MembershipError> for RemoteMembershipError {
    fn from(error: MembershipError) -> RemoteMembershipError {
        match error {
            MembershipError::Leader(LeaderError::NotLeader { leader }) => {
                RemoteMembershipError::NotLeader { leader }
            }
            MembershipError::Refused(reason) => RemoteMembershipError::Refused(reason),
            MembershipError::Timeout(waited) => RemoteMembershipError::Timeout(waited),
            MembershipError::Raft(reason) => RemoteMembershipError::Raft(reason),
            MembershipError::NoSuchNode(id) => RemoteMembershipError::NoSuchNode(id),
            MembershipError::LastVoter(id) => RemoteMembershipError::LastVoter(id),
            MembershipError::QuorumLoss {
                node,
                voters_left,
                reachable,
                quorum,
            } => RemoteMembershipError::QuorumLoss {
                node,
                voters_left,
                reachable,
                quorum,
            },
            MembershipError::Leader(LeaderError::Unreachable { leader, reason }) => {
                RemoteMembershipError::LeaderUnreachable { leader, reason }
            }
        }
    }
}

impl From<RemoteMembershipError> for MembershipError {
    fn from(error: RemoteMembershipError) -> MembershipError {
        match error {
            RemoteMembershipError::NotLeader { leader } => {
                MembershipError::Leader(LeaderError::NotLeader { leader })
            }
            RemoteMembershipError::Refused(reason) => MembershipError::Refused(reason),
            RemoteMembershipError::Timeout(waited) => MembershipError::Timeout(waited),
            RemoteMembershipError::Raft(reason) => MembershipError::Raft(reason),
            RemoteMembershipError::NoSuchNode(id) => MembershipError::NoSuchNode(id),
            RemoteMembershipError::LastVoter(id) => MembershipError::LastVoter(id),
            RemoteMembershipError::QuorumLoss {
                node,
                voters_left,
                reachable,
                quorum,
            } => MembershipError::QuorumLoss {
                node,
                voters_left,
                reachable,
                quorum,
            },
            RemoteMembershipError::LeaderUnreachable { leader, reason } => {
                MembershipError::Leader(LeaderError::Unreachable { leader, reason })
            }
        }
    }
}

impl From<ReadError> for RemoteReadError {
    fn from(error: ReadError) -> RemoteReadError {
        match error {
            ReadError::Leader(LeaderError::NotLeader { leader }) => {
                RemoteReadError::NotLeader { leader }
            }
            ReadError::NoQuorum(reason) => RemoteReadError::NoQuorum(reason),
            ReadError::Timeout(waited) => RemoteReadError::Timeout(waited),
            ReadError::Raft(reason) => RemoteReadError::Raft(reason),
            ReadError::Leader(LeaderError::Unreachable { leader, reason }) => {
                RemoteReadError::LeaderUnreachable { leader, reason }
            }
        }
    }
}

impl From<RemoteReadError> for ReadError {
    fn from(error: RemoteReadError) -> ReadError {
        match error {
            RemoteReadError::NotLeader { leader } => {
                ReadError::Leader(LeaderError::NotLeader { leader })
            }
            RemoteReadError::NoQuorum(reason) => ReadError::NoQuorum(reason),
            RemoteReadError::Timeout(waited) => ReadError::Timeout(waited),
            RemoteReadError::Raft(reason) => ReadError::Raft(reason),
            RemoteReadError::LeaderUnreachable { leader, reason } => {
                ReadError::Leader(LeaderError::Unreachable { leader, reason })
            }
        }
    }
}
