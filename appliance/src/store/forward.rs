//! Writes from any node: a node that knows another node leads sends the write there, over the
//! same transport and codec as Raft, and returns the leader's answer.
//!
//! The chain: [`Store::write`] → this node is not the leader and knows who is →
//! `RaftRequest::ClientWrite` → the leader's `RaftRpcHandler` → [`propose`] there → the
//! [`ForwardedOutcome`] back → the caller's `Result`.
//!
//! **Invariant:** a write is forwarded only when this node's Raft says another node leads, so
//! nothing of it was appended here; and it is forwarded once: the leader proposes it or
//! answers not-leader, it never forwards it again. A forward whose answer is lost may still
//! commit, as any write whose answer is lost (the caller hears a timeout or failure that says
//! so).

use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardReason, RaftError};
use outpost_core::zones::Command;

use super::error::WriteError;
use super::network::TransportError;
use super::network::codec::{self, CodecError, MAX_PROPOSAL_BYTES};
use super::rpc::{ForwardedOutcome, RaftReply, RaftRequest};
use super::state_machine::Raft;
use super::types::{NodeInfo, Proposal};
use super::{Store, Written, encoded_len};

/// How much longer a forwarding node waits than the leader's own commit timeout, so that the
/// leader's answer (a timeout included) arrives before the forwarding node gives up.
/// The pause before a write refused for an expired leader lease is proposed again: about one
/// heartbeat, after which a leader that still has its quorum has renewed its lease.
const LEASE_RETRY: Duration = Duration::from_millis(50);

pub(crate) const FORWARD_MARGIN: Duration = Duration::from_secs(1);

/// Proposes `cmd` on this node's Raft and waits up to `waited` for it to be committed and
/// applied. Never forwards: a node that is not the leader answers [`WriteError::NotLeader`].
/// A leader whose lease is not (re-)established yet, just after its election, refuses
/// without appending anything: the write is proposed again every [`LEASE_RETRY`].
pub(crate) async fn propose(
    raft: &Raft,
    cmd: Command,
    waited: Duration,
) -> Result<Written, WriteError> {
    let bytes = encoded_len(&cmd);
    if bytes > MAX_PROPOSAL_BYTES {
        return Err(WriteError::TooLarge { bytes });
    }
    let deadline = tokio::time::Instant::now() + waited;
    let response = loop {
        let proposed = raft.client_write(Proposal(cmd.clone()));
        let Ok(result) = tokio::time::timeout_at(deadline, proposed).await else {
            return Err(WriteError::Timeout { waited });
        };
        match result {
            Ok(response) => break response,
            // A new leader refuses writes until a quorum acknowledged it (its lease); nothing
            // was appended, so asking again is safe.
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward)))
                if forward.reason == ForwardReason::LeaseExpired =>
            {
                tracing::debug!("the leader's lease is not established yet; retrying the write");
                if tokio::time::Instant::now() + LEASE_RETRY >= deadline {
                    return Err(WriteError::Timeout { waited });
                }
                tokio::time::sleep(LEASE_RETRY).await;
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                return Err(WriteError::NotLeader {
                    leader: forward.leader_id,
                });
            }
            Err(e) => return Err(WriteError::Raft(e.to_string())),
        }
    };
    let index = response.log_id.index;
    match response.data.0 {
        Ok(changes) => {
            tracing::debug!(index, changes = changes.len(), "write applied");
            Ok(Written {
                index,
                changes,
                replayed: false,
            })
        }
        Err(refused) => {
            tracing::debug!(index, error = %refused, "write refused by the zones model");
            Err(WriteError::Rejected(refused))
        }
    }
}

/// The leader's answer to a forwarded write, as it sends it back.
impl From<Result<Written, WriteError>> for ForwardedOutcome {
    fn from(result: Result<Written, WriteError>) -> ForwardedOutcome {
        match result {
            Ok(written) => ForwardedOutcome::Written {
                index: written.index,
                changes: written.changes,
            },
            Err(WriteError::Rejected(refused)) => ForwardedOutcome::Rejected(refused),
            Err(WriteError::NotLeader { leader }) => ForwardedOutcome::NotLeader { leader },
            Err(WriteError::TooLarge { bytes }) => ForwardedOutcome::TooLarge {
                bytes: bytes as u64,
            },
            Err(WriteError::Timeout { waited }) => ForwardedOutcome::Timeout {
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            },
            Err(other) => ForwardedOutcome::Failed(other.to_string()),
        }
    }
}

