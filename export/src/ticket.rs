//! The read-only ticket of an export: what a satellite or a Lite client needs to find
//! the document, fetch it from any peer and check who wrote it.
//!
//! `outpost-export-v1:` then the unpadded URL-safe base64 of the postcard [`ExportTicket`].
//! It holds no secret: the namespace id lets its holder read and relay the document, the
//! author id says whose entries to believe.
//!
//! **Boundary:** the text form is typed and pasted by operators and read by other
//! versions: a new field means `v2`.

use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use iroh::{EndpointAddr, PublicKey};
use outpost_core::state::{ExportPeer, MAX_EXPORT_PEER_ADDRS};
use serde::{Deserialize, Serialize};

/// What every ticket starts with.
pub const TICKET_PREFIX: &str = "outpost-export-v1:";
/// Most peers a ticket names.
pub const MAX_TICKET_PEERS: usize = 16;
/// Longest ticket text taken.
const MAX_TICKET_LEN: usize = 8192;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTicket {
    /// The cluster whose Raft indexes the document's head counts.
    pub cluster_id: String,
    /// The export's name (for status and logs).
    pub export: String,
    /// The iroh-docs namespace id.
    pub namespace: [u8; 32],
    /// The author id every trusted entry is signed by.
    pub author: [u8; 32],
    /// Endpoints that serve the document (nodes of the cluster, or any peer).
    pub peers: Vec<TicketPeer>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketPeer {
    pub id: [u8; 32],
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    #[error("not an export ticket: it must start with {TICKET_PREFIX}")]
    Prefix,
    #[error("the ticket is longer than {MAX_TICKET_LEN} characters")]
    TooLong,
    #[error("the ticket is damaged: {0}")]
    Damaged(String),
    #[error("the ticket names no peer to fetch the document from")]
    NoPeers,
    #[error("the ticket names {0} peers; at most {MAX_TICKET_PEERS}")]
    TooManyPeers(usize),
}

impl TicketPeer {
    pub fn from_addr(addr: &EndpointAddr) -> TicketPeer {
        TicketPeer {
            id: *addr.id.as_bytes(),
            addrs: addr.ip_addrs().copied().collect(),
        }
    }

    /// The peer as a node records its endpoint in the replicated state: at most
    /// [`MAX_EXPORT_PEER_ADDRS`] of its addresses, `None` when it has none.
    pub fn to_recorded(&self) -> Option<ExportPeer> {
        let addrs: Vec<SocketAddr> = self
            .addrs
            .iter()
            .take(MAX_EXPORT_PEER_ADDRS)
            .copied()
            .collect();
        (!addrs.is_empty()).then_some(ExportPeer { id: self.id, addrs })
    }

    /// The peer as iroh dials it; `None` if its id is not a valid key.
    pub fn endpoint_addr(&self) -> Option<EndpointAddr> {
        let id = PublicKey::from_bytes(&self.id).ok()?;
        Some(
            self.addrs
                .iter()
                .fold(EndpointAddr::new(id), |addr, ip| addr.with_ip_addr(*ip)),
        )
    }
}

impl From<&ExportPeer> for TicketPeer {
    fn from(peer: &ExportPeer) -> TicketPeer {
        TicketPeer {
            id: peer.id,
            addrs: peer.addrs.clone(),
        }
    }
}

impl std::fmt::Display for ExportTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bytes = postcard::to_stdvec(self).map_err(|_| std::fmt::Error)?;
        write!(f, "{TICKET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }
}

impl std::str::FromStr for ExportTicket {
    type Err = TicketError;

    fn from_str(text: &str) -> Result<ExportTicket, TicketError> {
        let text = text.trim();
        if text.len() > MAX_TICKET_LEN {
            return Err(TicketError::TooLong);
        }
        let body = text
            .strip_prefix(TICKET_PREFIX)
            .ok_or(TicketError::Prefix)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|error| TicketError::Damaged(error.to_string()))?;
        let ticket: ExportTicket = postcard::from_bytes(&bytes)
            .map_err(|error| TicketError::Damaged(error.to_string()))?;
        if ticket.peers.is_empty() {
            return Err(TicketError::NoPeers);
        }
        if ticket.peers.len() > MAX_TICKET_PEERS {
            return Err(TicketError::TooManyPeers(ticket.peers.len()));
        }
        if ticket
            .peers
            .iter()
            .any(|peer| peer.endpoint_addr().is_none())
        {
            return Err(TicketError::Damaged(
                "a peer id is not a valid key".to_string(),
            ));
        }
        Ok(ticket)
    }
}
