//! The accepting side: an iroh [`Router`] whose one protocol, [`RAFT_ALPN`], serves each
//! stream of a member's connection with the node's [`RaftRpcHandler`], and the join requests of
//! a few strangers' connections (nodes presenting a join ticket), one at a time.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::iroh::endpoint::{Connection, ReadToEndError, RecvStream, SendStream};
use ::iroh::protocol::{AcceptError, ProtocolHandler, Router};
use ::iroh::{Endpoint, EndpointId};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use super::client::Outgoing;
use super::{IrohError, PeerAddr, RAFT_ALPN, REFUSED, STREAM_TIMEOUT, peer_id};
use crate::store::network::codec::MAX_RAFT_MESSAGE;
use crate::store::network::handler::{HandleError, RaftRpcHandler};

/// A node's running Raft endpoint. Keep it and call [`RaftServer::shutdown`]: dropping it
/// aborts the accept loop without closing connections cleanly.
pub struct RaftServer {
    router: Router,
}

impl RaftServer {
    pub(super) fn spawn(
        endpoint: Endpoint,
        handler: RaftRpcHandler,
        expected: BTreeSet<EndpointId>,
    ) -> RaftServer {
        let protocol = RaftProtocol {
            strangers: Arc::new(Semaphore::new(MAX_STRANGERS)),
            handler,
            expected: Arc::new(expected),
            last_warning: Arc::new(Mutex::new(None)),
        };
        let router = Router::builder(endpoint)
            .accept(RAFT_ALPN, protocol)
            .spawn();
        RaftServer { router }
    }

    /// Stops accepting, aborts the RPCs being served (their callers see the connection close)
    /// and closes the endpoint, which this node's transport shares: its calls fail from now on.
    ///
    /// Closing waits for peers to acknowledge; peers that are gone never do, so it gives up
    /// after [`SHUTDOWN_WAIT`].
    pub async fn shutdown(self) -> Result<(), IrohError> {
        match tokio::time::timeout(SHUTDOWN_WAIT, self.router.shutdown()).await {
            Ok(closed) => closed.map_err(|e| IrohError::Shutdown(e.to_string())),
            Err(_elapsed) => Err(IrohError::Shutdown(format!(
                "peers did not acknowledge the close within {SHUTDOWN_WAIT:?}"
            ))),
        }
    }
}

/// How long [`RaftServer::shutdown`] waits for peers to acknowledge the close.
const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);

/// How often a refusal is logged as a warning; the others in between are debug lines. A
/// removed node that still runs knocks at every election timeout.
const REFUSAL_WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Connections from endpoints that are not members (nodes joining with a ticket) open at once.
/// Policy when full: the next stranger's connection is refused as it arrives.
const MAX_STRANGERS: usize = 8;

/// Join requests one stranger's connection may make before it is closed: a joiner retries a
/// failed join a few times, a guesser of secrets gets no more tries than that.
const MAX_JOINS_PER_CONNECTION: u32 = 4;

/// How long a stranger has, from the moment its connection arrives, to open its streams and
/// send its requests: it waits for no stream and reads no request past it, and its
/// connection is closed ([`REFUSED`], "deadline" in the reason). A joiner sends its request
/// as soon as it connected, and dials again for a later try; what holds a stranger's slot
/// longer is silence or a request sent a byte at a time. Time this node spends answering a
/// request (a join being admitted) is not counted.
const STRANGER_DEADLINE: Duration = Duration::from_secs(10);

/// The largest request a stranger may send: a join request is a secret, a node id and an
/// address.
const MAX_JOIN_REQUEST: usize = 1024;

#[derive(Debug, Clone)]
struct RaftProtocol {
    handler: RaftRpcHandler,
    /// Slots for strangers' connections ([`MAX_STRANGERS`]).
    strangers: Arc<Semaphore>,
    /// Admitted besides the members while this node is not in its own membership.
    expected: Arc<BTreeSet<EndpointId>>,
    /// When a refusal was last logged as a warning.
    last_warning: Arc<Mutex<Option<Instant>>>,
}

impl RaftProtocol {
    /// Whether `remote` (written `remote_hex`, as addresses hold it) may send this node Raft
    /// RPCs now (the module's invariant).
    fn admits(&self, remote: EndpointId, remote_hex: &str) -> bool {
        let members = self.handler.membership();
        if members
            .iter()
            .any(|(_, node)| names_endpoint(&node.addr, remote, remote_hex))
        {
            return true;
        }
        let this_node_is_member = members.iter().any(|(id, _)| *id == self.handler.node_id());
        !this_node_is_member && self.expected.contains(&remote)
    }

