//! One frame per WebSocket binary message: a fixed 10-byte header (magic, type,
//! body length, big-endian) and a postcard body.
//!
//! **Invariant:** [`Frame::decode`] checks the declared length against
//! [`MAX_FRAME_BODY`] before it looks at the body, and never panics on any input.
//! **Invariant:** [`Frame::encode`] never produces a frame that [`Frame::decode`]
//! refuses.

use serde::{Deserialize, Serialize};

use super::close;
use super::wire::{
    Ack, Changes, ChangesAfter, ErrorFrame, Heartbeat, Hello, ResyncRequired, SnapshotBegin,
    SnapshotChunk, SnapshotEnd, Welcome,
};
use super::{HEADER_LEN, MAGIC, MAX_FRAME_BODY, MAX_LONE_CHANGE_BODY, postcard_len};

/// Frame type numbers (header bytes 4 and 5). A number is never reused.
pub mod frame_type {
    pub const HELLO: u16 = 1;
    pub const WELCOME: u16 = 2;
    pub const SNAPSHOT_BEGIN: u16 = 3;
    pub const SNAPSHOT_CHUNK: u16 = 4;
    pub const SNAPSHOT_END: u16 = 5;
    pub const CHANGES: u16 = 6;
    pub const HEARTBEAT: u16 = 7;
    pub const RESYNC_REQUIRED: u16 = 8;
    pub const ERROR: u16 = 9;
    pub const ACK: u16 = 10;
    /// Protocol 3.
    pub const CHANGES_AFTER: u16 = 11;

    /// Whether a client sends this type (a server refuses it otherwise, before
    /// decoding the body).
    pub fn from_client(frame_type: u16) -> bool {
        matches!(frame_type, HELLO | ACK)
    }

    /// Whether a server sends this type (a client refuses it otherwise, before
    /// decoding the body).
    pub fn from_server(frame_type: u16) -> bool {
        (WELCOME..=ERROR).contains(&frame_type) || frame_type == CHANGES_AFTER
    }

    /// The doc's name of a frame type, or `"unknown"`.
    pub fn name(frame_type: u16) -> &'static str {
        match frame_type {
            HELLO => "Hello",
            WELCOME => "Welcome",
            SNAPSHOT_BEGIN => "SnapshotBegin",
            SNAPSHOT_CHUNK => "SnapshotChunk",
            SNAPSHOT_END => "SnapshotEnd",
            CHANGES => "Changes",
            HEARTBEAT => "Heartbeat",
            RESYNC_REQUIRED => "ResyncRequired",
            ERROR => "Error",
            ACK => "Ack",
            CHANGES_AFTER => "ChangesAfter",
            _ => "unknown",
        }
    }
}

/// Every frame of protocol versions 1 to 3.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frame {
    Hello(Hello),
    Welcome(Welcome),
    SnapshotBegin(SnapshotBegin),
    SnapshotChunk(SnapshotChunk),
    SnapshotEnd(SnapshotEnd),
    Changes(Changes),
    Heartbeat(Heartbeat),
    ResyncRequired(ResyncRequired),
    Error(ErrorFrame),
    Ack(Ack),
    ChangesAfter(ChangesAfter),
}

/// Why a frame could not be read or written. Each maps to the close code the
/// receiver sends ([`FrameError::close_code`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes is shorter than the {HEADER_LEN}-byte header")]
    Truncated { len: usize },
    #[error(
        "frame starts with \"{}\" instead of the magic \"OPST\" (the peer does not speak the Outpost sync protocol)",
        .found.escape_ascii()
    )]
    BadMagic { found: [u8; 4] },
    #[error(
        "frame body of {declared} bytes is over the {limit}-byte limit (the sender must split it)"
    )]
    TooLarge { declared: usize, limit: usize },
    #[error("frame header declares a {declared}-byte body but {actual} bytes follow it")]
    LengthMismatch { declared: usize, actual: usize },
    #[error(
        "body of {} frame (type {frame_type}) does not decode: {reason}",
        frame_type::name(*.frame_type)
    )]
    BadBody { frame_type: u16, reason: String },
    /// Postcard refused to serialize a body; not expected for these types.
    #[error(
        "body of {} frame (type {frame_type}) could not be encoded: {reason}",
        frame_type::name(*.frame_type)
    )]
    Encode { frame_type: u16, reason: String },
}

