//! Growing a cluster by ticket: [`Store::invite`] makes a one-time [`JoinTicket`], a new node's
//! [`Store::join`] presents it to the ticket's nodes, and the leader's [`Store::admit`] checks
//! it, adds the node as a learner, waits for it to catch up and makes it a voter.
//!
//! The chain of one join: `outpost serve --join TICKET` → [`Store::join`] sends
//! `RaftRequest::Join` to a node of the ticket (a stranger's connection may carry nothing else,
//! see `network::iroh_transport::server`) → [`Store::admit`] there: the caller's endpoint id
//! is the one in its address, its node id is the one its key gives ([`node_id_for`]), the
//! secret hashes to an invite that is open (or already used by this very node) → a node that
//! does not lead answers with the leader's address, and the joiner asks there → the invite is
//! marked used through Raft → `add_learner` (the log or a snapshot reaches the node) →
//! `add_voters` → [`JoinOutcome::Joined`].
//!
//! **Invariant:** a join request learns nothing of the cluster (not even where its leader
//! is) before its secret is checked: a wrong secret gets only a refusal (or, when a follower
//! cannot reach the leader to confirm it, a bare "try again").
//!
//! **Invariant:** a joiner's node id is derived from its node key, so a node id names one key,
//! and a wiped data directory (a new key) joins as a new node: ids are never reused.
//!
//! **Boundary:** the ticket's text is what operators copy between machines and what the NixOS
//! module passes in a file: its format ([`TICKET_PREFIX`], then base64url of a postcard
//! [`JoinTicket`]) is versioned by its prefix (docs/cluster.md).

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::iroh::EndpointId;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64URL;
use outpost_core::state::{Command, JoinInvite};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{LeaderError, MembershipError, ReadError, WriteError};
use super::handle::Store;
use super::network::codec;
use super::network::iroh_transport::{PeerAddr, PeerAddrError};
use super::network::transport::PeerId;
use super::rpc::{JoinOutcome, JoinRequest, RaftReply, RaftRequest};
use super::types::NodeInfo;

/// The first characters of a version 1 ticket.
pub const TICKET_PREFIX: &str = "outpost-join-v1:";

/// How long an invite is good for unless the operator says otherwise.
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(3600);

/// The longest an invite may be good for: a ticket is a credential, and an old one lying
/// around should stop working.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The most nodes a ticket names (a cluster has 1, 3 or 5 voters and a few learners), and the
/// longest ticket text read: a ticket is refused before it is decoded past these.
pub const MAX_TICKET_NODES: usize = 16;
const MAX_TICKET_CHARS: usize = 4096;

/// How long [`Store::join`] keeps trying the ticket's nodes while none answers (they may be
/// starting too, or electing a leader).
pub const JOIN_DEADLINE: Duration = Duration::from_secs(120);

/// The pause between rounds of [`Store::join`] when no node of the ticket answered.
const JOIN_RETRY: Duration = Duration::from_millis(500);

/// How long a follower that does not know a join secret waits for the leader to confirm its
/// replica is current before it answers (a stranger's request, served while the stranger
/// holds one of few slots). Past it: `JoinOutcome::Failed`, and the joiner asks again.
const SECRET_CHECK_WAIT: Duration = Duration::from_secs(5);

/// Node ids of joiners are this many bits (plus [`FIRST_JOINER_ID`]): short enough to type in
/// `outpost cluster remove`, wide enough that two keys of one cluster collide with a chance
/// below one in 10^10.
const NODE_ID_BITS: u32 = 40;

/// The smallest node id of a joiner; 0 is never an id and 1 is the first node's.
const FIRST_JOINER_ID: u64 = 2;

/// What a new node needs to join: whom to ask, the cluster it joins, and the secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTicket {
    /// The cluster's id: the joiner's data directory takes it, so Lite cursors carry over.
    pub cluster_id: String,
    /// The members when the ticket was made: `(node id, <endpoint id>@<ip:port>)`.
    pub nodes: Vec<(u64, String)>,
    /// The one-time secret; the cluster holds only its SHA-256.
    pub secret: [u8; 32],
    /// Unix time (seconds) from which the cluster refuses it.
    pub expires_unix: u64,
}

