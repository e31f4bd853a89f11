//! The openraft type configuration and the two payload types it carries: what a log entry
//! proposes ([`Proposal`]) and what applying it answered ([`WriteResponse`]).
//!
//! The bottom of the store: it depends on nothing else in it. The Raft node's own type, which
//! names the state machine, is `state_machine::Raft`.
//!
//! **Boundary:** nothing here but [`NodeInfo`] is public outside the store; the rest of
//! the appliance sees `Command`, `Change` and `CommandError` from `outpost_core::state`.

use std::fmt;

use outpost_core::state::{Change, Command, CommandError};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of the appliance cluster. Node ids are `u64`s kept in each data directory
    /// (a first node is node 1, `FIRST_NODE_ID`); a node's [`NodeInfo`] says how its peers
    /// reach it.
    pub(crate) TypeConfig:
        D = Proposal,
        R = WriteResponse,
        NodeId = u64,
        Node = NodeInfo,
);

/// What the cluster membership records about a node: how the transport reaches it.
///
/// **Boundary:** stored in the Raft log and in snapshots (inside every membership entry) and
/// sent to peers, so its postcard encoding is part of the storage format (docs/storage.md).
/// Today it is one string, encoded exactly as openraft's `BasicNode` that format 1 files hold;
/// adding a field changes the encoding and needs a format bump.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// The address the transport dials (empty: not reachable, as a node that has no peers).
    pub addr: String,
}

impl NodeInfo {
    pub fn new(addr: impl Into<String>) -> NodeInfo {
        NodeInfo { addr: addr.into() }
    }
}

impl fmt::Display for NodeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.addr.is_empty() {
            f.write_str("(no address)")
        } else {
            f.write_str(&self.addr)
        }
    }
}

/// A log entry's application payload: one zone or record write.
///
/// A newtype because openraft wants `Display` on log payloads and `Command` is another crate's
/// type. Serialized transparently, so a log entry holds exactly the `Command`'s encoding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub(crate) struct Proposal(pub(crate) Command);

/// How much of a command openraft's traces show: enough to name the write, not its records.
const DISPLAY_CHARS: usize = 120;

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = format!("{:?}", self.0);
        if let Some((cut, _)) = text.char_indices().nth(DISPLAY_CHARS) {
            text.truncate(cut);
            text.push('…');
        }
        f.write_str(&text)
    }
}

/// What applying one entry answered: the changes it made, or why the model refused it (in
/// which case nothing changed, but the entry still counts as applied).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub(crate) struct WriteResponse(pub(crate) Result<Vec<Change>, CommandError>);

pub(crate) type LogId = openraft::type_config::alias::LogIdOf<TypeConfig>;
pub(crate) type Entry = openraft::type_config::alias::EntryOf<TypeConfig>;
pub(crate) type Vote = openraft::type_config::alias::VoteOf<TypeConfig>;
pub(crate) type StoredMembership = openraft::type_config::alias::StoredMembershipOf<TypeConfig>;
pub(crate) type SnapshotMeta = openraft::type_config::alias::SnapshotMetaOf<TypeConfig>;
/// Snapshots travel and are stored as one byte buffer (the `state_machine` module says what
/// is in it).
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;
pub(crate) type AppendEntriesRequest = openraft::raft::AppendEntriesRequest<TypeConfig>;
pub(crate) type AppendEntriesResponse = openraft::raft::AppendEntriesResponse<TypeConfig>;
pub(crate) type VoteRequest = openraft::raft::VoteRequest<TypeConfig>;
pub(crate) type VoteResponse = openraft::raft::VoteResponse<TypeConfig>;
pub(crate) type SnapshotResponse = openraft::raft::SnapshotResponse<TypeConfig>;
