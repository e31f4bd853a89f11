//! A snapshot in transit: `SnapshotBegin`, `SnapshotChunk`s, `SnapshotEnd`.
//!
//! Each chunk's changes are applied, as they arrive, to a new model of their own, and
//! dropped: the staging holds the replica the snapshot describes and nothing more (no
//! second copy of it as changes). At `SnapshotEnd` that model goes to
//! [`super::ReplicaStore::install_snapshot`], which replaces the whole replica at once.
//! Nothing reaches the disk or the DNS path before the end, so a session that breaks
//! mid-snapshot leaves the previous replica untouched.
//!
//! **Invariant:** the snapshot content taken in never exceeds [`MAX_SNAPSHOT_BYTES`]; a
//! larger snapshot aborts the session instead of exhausting memory.
//! **Invariant:** a staged snapshot is judged whole at install, as if its changes were
//! applied then: a zone outside the scope, then the first change that did not apply,
//! refuses it.

use outpost_core::state::{Change, CommandError, ReplicatedState};
use outpost_core::sync::{SnapshotChunk, WireChange, from_wire};

/// The most snapshot content taken in (names and record bytes), 512 MiB: about five
/// million typical records, far beyond a site's zones. When a snapshot exceeds it the
/// session is closed and the old replica is kept.
pub const MAX_SNAPSHOT_BYTES: usize = 512 << 20;

/// Bookkeeping bytes counted per staged change on top of its names and records, so
/// that a flood of empty changes is bounded too.
const PER_CHANGE_OVERHEAD: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StagingError {
    #[error(
        "snapshot is larger than the client's limit of {limit} bytes (MAX_SNAPSHOT_BYTES); the old replica is kept"
    )]
    TooLarge { limit: usize },
    #[error("snapshot began as of index {began} but ended as of index {ended}")]
    AsOfMismatch { began: u64, ended: u64 },
    #[error("snapshot holds {0}")]
    BadChange(#[from] outpost_core::sync::WireChangeError),
}

/// A snapshot being received.
#[derive(Debug)]
pub struct SnapshotStaging {
    as_of: u64,
    staged: Staged,
    bytes: usize,
    limit: usize,
    /// Definitions of a kind or hook this client does not know.
    definitions_skipped: usize,
}

/// What the changes received so far amount to.
#[derive(Debug, Default)]
pub(super) struct Staged {
    /// The replica the snapshot describes, so far.
    pub(super) zones: ReplicatedState,
    /// The zone of every change, each once, in the order they came: the scope is
    /// checked against these at install.
    pub(super) zones_named: Vec<String>,
    /// The first change that did not apply (described) and why; nothing is applied
    /// after it.
    pub(super) refused: Option<(String, CommandError)>,
}

/// A complete snapshot, ready to replace the replica.
#[derive(Debug)]
pub struct StagedSnapshot {
    pub as_of: u64,
    pub(super) staged: Staged,
    pub definitions_skipped: usize,
}

impl StagedSnapshot {
    /// The replica it describes (meaningful when nothing was refused).
    #[cfg(test)]
    pub fn zones(&self) -> &ReplicatedState {
        &self.staged.zones
    }
}

impl SnapshotStaging {
    pub fn new(as_of: u64) -> Self {
        Self::with_limit(as_of, MAX_SNAPSHOT_BYTES)
    }

    /// For tests: a smaller limit than [`MAX_SNAPSHOT_BYTES`].
    pub fn with_limit(as_of: u64, limit: usize) -> Self {
        Self {
            as_of,
            staged: Staged::default(),
            bytes: 0,
            limit,
            definitions_skipped: 0,
        }
    }

    /// Staged bytes so far.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Takes in a chunk: its changes are applied to the staged replica. CPU work in
    /// proportion to the chunk (up to a frame of changes): run it off the runtime.
    pub fn push_chunk(&mut self, chunk: SnapshotChunk) -> Result<(), StagingError> {
        for change in chunk.changes {
            self.bytes = self.bytes.saturating_add(footprint(&change));
            if self.bytes > self.limit {
                return Err(StagingError::TooLarge { limit: self.limit });
            }
            match from_wire(&change)? {
                Some(decoded) => self.staged.apply(&change, &decoded),
                None => self.definitions_skipped += 1,
            }
        }
        Ok(())
    }

    pub fn finish(self, as_of: u64) -> Result<StagedSnapshot, StagingError> {
        if as_of != self.as_of {
            return Err(StagingError::AsOfMismatch {
                began: self.as_of,
                ended: as_of,
            });
        }
        Ok(StagedSnapshot {
            as_of,
            staged: self.staged,
            definitions_skipped: self.definitions_skipped,
        })
    }
}

impl Staged {
    fn apply(&mut self, wire: &WireChange, change: &Change) {
        if let Some(zone) = change.zone()
            && !self.zones_named.iter().any(|named| named == zone)
        {
            self.zones_named.push(zone.to_string());
        }
        if self.refused.is_none()
            && let Err(error) = self.zones.apply_change(change)
        {
            self.refused = Some((wire.describe(), error));
            // The snapshot will be refused: its model is of no use.
            self.zones = ReplicatedState::default();
        }
    }
}

/// What one change costs in memory, roughly: its strings and bytes plus overhead.
pub fn footprint(change: &WireChange) -> usize {
    let payload = match change {
        WireChange::ZonePut { origin } | WireChange::ZoneDeleted { origin } => origin.len(),
        WireChange::RRsetPut {
            zone,
            owner,
            records,
            ..
        } => zone.len() + owner.len() + records.len(),
        WireChange::RRsetDeleted { zone, owner, .. } => zone.len() + owner.len(),
        WireChange::DefinitionPut {
            kind, name, body, ..
        } => kind.len() + name.len() + body.len(),
        WireChange::DefinitionDeleted { kind, name } => kind.len() + name.len(),
    };
    payload + PER_CHANGE_OVERHEAD
}