/// The secret stays out of logs.
impl fmt::Debug for JoinTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTicket")
            .field("cluster_id", &self.cluster_id)
            .field("nodes", &self.nodes)
            .field("expires_unix", &self.expires_unix)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A struct of strings, integers and bytes always encodes.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        write!(f, "{TICKET_PREFIX}{}", BASE64URL.encode(bytes))
    }
}

/// Why text is not a join ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error(
        "a join ticket starts with {TICKET_PREFIX:?} (print one with `outpost cluster invite`)"
    )]
    Prefix,
    #[error("the join ticket is longer than {MAX_TICKET_CHARS} characters")]
    TooLong,
    #[error(
        "the join ticket is damaged: {0} (copy the whole last line `outpost cluster invite` printed)"
    )]
    Damaged(String),
    #[error("the join ticket names no node to ask, or more than {MAX_TICKET_NODES}")]
    Nodes,
    #[error("the join ticket names node {id} at {reason}")]
    Address { id: u64, reason: String },
}

impl FromStr for JoinTicket {
    type Err = TicketError;

    fn from_str(text: &str) -> Result<JoinTicket, TicketError> {
        let text = text.trim();
        if text.len() > MAX_TICKET_CHARS {
            return Err(TicketError::TooLong);
        }
        let body = text
            .strip_prefix(TICKET_PREFIX)
            .ok_or(TicketError::Prefix)?;
        let bytes = BASE64URL
            .decode(body)
            .map_err(|e| TicketError::Damaged(e.to_string()))?;
        let ticket: JoinTicket =
            postcard::from_bytes(&bytes).map_err(|e| TicketError::Damaged(e.to_string()))?;
        if ticket.nodes.is_empty() || ticket.nodes.len() > MAX_TICKET_NODES {
            return Err(TicketError::Nodes);
        }
        for (id, addr) in &ticket.nodes {
            addr.parse::<PeerAddr>().map_err(|e| TicketError::Address {
                id: *id,
                reason: e.to_string(),
            })?;
        }
        Ok(ticket)
    }
}

impl JoinTicket {
    /// The endpoints a joiner admits Raft RPCs from before it is a member: the ticket's nodes.
    pub fn endpoints(&self) -> BTreeSet<EndpointId> {
        self.nodes
            .iter()
            .filter_map(|(_, addr)| addr.parse::<PeerAddr>().ok())
            .map(|addr| addr.id)
            .collect()
    }
}

/// The node id a joiner with endpoint id `endpoint` takes (the module's invariant).
pub fn node_id_for(endpoint: &EndpointId) -> u64 {
    let digest = Sha256::digest(endpoint.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(first) >> (64 - NODE_ID_BITS)) + FIRST_JOINER_ID
}

/// Why an invite was not made.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error(
        "no member of this cluster has a raft address for a new node to dial: restart the node with --raft IP:PORT"
    )]
    NoRaftAddress,
    #[error(
        "an invite is good for 1 second to {max} seconds, not {0} seconds",
        max = MAX_INVITE_TTL.as_secs()
    )]
    Ttl(u64),
    #[error(transparent)]
    Write(#[from] WriteError),
    #[error("no randomness for the join secret: {0}")]
    Random(#[source] getrandom::Error),
}

/// Why a node did not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The cluster refused the ticket (used, expired, not issued, another cluster's node id).
    #[error("the cluster refused to add this node: {0}")]
    Refused(String),
    #[error(
        "no node of the join ticket added this node within {waited:?} (last answer: {last}); check that they run and that their raft addresses are reachable from here"
    )]
    Timeout { waited: Duration, last: String },
    #[error("the join ticket expired; ask for a new one with `outpost cluster invite`")]
    Expired,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

