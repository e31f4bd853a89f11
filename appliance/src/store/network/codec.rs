//! The bytes of Raft RPCs between nodes: one request, one reply, each a version byte then a
//! postcard [`RaftRequest`] or [`RaftReply`] (the messages of `store::rpc`), never more than
//! [`MAX_RAFT_MESSAGE`] bytes.
//!
//! Every transport carries exactly these bytes (the in-process one of the tests too), so the
//! code the chaos tests run is the code that talks to real peers. [`encode`] and [`decode`] are
//! the one way between the messages and their bytes; nothing else here knows a message's shape.
//!
//! **Boundary:** the wire between appliances of one cluster (docs/cluster.md). The messages'
//! own rules (variants appended, never reordered) are `store::rpc`'s; the vectors in
//! `codec/raft-vectors.txt` pin the bytes of one example of each. A change of the framing
//! here (the version byte, the cap) bumps [`WIRE_VERSION`].

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::store::rpc::{RaftReply, RaftRequest};

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

/// The largest command `Store::write` proposes, encoded: it must fit one Raft message to every
/// peer with room for the entry's log id and the request around it.
pub const MAX_PROPOSAL_BYTES: usize = MAX_RAFT_MESSAGE - 64 * 1024;

/// Snapshot data bytes per [`RaftRequest::SnapshotChunk`]: small enough that one chunk
/// arrives well within the RPC deadline on a slow link, large enough that the per-message
/// overhead is negligible. Tests use tiny chunks so that every snapshot they send is cut.
pub(crate) const SNAPSHOT_CHUNK: usize = if cfg!(test) { 512 } else { 1024 * 1024 };

/// The largest snapshot a node assembles from chunks (the whole state, held in memory as
/// openraft's snapshot data). A larger declared size is refused before anything is stored.
pub const MAX_SNAPSHOT_BYTES: u64 = 512 * 1024 * 1024;

/// What travels on the Raft wire: a request or a reply, nothing else.
pub(crate) trait RaftMessage: Serialize + DeserializeOwned {}

impl RaftMessage for RaftRequest {}

impl RaftMessage for RaftReply {}

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
pub(crate) fn encode<T: RaftMessage>(message: &T) -> Result<Vec<u8>, CodecError> {
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
pub(crate) fn decode<T: RaftMessage>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_RAFT_MESSAGE {
        return Err(CodecError::TooLarge { len: bytes.len() });
    }
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version != WIRE_VERSION {
        return Err(CodecError::Version { found: version });
    }
    postcard::from_bytes(body).map_err(|e| CodecError::Malformed(e.to_string()))
}

/// The codec as the fuzz targets (`fuzz/fuzz_targets/raft_rpc.rs`) reach it from outside
/// the crate: [`CodecError`] is the one name of this module that `store` exports, so the
/// message types stay private. Not an API.
impl CodecError {
    /// Decodes `bytes` as a `RaftRequest` and encodes it again.
    #[doc(hidden)]
    pub fn fuzz_reencode_request(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        encode(&decode::<RaftRequest>(bytes)?)
    }

    /// Decodes `bytes` as a `RaftReply` and encodes it again.
    #[doc(hidden)]
    pub fn fuzz_reencode_reply(bytes: &[u8]) -> Result<Vec<u8>, CodecError> {
        encode(&decode::<RaftReply>(bytes)?)
    }
}

#[cfg(test)]
mod vectors;

#[cfg(test)]
mod tests {
    use openraft::vote::RaftLeaderIdExt;

    use super::*;
    use crate::store::types::{LogId, SnapshotMeta, TypeConfig, Vote, VoteRequest};

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
