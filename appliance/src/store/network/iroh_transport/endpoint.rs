//! A node's iroh endpoint for Raft: bound once ([`RaftEndpoint::bind`]), it hands the store
//! its transport ([`RaftEndpoint::transport`], the calling side in `client.rs`) and then serves
//! the store's handler ([`RaftEndpoint::serve`], the accepting side in `server.rs`).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

use ::iroh::endpoint::{QuicTransportConfig, VarInt, presets};
use ::iroh::{Endpoint, EndpointId, RelayMode, SecretKey};

use super::client::IrohTransport;
use super::server::RaftServer;
use super::{
    BoxedError, IDLE_TIMEOUT, IrohError, KEEP_ALIVE, MAX_STREAMS_PER_PEER, PeerAddr, RAFT_ALPN,
};
use crate::store::network::handler::RaftRpcHandler;
use crate::store::types::NodeInfo;

/// A node's bound iroh endpoint for Raft, before it serves: give [`RaftEndpoint::transport`]
/// to the store, then [`RaftEndpoint::serve`] the store's handler.
pub struct RaftEndpoint {
    endpoint: Endpoint,
    addr: PeerAddr,
}

impl RaftEndpoint {
    /// Binds a UDP socket on `addr` (port 0: any free port) under the identity `key`. No relay,
    /// no address lookup, no port mapping: peers reach it only at this address.
    pub async fn bind(key: SecretKey, addr: SocketAddr) -> Result<RaftEndpoint, IrohError> {
        if addr.ip().is_unspecified() {
            return Err(IrohError::UnspecifiedAddress(addr));
        }
        let bind_error = |reason: BoxedError| IrohError::Bind { addr, reason };
        let transport = QuicTransportConfig::builder()
            .max_idle_timeout(Some(idle_timeout()))
            .keep_alive_interval(KEEP_ALIVE)
            .max_concurrent_bidi_streams(VarInt::from_u32(MAX_STREAMS_PER_PEER))
            .build();
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(key)
            .alpns(vec![RAFT_ALPN.to_vec()])
            .relay_mode(RelayMode::Disabled)
            .transport_config(transport)
            .clear_ip_transports()
            .bind_addr(addr)
            .map_err(|e| bind_error(e.into()))?
            .bind()
            .await
            .map_err(|e| bind_error(e.into()))?;
        let bound = endpoint
            .bound_sockets()
            .into_iter()
            .find(|bound| bound.ip() == addr.ip());
        let Some(bound) = bound else {
            endpoint.close().await;
            return Err(bind_error("no socket was bound on that address".into()));
        };
        let addr = PeerAddr {
            id: endpoint.id(),
            addr: bound,
        };
        tracing::info!(%addr, "raft endpoint bound");
        Ok(RaftEndpoint { endpoint, addr })
    }

    /// This node's endpoint id and the address it is bound to (the actual port when bound on
    /// port 0).
    pub fn addr(&self) -> &PeerAddr {
        &self.addr
    }

    /// What the membership records about this node.
    pub fn node_info(&self) -> NodeInfo {
        self.addr.node_info()
    }

    /// The transport this node calls its peers with, over this endpoint.
    pub fn transport(&self) -> Arc<IrohTransport> {
        Arc::new(IrohTransport::new(self.endpoint.clone()))
    }

    /// Starts serving `handler` to the members of its node's cluster, and, while the node is not
    /// in its own membership, to the endpoints in `expected` (see the module's invariant).
    pub fn serve(self, handler: RaftRpcHandler, expected: BTreeSet<EndpointId>) -> RaftServer {
        RaftServer::spawn(self.endpoint, handler, expected)
    }

    /// Closes the endpoint without ever serving (a start that failed half-way).
    pub async fn close(self) {
        self.endpoint.close().await;
    }
}

/// [`IDLE_TIMEOUT`] in QUIC's terms (milliseconds, far below its 2^62 limit).
fn idle_timeout() -> ::iroh::endpoint::IdleTimeout {
    let millis = u32::try_from(IDLE_TIMEOUT.as_millis()).unwrap_or(u32::MAX);
    VarInt::from_u32(millis).into()
}
