//! iroh-docs exports, the second sync path (`docs/iroh-docs.md`): the cluster writes the
//! committed state of an export's zones and every plugin definition into an iroh-docs
//! document it signs; any peer that holds the read-only ticket can fetch it from any
//! other, and believes only the cluster's author.
//!
//! - `layout`: the keys and values of a document, and how a reader puts them together.
//! - `ticket`: the read-only ticket (`outpost-export-v1:`).
//! - `node`: an endpoint running iroh-docs, iroh-blobs and iroh-gossip in memory.
//! - `writer`: the cluster's side, every node writing every export from its replica.
//! - `reader`: a follower's side, handing on whole snapshots.

mod layout;
mod node;
mod reader;
mod ticket;
mod writer;

pub use iroh::{EndpointAddr, PublicKey, SecretKey};
pub use layout::{
    BUCKETS, Document, FORMAT, HEAD_KEY, Head, HeadEntry, LayoutError, assemble, bucket_of,
    decode_head, diff, document,
};
pub use node::{BLOB_GC_INTERVAL, DocsNode, NodeError};
pub use reader::{DocSnapshot, Mailbox, RESYNC_INTERVAL, ReaderStats, follow};
pub use ticket::{ExportTicket, MAX_TICKET_PEERS, TICKET_PREFIX, TicketError, TicketPeer};
pub use writer::{WriteReport, Writer, ticket};

#[cfg(test)]
mod tests;
