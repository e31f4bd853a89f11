//! The Outpost Lite client: a laptop's own replica of the zones its token may see,
//! kept in sync with an appliance over a WebSocket and served by the same DNS server
//! the appliance runs, so internal names keep resolving offline.
//!
//! The sync path, Lite side: [`connector`] (which appliance, when) → [`session`] (one
//! WebSocket: `Hello`, `Welcome`, snapshot or changes, heartbeats) → [`replica`]
//! (one durable redb transaction per frame, cursor included; then the published
//! `ZoneSet` is swapped) → `outpost_dns` answers from it.
//!
//! # Layout
//! - [`config`]: `outpost-lite run` flags → validated [`config::LiteConfig`].
//! - [`lite`]: [`lite::LiteClient`], the start and shutdown order.
//! - [`connector`]: appliance rotation, backoff with jitter, the close-code reactions.
//! - [`docs`]: `--docs TICKET`, the second path: an iroh-docs export followed from any
//!   peer, each whole snapshot installed into the replica.
//! - [`session`]: one session: the socket (`session/transport.rs`), each frame where
//!   the session stands (`session/inbound.rs`), close codes (`session/ending.rs`).
//! - [`replica`]: the redb replica and cursor, snapshot staging, the published views.
//! - [`page`]: the status page on loopback (state, zones, recent queries, `/metrics`).
//! - [`status`]: the honest sync state and `status.json` (`status/report.rs`).
//! - [`resolver`]: `outpost-lite resolver install|uninstall`: split DNS for the
//!   replica's zones (systemd-resolved, /etc/resolver, NRPT).
//! - [`tls`]: trust for `wss://` appliances (a pinned fingerprint or a CA file).
//!
//! The wire protocol itself is `outpost_core::sync` (`docs/sync-protocol.md`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub(crate) mod connector;
pub mod docs;
pub mod lite;
pub(crate) mod page;
pub(crate) mod replica;
pub mod resolver;
pub(crate) mod session;
pub mod status;
pub(crate) mod tls;
