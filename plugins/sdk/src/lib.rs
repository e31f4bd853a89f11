//! Helpers every Outpost plugin needs and that have nothing to do with the bindings:
//! plain Rust, tested natively.
//!
//! # Layout
//! - [`FixedState`], [`FixedHashMap`], [`FixedHashSet`]: hash maps that never ask
//!   the host for randomness. std's default `HashMap` seeds itself from WASI's random
//!   interface, which Outpost does not grant: the first `HashMap::new()` would trap.
//! - [`name`]: query and record names (lowercase, trailing dot) and their suffixes.
//! - [`config`]: configuration as numbered lines, blank lines and `#` comments skipped.

pub mod config;
pub mod name;

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, DefaultHasher};

/// A `BuildHasher` with a fixed seed: SipHash-1-3 keyed with zeros. Deterministic,
/// so fine for data the operator configured; a plugin only looks keys up on behalf of
/// clients, so a client cannot flood a bucket by choosing names.
pub type FixedState = BuildHasherDefault<DefaultHasher>;

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
}