impl Store {
    /// Makes a one-time join ticket good for `ttl`: its secret's hash is committed through Raft
    /// (the write is relayed to the leader), so any node of the cluster can admit the joiner.
    pub async fn invite(&self, ttl: Duration) -> Result<JoinTicket, InviteError> {
        if ttl.is_zero() || ttl > MAX_INVITE_TTL {
            return Err(InviteError::Ttl(ttl.as_secs()));
        }
        let nodes: Vec<(u64, String)> = self
            .members()
            .into_iter()
            .filter(|member| member.node.addr.parse::<PeerAddr>().is_ok())
            .map(|member| (member.id, member.node.addr))
            .take(MAX_TICKET_NODES)
            .collect();
        if nodes.is_empty() {
            return Err(InviteError::NoRaftAddress);
        }
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).map_err(InviteError::Random)?;
        let now_unix = unix_now();
        let expires_unix = now_unix + ttl.as_secs().max(1);
        self.write(Command::PutJoinInvite {
            invite: JoinInvite {
                secret_sha256: Sha256::digest(secret).into(),
                expires_unix,
                used_by: None,
            },
            now_unix,
        })
        .await?;
        Ok(JoinTicket {
            cluster_id: self.cluster_id().to_string(),
            nodes,
            secret,
            expires_unix,
        })
    }

    /// Asks the ticket's nodes (and the leader they name) to add this node, reached at
    /// `own_addr`, until it is a voter, the cluster refuses, or [`JOIN_DEADLINE`] passes.
    pub async fn join(&self, ticket: &JoinTicket, own_addr: &PeerAddr) -> Result<(), JoinError> {
        let request = RaftRequest::Join(JoinRequest {
            secret: ticket.secret,
            node_id: self.node_id(),
            addr: own_addr.to_string(),
        });
        let request = codec::encode(&request)
            .map_err(|e| JoinError::Refused(format!("the join request does not encode: {e}")))?;
        let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
        let mut last = "none yet".to_string();
        loop {
            if unix_now() >= ticket.expires_unix {
                return Err(JoinError::Expired);
            }
            // The ticket's nodes in order, each followed by the leader it names.
            let mut asks: Vec<(u64, String)> = ticket.nodes.iter().rev().cloned().collect();
            let mut asked = 0;
            while let Some((id, addr)) = asks.pop() {
                asked += 1;
                if asked > 2 * MAX_TICKET_NODES {
                    break;
                }
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let node = NodeInfo::new(addr.clone());
                let call = self.inner.transport.call(id, &node, request.clone());
                let reply = match tokio::time::timeout(left, call).await {
                    Err(_elapsed) => break,
                    Ok(Err(e)) => {
                        last = e.to_string();
                        continue;
                    }
                    Ok(Ok(reply)) => reply,
                };
                match codec::decode::<RaftReply>(&reply) {
                    Ok(RaftReply::Join(JoinOutcome::Joined { voters })) => {
                        tracing::info!(
                            node_id = self.node_id(),
                            ?voters,
                            "joined the cluster as a voter"
                        );
                        return Ok(());
                    }
                    Ok(RaftReply::Join(JoinOutcome::Refused(reason))) => {
                        return Err(JoinError::Refused(reason));
                    }
                    Ok(RaftReply::Join(JoinOutcome::NotLeader { leader })) => {
                        last = format!("node {id} does not lead");
                        if let Some(leader) = leader {
                            asks.push(leader);
                        }
                    }
                    Ok(RaftReply::Join(JoinOutcome::Failed(reason))) => {
                        last = format!("node {id}: {reason}");
                    }
                    Ok(other) => last = format!("node {id} answered {other:?}"),
                    Err(e) => last = format!("node {id}: {e}"),
                }
                tracing::debug!(node_id = self.node_id(), %last, "join not done yet");
            }
            if tokio::time::Instant::now() + JOIN_RETRY >= deadline {
                return Err(JoinError::Timeout {
                    waited: JOIN_DEADLINE,
                    last,
                });
            }
            tokio::time::sleep(JOIN_RETRY).await;
        }
    }

    /// The leader's side of a join (the module's chain); `remote` is who sent the request, when
    /// the transport can name its caller.
    pub(crate) async fn admit(&self, remote: Option<PeerId>, request: JoinRequest) -> JoinOutcome {
        let JoinRequest {
            secret,
            node_id,
            addr,
        } = request;
        if let Err(refused) = check_joiner(remote, node_id, &addr) {
            return refused;
        }
        // The secret before anything about the cluster: a stranger without a valid invite
        // learns no leader address.
        let secret_sha256: [u8; 32] = Sha256::digest(secret).into();
        if let Err(refused) = self.check_secret(&secret_sha256, node_id).await {
            return refused;
        }
        if let Some(outcome) = self.not_leader() {
            return outcome;
        }
        let members = self.members();
        let member = members.iter().find(|member| member.id == node_id);
        if let Some(member) = member
            && member.node.addr != addr
        {
            return JoinOutcome::Refused(format!(
                "node id {node_id} is already in the cluster at {}",
                member.node
            ));
        }
        tracing::info!(node_id, %addr, "admitting a node that presented a join ticket");
        match self
            .write(Command::UseJoinInvite {
                secret_sha256,
                node_id,
            })
            .await
        {
            Ok(_) => {}
            Err(WriteError::Rejected(refused)) => return JoinOutcome::Refused(refused.to_string()),
            Err(WriteError::Leader(LeaderError::NotLeader { .. })) => {
                return JoinOutcome::NotLeader { leader: None };
            }
            Err(e) => return JoinOutcome::Failed(e.to_string()),
        }
        if member.is_none()
            && let Err(e) = self.add_learner(node_id, NodeInfo::new(addr)).await
        {
            return membership_failure(e);
        }
        let is_voter = member.is_some_and(|member| member.voter);
        if !is_voter && let Err(e) = self.add_voters(BTreeSet::from([node_id])).await {
            return membership_failure(e);
        }
        let voters = self
            .members()
            .into_iter()
            .filter(|member| member.voter)
            .map(|member| member.id)
            .collect();
        tracing::info!(node_id, ?voters, "node joined as a voter");
        JoinOutcome::Joined { voters }
    }

    /// [`Store::check_invite`] on this node's replica; on a follower whose replica does not
    /// know the invite (it may lag the leader by an entry), again once it has applied all the
    /// leader committed ([`Store::read_linearizable`], within [`SECRET_CHECK_WAIT`]). A check
    /// that cannot be made now is `Failed` (the joiner tries again), saying nothing of the
    /// cluster.
    async fn check_secret(
        &self,
        secret_sha256: &[u8; 32],
        node_id: u64,
    ) -> Result<(), JoinOutcome> {
        let refused = match self.check_invite(secret_sha256, node_id) {
            Ok(()) => return Ok(()),
            Err(refused) => refused,
        };
        if self.leader_elsewhere().is_none() {
            return Err(refused);
        }
        let confirmed = tokio::time::timeout(SECRET_CHECK_WAIT, self.read_linearizable()).await;
        if let Err(error) = confirmed.unwrap_or(Err(ReadError::Timeout(SECRET_CHECK_WAIT))) {
            tracing::debug!(%error, "a join secret unknown here could not be checked with the leader");
            return Err(JoinOutcome::Failed(
                "this node cannot check the join secret now: try again".to_string(),
            ));
        }
        self.check_invite(secret_sha256, node_id)
    }

    /// The invite whose secret hashes to `secret_sha256` is open, or was used by `node_id`
    /// itself (a join asked again).
    fn check_invite(&self, secret_sha256: &[u8; 32], node_id: u64) -> Result<(), JoinOutcome> {
        match self.zones().join_invite(secret_sha256) {
            None => Err(JoinOutcome::Refused(
                "the join ticket's secret is not known to the cluster (never issued, expired and pruned, or used by a node since removed: a removed node joins again only as a new node, its data directory wiped, with a new ticket)".to_string(),
            )),
            Some(invite) if !invite.admits(node_id, unix_now()) => {
                Err(JoinOutcome::Refused(match invite.used_by {
                    Some(used) if used != node_id => {
                        format!(
                            "the join ticket was already used by node {used}: ask for a new invite"
                        )
                    }
                    _ => "the join ticket expired: ask for a new invite".to_string(),
                }))
            }
            Some(_) => Ok(()),
        }
    }

    /// `Some(NotLeader)` when this node does not lead, naming the leader it knows.
    fn not_leader(&self) -> Option<JoinOutcome> {
        if let Some((leader, node)) = self.leader_elsewhere() {
            return Some(JoinOutcome::NotLeader {
                leader: Some((leader, node.addr)),
            });
        }
        let status = self.status();
        (status.leader != Some(self.node_id())).then_some(JoinOutcome::NotLeader { leader: None })
    }
}

