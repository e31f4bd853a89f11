//! The DNS server of both Outpost daemons: the appliance serves its Raft replica with
//! it, the Lite client its local replica.
//!
//! # Layout
//! - [`server`]: UDP workers and the TCP acceptor, bounded.
//! - [`message`]: decoding and cleaning a query, encoding an answer (EDNS, TC).
//! - [`handler`]: the query chain: decode → who may recurse → policy plugins
//!   ([`handler::policy`]: verdicts into answers) → our zones → forwarder or REFUSED →
//!   encode.
//! - [`rate_limit`]: response rate limiting over UDP (per prefix, with slip).
//! - [`forward`]: upstream exchange and the answer cache (TTLs, negative, serve-stale).
//! - [`metrics`]: counters rendered for Prometheus, the plugins' among them.
//! - [`querylog`]: recent queries and per-minute aggregates, in memory, for the console.
//! - [`plugin_runtime`]: the plugins in force: definitions loaded into the wasmtime host,
//!   the policy chain put in the handler, transforms for the write path.
//!
//! **Boundary:** hickory-proto does the protocol; the zones come in as an
//! `ArcSwap<ZoneSet>` that the owner swaps after each change.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cookie;
pub mod forward;
pub mod handler;
pub mod message;
pub mod metrics;
pub mod plugin_runtime;
pub mod querylog;
pub mod rate_limit;
pub mod server;
pub mod transfer;
