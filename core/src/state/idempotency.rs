//! Idempotency keys: a write retried after an ambiguous answer (a timeout, a deposed
//! leader, a lost connection) applies once.
//!
//! The admin API wraps a write that carries an `Idempotency-Key` in
//! [`Command::Once`]. Applied for the first time, the write's changes are made and the key
//! is remembered with the log index that made them; applied again with the same key, the
//! write changes nothing and is answered [`CommandError::AlreadyApplied`] with that first
//! index, which the store turns back into the first success. A refused write changes
//! nothing and records nothing, so its retry is evaluated again.
//!
//! **Invariant:** applying never reads a clock: keys expire against `now_unix`, the
//! proposer's clock written into the command, so every replica keeps the same keys.
//! **Bound:** at most [`MAX_IDEMPOTENCY_KEYS`], each kept [`IDEMPOTENCY_WINDOW_SECS`];
//! when full, the oldest key goes first.
//!
//! [`Command::Once`]: super::Command::Once

use serde::{Deserialize, Serialize};

use super::{Change, Command, CommandError, ReplicatedState};

/// Keys remembered at most. Policy when full: the oldest key (by the time it was
/// recorded, then by key) is forgotten to make room; its retry would apply again.
pub const MAX_IDEMPOTENCY_KEYS: usize = 10_000;

/// How long a key is remembered: a day covers any client's retries.
pub const IDEMPOTENCY_WINDOW_SECS: u64 = 24 * 3600;

/// Longest key, in bytes (visible ASCII only).
pub const MAX_IDEMPOTENCY_KEY: usize = 128;

/// A write that was applied under a key, as the cluster remembers it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: String,
    /// The log index whose entry applied the write.
    pub index: u64,
    /// The proposer's clock when it was applied (unix seconds).
    pub at_unix: u64,
}

/// Checks a key as a client sent it: 1 to [`MAX_IDEMPOTENCY_KEY`] visible ASCII bytes.
pub fn check_idempotency_key(key: &str) -> Result<(), CommandError> {
    let visible = key.bytes().all(|byte| byte.is_ascii_graphic());
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !visible {
        return Err(CommandError::InvalidIdempotencyKey {
            key: key.chars().take(MAX_IDEMPOTENCY_KEY).collect(),
        });
    }
    Ok(())
}

impl ReplicatedState {
    /// The record of `key`, if the cluster remembers it.
    pub fn idempotency_record(&self, key: &str) -> Option<&IdempotencyRecord> {
        self.idempotency.get(key)
    }

    pub fn idempotency_records(&self) -> impl Iterator<Item = &IdempotencyRecord> {
        self.idempotency.values()
    }

    /// [`Command::Once`] at log index `index`: `command` once per key.
    pub(super) fn apply_once(
        &mut self,
        index: u64,
        key: &str,
        now_unix: u64,
        command: &Command,
    ) -> Result<Vec<Change>, CommandError> {
        check_idempotency_key(key)?;
        if matches!(command, Command::Once { .. }) {
            return Err(CommandError::OnceNested);
        }
        let mut changes = self.forget_expired(now_unix);
        if let Some(first) = self.idempotency.get(key) {
            return Err(CommandError::AlreadyApplied { index: first.index });
        }
        // On a refusal nothing changes, the pruning included (it is redone next time).
        let mut next = self.clone();
        changes.extend(next.apply_at(index, command)?);
        *self = next;
        changes.extend(self.make_room());
        let record = IdempotencyRecord {
            key: key.to_string(),
            index,
            at_unix: now_unix,
        };
        self.idempotency.insert(record.key.clone(), record.clone());
        changes.push(Change::IdempotencyKeyPut { record });
        Ok(changes)
    }

    /// Forgets the keys older than the window at `now_unix`.
    fn forget_expired(&mut self, now_unix: u64) -> Vec<Change> {
        let expired: Vec<String> = self
            .idempotency
            .values()
            .filter(|record| record.at_unix.saturating_add(IDEMPOTENCY_WINDOW_SECS) <= now_unix)
            .map(|record| record.key.clone())
            .collect();
        expired
            .into_iter()
            .map(|key| {
                self.idempotency.remove(&key);
                Change::IdempotencyKeyRemoved { key }
            })
            .collect()
    }

    /// Forgets the oldest keys until one more fits.
    fn make_room(&mut self) -> Vec<Change> {
        let mut changes = Vec::new();
        while self.idempotency.len() >= MAX_IDEMPOTENCY_KEYS {
            let Some(oldest) = self
                .idempotency
                .values()
                .min_by(|a, b| (a.at_unix, &a.key).cmp(&(b.at_unix, &b.key)))
                .map(|record| record.key.clone())
            else {
                break;
            };
            self.idempotency.remove(&oldest);
            changes.push(Change::IdempotencyKeyRemoved { key: oldest });
        }
        changes
    }
}
