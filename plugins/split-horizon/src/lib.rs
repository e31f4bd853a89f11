//! The `split-horizon` query-policy plugin: the component glue around [`logic`].
//!
//! Config: `SUBNET NAME ADDRESS` per line (`10.0.0.0/8 printer.site.example 10.1.2.3`),
//! and optionally `ttl=SECONDS` (default 60). An A or AAAA query for NAME from a
//! client inside SUBNET is answered with the addresses of the most specific matching
//! subnet; every other query continues to the zone data.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component;
