//! Splitting long change lists into frames whose bodies fit under a cap.
//!
//! Both splitters are greedy: they fill a frame until the next change would not fit.
//! Sizes are exact postcard sizes, so a frame built from their output encodes to at
//! most `max_body` bytes of body.
//!
//! Frames are filled up to `max_body`. A change too large for that goes alone in a
//! frame of its own, of up to [`MAX_LONE_CHANGE_BODY`] (protocol 2; a session of
//! protocol 1 cannot send that frame and says so).
//!
//! **Invariant:** a change of at most [`MAX_CHANGE_LEN`] encoded bytes always fits
//! alone in a frame of [`MAX_LONE_CHANGE_BODY`]; a larger one is an error for the
//! caller to report (the write path should have refused it).

use std::mem;

use super::wire::{ChangeEntry, Changes, ChangesAfter, WireChange};
use super::{MAX_LONE_CHANGE_BODY, postcard_len};

/// The largest encoded change the protocol carries: what is left of the largest
/// frame body once the counts and indexes around one change (at most 22 bytes) are
/// paid for.
pub const MAX_CHANGE_LEN: usize = MAX_LONE_CHANGE_BODY - 64;

/// Room kept in every `Changes` body for `up_to`, whose value is only known when the
/// frame is closed, and for the `after` of a `ChangesAfter` (protocol 3): two of the
/// longest varint of a `u64`.
const UP_TO_RESERVE: usize = 20;

/// Why a list of changes cannot be split into frames.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error(
        "{change} encodes to {size} bytes, more than one frame body of {max_body} bytes can hold (refuse changes over MAX_CHANGE_LEN when they are written)"
    )]
    ChangeTooLarge {
        change: String,
        size: usize,
        max_body: usize,
    },
    #[error("{change} could not be encoded: {reason}")]
    Encode { change: String, reason: String },
}

/// Splits snapshot content into `SnapshotChunk` bodies of at most `max_body` bytes,
/// in order. No changes give no chunks.
pub fn chunk_changes(
    changes: Vec<WireChange>,
    max_body: usize,
) -> Result<Vec<Vec<WireChange>>, ChunkError> {
    let mut chunks = Vec::new();
    let mut current: Vec<WireChange> = Vec::new();
    let mut current_len = 0;
    for change in changes {
        let size = encoded_len(&change)?;
        if varint_len(1) + size > max_body.max(MAX_LONE_CHANGE_BODY) {
            return Err(too_large(&change, size));
        }
        if !current.is_empty() && varint_len(current.len() + 1) + current_len + size > max_body {
            chunks.push(mem::take(&mut current));
            current_len = 0;
        }
        current.push(change);
        current_len += size;
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    Ok(chunks)
}

/// Splits one committed batch (its entries already filtered to the session's zones)
/// into `Changes` bodies of at most `max_body` bytes. Always at least one frame: a
/// batch with nothing in scope still advances the cursor to `up_to`.
///
/// The last frame carries `up_to`; an earlier one carries the index of its last
/// entry, or that index minus one when the entry continues in the next frame, so a
/// client that stops between the parts resumes from before the entry and receives
/// it whole again (every change is idempotent: puts carry the whole RRset).
pub fn split_batch(
    up_to: u64,
    entries: Vec<ChangeEntry>,
    max_body: usize,
) -> Result<Vec<Changes>, ChunkError> {
    let mut frames = Vec::new();
    let mut frame = FrameBuilder::default();
    for entry in entries {
        let index = entry.index;
        let mut sizes = Vec::with_capacity(entry.changes.len());
        for change in &entry.changes {
            let size = encoded_len(change)?;
            if UP_TO_RESERVE + varint_len(1) + entry_len(index, 1, size)
                > max_body.max(MAX_LONE_CHANGE_BODY)
            {
                return Err(too_large(change, size));
            }
            sizes.push(size);
        }
        let whole = entry_len(index, sizes.len(), sizes.iter().sum());
        if !frame.fits(whole, max_body) {
            frames.extend(frame.finish_after_last_entry());
        }
        if frame.fits(whole, max_body) {
            frame.push(entry, whole);
            continue;
        }
        // Too large for any frame: split it, each part filling a frame of its own.
        let mut part: Vec<WireChange> = Vec::new();
        let mut part_len = 0;
        for (change, size) in entry.changes.into_iter().zip(sizes) {
            let grown = entry_len(index, part.len() + 1, part_len + size);
            if !part.is_empty() && !frame.fits(grown, max_body) {
                let changes = mem::take(&mut part);
                let len = entry_len(index, changes.len(), part_len);
                frame.push(ChangeEntry { index, changes }, len);
                frames.push(frame.finish(index.saturating_sub(1)));
                part_len = 0;
            }
            part.push(change);
            part_len += size;
        }
        // The last part stays open so that the entries after it can share its frame.
        let len = entry_len(index, part.len(), part_len);
        frame.push(
            ChangeEntry {
                index,
                changes: part,
            },
            len,
        );
    }
    frames.push(frame.finish(up_to));
    Ok(frames)
}

/// One batch's `Changes` bodies (from [`split_batch`]) as protocol 3 sends them: the
/// first follows `after`, the index the receiver stood at before the batch, and each
/// later one follows the `up_to` of the one before it.
pub fn chain_after(after: u64, frames: Vec<Changes>) -> Vec<ChangesAfter> {
    let mut after = after;
    frames
        .into_iter()
        .map(|changes| {
            let follows = after;
            after = changes.up_to;
            ChangesAfter {
                after: follows,
                changes,
            }
        })
        .collect()
}

/// The `Changes` body being filled.
#[derive(Default)]
struct FrameBuilder {
    entries: Vec<ChangeEntry>,
    /// Encoded length of `entries`, without their count.
    entries_len: usize,
}

impl FrameBuilder {
    fn fits(&self, entry_len: usize, max_body: usize) -> bool {
        UP_TO_RESERVE + varint_len(self.entries.len() + 1) + self.entries_len + entry_len
            <= max_body
    }

    fn push(&mut self, entry: ChangeEntry, len: usize) {
        self.entries.push(entry);
        self.entries_len += len;
    }

    fn finish(&mut self, up_to: u64) -> Changes {
        self.entries_len = 0;
        Changes {
            up_to,
            entries: mem::take(&mut self.entries),
        }
    }

    /// Closes a frame whose last entry is complete; nothing if it is empty.
    fn finish_after_last_entry(&mut self) -> Option<Changes> {
        let up_to = self.entries.last()?.index;
        Some(self.finish(up_to))
    }
}

fn entry_len(index: u64, change_count: usize, changes_len: usize) -> usize {
    varint_len(index) + varint_len(change_count) + changes_len
}

fn encoded_len(change: &WireChange) -> Result<usize, ChunkError> {
    postcard_len(change).map_err(|e| ChunkError::Encode {
        change: change.describe(),
        reason: e.to_string(),
    })
}

fn too_large(change: &WireChange, size: usize) -> ChunkError {
    ChunkError::ChangeTooLarge {
        change: change.describe(),
        size,
        max_body: MAX_LONE_CHANGE_BODY,
    }
}

/// Bytes in postcard's varint of `value` (7 bits a byte; lengths are varints too).
fn varint_len(value: impl TryInto<u64>) -> usize {
    let value: u64 = value.try_into().unwrap_or(u64::MAX);
    let bits = (u64::BITS - value.leading_zeros()) as usize;
    bits.div_ceil(7).max(1)
}
