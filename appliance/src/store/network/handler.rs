//! The receiving side of Raft RPCs: request bytes in, reply bytes out.
//!
//! Transport-neutral: a transport hands it the bytes of one request and, when it can name
//! the caller, the caller's [`PeerId`]; it decodes the request (`codec`), answers it with the
//! local Raft or with the store (`relay`, `cluster`, `join`) and encodes the reply. It
//! depends on no transport; the transports depend on it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;

use super::codec::{self, CodecError, MAX_SNAPSHOT_BYTES};
use super::transport::PeerId;
use crate::store::handle::{Store, WeakStore};
use crate::store::relay;
use crate::store::rpc::{RaftReply, RaftRequest, RelayedOutcome};
use crate::store::state_machine::Raft;
use crate::store::types::{NodeInfo, Snapshot, SnapshotMeta, Vote};

/// Serves the Raft RPCs peers send this node: decodes a request, hands it to the local Raft
/// and encodes its answer. A transport's accept loop calls [`RaftRpcHandler::handle`] once per
/// request; clones share the node.
///
/// **Invariant:** nothing a peer sends is trusted for size: the codec refuses a request over
/// [`MAX_RAFT_MESSAGE`](super::codec::MAX_RAFT_MESSAGE) before decoding it. Who may send at all
/// is the transport's decision (the iroh transport serves only members and holders of a join
/// secret). A snapshot is assembled from its chunks up to [`MAX_SNAPSHOT_BYTES`], one snapshot
/// at a time.
#[derive(Clone)]
pub struct RaftRpcHandler {
    raft: Raft,
    /// This node's id, in logs.
    id: u64,
    /// How long a relayed write waits for its commit here.
    commit: Duration,
    /// The store, for the requests that are more than Raft's (joins, removals, progress, read
    /// index). Weak: a transport holds handlers, and the store holds its transport.
    store: WeakStore,
    /// The snapshot whose chunks are arriving. Only a leader sends snapshots, one at a time
    /// to each follower, so one slot is enough: a new snapshot (offset 0) replaces it.
    assembly: Arc<Mutex<Option<Assembly>>>,
}

/// What the reply to a node whose store stopped says.
const STOPPED: &str = "the store is shut down";

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Only a join may come from an endpoint that is not a member.
    #[error("only a join request may come from an endpoint that is not a member of the cluster")]
    NotMember,
}

/// A snapshot being received.
struct Assembly {
    vote: Vote,
    meta: SnapshotMeta,
    total: u64,
    data: Vec<u8>,
}

/// One received chunk, as [`RaftRpcHandler::take_chunk`] gets it.
struct Chunk {
    vote: Vote,
    meta: SnapshotMeta,
    total: u64,
    offset: u64,
    data: Vec<u8>,
}

impl fmt::Debug for RaftRpcHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftRpcHandler")
            .field("id", &self.id)
            .finish()
    }
}

impl RaftRpcHandler {
    pub(crate) fn new(store: &Store) -> RaftRpcHandler {
        RaftRpcHandler {
            raft: store.raft().clone(),
            id: store.node_id(),
            commit: store.timing().commit,
            store: store.downgrade(),
            assembly: Arc::new(Mutex::new(None)),
        }
    }

    fn store(&self) -> Option<Store> {
        self.store.upgrade()
    }

    /// The node this handler serves.
    pub fn node_id(&self) -> u64 {
        self.id
    }

