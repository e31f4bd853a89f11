//! What carries Raft's bytes between nodes: the [`RaftTransport`] trait every transport implements
//! (iroh between appliances, in-process in the tests, [`NoPeers`] for a node alone), the
//! errors it reports, and the [`PeerId`] it names a caller by when it serves.
//!
//! It knows bytes and node addresses, nothing of Raft: it depends only on `types`
//! ([`NodeInfo`]), so the store's handle, its options and every sender of RPCs can hold a
//! transport without depending on the network module that serves openraft.

use std::fmt;

use futures_util::future::BoxFuture;

use crate::store::types::NodeInfo;

/// Carries one request's bytes to a peer and brings back the reply's bytes.
///
/// A transport needs no deadline of its own: the caller drops the future when the RPC's time
/// is up. It must not retry a request on its own (a retried append is openraft's decision).
pub trait RaftTransport: Send + Sync + 'static {
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

impl RaftTransport for NoPeers {
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

/// Who sent a request, as the serving transport authenticated it (for iroh, the caller's
/// endpoint id: its ed25519 public key). Opaque to the store: the handler passes it on and a
/// join compares it with the id in the joiner's address, so the handler serves any transport
/// that can name its callers, and one that cannot passes none.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId([u8; 32]);

impl PeerId {
    pub fn from_bytes(bytes: [u8; 32]) -> PeerId {
        PeerId(bytes)
    }
}

/// In hex, as addresses write endpoint ids.
impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}
