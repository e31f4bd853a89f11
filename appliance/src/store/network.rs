//! Raft networking for a single-node cluster: there are no peers, so every RPC fails as
//! `Unreachable`. Issue 3 replaces this module with Raft over iroh.
//!
//! **Boundary:** openraft only sees [`NoPeers`] through `RaftNetworkFactory`; nothing else in
//! the appliance depends on it.

use std::future::Future;

use openraft::errors::{RPCError, ReplicationClosed, StreamingError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, OptionalSend, RaftNetworkFactory, RaftNetworkV2};

use super::types::{Snapshot, TypeConfig, Vote};

/// Why every RPC fails, in the words an operator sees in the logs.
const NO_NETWORKING: &str = "cluster networking arrives with issue 3";

/// Hands openraft a client per peer; each one refuses every call.
pub(crate) struct NoPeers;

impl RaftNetworkFactory<TypeConfig> for NoPeers {
    type Network = UnreachablePeer;

    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> UnreachablePeer {
        UnreachablePeer { target }
    }
}

/// A peer this node cannot talk to.
pub(crate) struct UnreachablePeer {
    target: u64,
}

impl UnreachablePeer {
    fn unreachable(&self) -> Unreachable<TypeConfig> {
        tracing::debug!(
            target_node = self.target,
            "raft rpc to a peer without networking"
        );
        Unreachable::from_string(format!("node {}: {NO_NETWORKING}", self.target))
    }
}

impl RaftNetworkV2<TypeConfig> for UnreachablePeer {
    type SnapshotData = Vec<u8>;

    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig>> {
        Err(RPCError::Unreachable(self.unreachable()))
    }

    async fn full_snapshot(
        &mut self,
        _vote: Vote,
        _snapshot: Snapshot,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<TypeConfig>, StreamingError<TypeConfig>> {
        Err(StreamingError::Unreachable(self.unreachable()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_peer_is_unreachable_and_says_why() {
        let peer = NoPeers.new_client(2, &BasicNode::default()).await;
        let message = peer.unreachable().to_string();
        assert!(message.contains("node 2"), "{message}");
        assert!(
            message.contains("cluster networking arrives with issue 3"),
            "{message}"
        );
    }
}
