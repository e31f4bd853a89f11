//! Raft between appliances over iroh: QUIC connections between ed25519 endpoint ids on the ALPN
//! [`RAFT_ALPN`], with no relay, no address lookup and no port mapping. Nodes dial the direct
//! address in each other's [`NodeInfo`], written `<endpoint id>@<ip:port>` ([`PeerAddr`]).
//!
//! The chain of one RPC: [`IrohTransport::call`] (`client.rs`) → the cached connection to the
//! peer (dialled in a task of its own, so that an RPC deadline of a few milliseconds never
//! aborts a handshake) → one bi-directional stream per RPC: the request bytes, then finish →
//! the peer's [`RaftServer`] (`server.rs`) checks the caller's endpoint id against its
//! membership, reads the request to its end under
//! [`MAX_RAFT_MESSAGE`](super::codec::MAX_RAFT_MESSAGE), hands it, with the caller's
//! [`PeerId`], to the store's `RaftRpcHandler` and writes the reply → the reply is read to its
//! end under the same cap.
//!
//! # Layout
//! This file holds what its modules share (the address format, the limits, the errors) and
//! uses none of them; they build on it.
//! - `identity`: the node's secret key in `<data-dir>/node.key`.
//! - `client`: [`IrohTransport`], the [`RaftTransport`](super::transport::RaftTransport) openraft
//!   calls peers through.
//! - `server`: [`RaftServer`], the accept loop serving peers' RPCs.
//! - `endpoint`: [`RaftEndpoint`], the bound endpoint that makes the other two.
//!
//! **Invariant:** a node serves Raft RPCs only to endpoints named in its membership (the id
//! before the `@` of a member's address), checked when a connection arrives and again on every
//! stream, so a node removed from the cluster is refused from its next RPC on. A node that is
//! not in its own membership yet (a new node waiting to be added, or catching up on the log
//! entries that add it) also admits the endpoints it was told to expect
//! ([`RaftEndpoint::serve`]: its join ticket's nodes). Anyone else may only ask to join
//! (`store::join`), one request at a time, on one of a few connections, within a deadline
//! from connecting; any other request, or the deadline passed, closes its connection with
//! [`REFUSED`], which callers see as unreachable.
//!
//! **Boundary:** the address text is stored in the Raft log (inside membership entries), so
//! [`PeerAddr`]'s format is part of the storage format: parse old forms forever.

mod client;
mod endpoint;
mod identity;
mod server;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use ::iroh::EndpointId;
use ::iroh::endpoint::VarInt;

pub use self::endpoint::RaftEndpoint;
pub use self::identity::{NODE_KEY_FILE_NAME, load_or_create_node_key};
pub use self::server::RaftServer;
use super::transport::PeerId;
use crate::store::types::NodeInfo;

/// The QUIC application protocol of Raft between appliances. The codec has its own version
/// byte; this one changes only if the framing (one stream per RPC) does.
pub const RAFT_ALPN: &[u8] = b"/outpost/raft/1";

/// How long dialling a peer may take (QUIC and TLS handshake). The dial runs in its own task,
/// so RPCs that give up sooner do not abort it; the next RPC finds the connection ready.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection that hears nothing from its peer for this long is closed, and the next RPC
/// dials again. It bounds how long RPCs go to a peer that died without closing (kill -9,
/// a cable pulled): Raft's heartbeats keep a healthy connection busy, and QUIC keep-alives
/// ([`KEEP_ALIVE`]) keep a quiet one open.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an otherwise quiet connection sends a keep-alive (well within [`IDLE_TIMEOUT`]).
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// The longest exchange of one RPC on an open connection, request written to reply read. A
/// backstop only: openraft and the write relayer give up much sooner (the relayer after
/// the commit timeout, 60 s, plus a margin); a connection whose exchange hits it is closed.
pub(crate) const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a peer has to send its whole request once it opened a stream, and to take the
/// whole reply. Generous enough for a [`MAX_RAFT_MESSAGE`](super::codec::MAX_RAFT_MESSAGE) on a
/// slow link.
pub(crate) const STREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// RPCs one peer may have in flight on its connection (QUIC's concurrent stream limit). Raft
/// keeps a few (heartbeat, replication, votes); the rest are relayed writes. When it is
/// reached, the peer's next RPC waits for a stream until its own deadline.
pub(crate) const MAX_STREAMS_PER_PEER: u32 = 128;

