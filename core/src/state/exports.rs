//! iroh-docs exports: documents the cluster signs and any peer may relay
//! (`docs/iroh-docs.md`). Each export names the zones it carries and holds the
//! document's namespace secret and the author secret the cluster writes with.
//!
//! **Invariant:** applying never draws a key: the proposer draws both secrets and they
//! come in the command, so every node holds the same export.
//! It also keeps each node's export endpoint ([`ExportPeer`]), which a node records itself
//! when it starts with an export listener, so any node's ticket names them all.
//!
//! **Boundary:** the secrets never leave the cluster: [`Change::ExportPut`] has no zone
//! and no wire form, so no Lite client receives it, and `Debug` omits them.

use std::fmt;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::rules::parse_name;
use super::{Change, CommandError, ReplicatedState};

/// Most exports a cluster keeps (each costs every node a document).
pub const MAX_EXPORTS: usize = 64;

/// Most addresses a node's export endpoint is recorded with.
pub const MAX_EXPORT_PEER_ADDRS: usize = 8;

/// Where a node serves the exports: its iroh endpoint id and the addresses it listens on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExportPeer {
    /// The endpoint's ed25519 public key.
    pub id: [u8; 32],
    /// 1 to [`MAX_EXPORT_PEER_ADDRS`] addresses.
    pub addrs: Vec<SocketAddr>,
}

/// One export: a document of the zones named and every plugin definition.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Export {
    /// 1 to [`super::MAX_TOKEN_NAME`] of a-z, 0-9, '-' and '.', as a Lite token's.
    pub name: String,
    /// Origins of the zones it carries (absolute, lowercase).
    pub zones: Vec<String>,
    /// The iroh-docs namespace secret (write capability) of the document.
    pub namespace_secret: [u8; 32],
    /// The secret of the author every entry is signed by.
    pub author_secret: [u8; 32],
}

/// Never the secrets: they would end up in logs.
impl fmt::Debug for Export {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Export")
            .field("name", &self.name)
            .field("zones", &self.zones)
            .finish_non_exhaustive()
    }
}

impl ReplicatedState {
    pub fn export(&self, name: &str) -> Option<&Export> {
        self.exports.get(name)
    }

    pub fn exports(&self) -> impl Iterator<Item = &Export> {
        self.exports.values()
    }

    /// The export endpoints the nodes recorded, by Raft node id.
    pub fn export_peers(&self) -> impl Iterator<Item = (u64, &ExportPeer)> {
        self.export_peers.iter().map(|(node, peer)| (*node, peer))
    }

    /// Records (or, with `None`, forgets) the export endpoint of `node_id`; a record equal
    /// to the one held changes nothing.
    pub(super) fn set_export_peer(
        &mut self,
        node_id: u64,
        peer: Option<&ExportPeer>,
    ) -> Result<Vec<Change>, CommandError> {
        let Some(peer) = peer else {
            return Ok(self.forget_export_peer(node_id));
        };
        if peer.addrs.is_empty() || peer.addrs.len() > MAX_EXPORT_PEER_ADDRS {
            return Err(CommandError::ExportPeerAddrs {
                count: peer.addrs.len(),
                max: MAX_EXPORT_PEER_ADDRS,
            });
        }
        if self.export_peers.get(&node_id) == Some(peer) {
            return Ok(Vec::new());
        }
        self.export_peers.insert(node_id, peer.clone());
        Ok(vec![Change::ExportPeerPut {
            node_id,
            peer: peer.clone(),
        }])
    }

    /// Forgets the export endpoint of `node_id` (a node that left, or stopped exporting).
    pub(super) fn forget_export_peer(&mut self, node_id: u64) -> Vec<Change> {
        match self.export_peers.remove(&node_id) {
            Some(_) => vec![Change::ExportPeerRemoved { node_id }],
            None => Vec::new(),
        }
    }

    pub(super) fn put_export(&mut self, export: &Export) -> Result<Vec<Change>, CommandError> {
        if !super::rules::is_token_name(&export.name) {
            return Err(CommandError::InvalidExportName {
                name: export.name.clone(),
            });
        }
        if export.zones.is_empty() {
            return Err(CommandError::ExportWithoutZones);
        }
        let mut zones = export
            .zones
            .iter()
            .map(|zone| parse_name(zone).map(|name| name.to_ascii()))
            .collect::<Result<Vec<_>, _>>()?;
        zones.sort();
        zones.dedup();
        if self.exports.contains_key(&export.name) {
            return Err(CommandError::ExportExists {
                name: export.name.clone(),
            });
        }
        if self.exports.len() >= MAX_EXPORTS {
            return Err(CommandError::TooManyExports { max: MAX_EXPORTS });
        }
        let export = Export {
            zones,
            ..export.clone()
        };
        self.exports.insert(export.name.clone(), export.clone());
        Ok(vec![Change::ExportPut { export }])
    }

    pub(super) fn remove_export(&mut self, name: &str) -> Result<Vec<Change>, CommandError> {
        match self.exports.remove(name) {
            Some(_) => Ok(vec![Change::ExportRemoved {
                name: name.to_owned(),
            }]),
            None => Err(CommandError::NoSuchExport {
                name: name.to_owned(),
            }),
        }
    }
}