    /// The nodes of the membership this node last appended or applied, voters and learners,
    /// as `(node id, node)`: whom a transport may take requests from. Empty while the node
    /// has never been part of a cluster.
    pub fn membership(&self) -> Vec<(u64, NodeInfo)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect()
    }

    /// Answers one request from a member. An error means the bytes were not a request this node
    /// reads; the transport drops the exchange (the caller times out or sees the stream end).
    pub async fn handle(&self, request: &[u8]) -> Result<Vec<u8>, CodecError> {
        match self.handle_from(None, true, request).await {
            Ok(reply) => Ok(reply),
            Err(HandleError::Codec(e)) => Err(e),
            Err(HandleError::NotMember) => Err(CodecError::Malformed("not a member".to_string())),
        }
    }

    /// Answers one request from `remote` (when the transport can name its caller), a member of
    /// the cluster or not. A node that is not a member may only ask to join: anything else is
    /// [`HandleError::NotMember`], and the transport closes its connection.
    pub async fn handle_from(
        &self,
        remote: Option<PeerId>,
        member: bool,
        request: &[u8],
    ) -> Result<Vec<u8>, HandleError> {
        let request: RaftRequest = codec::decode(request)?;
        let kind = request.kind();
        if !member && !matches!(request, RaftRequest::Join(_)) {
            return Err(HandleError::NotMember);
        }
        let reply = self.dispatch(remote, request).await;
        if let RaftReply::Unavailable(reason) = &reply {
            tracing::debug!(node_id = self.id, rpc = kind, %reason, "raft rpc not served");
        }
        Ok(codec::encode(&reply)?)
    }

    async fn dispatch(&self, remote: Option<PeerId>, request: RaftRequest) -> RaftReply {
        match request {
            RaftRequest::AppendEntries(rpc) => match self.raft.append_entries(rpc).await {
                Ok(response) => RaftReply::AppendEntries(response),
                Err(e) => RaftReply::Unavailable(e.to_string()),
            },
            RaftRequest::Vote(rpc) => match self.raft.vote(rpc).await {
                Ok(response) => RaftReply::Vote(response),
                Err(e) => RaftReply::Unavailable(e.to_string()),
            },
            RaftRequest::PreVote(rpc) => match self.raft.pre_vote(rpc).await {
                Ok(response) => RaftReply::PreVote(response),
                Err(e) => RaftReply::Unavailable(e.to_string()),
            },
            RaftRequest::Join(join) => match self.store() {
                Some(store) => RaftReply::Join(store.admit(remote, join).await),
                None => RaftReply::Unavailable(STOPPED.to_string()),
            },
            RaftRequest::RemoveNode { node_id } => match self.store() {
                Some(store) => {
                    RaftReply::RemoveNode(store.remove_on_leader(node_id).await.map_err(Into::into))
                }
                None => RaftReply::Unavailable(STOPPED.to_string()),
            },
            RaftRequest::Progress => match self.store() {
                Some(store) => RaftReply::Progress(store.progress().map_err(Into::into)),
                None => RaftReply::Unavailable(STOPPED.to_string()),
            },
            RaftRequest::SetAddress { node_id, addr } => match self.store() {
                Some(store) => {
                    let result = store.set_address(node_id, NodeInfo::new(addr)).await;
                    RaftReply::SetAddress(result.map_err(Into::into))
                }
                None => RaftReply::Unavailable(STOPPED.to_string()),
            },
            RaftRequest::ReadIndex => match self.store() {
                Some(store) => RaftReply::ReadIndex(store.read_index().await.map_err(Into::into)),
                None => RaftReply::Unavailable(STOPPED.to_string()),
            },
            RaftRequest::ClientWrite(command) => {
                // Proposed here or answered not-leader: never relayed again.
                let result = relay::propose(&self.raft, command, self.commit).await;
                RaftReply::ClientWrite(RelayedOutcome::from(result))
            }
            RaftRequest::SnapshotChunk {
                vote,
                meta,
                total,
                offset,
                data,
            } => {
                let chunk = Chunk {
                    vote,
                    meta,
                    total,
                    offset,
                    data,
                };
                self.snapshot_chunk(chunk).await
            }
        }
    }

    /// Stores a chunk of a snapshot; the chunk that completes it installs the snapshot.
    async fn snapshot_chunk(&self, chunk: Chunk) -> RaftReply {
        let complete = match self.take_chunk(chunk) {
            Err(reason) => return RaftReply::SnapshotChunkRefused(reason),
            Ok(None) => return RaftReply::SnapshotChunkStored,
            Ok(Some(complete)) => complete,
        };
        tracing::info!(
            node_id = self.id,
            bytes = complete.total,
            last_log_id = ?complete.meta.last_log_id,
            "snapshot received"
        );
        let snapshot = Snapshot {
            meta: complete.meta,
            snapshot: complete.data,
        };
        match self
            .raft
            .install_full_snapshot(complete.vote, snapshot)
            .await
        {
            Ok(response) => RaftReply::InstallSnapshot(response),
            Err(e) => RaftReply::Unavailable(e.to_string()),
        }
    }

    /// Adds a chunk to the snapshot being assembled; returns the snapshot once complete.
    /// **Invariant:** memory grows only by chunks that arrived, never by a declared size, and
    /// never past [`MAX_SNAPSHOT_BYTES`].
    fn take_chunk(&self, chunk: Chunk) -> Result<Option<Assembly>, String> {
        if chunk.total > MAX_SNAPSHOT_BYTES {
            return Err(format!(
                "snapshot of {} bytes exceeds the {MAX_SNAPSHOT_BYTES} byte cap",
                chunk.total
            ));
        }
        // A poisoned lock only means a panic elsewhere; the slot is replaced or checked anyway.
        let mut slot = self
            .assembly
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if chunk.offset == 0 {
            *slot = Some(Assembly {
                vote: chunk.vote,
                meta: chunk.meta.clone(),
                total: chunk.total,
                data: Vec::new(),
            });
        }
        let Some(assembly) = slot.as_mut() else {
            return Err(format!(
                "chunk at offset {} of a snapshot that was not started",
                chunk.offset
            ));
        };
        let end = chunk.offset.saturating_add(chunk.data.len() as u64);
        let continues = assembly.vote == chunk.vote
            && assembly.meta == chunk.meta
            && assembly.total == chunk.total
            && assembly.data.len() as u64 == chunk.offset
            && end <= chunk.total;
        if !continues {
            let expected = assembly.data.len();
            *slot = None;
            return Err(format!(
                "chunk at offset {} does not continue the snapshot being received (expected offset {expected} of the same snapshot)",
                chunk.offset
            ));
        }
        assembly.data.extend_from_slice(&chunk.data);
        if end < chunk.total {
            return Ok(None);
        }
        Ok(slot.take())
    }
}
