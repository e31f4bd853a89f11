//! The openraft type configuration and the two payload types it carries: what a log entry
//! proposes ([`Proposal`]) and what applying it answered ([`WriteResponse`]).
//!
//! **Boundary:** nothing here is public outside [`crate::store`]; the rest of the appliance
//! sees `Command`, `Change` and `CommandError` from `outpost_core::zones`.

use std::fmt;

use outpost_core::zones::{Change, Command, CommandError};
use serde::{Deserialize, Serialize};

openraft::declare_raft_types!(
    /// Raft types of the appliance cluster. Node ids are small integers (the single node is
    /// [`crate::store::NODE_ID`]); the node address is a string that issue 3 fills with the
    /// iroh node address.
    pub(crate) TypeConfig:
        D = Proposal,
        R = WriteResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
);

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
/// Snapshots travel and are stored as one byte buffer: see [`super::state_machine`].
pub(crate) type Snapshot = openraft::type_config::alias::SnapshotOf<TypeConfig, Vec<u8>>;
pub(crate) type Raft = openraft::Raft<TypeConfig, super::state_machine::StateMachine>;
