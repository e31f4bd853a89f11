//! What both Outpost daemons need: the record model, the zone-file parser and the
//! answer engine. No sockets and no disk: everything here is a pure function of its
//! inputs, so it is tested without a process.
//!
//! # Layout
//! - [`zones`]: the authoritative model (zones of RRsets), the write [`zones::Command`]s
//!   that change it and the [`zones::Change`]s they produce; validation lives here.
//! - [`zonefile`]: RFC 1035 master files in and out, with line-numbered errors.
//! - [`answer`]: the immutable query index ([`answer::ZoneSet`]) and the lookup that
//!   turns a question into the sections of an authoritative answer.
//! - [`wire`]: the DNS wire encoding of records used inside commands and changes.
//! - [`sync`]: the Lite sync protocol's frames and wire types, encoded and decoded as
//!   pure functions (`docs/sync-protocol.md` is the contract).
//! - [`plugin`]: the sandboxed WebAssembly plugin host (wasmtime components built
//!   against `wit/`, under deadlines and memory caps; `docs/plugins.md`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod answer;
pub mod name;
pub mod plugin;
pub mod sync;
pub mod wire;
pub mod zonefile;
pub mod zones;
