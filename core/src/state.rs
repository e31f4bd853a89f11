//! The authoritative model: zones of RRsets, the commands that change them and the
//! changes they produce.
//!
//! Every replica applies the same committed [`Command`]s in the same order, so
//! [`ReplicatedState::apply`] is deterministic: it reads nothing but its input and the model.
//!
//! **Invariant:** every zone has exactly one SOA, at its apex; a name that owns a
//! CNAME owns nothing else and only one CNAME; every owner is at or below its zone's
//! origin; all records of an RRset share one TTL (RFC 2181 section 5.2); names are
//! stored lowercase.
//! **Invariant:** a refused command changes nothing.
//! **Boundary:** [`Command`] and [`Change`] are serialized into the Raft log, redb and
//! snapshots; their records are DNS wire bytes ([`crate::wire`]). The sync stream
//! carries its own wire types ([`crate::sync`]).
//!
//! # Layout
//! This file holds [`ReplicatedState`] and what reads it; every other item is declared in
//! a submodule and re-exported here, its one public path.
//! - `command`: the messages, [`Command`] and [`Change`] (and the [`LiteToken`] both carry).
//! - `error`: [`CommandError`], why a command is refused.
//! - `apply`: [`ReplicatedState::apply`], one named step per command, and the zone edits.
//! - `replay`: the model rebuilt from [`Change`]s and written out as them.
//! - `zone`: one zone's owners and the checks on them; `rules`: the checks on one
//!   record, name or token.
//! - `definitions`, `invites`, `idempotency`: plugin definitions, join invites and
//!   idempotency keys, each with the commands that change it; `nesting`: the bound on
//!   commands inside commands; `cookies`: the DNS cookie secrets and their rotation;
//!   `follow`: zones followed from external primaries, and the transfers that feed them;
//!   `sources`: records read from hosts and lease files, and which RRsets each owns;
//!   `exports`: the iroh-docs documents the cluster signs.

use std::collections::BTreeMap;
use std::sync::Arc;

use hickory_proto::rr::Name;

mod apply;
mod command;
mod cookies;
mod definitions;
mod error;
mod exports;
mod follow;
mod idempotency;
mod invites;
mod nesting;
mod replay;
mod rules;
mod sources;
mod zone;
pub use command::{Change, Command, LiteToken, MAX_TOKEN_NAME};
pub use cookies::CookieSecrets;
pub use definitions::{
    FailureMode, Hook, MAX_PLUGIN_BYTES, MAX_PLUGIN_NAME, PluginDefinition, check_plugin_name,
};
pub use error::CommandError;
pub use exports::{Export, ExportPeer, MAX_EXPORT_PEER_ADDRS, MAX_EXPORTS};
pub use follow::{FollowedZone, MAX_PRIMARIES, TSIG_ALGORITHMS, TransferredRRset, TsigKey};
pub use idempotency::{
    IDEMPOTENCY_WINDOW_SECS, IdempotencyRecord, MAX_IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEYS,
    check_idempotency_key,
};
pub use invites::{JoinInvite, MAX_JOIN_INVITES};
pub use nesting::MAX_COMMAND_NESTING;
pub use rules::{check_record, parse_name};
pub use sources::{MAX_SOURCE_NAME, OwnedRRset};
pub use zone::Zone;

/// Largest TTL a record may carry (RFC 2181 section 8: 2^31 - 1).
pub const MAX_TTL: u32 = i32::MAX as u32;

/// All zones served here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReplicatedState {
    zones: BTreeMap<Name, Arc<Zone>>,
    /// The Lite tokens that may read zones, by name. Replicated with the zones so
    /// every node of a cluster checks the same tokens.
    tokens: BTreeMap<String, LiteToken>,
    /// Installed plugins, by name.
    plugins: BTreeMap<String, Arc<PluginDefinition>>,
    /// Join invites, open or used, by the SHA-256 of their secret.
    invites: BTreeMap<[u8; 32], JoinInvite>,
    /// Writes applied under an idempotency key, by key.
    idempotency: BTreeMap<String, IdempotencyRecord>,
    /// The DNS cookie secrets every node makes and checks server cookies with.
    cookie_secrets: Option<CookieSecrets>,
    /// Zones followed from external primaries, by origin (absolute, lowercase).
    followed: BTreeMap<String, FollowedZone>,
    /// The RRsets each record source owns, by source name.
    sources: BTreeMap<String, std::collections::BTreeSet<OwnedRRset>>,
    /// iroh-docs exports, by name.
    exports: BTreeMap<String, Export>,
    /// Each node's export endpoint, by Raft node id.
    export_peers: BTreeMap<u64, ExportPeer>,
}

impl ReplicatedState {
    pub fn get(&self, origin: &Name) -> Option<&Zone> {
        self.zones.get(&origin.to_lowercase()).map(|zone| &**zone)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Zone> {
        self.zones.values().map(|zone| &**zone)
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    pub fn lite_token(&self, name: &str) -> Option<&LiteToken> {
        self.tokens.get(name)
    }

    pub fn lite_tokens(&self) -> impl Iterator<Item = &LiteToken> {
        self.tokens.values()
    }

    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    /// The deepest zone that contains `name`.
    pub fn find_zone(&self, name: &Name) -> Option<&Zone> {
        let name = name.to_lowercase();
        (0..=name.num_labels())
            .map(|keep| name.trim_to(usize::from(name.num_labels() - keep)))
            .find_map(|ancestor| self.zones.get(&ancestor))
            .map(|zone| &**zone)
    }

    fn zone_mut(&mut self, origin: &str) -> Result<&mut Zone, CommandError> {
        let origin = parse_name(origin)?;
        match self.zones.get_mut(&origin) {
            Some(zone) => Ok(Arc::make_mut(zone)),
            None => Err(CommandError::NoSuchZone {
                origin: origin.to_ascii(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
