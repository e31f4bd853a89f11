//! Raft between nodes: openraft's network traits over a [`RaftTransport`] of ours.
//!
//! The chain of one RPC: openraft calls [`PeerClient`] (its `RaftNetworkV2`) → the request is
//! encoded by `codec` → [`RaftTransport::call`] carries the bytes to the peer, under the RPC's
//! deadline → the peer's [`RaftRpcHandler`] decodes, hands the request to its Raft and encodes
//! the reply → the reply is decoded here and given back to openraft.
//!
//! # Layout
//! This file is openraft's side (`RaftNetworkFactory`); it uses `codec` and `transport` and
//! re-exports the rest. From the bottom up:
//! - `codec`: the bytes of `store::rpc`'s messages; `transport`: the [`RaftTransport`] trait,
//!   its errors, [`NoPeers`] and [`PeerId`]. Both sit below everything in the store that
//!   sends or serves RPCs.
//! - `handler`: [`RaftRpcHandler`], the serving side, transport-neutral (it takes a caller's
//!   opaque [`PeerId`]); it answers with the store (`relay`, `cluster`, `join`).
//! - `iroh_transport` ([`iroh_transport::IrohTransport`], [`iroh_transport::RaftServer`]): the transport of real clusters,
//!   QUIC between ed25519 endpoint ids; `in_process`, for tests, runs every message through
//!   the same codec and handler and can cut, delay and drop links and crash nodes. Both use
//!   the handler.
//!
//! Errors map onto openraft's so that it backs off from a node that is down and retries a
//! broken exchange at once: [`TransportError::Unreachable`] → `RPCError::Unreachable`,
//! [`TransportError::Failed`] → `RPCError::Network`, the deadline → `RPCError::Timeout`.
//!
//! **Boundary:** openraft sees this module through `RaftNetworkFactory`; the rest of the
//! appliance sees [`RaftTransport`], [`RaftRpcHandler`] and bytes.

pub(crate) mod codec;
pub(crate) mod handler;
#[cfg(test)]
pub(crate) mod in_process;
pub(crate) mod iroh_transport;
pub(crate) mod transport;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use self::codec::{CodecError, MAX_RAFT_MESSAGE};
use self::transport::{RaftTransport, TransportError};
use super::rpc::{RaftReply, RaftRequest};
use super::types::{
    AppendEntriesRequest, AppendEntriesResponse, NodeInfo, Snapshot, SnapshotResponse, TypeConfig,
    Vote, VoteRequest, VoteResponse,
};

/// Hands openraft one [`PeerClient`] per peer, all over the same transport.
pub(crate) struct PeerNetwork {
    /// This node's id, named in timeouts.
    id: u64,
    transport: Arc<dyn RaftTransport>,
}

impl PeerNetwork {
    pub(crate) fn new(id: u64, transport: Arc<dyn RaftTransport>) -> PeerNetwork {
        PeerNetwork { id, transport }
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &NodeInfo) -> PeerClient {
        PeerClient {
            id: self.id,
            target,
            node: node.clone(),
            transport: Arc::clone(&self.transport),
        }
    }
}

/// Openraft's handle on one peer.
pub(crate) struct PeerClient {
    id: u64,
    target: u64,
    node: NodeInfo,
    transport: Arc<dyn RaftTransport>,
}

impl PeerClient {
    /// Sends one encoded request and decodes the reply, all within `deadline`.
    async fn exchange(
        &self,
        request: Vec<u8>,
        action: RPCTypes,
        deadline: Duration,
    ) -> Result<RaftReply, RPCError<TypeConfig>> {
        let call = self.transport.call(self.target, &self.node, request);
        let reply = match tokio::time::timeout(deadline, call).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(e @ TransportError::Unreachable { .. })) => {
                return Err(RPCError::Unreachable(Unreachable::new(&e)));
            }
            Ok(Err(e @ TransportError::Failed { .. })) => {
                return Err(RPCError::Network(NetworkError::new(&e)));
            }
            Err(_elapsed) => {
                return Err(RPCError::Timeout(Timeout {
                    action,
                    id: self.id,
                    target: self.target,
                    timeout: deadline,
                }));
            }
        };
        match codec::decode::<RaftReply>(&reply) {
            Ok(RaftReply::Unavailable(reason)) => Err(self.unreachable(reason)),
            Ok(reply) => Ok(reply),
            // A peer that answers what this node cannot read is as good as down: back off.
            Err(e) => Err(self.unreachable(format!("unreadable reply: {e}"))),
        }
    }

    fn unreachable(&self, reason: String) -> RPCError<TypeConfig> {
        let error = TransportError::Unreachable {
            node: self.target,
            reason,
        };
        RPCError::Unreachable(Unreachable::new(&error))
    }

    fn wrong_reply(&self, expected: &str, reply: &RaftReply) -> RPCError<TypeConfig> {
        tracing::warn!(
            target_node = self.target,
            expected,
            ?reply,
            "peer answered another rpc"
        );
        self.unreachable(format!("answered a {expected} request with {reply:?}"))
    }

    async fn vote_like(
        &self,
        request: RaftRequest,
        deadline: Duration,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        let kind = request.kind();
        let bytes = codec::encode(&request).map_err(|e| self.unreachable(e.to_string()))?;
        match self.exchange(bytes, RPCTypes::Vote, deadline).await? {
            RaftReply::Vote(response) | RaftReply::PreVote(response) => Ok(response),
            other => Err(self.wrong_reply(kind, &other)),
        }
    }
}

