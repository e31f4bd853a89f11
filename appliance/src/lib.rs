//! The Outpost appliance: a single binary that serves DNS for a site from a
//! Raft-replicated store.
//!
//! # Layout
//! - [`node`]: starts every part in order and shuts them down in the reverse order.
//!
//! The DNS server itself (sockets, query path, forwarder, cache) is the `outpost-dns`
//! crate, shared with the Lite client.
//! - [`config`]: the TOML file and flags, raw then validated.
//! - [`store`]: openraft with its log and state machine in redb; the only module that
//!   sees openraft types.
//! - [`admin`]: the admin HTTP API (`/v1/…`, `/health`, `/ready`, `/metrics`).
//! - [`client`]: the admin subcommands of the CLI, which talk to that API.
//! - [`sync`]: the Lite sync WebSocket: the fanout hub fed by the store, and one session
//!   per Lite client.
//! - [`plugin_reload`]: the replicated plugin definitions loaded into the wasmtime host and
//!   swapped into the DNS path (query policy) and the admin write path (transforms).
//! - [`sources`]: record sources: hosts and DHCP lease files this node reads and feeds
//!   into zones through Raft.
//! - `secret_file`: the admin token and the node key, written once, 0600, atomically.
//! - [`allocator`]: glibc's malloc thresholds, so freed transient memory goes back to
//!   the system.
//! - [`follow`]: followed zones: refreshed from their primaries by the leader, what a
//!   transfer brings proposed through Raft.
//! - [`transfers`]: zone transfers out: the IXFR journal fed from the store's commits,
//!   NOTIFY sent while this node leads.
//! - `exports`: the iroh-docs exports: the export endpoint, and the writer that puts
//!   every export's document in step with the replica after each change.
//! - [`satellite`]: `serve --satellite`: a node outside the cluster serving an export's
//!   read-only copy, fetched from any peer.
//! - [`systemd`]: readiness and watchdog notifications, and the refusal to run as root.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub(crate) mod admin;
pub mod allocator;
pub mod client;
pub mod config;
pub(crate) mod exports;
pub(crate) mod follow;
pub mod node;
pub(crate) mod plugin_reload;
pub mod satellite;
mod secret_file;
pub mod sources;
pub mod store;
pub mod sync;
pub mod systemd;
pub(crate) mod transfers;