/// The application close code for a peer that is not a member; its text says why.
pub const REFUSED: VarInt = VarInt::from_u32(1);

/// The stream reset code of an exchange abandoned half-way, so that the other side never
/// takes a truncated message for a whole one.
pub(crate) const ABANDONED: VarInt = VarInt::from_u32(2);

/// Where a node's Raft endpoint is: its endpoint id and the direct address it listens on,
/// written `<endpoint id>@<ip:port>` (the id in hex, as iroh prints it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerAddr {
    pub id: EndpointId,
    pub addr: SocketAddr,
}

/// Why an address is not a [`PeerAddr`].
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("raft address {text:?} is not <endpoint id>@<ip:port>: {reason}")]
pub struct PeerAddrError {
    text: String,
    reason: String,
}

impl FromStr for PeerAddr {
    type Err = PeerAddrError;

    fn from_str(text: &str) -> Result<PeerAddr, PeerAddrError> {
        let error = |reason: String| PeerAddrError {
            text: text.to_string(),
            reason,
        };
        let (id, addr) = text
            .split_once('@')
            .ok_or_else(|| error("no '@' between the endpoint id and the address".to_string()))?;
        let id = EndpointId::from_str(id)
            .map_err(|e| error(format!("the endpoint id is not a public key ({e})")))?;
        let addr = SocketAddr::from_str(addr)
            .map_err(|e| error(format!("the address is not an ip:port ({e})")))?;
        Ok(PeerAddr { id, addr })
    }
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.id, self.addr)
    }
}

impl PeerAddr {
    /// The membership's record of this address.
    pub fn node_info(&self) -> NodeInfo {
        NodeInfo::new(self.to_string())
    }

    /// The id the iroh transport reports for requests from this address's endpoint.
    pub fn peer_id(&self) -> PeerId {
        peer_id(&self.id)
    }
}

/// The [`PeerId`] of a caller of this transport: its endpoint id, the ed25519 public key its
/// QUIC connection authenticated.
pub(crate) fn peer_id(endpoint: &EndpointId) -> PeerId {
    PeerId::from_bytes(*endpoint.as_bytes())
}

/// A cause of any type, kept for [`std::error::Error::source`].
pub(crate) type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// Why the Raft endpoint could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum IrohError {
    /// Peers dial the address a node listens on, so it must be one they can reach.
    #[error(
        "raft address {0} is unspecified: give the address peers dial (for example 192.0.2.10:7400)"
    )]
    UnspecifiedAddress(SocketAddr),
    #[error("cannot bind the raft endpoint on {addr}: {reason}")]
    Bind {
        addr: SocketAddr,
        #[source]
        reason: BoxedError,
    },
    #[error("the raft endpoint did not shut down cleanly: {0}")]
    Shutdown(String),
}

#[cfg(test)]
mod tests {
    use ::iroh::SecretKey;

    use super::*;

    #[test]
    fn a_peer_address_reads_back_what_it_writes_and_refusals_say_why() {
        let key = SecretKey::from_bytes(&[7; 32]);
        let addr = PeerAddr {
            id: key.public(),
            addr: "127.0.0.1:7400".parse().expect("socket address"),
        };
        let text = addr.to_string();
        assert!(text.ends_with("@127.0.0.1:7400"), "{text}");
        assert_eq!(text.parse::<PeerAddr>(), Ok(addr.clone()));
        assert_eq!(addr.node_info().addr, text);

        let cases = [
            ("127.0.0.1:7400", "no '@'"),
            ("abc@127.0.0.1:7400", "not a public key"),
            (&format!("{}@localhost", key.public()), "not an ip:port"),
            ("in-process:2", "no '@'"),
        ];
        for (text, expected) in cases {
            let error = text.parse::<PeerAddr>().expect_err(text).to_string();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(error.contains(text), "{text}: {error}");
        }
    }
}
