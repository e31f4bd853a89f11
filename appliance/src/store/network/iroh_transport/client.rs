//! The calling side: one cached connection per peer, one bi-directional stream per RPC.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use ::iroh::endpoint::{Connection, ConnectionError, SendStream, WriteError};
use ::iroh::{Endpoint, EndpointAddr};
use futures_util::future::BoxFuture;

use super::{ABANDONED, CONNECT_TIMEOUT, EXCHANGE_TIMEOUT, PeerAddr, RAFT_ALPN, REFUSED};
use crate::store::network::codec::MAX_RAFT_MESSAGE;
use crate::store::network::transport::{RaftTransport, TransportError};
use crate::store::types::NodeInfo;

/// Carries Raft RPCs to peers over iroh connections.
///
/// **Invariant:** at most one connection per peer node is cached, and only while it is open:
/// a connection that closed, or whose exchange timed out, is evicted and closed, and the next
/// RPC dials again. Dialling runs in a spawned task under [`CONNECT_TIMEOUT`], one at a time
/// per peer, so a caller that gives up early neither aborts the handshake nor starts a second.
pub struct IrohTransport {
    endpoint: Endpoint,
    /// The connection slot of each peer node, by node id.
    peers: Mutex<HashMap<u64, Arc<PeerSlot>>>,
}

/// A peer's cached connection; the async lock is held while dialling, so concurrent RPCs
/// wait for the one handshake.
type PeerSlot = tokio::sync::Mutex<Option<Cached>>;

/// An open connection and the address it was dialled at, as the membership writes it (so the
/// common case compares text instead of parsing the endpoint id again).
struct Cached {
    addr: String,
    connection: Connection,
}

impl Cached {
    /// The connection, if it is to `addr` and still open.
    fn open_to(&self, addr: &str) -> Option<Connection> {
        (self.addr == addr && self.connection.close_reason().is_none())
            .then(|| self.connection.clone())
    }
}

/// Where an exchange broke, which decides how openraft hears of it.
enum Stage {
    /// No stream could be opened: the peer is as good as unreachable.
    Open,
    /// The request or reply broke on the way: openraft may retry at once.
    Exchange,
}

impl IrohTransport {
    pub(super) fn new(endpoint: Endpoint) -> IrohTransport {
        IrohTransport {
            endpoint,
            peers: Mutex::new(HashMap::new()),
        }
    }

    fn peers(&self) -> MutexGuard<'_, HashMap<u64, Arc<PeerSlot>>> {
        // The map is only read and inserted into; a panic elsewhere leaves it consistent.
        self.peers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[tracing::instrument(level = "trace", skip_all, fields(target_node = to, bytes = request.len()))]
    async fn exchange_with(
        &self,
        to: u64,
        to_node: &NodeInfo,
        request: Vec<u8>,
    ) -> Result<Vec<u8>, TransportError> {
        let slot = Arc::clone(self.peers().entry(to).or_default());
        let connection = self.connection(to, &slot, &to_node.addr).await?;
        let exchanged = tokio::time::timeout(EXCHANGE_TIMEOUT, exchange(&connection, &request));
        let failure = match exchanged.await {
            Ok(Ok(reply)) => return Ok(reply),
            Ok(Err((stage, reason))) => failure(to, &connection, stage, reason),
            Err(_elapsed) => {
                connection.close(ABANDONED, b"raft rpc timed out");
                TransportError::Failed {
                    node: to,
                    reason: format!("no reply within {EXCHANGE_TIMEOUT:?}"),
                }
            }
        };
        if connection.close_reason().is_some() {
            evict(&slot, &connection);
        }
        tracing::debug!(target_node = to, error = %failure, "raft rpc failed");
        Err(failure)
    }

    /// The open connection to the peer at `addr`, dialled if there is none.
    async fn connection(
        &self,
        to: u64,
        slot: &Arc<PeerSlot>,
        addr: &str,
    ) -> Result<Connection, TransportError> {
        // The common case: a connection is cached and nobody is dialling.
        if let Ok(cached) = slot.try_lock()
            && let Some(connection) = cached.as_ref().and_then(|cached| cached.open_to(addr))
        {
            return Ok(connection);
        }
        let peer: PeerAddr =
            addr.parse()
                .map_err(|e: super::PeerAddrError| TransportError::Unreachable {
                    node: to,
                    reason: e.to_string(),
                })?;
        let dial = tokio::spawn(dial(
            self.endpoint.clone(),
            Arc::clone(slot),
            addr.to_string(),
            peer,
        ));
        match dial.await {
            Ok(dialled) => {
                dialled.map_err(|reason| TransportError::Unreachable { node: to, reason })
            }
            Err(e) => Err(TransportError::Unreachable {
                node: to,
                reason: format!("dialling stopped: {e}"),
            }),
        }
    }
}

