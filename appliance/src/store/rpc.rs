//! The Raft RPCs between the nodes of a cluster, as values: a [`RaftRequest`], answered by a
//! [`RaftReply`] of the same kind, and the payloads of the requests that are ours rather than
//! openraft's: a relayed write ([`RelayedOutcome`]), a join ([`JoinRequest`],
//! [`JoinOutcome`]), the leader's replication [`Progress`], and the errors of a relayed
//! membership change or read ([`RemoteMembershipError`], [`RemoteReadError`]).
//!
//! Who uses them, from the bottom up: `network::codec` turns them into bytes and back;
//! `network` (openraft's side), `relay`, `cluster` and `join` build requests and read
//! replies; `network::handler` answers requests. This module depends on none of them, only on
//! the openraft type configuration (`types`) and the zones model's commands and changes.
//!
//! **Boundary:** these types are the wire between the appliances of one cluster
//! (docs/cluster.md, The Raft wire), pinned byte for byte by `network/codec/raft-vectors.txt`.
//! Postcard encodes by position: a variant is encoded by its index, so new variants are
//! appended at the end, and no field changes its type or place. The bodies of openraft's own
//! RPCs are openraft's types, so openraft stays pinned to one version. The errors here are wire
//! types of their own: the errors callers see (`MembershipError`, `ReadError` in `cluster`) are
//! converted to and from them, so rewording those never moves the wire.

use std::time::Duration;

use outpost_core::state::{Change, Command, CommandError};
use serde::{Deserialize, Serialize};

use super::types::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotMeta, SnapshotResponse, Vote, VoteRequest,
    VoteResponse,
};

/// One Raft RPC from a leader or candidate, or one request of ours from a node of the cluster
/// (or, for [`RaftRequest::Join`], from a node that wants to be one).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftRequest {
    AppendEntries(AppendEntriesRequest),
    Vote(VoteRequest),
    PreVote(VoteRequest),
    /// Bytes `offset..offset + data.len()` of a snapshot of `total` bytes, sent in order; the
    /// chunk that completes it installs it. A chunk at offset 0 starts over.
    SnapshotChunk {
        vote: Vote,
        meta: SnapshotMeta,
        total: u64,
        offset: u64,
        data: Vec<u8>,
    },
    /// A write a follower took, for the leader to propose (`store::relay`).
    ClientWrite(Command),
    /// A new node presenting a join ticket (`store::join`); the only request a node that is not
    /// a member may send.
    Join(JoinRequest),
    /// `outpost cluster remove`, relayed by a member to the leader.
    RemoveNode {
        node_id: u64,
    },
    /// The leader's view of replication, for a member's `cluster status`.
    Progress,
    /// The leader's read index, for a linearizable read on a member.
    ReadIndex,
    /// A member's new address, relayed to the leader.
    SetAddress {
        node_id: u64,
        addr: String,
    },
}

impl RaftRequest {
    /// The request's name in logs and errors.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            RaftRequest::AppendEntries(_) => "append-entries",
            RaftRequest::Vote(_) => "vote",
            RaftRequest::PreVote(_) => "pre-vote",
            RaftRequest::SnapshotChunk { .. } => "snapshot-chunk",
            RaftRequest::ClientWrite(_) => "client-write",
            RaftRequest::Join(_) => "join",
            RaftRequest::RemoveNode { .. } => "remove-node",
            RaftRequest::Progress => "progress",
            RaftRequest::ReadIndex => "read-index",
            RaftRequest::SetAddress { .. } => "set-address",
        }
    }
}

/// The answer to a [`RaftRequest`], of the same kind, or why the node could not answer.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftReply {
    AppendEntries(AppendEntriesResponse),
    Vote(VoteResponse),
    PreVote(VoteResponse),
    /// The last chunk of a snapshot arrived and the snapshot was installed (or refused for an
    /// older vote, which the response's vote tells).
    InstallSnapshot(SnapshotResponse),
    /// The receiving node's Raft has stopped (it is shutting down or failed).
    Unavailable(String),
    /// A chunk, not the last, was stored.
    SnapshotChunkStored,
    /// A chunk did not continue the snapshot being assembled (out of order, another
    /// snapshot, over the size cap); the sender starts over.
    SnapshotChunkRefused(String),
    /// What became of a relayed write.
    ClientWrite(RelayedOutcome),
    Join(JoinOutcome),
    /// What became of a relayed removal: done, or why not.
    RemoveNode(Result<(), RemoteMembershipError>),
    /// The leader's replication progress (`Err`: the node does not lead).
    Progress(Result<Progress, RemoteReadError>),
    /// The index a linearizable read must see applied (`Err`: why there is none).
    ReadIndex(Result<u64, RemoteReadError>),
    SetAddress(Result<(), RemoteMembershipError>),
}

/// A relayed write's outcome (inside [`RaftReply::ClientWrite`]): the leader's
/// `Result<Written, WriteError>`, converted in `store::relay` both ways.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RelayedOutcome {
    Written {
        index: u64,
        changes: Vec<Change>,
    },
    Rejected(CommandError),
    NotLeader {
        leader: Option<u64>,
    },
    TooLarge {
        bytes: u64,
    },
    Timeout {
        waited_ms: u64,
    },
    /// Raft failed on the leader; the write may or may not have been committed.
    Failed(String),
}

/// A join request (inside [`RaftRequest::Join`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct JoinRequest {
    pub(crate) secret: [u8; 32],
    pub(crate) node_id: u64,
    /// `<endpoint id>@<ip:port>`: where the leader reaches the joiner.
    pub(crate) addr: String,
}

/// What became of a join request (inside [`RaftReply::Join`]).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum JoinOutcome {
    /// The node is a voter; the voters now.
    Joined { voters: Vec<u64> },
    /// Ask the leader instead (`None`: no leader is known yet; ask again soon).
    NotLeader { leader: Option<(u64, String)> },
    /// The cluster will not take this node; asking again will not change that.
    Refused(String),
    /// The join broke half-way (a timeout, a lost leader); asking again may succeed.
    Failed(String),
}

/// The leader's view of replication (inside [`RaftReply::Progress`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Progress {
    pub(crate) last_log_index: Option<u64>,
    pub(crate) peers: Vec<PeerProgress>,
}

/// How far one node got, as its leader sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PeerProgress {
    pub(crate) id: u64,
    /// The last log index the leader knows the node holds.
    pub(crate) matched_index: Option<u64>,
    /// Milliseconds since the node last answered the leader (0 for the leader itself).
    pub(crate) last_contact_ms: Option<u64>,
}

/// Why a relayed membership change (a removal, a new address) did not happen, as the leader
/// answers it; `cluster::MembershipError` variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteMembershipError {
    NotLeader {
        leader: Option<u64>,
    },
    Refused(String),
    Timeout(Duration),
    Raft(String),
    NoSuchNode(u64),
    LastVoter(u64),
    QuorumLoss {
        node: u64,
        voters_left: usize,
        reachable: usize,
        quorum: usize,
    },
    LeaderUnreachable {
        leader: u64,
        reason: String,
    },
}

/// Why the leader gave no progress or read index, as it answers it; `cluster::ReadError`
/// variant for variant.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RemoteReadError {
    NotLeader { leader: Option<u64> },
    NoQuorum(String),
    Timeout(Duration),
    Raft(String),
    LeaderUnreachable { leader: u64, reason: String },
}