    /// Closes a connection from an endpoint that may not send RPCs, saying why.
    fn refuse(&self, connection: &Connection, remote: EndpointId) {
        connection.close(REFUSED, b"this endpoint is not a member of the cluster");
        let now = Instant::now();
        // A poisoned lock only costs a log line's level.
        let warn = self.last_warning.lock().is_ok_and(|mut last| {
            let due = last.is_none_or(|at| now.duration_since(at) >= REFUSAL_WARNING_INTERVAL);
            if due {
                *last = Some(now);
            }
            due
        });
        if warn {
            tracing::warn!(remote = %remote, "raft rpc refused: the endpoint is not a member of this cluster");
        } else {
            tracing::debug!(remote = %remote, "raft rpc refused: the endpoint is not a member of this cluster");
        }
    }

    /// A stranger's slot ([`MAX_STRANGERS`]) for a connection from `remote`, `None` for a
    /// member's; `Err` once the connection is refused, every slot being taken.
    fn take_slot(
        &self,
        connection: &Connection,
        remote: EndpointId,
        remote_hex: &str,
    ) -> Result<Option<OwnedSemaphorePermit>, ()> {
        if self.admits(remote, remote_hex) {
            return Ok(None);
        }
        match Arc::clone(&self.strangers).try_acquire_owned() {
            Ok(slot) => Ok(Some(slot)),
            Err(_) => {
                self.refuse(connection, remote);
                Err(())
            }
        }
    }

    /// Closes a stranger's connection that used up its [`STRANGER_DEADLINE`].
    fn refuse_late(&self, connection: &Connection, remote: EndpointId) {
        connection.close(
            REFUSED,
            b"not a member, and past the deadline of a stranger's connection",
        );
        tracing::debug!(remote = %remote, deadline = ?STRANGER_DEADLINE, "a stranger's raft connection closed at its deadline");
    }
}

/// Whether a member's address names endpoint `remote`. Checked on every RPC, so the hex form
/// this node writes is compared as text; only another form is parsed (a point decompression).
fn names_endpoint(addr: &str, remote: EndpointId, remote_hex: &str) -> bool {
    match addr.split_once('@') {
        Some((id, _)) if id.len() == remote_hex.len() => id == remote_hex,
        Some(_) => addr.parse::<PeerAddr>().is_ok_and(|addr| addr.id == remote),
        None => false,
    }
}

impl ProtocolHandler for RaftProtocol {
    async fn accept(&self, connection: Connection) -> Result<(), AcceptError> {
        let remote = connection.remote_id();
        let remote_hex = remote.to_string();
        let span = tracing::info_span!("raft_peer", node_id = self.handler.node_id(), remote = %remote.fmt_short());
        async move {
            // A stranger takes one of few slots, held while its connection lasts as a stranger's
            // (at most STRANGER_DEADLINE of waiting on it), or is refused before any stream, so
            // strangers cannot hold many connections open, nor for long.
            let Ok(mut stranger_slot) = self.take_slot(&connection, remote, &remote_hex) else {
                return Ok(());
            };
            let stranger_deadline = tokio::time::Instant::now() + STRANGER_DEADLINE;
            let mut joins = 0;
            // Dropped with this future (connection closed, router shut down): aborts its RPCs.
            let mut streams = JoinSet::new();
            loop {
                let accepted = match stranger_slot {
                    Some(_) => {
                        tokio::time::timeout_at(stranger_deadline, connection.accept_bi()).await
                    }
                    None => Ok(connection.accept_bi().await),
                };
                let (send, recv) = match accepted {
                    Ok(Ok(stream)) => stream,
                    // The peer closed, went silent or we shut down: the connection's normal end.
                    Ok(Err(e)) => {
                        tracing::debug!(reason = %e, "raft connection ended");
                        return Ok(());
                    }
                    // A stranger that became a member meanwhile (a joiner added) stays.
                    Err(_elapsed) if self.admits(remote, &remote_hex) => {
                        stranger_slot = None;
                        continue;
                    }
                    Err(_elapsed) => {
                        self.refuse_late(&connection, remote);
                        return Ok(());
                    }
                };
                if self.admits(remote, &remote_hex) {
                    // A member now (a joiner added): its slot goes back to the strangers.
                    stranger_slot = None;
                    let handler = self.handler.clone();
                    streams.spawn(
                        async move { serve(&handler, remote, None, send, recv).await }
                            .in_current_span(),
                    );
                    while streams.try_join_next().is_some() {}
                    continue;
                }
                // Not a member: one join request at a time, a few per connection.
                joins += 1;
                if joins > MAX_JOINS_PER_CONNECTION {
                    self.refuse(&connection, remote);
                    return Ok(());
                }
                match serve(&self.handler, remote, Some(stranger_deadline), send, recv).await {
                    Served::Answered => {}
                    Served::Late => {
                        self.refuse_late(&connection, remote);
                        return Ok(());
                    }
                    Served::NotMember(unanswered) => {
                        // The connection closes before the stream is dropped (which resets
                        // it), so the peer reads why: refused, not a broken exchange.
                        self.refuse(&connection, remote);
                        drop(unanswered);
                        return Ok(());
                    }
                }
            }
        }
        .instrument(span)
        .await
    }
}