impl FrameError {
    /// The WebSocket close code for this error (the doc's close-code table).
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooLarge { .. } => close::TOO_LARGE,
            FrameError::Truncated { .. }
            | FrameError::BadMagic { .. }
            | FrameError::LengthMismatch { .. }
            | FrameError::BadBody { .. }
            | FrameError::Encode { .. } => close::PROTOCOL_ERROR,
        }
    }
}

impl Frame {
    /// The type number in the header.
    pub fn frame_type(&self) -> u16 {
        match self {
            Frame::Hello(_) => frame_type::HELLO,
            Frame::Welcome(_) => frame_type::WELCOME,
            Frame::SnapshotBegin(_) => frame_type::SNAPSHOT_BEGIN,
            Frame::SnapshotChunk(_) => frame_type::SNAPSHOT_CHUNK,
            Frame::SnapshotEnd(_) => frame_type::SNAPSHOT_END,
            Frame::Changes(_) => frame_type::CHANGES,
            Frame::Heartbeat(_) => frame_type::HEARTBEAT,
            Frame::ResyncRequired(_) => frame_type::RESYNC_REQUIRED,
            Frame::Error(_) => frame_type::ERROR,
            Frame::Ack(_) => frame_type::ACK,
            Frame::ChangesAfter(_) => frame_type::CHANGES_AFTER,
        }
    }

