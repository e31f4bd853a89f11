//! Raft between nodes: openraft's network traits over a [`Transport`] of ours.
//!
//! The chain of one RPC: openraft calls [`PeerClient`] (its `RaftNetworkV2`) → the request is
//! encoded by `codec` → [`Transport::call`] carries the bytes to the peer, under the RPC's
//! deadline → the peer's [`RaftRpcHandler`] decodes, hands the request to its Raft and encodes
//! the reply → the reply is decoded here and given back to openraft.
//!
//! Transports: [`NoPeers`] for a node alone (every call fails as unreachable); the iroh
//! transport for real clusters (to come); `in_process` for tests, which runs every message
//! through the same codec and handler and can cut, delay and drop links and crash nodes.
//!
//! Errors map onto openraft's so that it backs off from a node that is down and retries a
//! broken exchange at once: [`TransportError::Unreachable`] → `RPCError::Unreachable`,
//! [`TransportError::Failed`] → `RPCError::Network`, the deadline → `RPCError::Timeout`.
//!
//! **Boundary:** openraft sees this module through `RaftNetworkFactory`; the rest of the
//! appliance sees [`Transport`], [`RaftRpcHandler`] and bytes.

mod codec;
mod handler;
#[cfg(test)]
pub(crate) mod in_process;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use openraft::errors::{
    NetworkError, RPCError, ReplicationClosed, StreamingError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes};
use openraft::{OptionalSend, RaftNetworkFactory, RaftNetworkV2};

pub use self::codec::{CodecError, MAX_RAFT_MESSAGE};
use self::codec::{RaftReply, RaftRequest};
pub use self::handler::RaftRpcHandler;
use super::types::{
    AppendEntriesRequest, AppendEntriesResponse, NodeInfo, Snapshot, SnapshotResponse, TypeConfig,
    Vote, VoteRequest, VoteResponse,
};

/// Carries one request's bytes to a peer and brings back the reply's bytes.
///
/// A transport needs no deadline of its own: the caller drops the future when the RPC's time
/// is up. It must not retry a request on its own (a retried append is openraft's decision).
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` to node `to`, found at `to_node`, and returns its reply.
    fn call<'a>(
        &'a self,
        to: u64,
        to_node: &'a NodeInfo,
        request: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>>;
}

/// Why a transport call brought back no reply.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// No way to the node now (not running, no address, link down): openraft backs off before
    /// trying it again.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable { node: u64, reason: String },
    /// The exchange started and broke (connection reset mid-way): openraft retries at once.
    #[error("raft rpc to node {node} failed: {reason}")]
    Failed { node: u64, reason: String },
}

/// The transport of a node alone: there is nobody to call.
pub struct NoPeers;

impl Transport for NoPeers {
    fn call<'a>(
        &'a self,
        to: u64,
        _to_node: &'a NodeInfo,
        _request: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            Err(TransportError::Unreachable {
                node: to,
                reason: "this node has no peer transport".to_string(),
            })
        })
    }
}

/// Hands openraft one [`PeerClient`] per peer, all over the same transport.
pub(crate) struct PeerNetwork {
    /// This node's id, named in timeouts.
    id: u64,
    transport: Arc<dyn Transport>,
}

impl PeerNetwork {
    pub(crate) fn new(id: u64, transport: Arc<dyn Transport>) -> PeerNetwork {
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
    transport: Arc<dyn Transport>,
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

    #[tracing::instrument(level = "debug", skip_all, fields(target_node = self.target))]
    async fn full_snapshot(
        &mut self,
        vote: Vote,
        snapshot: Snapshot,
        cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse, StreamingError<TypeConfig>> {
        let request = RaftRequest::InstallSnapshot {
            vote,
            meta: snapshot.meta,
            data: snapshot.snapshot,
        };
        let bytes = codec::encode(&request).map_err(|e| {
            tracing::error!(target_node = self.target, error = %e, "snapshot cannot be sent");
            self.unreachable(e.to_string())
        })?;
        let exchange = self.exchange(bytes, RPCTypes::InstallSnapshot, option.soft_ttl());
        tokio::select! {
            closed = cancel => Err(StreamingError::Closed(closed)),
            reply = exchange => match reply? {
                RaftReply::InstallSnapshot(response) => Ok(response),
                other => Err(self.wrong_reply("install-snapshot", &other).into()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
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
}
