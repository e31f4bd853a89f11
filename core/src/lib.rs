//! What both Outpost daemons and their tools share about the data: the record model,
//! the zone-file parser, the answer engine and the sync codec. No sockets, no disk, no
//! threads and no WebAssembly: every module is a pure function of its inputs, tested
//! without a process, and a crate that needs only the codec (the sync bench, the test
//! harness) compiles this and nothing heavier. The plugin host, which runs the
//! [`state::PluginDefinition`]s this model replicates, is the crate
//! `outpost-plugin-host`; it depends on this one, never the reverse.
//!
//! # Layout
//! - [`state`]: the authoritative model (zones of RRsets, plugin definitions and their
//!   [`state::Hook`]s), the write [`state::Command`]s that change it and the
//!   [`state::Change`]s they produce; validation lives here.
//! - [`zonefile`]: RFC 1035 master files in, with line-numbered errors.
//! - [`answer`]: the immutable query index ([`answer::ZoneSet`]) and the lookup that
//!   turns a question into the sections of an authoritative answer.
//! - [`name`]: names as lowercase wire bytes, the keys of the model and the query index.
//! - [`packed`]: an owner and its RRsets packed into one shared allocation of wire
//!   bytes, the unit the model and the query index hold.
//! - [`wire`]: the DNS wire encoding of records used inside commands and changes.
//! - [`sync`]: the Lite sync protocol's frames and wire types, encoded and decoded as
//!   pure functions (`docs/sync-protocol.md` is the contract).
//! - [`digest`]: a canonical hash of a replica's content, to compare two replicas.
//! - [`report`]: an error and its causes on one line, for the CLI, logs and API answers.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod answer;
pub mod digest;
pub mod name;
pub(crate) mod packed;
pub mod report;
pub mod state;
pub mod sync;
pub mod wire;
pub mod zonefile;