/// The joiner is who it says: the request came from the endpoint its address names (when the
/// transport says who sent it), and its node id is the one that endpoint takes.
fn check_joiner(remote: Option<PeerId>, node_id: u64, addr: &str) -> Result<(), JoinOutcome> {
    let peer: PeerAddr = addr
        .parse()
        .map_err(|e: PeerAddrError| JoinOutcome::Refused(e.to_string()))?;
    if remote.is_some_and(|remote| remote != peer.peer_id()) {
        return Err(JoinOutcome::Refused(format!(
            "the join request names endpoint {} but came from another endpoint",
            peer.id
        )));
    }
    if node_id != node_id_for(&peer.id) {
        return Err(JoinOutcome::Refused(format!(
            "node id {node_id} is not the one endpoint {} takes ({})",
            peer.id,
            node_id_for(&peer.id)
        )));
    }
    Ok(())
}

fn membership_failure(error: MembershipError) -> JoinOutcome {
    match error {
        MembershipError::Leader(LeaderError::NotLeader { .. }) => {
            JoinOutcome::NotLeader { leader: None }
        }
        other => JoinOutcome::Failed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use ::iroh::SecretKey;

    use super::*;

    fn ticket() -> JoinTicket {
        let key = SecretKey::from_bytes(&[3; 32]);
        JoinTicket {
            cluster_id: "c0ffee".into(),
            nodes: vec![(1, format!("{}@127.0.0.1:7400", key.public()))],
            secret: [9; 32],
            expires_unix: 1_900_000_000,
        }
    }

    #[test]
    fn a_ticket_reads_back_what_it_writes_and_hides_its_secret() {
        let ticket = ticket();
        let text = ticket.to_string();
        assert!(text.starts_with(TICKET_PREFIX), "{text}");
        assert_eq!(
            format!("  {text}\n").parse::<JoinTicket>(),
            Ok(ticket.clone())
        );
        assert!(!format!("{ticket:?}").contains("9, 9"));
        assert_eq!(
            ticket.endpoints(),
            BTreeSet::from([SecretKey::from_bytes(&[3; 32]).public()])
        );
    }

    #[test]
    fn a_damaged_ticket_is_refused_with_the_reason() {
        let text = ticket().to_string();
        assert_eq!("hello".parse::<JoinTicket>(), Err(TicketError::Prefix));
        let cut = &text[..text.len() - 10];
        assert!(matches!(
            cut.parse::<JoinTicket>(),
            Err(TicketError::Damaged(_))
        ));
        let long = format!("{TICKET_PREFIX}{}", "A".repeat(MAX_TICKET_CHARS));
        assert_eq!(long.parse::<JoinTicket>(), Err(TicketError::TooLong));
        let empty = JoinTicket {
            nodes: Vec::new(),
            ..ticket()
        };
        assert_eq!(
            empty.to_string().parse::<JoinTicket>(),
            Err(TicketError::Nodes)
        );
        let bad = JoinTicket {
            nodes: vec![(4, "127.0.0.1:7400".into())],
            ..ticket()
        };
        let error = bad.to_string().parse::<JoinTicket>().unwrap_err();
        assert!(
            matches!(error, TicketError::Address { id: 4, .. }),
            "{error}"
        );
    }

    #[test]
    fn node_ids_of_joiners_are_never_the_first_nodes_and_follow_the_key() {
        let ids: BTreeSet<u64> = (0..=255u8)
            .map(|byte| node_id_for(&SecretKey::from_bytes(&[byte; 32]).public()))
            .collect();
        assert_eq!(ids.len(), 256);
        assert!(
            ids.iter()
                .all(|id| *id >= FIRST_JOINER_ID && *id < (1 << NODE_ID_BITS) + 2)
        );
        let key = SecretKey::from_bytes(&[1; 32]).public();
        assert_eq!(node_id_for(&key), node_id_for(&key));
    }
}