impl RaftTransport for IrohTransport {
    fn call<'a>(
        &'a self,
        to: u64,
        to_node: &'a NodeInfo,
        request: Vec<u8>,
    ) -> BoxFuture<'a, Result<Vec<u8>, TransportError>> {
        Box::pin(self.exchange_with(to, to_node, request))
    }
}

/// Returns the slot's connection if it is open and to `addr`, else dials `peer` (which `addr`
/// names) and caches the new connection. Holds the slot's lock throughout, so one dial runs
/// per peer.
async fn dial(
    endpoint: Endpoint,
    slot: Arc<PeerSlot>,
    addr: String,
    peer: PeerAddr,
) -> Result<Connection, String> {
    let mut cached = slot.lock().await;
    if let Some(connection) = cached.as_ref().and_then(|cached| cached.open_to(&addr)) {
        return Ok(connection);
    }
    if let Some(stale) = cached.take() {
        stale.connection.close(ABANDONED, b"replaced");
    }
    let target = EndpointAddr::new(peer.id).with_ip_addr(peer.addr);
    let connection =
        match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect(target, RAFT_ALPN)).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return Err(format!("cannot connect to {peer}: {e}")),
            Err(_elapsed) => {
                return Err(format!(
                    "cannot connect to {peer}: no handshake within {CONNECT_TIMEOUT:?}"
                ));
            }
        };
    tracing::debug!(%peer, "raft connection open");
    *cached = Some(Cached {
        addr,
        connection: connection.clone(),
    });
    Ok(connection)
}

/// Takes `connection` out of the slot if it is still the cached one.
fn evict(slot: &PeerSlot, connection: &Connection) {
    // A dial holding the lock replaces the closed connection anyway.
    if let Ok(mut cached) = slot.try_lock()
        && cached
            .as_ref()
            .is_some_and(|cached| cached.connection.stable_id() == connection.stable_id())
    {
        *cached = None;
    }
}

/// One RPC on its own stream: the request, finished, then the reply read to its end.
async fn exchange(connection: &Connection, request: &[u8]) -> Result<Vec<u8>, (Stage, String)> {
    let (send, mut recv) = connection
        .open_bi()
        .await
        .map_err(|e| (Stage::Open, format!("cannot open a stream: {e}")))?;
    Outgoing::new(send)
        .send(request)
        .await
        .map_err(|e| (Stage::Exchange, format!("sending the request: {e}")))?;
    recv.read_to_end(MAX_RAFT_MESSAGE)
        .await
        .map_err(|e| (Stage::Exchange, format!("reading the reply: {e}")))
}

/// How openraft hears of a broken exchange: a peer that refused this node, or a stream that
/// could not be opened, is unreachable (openraft backs off); a broken exchange failed (it may
/// retry at once).
fn failure(to: u64, connection: &Connection, stage: Stage, reason: String) -> TransportError {
    if let Some(ConnectionError::ApplicationClosed(close)) = connection.close_reason()
        && close.error_code == REFUSED
    {
        return TransportError::Unreachable {
            node: to,
            reason: format!(
                "refused by the peer: {}",
                String::from_utf8_lossy(&close.reason)
            ),
        };
    }
    match stage {
        Stage::Open => TransportError::Unreachable { node: to, reason },
        Stage::Exchange => TransportError::Failed { node: to, reason },
    }
}

/// The sending half of an exchange. Dropped before the message was finished (its future
/// cancelled), it resets the stream instead of finishing it, so the other side never takes a
/// truncated message for a whole one (a dropped stream is otherwise finished).
pub(super) struct Outgoing {
    stream: SendStream,
    finished: bool,
}

impl Outgoing {
    pub(super) fn new(stream: SendStream) -> Outgoing {
        Outgoing {
            stream,
            finished: false,
        }
    }

    /// Writes `bytes` and finishes the stream.
    pub(super) async fn send(mut self, bytes: &[u8]) -> Result<(), WriteError> {
        self.stream.write_all(bytes).await?;
        self.stream.finish()?;
        self.finished = true;
        Ok(())
    }
}

impl Drop for Outgoing {
    fn drop(&mut self) {
        if !self.finished {
            // Already reset or the connection gone: nothing left to tell the peer.
            let _ = self.stream.reset(ABANDONED);
        }
    }
}
