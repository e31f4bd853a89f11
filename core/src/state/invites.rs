//! Join invites: what the cluster replicates so that any of its nodes can admit a new
//! appliance holding a join ticket.
//!
//! The ticket's secret is shown to the operator once and never stored; only its SHA-256
//! travels through Raft, as for Lite tokens. An invite is used once: the first node id
//! to use it owns it, the same node may use it again (a join retried after a lost
//! answer), any other node is refused.
//!
//! **Invariant:** applying a command never reads a clock. Expiry is decided against the
//! time the proposer wrote into the command ([`Command::PutJoinInvite`]'s `now_unix`,
//! which prunes expired invites) and, when a join is checked, against the checking
//! node's clock before anything is proposed.
//!
//! [`Command::PutJoinInvite`]: super::Command::PutJoinInvite

use serde::{Deserialize, Serialize};

use super::{Change, CommandError, ReplicatedState};

/// Open invites the cluster holds at most. Policy when full: a new invite is refused
/// (after expired ones are pruned) until one is used or expires.
pub const MAX_JOIN_INVITES: usize = 16;

/// A one-time permission for a new node to join, as the cluster stores it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct JoinInvite {
    /// SHA-256 of the ticket's secret.
    pub secret_sha256: [u8; 32],
    /// Unix time (seconds) from which the invite is refused.
    pub expires_unix: u64,
    /// The node that used it (`None`: still open).
    pub used_by: Option<u64>,
}

impl JoinInvite {
    /// Whether a join by `node_id` may use this invite at unix time `now`.
    pub fn admits(&self, node_id: u64, now_unix: u64) -> bool {
        now_unix < self.expires_unix && self.used_by.is_none_or(|used| used == node_id)
    }
}

impl ReplicatedState {
    /// The invite whose secret hashes to `secret_sha256`.
    pub fn join_invite(&self, secret_sha256: &[u8; 32]) -> Option<&JoinInvite> {
        self.invites.get(secret_sha256)
    }

    pub fn join_invites(&self) -> impl Iterator<Item = &JoinInvite> {
        self.invites.values()
    }

    /// Prunes the invites expired at `now_unix`, then adds `invite`.
    pub(super) fn put_join_invite(
        &mut self,
        invite: &JoinInvite,
        now_unix: u64,
    ) -> Result<Vec<Change>, CommandError> {
        if invite.expires_unix <= now_unix || invite.used_by.is_some() {
            return Err(CommandError::InviteNotOpen);
        }
        if self.invites.contains_key(&invite.secret_sha256) {
            return Err(CommandError::InviteExists);
        }
        let expired: Vec<[u8; 32]> = self
            .invites
            .values()
            .filter(|open| open.expires_unix <= now_unix)
            .map(|open| open.secret_sha256)
            .collect();
        if self.invites.len() - expired.len() >= MAX_JOIN_INVITES {
            return Err(CommandError::TooManyInvites);
        }
        let mut changes = Vec::with_capacity(expired.len() + 1);
        for secret_sha256 in expired {
            self.invites.remove(&secret_sha256);
            changes.push(Change::JoinInviteRemoved { secret_sha256 });
        }
        self.invites.insert(invite.secret_sha256, invite.clone());
        changes.push(Change::JoinInvitePut {
            invite: invite.clone(),
        });
        Ok(changes)
    }

    /// Marks the invite used by `node_id`; using it again for the same node changes
    /// nothing. Expiry was checked by the node that proposed this.
    pub(super) fn use_join_invite(
        &mut self,
        secret_sha256: &[u8; 32],
        node_id: u64,
    ) -> Result<Vec<Change>, CommandError> {
        let invite = self
            .invites
            .get_mut(secret_sha256)
            .ok_or(CommandError::NoSuchInvite)?;
        match invite.used_by {
            Some(used) if used == node_id => Ok(Vec::new()),
            Some(used) => Err(CommandError::InviteUsed { node_id: used }),
            None => {
                invite.used_by = Some(node_id);
                Ok(vec![Change::JoinInvitePut {
                    invite: invite.clone(),
                }])
            }
        }
    }

    /// Removes the invites `node_id` used (the ticket it joined with no longer admits it)
    /// and its export endpoint.
    pub(super) fn retire_node(&mut self, node_id: u64) -> Vec<Change> {
        let used: Vec<[u8; 32]> = self
            .invites
            .values()
            .filter(|invite| invite.used_by == Some(node_id))
            .map(|invite| invite.secret_sha256)
            .collect();
        let mut changes: Vec<Change> = used
            .into_iter()
            .map(|secret_sha256| {
                self.invites.remove(&secret_sha256);
                Change::JoinInviteRemoved { secret_sha256 }
            })
            .collect();
        // A node that left serves no export: tickets stop naming it.
        changes.extend(self.forget_export_peer(node_id));
        changes
    }
}