/// Whether a request was answered, or refused because its sender is not a member (with
/// the reply stream, still open, for the caller to drop once it closed the connection), or
/// not read by a stranger's deadline.
enum Served {
    Answered,
    NotMember(Outgoing),
    Late,
}

/// Serves one RPC: the request read to its end, handled, the reply written and finished. A
/// member's request is read within [`STREAM_TIMEOUT`]; a stranger's (`stranger_deadline`
/// set) by that deadline too.
async fn serve(
    handler: &RaftRpcHandler,
    remote: EndpointId,
    stranger_deadline: Option<tokio::time::Instant>,
    send: SendStream,
    mut recv: RecvStream,
) -> Served {
    let member = stranger_deadline.is_none();
    // Created first, so the stream is reset, not finished empty, on every early return.
    let reply_stream = Outgoing::new(send);
    // A stranger's request is a join: small.
    let cap = if member {
        MAX_RAFT_MESSAGE
    } else {
        MAX_JOIN_REQUEST
    };
    let stream_deadline = tokio::time::Instant::now() + STREAM_TIMEOUT;
    let read_by = stranger_deadline.map_or(stream_deadline, |at| at.min(stream_deadline));
    let request = match tokio::time::timeout_at(read_by, recv.read_to_end(cap)).await {
        Ok(Ok(request)) => request,
        Ok(Err(ReadToEndError::TooLong)) => {
            tracing::warn!(cap, member, "raft request over the message cap refused");
            return match member {
                true => Served::Answered,
                false => Served::NotMember(reply_stream),
            };
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "raft request not received");
            return Served::Answered;
        }
        Err(_elapsed) if !member => {
            tracing::debug!(deadline = ?STRANGER_DEADLINE, "a stranger's request not received by its deadline");
            return Served::Late;
        }
        Err(_elapsed) => {
            tracing::debug!(timeout = ?STREAM_TIMEOUT, "raft request not received in time");
            return Served::Answered;
        }
    };
    let reply = match handler
        .handle_from(Some(peer_id(&remote)), member, &request)
        .await
    {
        Ok(reply) => reply,
        Err(HandleError::NotMember) => return Served::NotMember(reply_stream),
        Err(e) => {
            tracing::warn!(error = %e, "unreadable raft request");
            return match member {
                true => Served::Answered,
                false => Served::NotMember(reply_stream),
            };
        }
    };
    match tokio::time::timeout(STREAM_TIMEOUT, reply_stream.send(&reply)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(error = %e, "raft reply not sent"),
        Err(_elapsed) => tracing::debug!(timeout = ?STREAM_TIMEOUT, "raft reply not taken in time"),
    }
    Served::Answered
}

#[cfg(test)]
mod tests {
    use ::iroh::SecretKey;

    use super::*;

    #[test]
    fn a_member_address_names_only_its_own_endpoint() {
        let remote = SecretKey::from_bytes(&[1; 32]).public();
        let other = SecretKey::from_bytes(&[2; 32]).public();
        let hex = remote.to_string();
        assert!(names_endpoint(&format!("{hex}@127.0.0.1:1"), remote, &hex));
        assert!(!names_endpoint(
            &format!("{other}@127.0.0.1:1"),
            remote,
            &hex
        ));
        assert!(!names_endpoint(&hex, remote, &hex));
        assert!(!names_endpoint("in-process:1", remote, &hex));
        // Upper-case hex does not parse as an address either, so no peer could dial it.
        let upper = format!("{}@127.0.0.1:1", hex.to_uppercase());
        assert!(upper.parse::<PeerAddr>().is_err());
        assert!(!names_endpoint(&upper, remote, &hex));
    }
}
