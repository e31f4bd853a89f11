//! Writes from any node ([`Store::write`]): proposed here on the leader ([`propose`]); a node
//! that knows another node leads sends the write there, over the same transport and codec as
//! Raft, and returns the leader's answer once it has applied the entry itself.
//!
//! The chain: [`Store::write`] → this node is not the leader and knows who is →
//! `RaftRequest::ClientWrite` → the leader's `RaftRpcHandler` → [`propose`] there → the
//! [`RelayedOutcome`] back → the caller's `Result`.
//!
//! **Invariant:** a write is relayed only when this node's Raft says another node leads, so
//! nothing of it was appended here; and it is relayed once: the leader proposes it or
//! answers not-leader, it never relays it again. A relay whose answer is lost may still
//! commit, as any write whose answer is lost (the caller hears a timeout or failure that says
//! so).

use std::time::Duration;

use openraft::ServerState;
use openraft::async_runtime::WatchReceiver;
use openraft::errors::{ClientWriteError, ForwardReason, RaftError};
use outpost_core::state::{Change, Command, CommandError};

use super::error::{LeaderError, WriteError};
use super::handle::Store;
use super::network::codec::{self, CodecError, MAX_PROPOSAL_BYTES};
use super::network::transport::TransportError;
use super::rpc::{RaftReply, RaftRequest, RelayedOutcome};
use super::state_machine::Raft;
use super::types::{NodeInfo, Proposal};

/// How long a write taken while no leader is known waits for an election to name one
/// before it is proposed here (and refused as not-leader, if this node still does not lead):
/// a few election timeouts.
const ELECTION_WAIT: Duration = Duration::from_secs(2);

/// How long a follower that relayed a write waits, once the leader acknowledged it, to
/// apply it itself before it answers: a follower in touch with the leader applies it within
/// a heartbeat. Past it the write is reported committed but not yet visible here
/// ([`WriteError::NotAppliedHere`]).
pub const APPLY_WAIT: Duration = Duration::from_secs(5);

/// How much longer a relaying node waits than the leader's own commit timeout, so that the
/// leader's answer (a timeout included) arrives before the relaying node gives up.
pub(crate) const RELAY_MARGIN: Duration = Duration::from_secs(1);

/// The pause before a write refused for an expired leader lease is proposed again: about one
/// heartbeat, after which a leader that still has its quorum has renewed its lease.
const LEASE_RETRY: Duration = Duration::from_millis(50);

/// A committed and applied write.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    /// Raft log index of the entry; changes carry it downstream (sync cursors).
    pub index: u64,
    /// What the command changed, in order (nothing when `replayed`).
    pub changes: Vec<Change>,
    /// A retry under an idempotency key whose write was applied before, at `index`:
    /// nothing was applied now.
    pub replayed: bool,
}

impl Store {
    /// Proposes `cmd` through Raft; returns after it is committed and applied, with its log
    /// index and changes, or the refusal of the zones model (the entry is applied either way).
    ///
    /// On a node that knows another node leads, the write is relayed there and the leader's
    /// answer returned; while no leader is known (an election), it first waits up to
    /// [`ELECTION_WAIT`] for one. Gives up with [`WriteError::Timeout`] when the entry is not
    /// committed within [`RaftTiming::commit`](super::options::RaftTiming::commit), and refuses
    /// a command over [`MAX_PROPOSAL_BYTES`].
    pub async fn write(&self, cmd: Command) -> Result<Written, WriteError> {
        let bytes = encoded_len(&cmd);
        if bytes > MAX_PROPOSAL_BYTES {
            return Err(WriteError::TooLarge { bytes });
        }
        if self.status().leader.is_none() {
            // An election is under way: give it a moment rather than failing at once.
            let waited = ELECTION_WAIT.min(self.inner.timing.commit);
            let _ = self
                .inner
                .raft
                .wait(Some(waited))
                .metrics(|m| m.current_leader.is_some(), "a leader is known")
                .await;
        }
        let relayed = self.leader_elsewhere();
        let result = match relayed.clone() {
            Some((leader, node)) => self.relay(leader, node, cmd).await,
            None => propose(&self.inner.raft, cmd, self.inner.timing.commit).await,
        };
        let written = match result {
            // A retry under an idempotency key: answered as the first success was.
            Err(WriteError::Rejected(CommandError::AlreadyApplied { index })) => Written {
                index,
                changes: Vec::new(),
                replayed: true,
            },
            other => other?,
        };
        if relayed.is_some() {
            // Read your writes: a node says "done" only once its own DNS answers it.
            self.wait_applied(written.index).await?;
        }
        Ok(written)
    }

