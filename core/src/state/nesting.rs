//! A bound on how deep commands nest ([`Command::Batch`] and [`Command::Once`] hold
//! commands), checked while a command is decoded: the decoder recurses once per level,
//! and a Raft message of a few kilobytes nesting thousands of levels would overflow a
//! thread's stack (found by the `raft_rpc` fuzz target). Encoding is unchanged.
//!
//! [`Command::Batch`]: super::Command::Batch
//! [`Command::Once`]: super::Command::Once

use std::cell::Cell;

use serde::{Deserialize, Deserializer, de::Error as _};

/// Levels of commands inside commands a decoded command may hold. The write path makes
/// at most three (a keyed write of a batch of a transform's records); policy when
/// exceeded: the message does not decode (a Raft message is refused, a stored entry
/// reported corrupt).
pub const MAX_COMMAND_NESTING: u32 = 16;

thread_local! {
    /// Levels being decoded on this thread now.
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Leaves a level when dropped, on every path out of [`nested`].
struct Level;

impl Drop for Level {
    fn drop(&mut self) {
        DEPTH.with(|depth| depth.set(depth.get().saturating_sub(1)));
    }
}

/// Decodes a field holding commands, one level deeper (`deserialize_with`).
pub(super) fn nested<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let depth = DEPTH.with(|depth| {
        let next = depth.get().saturating_add(1);
        depth.set(next);
        next
    });
    let _level = Level;
    if depth > MAX_COMMAND_NESTING {
        return Err(D::Error::custom(format!(
            "commands nested deeper than {MAX_COMMAND_NESTING} levels"
        )));
    }
    T::deserialize(deserializer)
}