impl RaftNetworkV2<TypeConfig> for PeerClient {
    type SnapshotData = Vec<u8>;

    #[tracing::instrument(level = "trace", skip_all, fields(target_node = self.target, entries = rpc.entries.len()))]
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse, RPCError<TypeConfig>> {
        // A batch over the message cap is cut in halves until it fits; openraft hears a partial
        // success and sends the rest next.
        let mut request = RaftRequest::AppendEntries(rpc);
        let mut cut = false;
        let bytes = loop {
            match codec::encode(&request) {
                Ok(bytes) => break bytes,
                Err(CodecError::TooLarge { len }) => {
                    if let RaftRequest::AppendEntries(rpc) = &mut request
                        && rpc.entries.len() > 1
                    {
                        let keep = rpc.entries.len() / 2;
                        rpc.entries.truncate(keep);
                        cut = true;
                        continue;
                    }
                    tracing::error!(
                        target_node = self.target,
                        len,
                        "a single raft entry exceeds the message cap and cannot be replicated"
                    );
                    return Err(self.unreachable(format!(
                        "one log entry of {len} bytes exceeds the {MAX_RAFT_MESSAGE} byte cap"
                    )));
                }
                Err(e) => return Err(self.unreachable(e.to_string())),
            }
        };
        let last_sent = match &request {
            RaftRequest::AppendEntries(rpc) => rpc
                .entries
                .last()
                .map(|entry| entry.log_id)
                .or(rpc.prev_log_id),
            _ => None,
        };
        match self
            .exchange(bytes, RPCTypes::AppendEntries, option.soft_ttl())
            .await?
        {
            RaftReply::AppendEntries(AppendEntriesResponse::Success) if cut => {
                Ok(AppendEntriesResponse::PartialSuccess(last_sent))
            }
            RaftReply::AppendEntries(response) => Ok(response),
            other => Err(self.wrong_reply("append-entries", &other)),
        }
    }

    #[tracing::instrument(level = "trace", skip_all, fields(target_node = self.target))]
    async fn vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        self.vote_like(RaftRequest::Vote(rpc), option.soft_ttl())
            .await
    }

    #[tracing::instrument(level = "trace", skip_all, fields(target_node = self.target))]
    async fn pre_vote(
        &mut self,
        rpc: VoteRequest,
        option: RPCOption,
    ) -> Result<VoteResponse, RPCError<TypeConfig>> {
        self.vote_like(RaftRequest::PreVote(rpc), option.soft_ttl())
            .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(target_node = self.target, bytes = snapshot.snapshot.len()))]
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse, StreamingError<TypeConfig>> {
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            sent = self.send_snapshot(vote, snapshot, option.soft_ttl()) => sent.map_err(Into::into),
        }
    }
}

