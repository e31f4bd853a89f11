//! Helpers every Outpost plugin needs and that have nothing to do with the bindings:
//! plain Rust, tested natively.
//!
//! # Layout
//! - [`FixedState`], [`FixedHashMap`], [`FixedHashSet`]: hash maps that never ask
//!   the host for randomness. std's default `HashMap` seeds itself from WASI's random
//!   interface, which Outpost does not grant: the first `HashMap::new()` would trap.
//! - [`name`]: query and record names (lowercase, trailing dot) and their suffixes.
//! - [`config`]: configuration as numbered lines, blank lines and `#` comments skipped.
//! - [`memoizable_verdicts!`]: a query-policy plugin's declaration that the host may
//!   reuse its verdicts.

pub mod config;
pub mod name;

/// The name of the custom section in which a query-policy plugin declares that its
/// verdicts are memoizable: see [`memoizable_verdicts!`].
pub const MEMO_SECTION: &str = "outpost-plugin-memo";

/// Declares that this query-policy plugin's verdict depends only on the query's name,
/// type and class, and on the plugin's configuration: not on the client's address, the
/// transport, the clock or anything the plugin remembers between calls. The host may
/// then answer a question it has seen from the verdict it got for it, without calling
/// the plugin (docs/plugins.md, "Memoized verdicts").
///
/// Writes the custom section [`MEMO_SECTION`] holding `question` into the component.
/// Invoke it once, at the top of the crate's component module.
#[macro_export]
macro_rules! memoizable_verdicts {
    () => {
        // A custom section is data the host reads from the component's bytes; nothing
        // runs it.
        #[used]
        #[unsafe(link_section = "outpost-plugin-memo")]
        static OUTPOST_PLUGIN_MEMO: [u8; 8] = *b"question";
    };
}

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `BuildHasher` without a seed: [`FixedHasher`]. Deterministic, so fine for keys
/// the operator configured; a plugin only looks keys up on behalf of clients, and a
/// lookup cannot lengthen a bucket, so a client gains nothing by choosing names that
/// collide.
pub type FixedState = BuildHasherDefault<FixedHasher>;

/// A multiply-rotate hash over 8-byte words (the one rustc long used, "FxHash"):
/// about ten times cheaper than SipHash on the short names a policy plugin hashes on
/// every query, which is most of a blocklist's time per call. Not keyed, so not for
/// keys an attacker chooses and a plugin stores.
#[derive(Clone, Copy, Debug, Default)]
pub struct FixedHasher {
    hash: u64,
}

impl FixedHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for FixedHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut buffer = [0; 8];
            buffer.copy_from_slice(word);
            self.add(u64::from_le_bytes(buffer));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut buffer = [0; 8];
            buffer[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(buffer) ^ ((rest.len() as u64) << 56));
        }
    }

    fn write_u8(&mut self, value: u8) {
        self.add(u64::from(value));
    }

    fn write_u64(&mut self, value: u64) {
        self.add(value);
    }

    fn write_usize(&mut self, value: usize) {
        self.add(value as u64);
    }

    fn finish(&self) -> u64 {
        self.hash
    }
}

/// A `HashMap` that works inside a plugin.
pub type FixedHashMap<K, V> = HashMap<K, V, FixedState>;

/// A `HashSet` that works inside a plugin.
pub type FixedHashSet<T> = HashSet<T, FixedState>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_state_hashes_the_same_in_every_map() {
        use std::hash::BuildHasher;
        let first = FixedState::default().hash_one("ads.example");
        let second = FixedState::default().hash_one("ads.example");
        assert_eq!(first, second);

        let mut set = FixedHashSet::default();
        set.insert("ads.example");
        assert!(set.contains("ads.example"));
    }

    #[test]
    fn fixed_hasher_tells_short_keys_and_their_padding_apart() {
        use std::hash::BuildHasher;
        let hash = |key: &[u8]| FixedState::default().hash_one(key);
        let keys: [&[u8]; 6] = [
            b"",
            b"a",
            b"a\0",
            b"ads.example",
            b"ads.exampl",
            b"ads.examplf",
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(hash(a), hash(b), "{a:?} {b:?}");
            }
        }
        let many: FixedHashSet<String> = (0..10_000).map(|i| format!("host-{i}.example")).collect();
        assert_eq!(many.len(), 10_000);
        assert!(many.contains("host-9999.example"));
    }
}