    /// Waits, at most [`APPLY_WAIT`] (or the commit timeout, if shorter), until this node
    /// has applied (and so published) the entry at `index`.
    async fn wait_applied(&self, index: u64) -> Result<(), WriteError> {
        let waited = APPLY_WAIT.min(self.inner.timing.commit);
        self.inner
            .raft
            .wait(Some(waited))
            .applied_index_at_least(Some(index), "applied a write this node relayed")
            .await
            .map(|_| ())
            .map_err(|_| WriteError::NotAppliedHere { index, waited })
    }
}

/// Proposes `cmd` on this node's Raft and waits up to `waited` for it to be committed and
/// applied. Never relays: a node that is not the leader answers [`WriteError::NotLeader`].
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
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to_leader)))
                if to_leader.reason == ForwardReason::LeaseExpired =>
            {
                tracing::debug!("the leader's lease is not established yet; retrying the write");
                if tokio::time::Instant::now() + LEASE_RETRY >= deadline {
                    return Err(WriteError::Timeout { waited });
                }
                tokio::time::sleep(LEASE_RETRY).await;
            }
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(to_leader))) => {
                return Err(WriteError::Leader(LeaderError::NotLeader {
                    leader: to_leader.leader_id,
                }));
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

/// The leader's answer to a relayed write, as it sends it back.
impl From<Result<Written, WriteError>> for RelayedOutcome {
    fn from(result: Result<Written, WriteError>) -> RelayedOutcome {
        match result {
            Ok(written) => RelayedOutcome::Written {
                index: written.index,
                changes: written.changes,
            },
            Err(WriteError::Rejected(refused)) => RelayedOutcome::Rejected(refused),
            Err(WriteError::Leader(LeaderError::NotLeader { leader })) => {
                RelayedOutcome::NotLeader { leader }
            }
            Err(WriteError::TooLarge { bytes }) => RelayedOutcome::TooLarge {
                bytes: bytes as u64,
            },
            Err(WriteError::Timeout { waited }) => RelayedOutcome::Timeout {
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            },
            Err(other) => RelayedOutcome::Failed(other.to_string()),
        }
    }
}

/// What the relaying node makes of the answer of `leader`.
fn relayed_result(outcome: RelayedOutcome, leader: u64) -> Result<Written, WriteError> {
    match outcome {
        RelayedOutcome::Written { index, changes } => Ok(Written {
            index,
            changes,
            replayed: false,
        }),
        RelayedOutcome::Rejected(refused) => Err(WriteError::Rejected(refused)),
        RelayedOutcome::NotLeader { leader } => {
            Err(WriteError::Leader(LeaderError::NotLeader { leader }))
        }
        RelayedOutcome::TooLarge { bytes } => Err(WriteError::TooLarge {
            bytes: usize::try_from(bytes).unwrap_or(usize::MAX),
        }),
        RelayedOutcome::Timeout { waited_ms } => Err(WriteError::Timeout {
            waited: Duration::from_millis(waited_ms),
        }),
        RelayedOutcome::Failed(reason) => Err(WriteError::Raft(format!(
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
    pub(super) async fn relay(
        &self,
        leader: u64,
        node: NodeInfo,
        cmd: Command,
    ) -> Result<Written, WriteError> {
        tracing::debug!(leader, "relaying a write to the leader");
        let request = match codec::encode(&RaftRequest::ClientWrite(cmd)) {
            Ok(request) => request,
            Err(CodecError::TooLarge { len }) => return Err(WriteError::TooLarge { bytes: len }),
            Err(e) => return Err(WriteError::Raft(e.to_string())),
        };
        let waited = self.inner.timing.commit + RELAY_MARGIN;
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
                return Err(WriteError::Leader(LeaderError::Unreachable {
                    leader,
                    reason,
                }));
            }
            Err(e @ TransportError::Failed { .. }) => {
                return Err(WriteError::Raft(format!(
                    "{e}; the relayed write may or may not have been committed"
                )));
            }
            Ok(reply) => reply,
        };
        match codec::decode::<RaftReply>(&reply) {
            Ok(RaftReply::ClientWrite(outcome)) => relayed_result(outcome, leader),
            Ok(RaftReply::Unavailable(reason)) => {
                Err(WriteError::Leader(LeaderError::Unreachable {
                    leader,
                    reason,
                }))
            }
            Ok(other) => Err(WriteError::Raft(format!(
                "node {leader} answered a relayed write with {other:?}"
            ))),
            Err(e) => Err(WriteError::Raft(format!(
                "node {leader}'s answer to a relayed write: {e}; it may or may not have been committed"
            ))),
        }
    }
}

/// The length of a value's postcard encoding, counted without building it.
fn encoded_len<T: serde::Serialize>(value: &T) -> usize {
    struct Count(usize);
    impl Extend<u8> for Count {
        fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
            self.0 += bytes.into_iter().count();
        }
    }
    // Serializing a `Command` into a counter cannot fail; were it to, nothing is refused here
    // and the log store reports the error.
    postcard::to_extend(value, Count(0)).map_or(0, |count| count.0)
}
