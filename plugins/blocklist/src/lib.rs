//! The `blocklist` query-policy plugin: the component glue. The matching itself is
//! in [`logic`], plain Rust tested natively.
//!
//! Config: one domain per line (`ads.example`), or hosts-file lines
//! (`0.0.0.0 ads.example`); `#` starts a comment; `sinkhole=ADDRESS` answers blocked
//! A/AAAA queries with that address instead of NXDOMAIN.

pub mod logic;

#[cfg(target_arch = "wasm32")]
mod component;
