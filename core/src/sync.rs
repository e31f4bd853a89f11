//! The Lite sync protocol as pure functions: the frames an appliance and a Lite client
//! exchange, their encoding, version negotiation, and the splitting of long change
//! lists into frames that fit. No sockets: the session code in the daemons feeds
//! WebSocket messages in and out.
//!
//! `docs/sync-protocol.md` is the contract; `core/tests/sync-vectors.txt` pins the
//! bytes.
//!
//! # Layout
//! - [`wire`]: the types that travel (bodies of frames), kept apart from the internal
//!   [`crate::state::Change`], and the conversions between the two.
//! - [`frame`]: the 10-byte header plus postcard body, [`Frame::encode`],
//!   [`Frame::decode`] and the [`FrameError`]s that close a session.
//! - [`chunk`]: greedy splitting of snapshots and change batches under
//!   [`MAX_FRAME_BODY`].
//!
//! **Invariant:** decoding never allocates from a length read off the wire without a
//! cap: the header's length is checked against [`MAX_FRAME_BODY`] before anything
//! else, and postcard sizes collections by the bytes actually present.
//! **Boundary:** every type in [`wire`] and every constant here is part of the
//! protocol: changing one is a new protocol version (see the doc).

mod chunk;
mod frame;
mod wire;

pub use chunk::{ChunkError, MAX_CHANGE_LEN, chain_after, chunk_changes, split_batch};
pub use frame::{Frame, FrameError, frame_type};
pub use wire::{
    Ack, ChangeEntry, Changes, ChangesAfter, Cursor, ErrorFrame, Heartbeat, Hello, PLUGIN_KIND,
    ResyncRequired, SnapshotBegin, SnapshotChunk, SnapshotEnd, SyncMode, Welcome, WireChange,
    WireChangeError, WirePlugin, from_wire, to_wire,
};

/// First bytes of every frame, in every protocol version.
pub const MAGIC: [u8; 4] = *b"OPST";

/// Magic, frame type (`u16`) and body length (`u32`), big-endian.
pub const HEADER_LEN: usize = 10;

/// Largest body a frame may carry in protocol 1, and before a version is agreed
/// (1 MiB); senders fill frames up to it in every version. A receiver closes with
/// [`close::TOO_LARGE`] on a header that declares more than its version allows
/// ([`max_frame_body`]).
pub const MAX_FRAME_BODY: usize = 1 << 20;

/// Protocol 2 only: a server-to-client frame holding a single change too large for
/// [`MAX_FRAME_BODY`] (a plugin definition with its component and configuration)
/// may carry up to 8 MiB of body, that change alone.
pub const MAX_LONE_CHANGE_BODY: usize = 8 << 20;

/// The newest protocol version this build speaks. Version 2 adds
/// [`MAX_LONE_CHANGE_BODY`]; version 3 sends live and resumed changes as
/// [`ChangesAfter`] (frame type 11), which names the index it follows, so a client
/// tells a gap from a step; everything else is as in version 1.
pub const PROTOCOL_VERSION: u16 = 3;

/// The first protocol version whose changes travel as [`ChangesAfter`].
pub const CHANGES_AFTER_VERSION: u16 = 3;

/// The oldest protocol version this build still speaks. Raise it only when no
/// laptop can still be running a client that needs it (years, not weeks).
pub const MIN_PROTOCOL_VERSION: u16 = 1;

/// Largest frame body a receiver accepts once `version` is agreed.
pub fn max_frame_body(version: u16) -> usize {
    if version >= 2 {
        MAX_LONE_CHANGE_BODY
    } else {
        MAX_FRAME_BODY
    }
}

/// The version to speak with a peer that offers `client_min..=client_max`: the
/// highest one both sides support, or `None` (close with
/// [`close::NO_COMMON_VERSION`]).
pub fn negotiate(client_min: u16, client_max: u16) -> Option<u16> {
    let low = client_min.max(MIN_PROTOCOL_VERSION);
    let high = client_max.min(PROTOCOL_VERSION);
    (low <= high).then_some(high)
}

/// Bytes of the postcard encoding of `value`, counted without building it.
fn postcard_len<T: serde::Serialize + ?Sized>(value: &T) -> Result<usize, postcard::Error> {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
}

/// WebSocket close codes (RFC 6455 section 7.4), with the client's expected reaction
/// in the doc's close-code table.
pub mod close {
    /// Normal close: reconnect later.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down: reconnect with backoff, another appliance first.
    pub const GOING_AWAY: u16 = 1001;
    /// Bad magic, a frame that does not decode, a text message, a length mismatch.
    pub const PROTOCOL_ERROR: u16 = 4001;
    /// The client's version window and ours do not overlap.
    pub const NO_COMMON_VERSION: u16 = 4002;
    /// The token is unknown or revoked.
    pub const UNAUTHORIZED: u16 = 4003;
    /// The session's queue overflowed: reconnect at once and resume from the cursor.
    pub const RESYNC_REQUIRED: u16 = 4004;
    /// A frame declared a body larger than [`super::MAX_FRAME_BODY`].
    pub const TOO_LARGE: u16 = 4005;
}

#[cfg(test)]
mod tests;
