//! One sync session with one appliance: connect → `Hello` (persisted cursor, version
//! window) → `Welcome` → a snapshot or the missed changes → live changes and
//! heartbeats, until the server closes, the link dies or the client shuts down.
//!
//! Each `Changes` frame and each complete snapshot is committed (durably, cursor
//! included) before the next message is read, then acknowledged with `Ack`.
//!
//! **Invariant:** a frame that does not decode, or one that makes no sense where it
//! arrives, closes the session with the doc's code (4001, 4005) and never touches the
//! replica. Unknown frame types are skipped.
//! **Boundary:** how a session ended ([`SessionEnd`]) is all the connector sees; the
//! close-code table of `docs/sync-protocol.md` is applied in [`end_for_close`].

mod ending;
mod inbound;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use outpost_core::sync::{
    Cursor, ErrorFrame, Frame, HEADER_LEN, Hello, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, Welcome,
    close, max_frame_body,
};
use tokio::time::Instant;
use tokio_rustls::rustls::ClientConfig;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

pub use ending::{SessionEnd, end_for_close};
use transport::Socket;

use crate::replica::{ReplicaStore, SnapshotStaging};
use crate::status::StatusBoard;

/// TCP connect plus the WebSocket upgrade.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// From `Hello` sent to `Welcome` received.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// A connected session that hears nothing (no frame, not even a heartbeat, which
/// comes every 5 s) for this long is dropped, and the connector fails over. The status
/// says Stale from 15 s on.
pub const DEAD_AFTER: Duration = Duration::from_secs(45);
/// Sending one frame (an `Ack`, `Hello`) or a close.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A WebSocket close reason is at most 123 bytes (RFC 6455 section 5.5).
const MAX_CLOSE_REASON: usize = 123;

/// How a session ended, and whether it got as far as `Welcome` (the connector resets
/// its backoff after a session that did).
#[derive(Debug)]
pub struct SessionOutcome {
    pub end: SessionEnd,
    pub welcomed: bool,
}

/// Where in the protocol the session is.
enum Phase {
    AwaitWelcome,
    AwaitSnapshot,
    Snapshot(Box<SnapshotStaging>),
    Live,
}

impl Phase {
    fn name(&self) -> &'static str {
        match self {
            Phase::AwaitWelcome => "waiting for Welcome",
            Phase::AwaitSnapshot => "waiting for SnapshotBegin",
            Phase::Snapshot(_) => "receiving a snapshot",
            Phase::Live => "live",
        }
    }
}

/// Largest WebSocket message accepted: one frame of the largest version spoken,
/// header and body. The frame decoder then holds each frame to the agreed version's
/// limit.
pub fn websocket_config() -> WebSocketConfig {
    let largest = HEADER_LEN + max_frame_body(PROTOCOL_VERSION);
    WebSocketConfig::default()
        .max_message_size(Some(largest))
        .max_frame_size(Some(largest))
}

/// Runs one session against `url` until it ends.
pub async fn run_session(
    url: &str,
    tls: Option<&Arc<ClientConfig>>,
    token: &str,
    replica: &mut ReplicaStore,
    board: &StatusBoard,
    shutdown: &CancellationToken,
) -> SessionOutcome {
    let span = tracing::info_span!("session", appliance = %url);
    async {
        board.connecting(url);
        let connect = transport::connect(url, tls);
        let socket = tokio::select! {
            () = shutdown.cancelled() => return SessionOutcome { end: SessionEnd::Shutdown, welcomed: false },
            connected = tokio::time::timeout(CONNECT_TIMEOUT, connect) => match connected {
                Ok(Ok(socket)) => socket,
                Ok(Err(message)) => return SessionOutcome {
                    end: SessionEnd::Retry(message),
                    welcomed: false,
                },
                Err(_) => return SessionOutcome {
                    end: SessionEnd::Retry(format!("cannot connect to {url}: no answer within {CONNECT_TIMEOUT:?}")),
                    welcomed: false,
                },
            },
        };
        let mut session = Session {
            url,
            token,
            socket,
            replica,
            board,
            phase: Phase::AwaitWelcome,
            welcome: None,
            head: 0,
            error_frame: None,
            resync_reason: None,
            position: 0,
            held: None,
        };
        let end = session.drive(shutdown).await;
        tracing::info!(end = ?end, "session ended");
        SessionOutcome {
            end,
            welcomed: session.welcome.is_some(),
        }
    }
    .instrument(span)
    .await
}

struct Session<'a> {
    url: &'a str,
    token: &'a str,
    socket: Socket,
    replica: &'a mut ReplicaStore,
    board: &'a StatusBoard,
    phase: Phase,
    welcome: Option<Welcome>,
    /// The latest head the server announced in this session.
    head: u64,
    /// The last `Error` frame: it explains the close that follows.
    error_frame: Option<ErrorFrame>,
    /// Set by `ResyncRequired`: the close that follows (4004) means reconnect at once.
    resync_reason: Option<String>,
    /// The index the change stream stands at: the cursor after the last frame received
    /// (applied, or held in `held`). A `ChangesAfter` that does not follow it is a gap.
    position: u64,
    /// Frames of an entry split over several frames, held until its last part arrives,
    /// so the replica and DNS take the entry whole or not at all.
    held: Option<inbound::Held>,
}

