//! The receiving side of Raft RPCs: request bytes in, reply bytes out.

use std::fmt;

use super::codec::{self, CodecError, RaftReply, RaftRequest};
use crate::store::types::{Raft, Snapshot};

/// Serves the Raft RPCs peers send this node: decodes a request, hands it to the local Raft
/// and encodes its answer. A transport's accept loop calls [`RaftRpcHandler::handle`] once per
/// request; clones share the node.
///
/// **Invariant:** nothing a peer sends is trusted for size: the codec refuses a request over
/// [`super::MAX_RAFT_MESSAGE`] before decoding it. Who may send at all is the transport's
/// decision (the iroh transport serves only members and holders of a join secret).
#[derive(Clone)]
pub struct RaftRpcHandler {
    raft: Raft,
    /// This node's id, in logs.
    id: u64,
}

impl fmt::Debug for RaftRpcHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RaftRpcHandler")
            .field("id", &self.id)
            .finish()
    }
}

impl RaftRpcHandler {
    pub(crate) fn new(raft: Raft, id: u64) -> RaftRpcHandler {
        RaftRpcHandler { raft, id }
    }

    /// The node this handler serves.
    pub fn node_id(&self) -> u64 {
        self.id
    }

    /// Answers one request. An error means the bytes were not a request this node reads; the
    /// transport drops the exchange (the caller times out or sees the stream end).
    pub async fn handle(&self, request: &[u8]) -> Result<Vec<u8>, CodecError> {
        let request: RaftRequest = codec::decode(request)?;
        let kind = request.kind();
        let reply = self.dispatch(request).await;
        if let RaftReply::Unavailable(reason) = &reply {
            tracing::debug!(node_id = self.id, rpc = kind, %reason, "raft rpc not served");
        }
        codec::encode(&reply)
    }

    async fn dispatch(&self, request: RaftRequest) -> RaftReply {
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
            RaftRequest::InstallSnapshot { vote, meta, data } => {
                let snapshot = Snapshot {
                    meta,
                    snapshot: data,
                };
                match self.raft.install_full_snapshot(vote, snapshot).await {
                    Ok(response) => RaftReply::InstallSnapshot(response),
                    Err(e) => RaftReply::Unavailable(e.to_string()),
                }
            }
        }
    }
}
