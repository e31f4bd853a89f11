//! The `ptr-synth` record-transform plugin: the component glue around [`logic`].
//!
//! Config: `zone=REVERSE-ZONE` lines (`zone=10.in-addr.arpa`), and optionally
//! `ttl=SECONDS` (default: the TTL of the A or AAAA record). For every written A or
//! AAAA record whose reverse name lies in a configured reverse zone, a PTR record
//! pointing back at the owner is added to the write (unless the write already holds
//! it). The reverse zone must exist in the cluster, or the write is refused.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component;