impl Session<'_> {
    /// The largest frame body taken: protocol 1's until `Welcome` names the version.
    fn max_body(&self) -> usize {
        max_frame_body(self.welcome.as_ref().map_or(1, |welcome| welcome.version))
    }

    async fn drive(&mut self, shutdown: &CancellationToken) -> SessionEnd {
        let hello = Frame::Hello(Hello {
            client_id: self.replica.client_id().to_string(),
            token: self.token.to_string(),
            cursor: self.replica.cursor().map(|cursor| Cursor {
                cluster_id: cursor.cluster_id.clone(),
                index: cursor.index,
            }),
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
        });
        if let Err(end) = self.send(&hello).await {
            return end;
        }
        let mut deadline = Instant::now() + WELCOME_TIMEOUT;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => {
                    self.close(close::NORMAL, "client shutting down").await;
                    return SessionEnd::Shutdown;
                }
                next = tokio::time::timeout_at(deadline, self.socket.next()) => next,
            };
            let message = match next {
                Err(_) => {
                    let waited = if self.welcome.is_some() {
                        DEAD_AFTER
                    } else {
                        WELCOME_TIMEOUT
                    };
                    self.close(close::NORMAL, "nothing heard from the appliance")
                        .await;
                    return SessionEnd::Retry(format!(
                        "nothing heard from {} for {waited:?}",
                        self.url
                    ));
                }
                Ok(None) => return self.ended(None),
                Ok(Some(Err(error))) => return self.read_failed(error).await,
                Ok(Some(Ok(message))) => message,
            };
            if self.welcome.is_some() {
                deadline = Instant::now() + DEAD_AFTER;
            }
            if let Err(end) = self.on_message(message).await {
                return end;
            }
        }
    }

    /// One WebSocket message: a frame handled, or the end of the session.
    async fn on_message(&mut self, message: Message) -> Result<(), SessionEnd> {
        match message {
            Message::Binary(bytes) => match Frame::decode_limited(&bytes, self.max_body()) {
                Err(error) => Err(self
                    .refuse(
                        error.close_code(),
                        &format!("the appliance sent a malformed frame: {error}"),
                    )
                    .await),
                Ok(None) => {
                    self.board.heard();
                    tracing::debug!(
                        frame_type = frame_type_of(&bytes),
                        "unknown frame type skipped"
                    );
                    Ok(())
                }
                Ok(Some(frame)) => {
                    self.board.heard();
                    self.handle(frame).await
                }
            },
            Message::Text(_) => Err(self
                .refuse(
                    close::PROTOCOL_ERROR,
                    "the appliance sent a text message (frames are binary)",
                )
                .await),
            Message::Close(frame) => {
                // Let tungstenite send the reply to the server's close.
                let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.close(None)).await;
                Err(self.ended(frame.map(|f| (u16::from(f.code), f.reason.to_string()))))
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(()),
        }
    }

    /// Closes with `code` for a protocol problem; the connector retries with backoff.
    async fn refuse(&mut self, code: u16, message: &str) -> SessionEnd {
        tracing::warn!(code, %message, "closing the session");
        self.close(code, message).await;
        SessionEnd::Retry(format!("{message} (closed with {code})"))
    }

    /// Gives up on a session for a local reason (a snapshot over the memory limit).
    async fn abort(&mut self, message: &str) -> SessionEnd {
        tracing::error!(%message, "aborting the session");
        self.close(close::NORMAL, message).await;
        SessionEnd::Retry(message.to_string())
    }

    /// The server ended the session, with `close` = (code, reason) when it said why.
    fn ended(&self, close: Option<(u16, String)>) -> SessionEnd {
        let close = close.or_else(|| {
            let error = self.error_frame.as_ref()?;
            Some((error.code, error.message.clone()))
        });
        let close = match (close, &self.resync_reason) {
            (None, Some(reason)) => Some((close::RESYNC_REQUIRED, reason.clone())),
            (close, _) => close,
        };
        let detail = self.error_frame.as_ref().map(|e| e.message.as_str());
        end_for_close(self.url, close, detail)
    }

    async fn read_failed(&mut self, error: WsError) -> SessionEnd {
        match error {
            WsError::Capacity(capacity) => {
                self.refuse(
                    close::TOO_LARGE,
                    &format!("the appliance sent a message over the frame limit: {capacity}"),
                )
                .await
            }
            WsError::ConnectionClosed | WsError::AlreadyClosed => self.ended(None),
            other => SessionEnd::Retry(format!("connection to {} failed: {other}", self.url)),
        }
    }

    async fn send(&mut self, frame: &Frame) -> Result<(), SessionEnd> {
        let bytes = match frame.encode() {
            Ok(bytes) => bytes,
            Err(error) => {
                return Err(SessionEnd::Retry(format!(
                    "cannot encode {}: {error}",
                    frame.name()
                )));
            }
        };
        match tokio::time::timeout(
            SEND_TIMEOUT,
            self.socket.send(Message::Binary(bytes.into())),
        )
        .await
        {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(SessionEnd::Retry(format!(
                "cannot send {} to {}: {error}",
                frame.name(),
                self.url
            ))),
            Err(_) => Err(SessionEnd::Retry(format!(
                "sending {} to {} took over {SEND_TIMEOUT:?}",
                frame.name(),
                self.url
            ))),
        }
    }

    /// Sends a close frame (best effort: the link may already be gone).
    async fn close(&mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: truncate(reason, MAX_CLOSE_REASON).into(),
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, self.socket.close(Some(frame))).await;
    }
}

/// The type field of a frame header, for logs.
fn frame_type_of(bytes: &[u8]) -> u16 {
    match bytes.get(4..6) {
        Some([high, low]) => u16::from_be_bytes([*high, *low]),
        _ => 0,
    }
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_string()
}
