//! What carries Raft's bytes between nodes: the [`Transport`] trait every transport implements
//! (iroh between appliances, in-process in the tests, [`NoPeers`] for a node alone), and the
//! errors it reports.
//!
//! It knows bytes and node addresses, nothing of Raft: it depends only on `types`
//! ([`NodeInfo`]), so the store's handle, its options and every sender of RPCs can hold a
//! transport without depending on the network module that serves openraft.

use futures_util::future::BoxFuture;

use crate::store::types::NodeInfo;

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
