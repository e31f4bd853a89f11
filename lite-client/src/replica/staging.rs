//! A snapshot in transit: `SnapshotBegin`, `SnapshotChunk`s, `SnapshotEnd`.
//!
//! Chunks are kept in memory until `SnapshotEnd`, then handed to
//! [`super::ReplicaStore::install_snapshot`], which replaces the whole replica at once.
//! Nothing reaches the disk or the DNS path before the end, so a session that breaks
//! mid-snapshot leaves the previous replica untouched.
//!
//! **Invariant:** the staged bytes never exceed [`MAX_SNAPSHOT_BYTES`]; a larger
//! snapshot aborts the session instead of exhausting memory.

use outpost_core::sync::{SnapshotChunk, WireChange, from_wire};
use outpost_core::zones::Change;

/// The most snapshot content staged in memory (names and record bytes), 512 MiB: about
/// five million typical records, far beyond a site's zones. When a snapshot exceeds
/// it the session is closed and the old replica is kept.
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
    changes: Vec<Change>,
    bytes: usize,
    limit: usize,
    /// Definitions of a kind or hook this client does not know.
    definitions_skipped: usize,
}

/// A complete snapshot, ready to replace the replica.
#[derive(Debug)]
pub struct StagedSnapshot {
    pub as_of: u64,
    pub changes: Vec<Change>,
    pub definitions_skipped: usize,
}

impl SnapshotStaging {
    pub fn new(as_of: u64) -> Self {
        Self::with_limit(as_of, MAX_SNAPSHOT_BYTES)
    }

    /// For tests: a smaller limit than [`MAX_SNAPSHOT_BYTES`].
    pub fn with_limit(as_of: u64, limit: usize) -> Self {
        Self {
            as_of,
            changes: Vec::new(),
            bytes: 0,
            limit,
            definitions_skipped: 0,
        }
    }

    pub fn as_of(&self) -> u64 {
        self.as_of
    }

    /// Staged bytes so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn push_chunk(&mut self, chunk: SnapshotChunk) -> Result<(), StagingError> {
        for change in chunk.changes {
            self.bytes = self.bytes.saturating_add(staged_len(&change));
            if self.bytes > self.limit {
                return Err(StagingError::TooLarge { limit: self.limit });
            }
            match from_wire(&change)? {
                Some(change) => self.changes.push(change),
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
            changes: self.changes,
            definitions_skipped: self.definitions_skipped,
        })
    }
}

/// What one change costs in memory, roughly: its strings and bytes plus overhead.
fn staged_len(change: &WireChange) -> usize {
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
