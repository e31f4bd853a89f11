//! What both Outpost daemons need: the record model, the zone-file parser, the answer
//! engine, the sync codec and the plugin host. No sockets and no disk: all but the
//! plugin host (which owns an epoch-ticker thread) are pure functions of their inputs,
//! so they are tested without a process.
//!
//! # Layout
//! - [`zones`]: the authoritative model (zones of RRsets), the write [`zones::Command`]s
//!   that change it and the [`zones::Change`]s they produce; validation lives here.
//! - [`zonefile`]: RFC 1035 master files in, with line-numbered errors.
//! - [`answer`]: the immutable query index ([`answer::ZoneSet`]) and the lookup that
//!   turns a question into the sections of an authoritative answer.
//! - [`name`]: names as lowercase wire bytes, the keys of the model and the query index.
//! - [`packed`]: an owner and its RRsets packed into one shared allocation of wire
//!   bytes, the unit the model and the query index hold.
//! - [`wire`]: the DNS wire encoding of records used inside commands and changes.
//! - [`sync`]: the Lite sync protocol's frames and wire types, encoded and decoded as
//!   pure functions (`docs/sync-protocol.md` is the contract).
//! - [`plugin`]: the sandboxed WebAssembly plugin host (wasmtime components built
//!   against `wit/`, under deadlines and memory caps; `docs/plugins.md`).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod answer;
pub mod name;
pub mod packed;
pub mod plugin;
pub mod sync;
pub mod wire;
pub mod zonefile;
pub mod zones;