/// What the forwarding node makes of the answer of `leader`.
fn forwarded_result(outcome: ForwardedOutcome, leader: u64) -> Result<Written, WriteError> {
    match outcome {
        ForwardedOutcome::Written { index, changes } => Ok(Written {
            index,
            changes,
            replayed: false,
        }),
        ForwardedOutcome::Rejected(refused) => Err(WriteError::Rejected(refused)),
        ForwardedOutcome::NotLeader { leader } => Err(WriteError::NotLeader { leader }),
        ForwardedOutcome::TooLarge { bytes } => Err(WriteError::TooLarge {
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
        }),
        ForwardedOutcome::Timeout { waited_ms } => Err(WriteError::Timeout {
            waited: Duration::from_millis(waited_ms),
        }),
        ForwardedOutcome::Failed(reason) => Err(WriteError::Raft(format!(
            "on the leader, node {leader}: {reason}"
        ))),
    }
}

impl Store {
    /// The leader and its address when this node knows another node leads.
    pub(super) fn leader_elsewhere(&self) -> Option<(u64, NodeInfo)> {
        let metrics = self.inner.raft.metrics();
        let metrics = metrics.borrow_watched();
        if metrics.state == ServerState::Leader {
            return None;
        }
        let leader = metrics
            .current_leader
            .filter(|id| *id != self.inner.node_id)?;
        let node = metrics
            .membership_config
            .membership()
            .get_node(&leader)?
            .clone();
        Some((leader, node))
    }

    /// Sends `cmd` to the leader and returns its answer.
    pub(super) async fn forward(
        &self,
        leader: u64,
        node: NodeInfo,
        cmd: Command,
    ) -> Result<Written, WriteError> {
        tracing::debug!(leader, "forwarding a write to the leader");
        let request = match codec::encode(&RaftRequest::ClientWrite(cmd)) {
            Ok(request) => request,
            Err(CodecError::TooLarge { len }) => return Err(WriteError::TooLarge { bytes: len }),
            Err(e) => return Err(WriteError::Raft(e.to_string())),
        };
        let waited = self.inner.timing.commit + FORWARD_MARGIN;
        let call = self.inner.transport.call(leader, &node, request);
        // A leader killed mid-exchange never answers; its connection is only seen dead at the
        // transport's idle timeout. Another leader is known much sooner: stop waiting then.
        let mut metrics = self.inner.raft.metrics();
        let deposed = async move {
            loop {
                if metrics.changed().await.is_err() {
                    return;
                }
                if metrics.borrow_watched().current_leader != Some(leader) {
                    return;
                }
            }
        };
        let call = async {
            tokio::select! {
                reply = call => Some(reply),
                () = deposed => None,
            }
        };
        let reply = match tokio::time::timeout(waited, call).await {
            Err(_elapsed) => return Err(WriteError::Timeout { waited }),
            Ok(None) => {
                return Err(WriteError::Raft(format!(
                    "node {leader} stopped leading while it had this write; it may or may not have been committed: retry"
                )));
            }
            Ok(Some(reply)) => reply,
        };
        let reply = match reply {
            Err(TransportError::Unreachable { reason, .. }) => {
                return Err(WriteError::LeaderUnreachable { leader, reason });
            }
            Err(e @ TransportError::Failed { .. }) => {
                return Err(WriteError::Raft(format!(
                    "{e}; the forwarded write may or may not have been committed"
                )));
            }
            Ok(reply) => reply,
        };
        match codec::decode::<RaftReply>(&reply) {
            Ok(RaftReply::ClientWrite(outcome)) => forwarded_result(outcome, leader),
            Ok(RaftReply::Unavailable(reason)) => {
                Err(WriteError::LeaderUnreachable { leader, reason })
            }
            Ok(other) => Err(WriteError::Raft(format!(
                "node {leader} answered a forwarded write with {other:?}"
            ))),
            Err(e) => Err(WriteError::Raft(format!(
                "node {leader}'s answer to a forwarded write: {e}; it may or may not have been committed"
            ))),
        }
    }
}