impl PeerClient {
    /// Sends a snapshot chunk by chunk, each within `deadline`; the reply to the last one is the
    /// peer's answer to the whole. A refused chunk fails the transfer, which openraft retries
    /// from the start.
    async fn send_snapshot(
        &self,
        vote: Vote,
        snapshot: Snapshot,
        deadline: Duration,
    ) -> Result<SnapshotResponse, RPCError<TypeConfig>> {
        let total = snapshot.snapshot.len() as u64;
        let mut chunks: Vec<&[u8]> = snapshot.snapshot.chunks(codec::SNAPSHOT_CHUNK).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut offset = 0u64;
        for (number, data) in chunks.into_iter().enumerate() {
            let request = RaftRequest::SnapshotChunk {
                vote,
                meta: snapshot.meta.clone(),
                total,
                offset,
                data: data.to_vec(),
            };
            let bytes = codec::encode(&request).map_err(|e| self.unreachable(e.to_string()))?;
            let reply = self
                .exchange(bytes, RPCTypes::InstallSnapshot, deadline)
                .await?;
            match reply {
                RaftReply::SnapshotChunkStored if number < last => {}
                RaftReply::InstallSnapshot(response) if number == last => return Ok(response),
                RaftReply::SnapshotChunkRefused(reason) => {
                    let error = TransportError::Failed {
                        node: self.target,
                        reason: format!("snapshot chunk refused: {reason}"),
                    };
                    return Err(RPCError::Network(NetworkError::new(&error)));
                }
                other => return Err(self.wrong_reply("snapshot-chunk", &other)),
            }
            offset += data.len() as u64;
        }
        Err(self.unreachable("the snapshot ended without an answer".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::handler::RaftRpcHandler;
    use super::transport::NoPeers;
    use super::*;

    #[tokio::test]
    async fn a_node_alone_finds_every_peer_unreachable_and_says_why() {
        let mut network = PeerNetwork::new(1, Arc::new(NoPeers));
        let mut peer = network.new_client(2, &NodeInfo::default()).await;
        let rpc = VoteRequest::new(Vote::new(1, 1), None);
        let err = peer
            .vote(rpc, RPCOption::new(Duration::from_secs(1)))
            .await
            .expect_err("no peers");
        assert!(matches!(err, RPCError::Unreachable(_)), "{err}");
        let message = err.to_string();
        assert!(message.contains("node 2"), "{message}");
        assert!(message.contains("no peer transport"), "{message}");
    }

    #[tokio::test]
    async fn a_handler_outliving_its_store_neither_holds_the_file_nor_panics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path()).await.expect("open");
        let handler = store.rpc_handler();
        let request = codec::encode(&RaftRequest::Vote(VoteRequest::new(Vote::new(9, 2), None)))
            .expect("encode");
        let reply: RaftReply =
            codec::decode(&handler.handle(&request).await.expect("served")).expect("decode");
        assert!(matches!(reply, RaftReply::Vote(_)), "{reply:?}");

        store
            .shutdown()
            .await
            .expect("the file closes though a handler is kept");
        let reply: RaftReply =
            codec::decode(&handler.handle(&request).await.expect("served")).expect("decode");
        assert!(matches!(reply, RaftReply::Unavailable(_)), "{reply:?}");
        assert!(handler.handle(b"not a request").await.is_err());
    }

    fn chunk(total: u64, offset: u64, data: &[u8]) -> Vec<u8> {
        codec::encode(&RaftRequest::SnapshotChunk {
            vote: Vote::new(1, 1),
            meta: crate::store::types::SnapshotMeta::default(),
            total,
            offset,
            data: data.to_vec(),
        })
        .expect("encode")
    }

    async fn send(handler: &RaftRpcHandler, request: Vec<u8>) -> RaftReply {
        codec::decode(&handler.handle(&request).await.expect("served")).expect("decode")
    }

    #[tokio::test]
    async fn snapshot_chunks_are_taken_only_in_order_and_under_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::store::Store::open(dir.path()).await.expect("open");
        let handler = store.rpc_handler();

        let reply = send(&handler, chunk(10, 4, b"late")).await;
        assert!(
            matches!(&reply, RaftReply::SnapshotChunkRefused(reason) if reason.contains("not started")),
            "{reply:?}"
        );
        let reply = send(&handler, chunk(codec::MAX_SNAPSHOT_BYTES + 1, 0, b"")).await;
        assert!(
            matches!(&reply, RaftReply::SnapshotChunkRefused(reason) if reason.contains("cap")),
            "{reply:?}"
        );

        assert!(matches!(
            send(&handler, chunk(10, 0, b"0123")).await,
            RaftReply::SnapshotChunkStored
        ));
        assert!(matches!(
            send(&handler, chunk(10, 4, b"45")).await,
            RaftReply::SnapshotChunkStored
        ));
        // A gap: the assembly is dropped, and the next chunk has nothing to continue.
        let reply = send(&handler, chunk(10, 8, b"89")).await;
        assert!(
            matches!(&reply, RaftReply::SnapshotChunkRefused(reason) if reason.contains("expected offset 6")),
            "{reply:?}"
        );
        let reply = send(&handler, chunk(10, 6, b"67")).await;
        assert!(
            matches!(reply, RaftReply::SnapshotChunkRefused(_)),
            "{reply:?}"
        );
        // Offset 0 starts over; a chunk past the declared total is refused.
        assert!(matches!(
            send(&handler, chunk(4, 0, b"01")).await,
            RaftReply::SnapshotChunkStored
        ));
        let reply = send(&handler, chunk(4, 2, b"234")).await;
        assert!(
            matches!(reply, RaftReply::SnapshotChunkRefused(_)),
            "{reply:?}"
        );
        store.shutdown().await.expect("shutdown");
    }
}
