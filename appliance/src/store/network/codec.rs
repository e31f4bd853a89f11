//! The bytes of Raft RPCs between nodes: one request, one reply, each a version byte then a
//! postcard enum, never more than [`MAX_RAFT_MESSAGE`] bytes.
//!
//! Every transport carries exactly these bytes (the in-process one of the tests too), so the
//! code the chaos tests run is the code that talks to real peers.
//!
//! **Boundary:** the wire between appliances of one cluster. The bodies are openraft's own
//! request and response types, serialized with serde: openraft is pinned to one version, and
//! bumping it means checking those types did not change shape (or bumping [`WIRE_VERSION`]).
//! Variants are encoded by index: append new ones at the end.

use outpost_core::zones::Command;
use serde::{Deserialize, Serialize};

use super::super::cluster::{Progress, RemoteMembershipError, RemoteReadError};
use super::super::forward::ForwardedOutcome;
use super::super::join::{JoinOutcome, JoinRequest};
use super::super::types::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotMeta, SnapshotResponse, Vote, VoteRequest,
    VoteResponse,
};

/// The first byte of every request and reply. A node answers a request of another version
/// with [`CodecError::Version`] instead of guessing (the caller sees the peer as unreachable).
pub(crate) const WIRE_VERSION: u8 = 1;

/// The largest request or reply, version byte included. The decoder refuses anything longer
/// before reading it, so a peer can make a node hold at most this much per message.
///
/// Policy: 16 MiB holds openraft's batches of log entries (the sender splits a batch that does
/// not fit, see `network::PeerClient::append_entries`) and any write the admin API takes but
/// the largest zone imports. A single entry larger than this cannot be sent, so
/// `Store::write` refuses such a command before proposing it. Snapshots travel in chunks of
/// [`SNAPSHOT_CHUNK`] bytes, so their size is bounded by [`MAX_SNAPSHOT_BYTES`] instead.
pub const MAX_RAFT_MESSAGE: usize = 16 * 1024 * 1024;

/// Snapshot data bytes per [`RaftRequest::SnapshotChunk`]: small enough that one chunk
/// arrives well within the RPC deadline on a slow link, large enough that the per-message
/// overhead is negligible. Tests use tiny chunks so that every snapshot they send is cut.
pub(crate) const SNAPSHOT_CHUNK: usize = if cfg!(test) { 512 } else { 1024 * 1024 };

/// The largest snapshot a node assembles from chunks (the whole state, held in memory as
/// openraft's snapshot data). A larger declared size is refused before anything is stored.
pub const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

/// One Raft RPC from a leader or candidate.
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
    /// A write a follower took, for the leader to propose (`store::forward`).
    ClientWrite(Command),
    /// A new node presenting a join ticket (`store::join`); the only request a node that is not
    /// a member may send.
    Join(JoinRequest),
    /// `outpost cluster remove`, forwarded by a member to the leader.
    RemoveNode {
        node_id: u64,
    },
    /// The leader's view of replication, for a member's `cluster status`.
    Progress,
    /// The leader's read index, for a linearizable read on a member.
    ReadIndex,
    /// A member's new address, forwarded to the leader.
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
    /// What became of a forwarded write.
    ClientWrite(ForwardedOutcome),
    Join(JoinOutcome),
    /// What became of a forwarded removal: done, or why not.
    RemoveNode(Result<(), RemoteMembershipError>),
    /// The leader's replication progress (`Err`: the node does not lead).
    Progress(Result<Progress, RemoteReadError>),
    /// The index a linearizable read must see applied (`Err`: why there is none).
    ReadIndex(Result<u64, RemoteReadError>),
    SetAddress(Result<(), RemoteMembershipError>),
}

/// Why bytes are not a message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("raft message of {len} bytes exceeds the {MAX_RAFT_MESSAGE} byte cap")]
    TooLarge { len: usize },
    #[error("empty raft message")]
    Empty,
    #[error("raft wire version {found} is not supported (this node speaks {WIRE_VERSION})")]
    Version { found: u8 },
    #[error("raft message does not decode: {0}")]
    Malformed(String),
}

/// The version byte and the postcard body; refuses to produce more than the cap.
pub(crate) fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = postcard::to_extend(message, vec![WIRE_VERSION])
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_RAFT_MESSAGE {
        let len = bytes.len();
        bytes.clear();
        return Err(CodecError::TooLarge { len });
    }
    bytes.shrink_to_fit();
    Ok(bytes)
}

/// Checks the length and the version before decoding anything.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_RAFT_MESSAGE {
        return Err(CodecError::TooLarge { len: bytes.len() });
    }
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_VERSION {
        return Err(CodecError::Version { found: version });
    }
    postcard::from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))
}

#[cfg(test)]
mod vectors;

#[cfg(test)]
mod tests {
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::store::types::{LogId, TypeConfig};

    fn vote(term: u64, node: u64) -> Vote {
        Vote::new(term, node)
    }

    fn log_id(term: u64, node: u64, index: u64) -> LogId {
        type LeaderId = <TypeConfig as openraft::RaftTypeConfig>::LeaderId;
        LogId::new(LeaderId::new_committed(term, node), index)
    }

    #[test]
    fn a_request_survives_the_round_trip() {
        let request = RaftRequest::Vote(VoteRequest::new(vote(3, 2), Some(log_id(2, 1, 17))));
        let bytes = encode(&request).expect("encode");
        assert_eq!(bytes[0], WIRE_VERSION);
        let decoded: RaftRequest = decode(&bytes).expect("decode");
        let RaftRequest::Vote(decoded) = decoded else {
            panic!("decoded {decoded:?}");
        };
        assert_eq!(decoded.vote, vote(3, 2));
        assert_eq!(decoded.last_log_id, Some(log_id(2, 1, 17)));
    }

    #[test]
    fn another_version_is_refused_by_name() {
        let mut bytes = encode(&RaftReply::Unavailable("stopping".into())).expect("encode");
        bytes[0] = WIRE_VERSION + 1;
        let err = decode::<RaftReply>(&bytes).expect_err("refused");
        assert_eq!(
            err,
            CodecError::Version {
                found: WIRE_VERSION + 1
            }
        );
        assert!(err.to_string().contains("raft wire version 2"), "{err}");
    }

    #[test]
    fn nothing_over_the_cap_is_encoded_or_decoded() {
        let request = RaftRequest::SnapshotChunk {
            vote: vote(1, 1),
            meta: SnapshotMeta::default(),
            total: MAX_RAFT_MESSAGE as u64,
            offset: 0,
            data: vec![0; MAX_RAFT_MESSAGE],
        };
        assert!(matches!(
            encode(&request),
            Err(CodecError::TooLarge { len }) if len > MAX_RAFT_MESSAGE
        ));
        let oversized = vec![WIRE_VERSION; MAX_RAFT_MESSAGE + 1];
        assert!(matches!(
            decode::<RaftRequest>(&oversized),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn garbage_and_empty_messages_are_errors_not_panics() {
        assert_eq!(decode::<RaftRequest>(&[]).unwrap_err(), CodecError::Empty);
        let err = decode::<RaftRequest>(&[WIRE_VERSION, 200, 1, 2]).unwrap_err();
        assert!(matches!(err, CodecError::Malformed(_)), "{err}");
        // A declared length far beyond the message allocates nothing and fails.
        let err = decode::<RaftRequest>(&[WIRE_VERSION, 3, 0, 0, 0xff, 0xff, 0xff, 0x0f]);
        assert!(err.is_err());
    }
}