    /// The doc's name of this frame's type, for logs.
    pub fn name(&self) -> &'static str {
        frame_type::name(self.frame_type())
    }

    /// Header plus postcard body; refuses a body over [`MAX_LONE_CHANGE_BODY`]
    /// before allocating it. Whether the peer's version takes a body over
    /// [`MAX_FRAME_BODY`] is the sender's to check.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        let frame_type = self.frame_type();
        match self {
            Frame::Hello(body) => encode_frame(frame_type, body),
            Frame::Welcome(body) => encode_frame(frame_type, body),
            Frame::SnapshotBegin(body) => encode_frame(frame_type, body),
            Frame::SnapshotChunk(body) => encode_frame(frame_type, body),
            Frame::SnapshotEnd(body) => encode_frame(frame_type, body),
            Frame::Changes(body) => encode_frame(frame_type, body),
            Frame::Heartbeat(body) => encode_frame(frame_type, body),
            Frame::ResyncRequired(body) => encode_frame(frame_type, body),
            Frame::Error(body) => encode_frame(frame_type, body),
            Frame::Ack(body) => encode_frame(frame_type, body),
            Frame::ChangesAfter(body) => encode_frame(frame_type, body),
        }
    }

    /// Reads one WebSocket binary message under the protocol 1 limit
    /// ([`MAX_FRAME_BODY`]). `Ok(None)` is a well-formed frame of a type this version
    /// does not know: skip it (newer peers add frame types).
    pub fn decode(bytes: &[u8]) -> Result<Option<Frame>, FrameError> {
        Frame::decode_limited(bytes, MAX_FRAME_BODY)
    }

    /// [`Frame::decode`] with a body of at most `max_body` bytes (see
    /// [`super::max_frame_body`]).
    pub fn decode_limited(bytes: &[u8], max_body: usize) -> Result<Option<Frame>, FrameError> {
        let (frame_type, body) = Frame::read_header_limited(bytes, max_body)?;
        let frame = match frame_type {
            frame_type::HELLO => Frame::Hello(decode_body(frame_type, body)?),
            frame_type::WELCOME => Frame::Welcome(decode_body(frame_type, body)?),
            frame_type::SNAPSHOT_BEGIN => Frame::SnapshotBegin(decode_body(frame_type, body)?),
            frame_type::SNAPSHOT_CHUNK => Frame::SnapshotChunk(decode_body(frame_type, body)?),
            frame_type::SNAPSHOT_END => Frame::SnapshotEnd(decode_body(frame_type, body)?),
            frame_type::CHANGES => Frame::Changes(decode_body(frame_type, body)?),
            frame_type::HEARTBEAT => Frame::Heartbeat(decode_body(frame_type, body)?),
            frame_type::RESYNC_REQUIRED => Frame::ResyncRequired(decode_body(frame_type, body)?),
            frame_type::ERROR => Frame::Error(decode_body(frame_type, body)?),
            frame_type::ACK => Frame::Ack(decode_body(frame_type, body)?),
            frame_type::CHANGES_AFTER => Frame::ChangesAfter(decode_body(frame_type, body)?),
            _ => return Ok(None),
        };
        Ok(Some(frame))
    }

    /// Checks the header (length, magic, size limit) and returns the frame type and
    /// the body, without decoding it: a receiver refuses a known type that travels
    /// the other way ([`frame_type::from_client`]) before paying for its body.
    pub fn read_header(bytes: &[u8]) -> Result<(u16, &[u8]), FrameError> {
        Frame::read_header_limited(bytes, MAX_FRAME_BODY)
    }

    /// [`Frame::read_header`] with a body of at most `max_body` bytes.
    pub fn read_header_limited(bytes: &[u8], max_body: usize) -> Result<(u16, &[u8]), FrameError> {
        let Some((header, body)) = bytes.split_first_chunk::<HEADER_LEN>() else {
            return Err(FrameError::Truncated { len: bytes.len() });
        };
        let [m0, m1, m2, m3, t0, t1, l0, l1, l2, l3] = *header;
        let found = [m0, m1, m2, m3];
        if found != MAGIC {
            return Err(FrameError::BadMagic { found });
        }
        let frame_type = u16::from_be_bytes([t0, t1]);
        // A length that does not fit a usize is over the limit all the same.
        let declared = usize::try_from(u32::from_be_bytes([l0, l1, l2, l3])).unwrap_or(usize::MAX);
        if declared > max_body {
            return Err(FrameError::TooLarge {
                declared,
                limit: max_body,
            });
        }
        if declared != body.len() {
            return Err(FrameError::LengthMismatch {
                declared,
                actual: body.len(),
            });
        }
        Ok((frame_type, body))
    }
}

/// Sizes the body first, so an oversized one is refused without being built.
fn encode_frame<T: Serialize>(frame_type: u16, body: &T) -> Result<Vec<u8>, FrameError> {
    let encode_error = |e: postcard::Error| FrameError::Encode {
        frame_type,
        reason: e.to_string(),
    };
    let body_len = postcard_len(body).map_err(encode_error)?;
    let too_large = FrameError::TooLarge {
        declared: body_len,
        limit: MAX_LONE_CHANGE_BODY,
    };
    if body_len > MAX_LONE_CHANGE_BODY {
        return Err(too_large);
    }
    let declared = u32::try_from(body_len).map_err(|_| too_large)?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + body_len);
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&frame_type.to_be_bytes());
    bytes.extend_from_slice(&declared.to_be_bytes());
    postcard::to_extend(body, bytes).map_err(encode_error)
}

/// Decodes a whole body: bytes left over mean the peer wrote a different layout,
/// which the doc calls a protocol error, not an extension.
fn decode_body<'a, T: Deserialize<'a>>(frame_type: u16, body: &'a [u8]) -> Result<T, FrameError> {
    let bad_body = |reason: String| FrameError::BadBody { frame_type, reason };
    let (value, rest) = postcard::take_from_bytes(body).map_err(|e| bad_body(e.to_string()))?;
    if !rest.is_empty() {
        return Err(bad_body(format!(
            "{} bytes left over after the body",
            rest.len()
        )));
    }
    Ok(value)
}
