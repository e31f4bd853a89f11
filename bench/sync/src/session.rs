//! One raw protocol session, as a Lite client without a replica: `Hello` with no
//! cursor, the snapshot, then live `Changes`, noting when each log index arrives.
//!
//! **Invariant:** the receipt time of a frame is taken as soon as its WebSocket
//! message is read, before it is decoded.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use futures_util::{SinkExt as _, StreamExt as _};
use outpost_core::sync::{
    ChangesAfter, Frame, HEADER_LEN, Hello, MAX_FRAME_BODY, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    SyncMode, frame_type,
};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;

use crate::changes_view::{ChangesSummary, read_changes, read_changes_after};

/// Time for the TCP connection and the WebSocket handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// Time the close handshake may take when the bench is done.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a session needs to start.
#[derive(Debug, Clone)]
pub struct SessionSetup {
    /// `ws://127.0.0.1:PORT/v1/sync`.
    pub url: String,
    pub token: String,
    /// Decode `Changes` with the core decoder instead of [`read_changes`].
    pub full_decode: bool,
}

/// What the conductor watches while sessions run.
#[derive(Debug, Default)]
pub struct SessionState {
    /// The highest `up_to` (or snapshot `as_of`) received: every entry at or below it
    /// has arrived whole.
    pub cursor: AtomicU64,
    /// `SnapshotEnd` received: the session is live.
    pub live: AtomicBool,
    /// The session ended before the bench closed it (see [`SessionLog::problems`]).
    pub ended: AtomicBool,
}

/// When a log index arrived at a session.
#[derive(Debug, Clone, Copy)]
pub struct Delivery {
    /// Receipt of the frame carrying the entry's last part (the last frame that
    /// includes the index; see "Splitting" in docs/sync-protocol.md).
    pub at: Instant,
    /// A frame with `up_to` at or past the index carried a part of it.
    pub complete: bool,
    /// Changes of this entry, over all its parts.
    pub changes: usize,
}

/// What a session saw, returned when it ends.
#[derive(Debug, Default)]
pub struct SessionLog {
    /// The `Welcome`'s head.
    pub welcome_head: Option<u64>,
    /// Changes in the snapshot, once `SnapshotEnd` arrived.
    pub snapshot_changes: Option<usize>,
    pub deliveries: HashMap<u64, Delivery>,
    pub heartbeats: usize,
    pub unknown_frames: usize,
    /// Why the session ended early, `ResyncRequired` and `Error` frames, in order.
    pub problems: Vec<String>,
}

/// Runs one session until `cancel` or until the appliance ends it. `connect_permits`
/// bounds the handshakes in flight, so 1,000 sessions do not all knock at once.
pub async fn run(
    setup: Arc<SessionSetup>,
    id: usize,
    state: Arc<SessionState>,
    connect_permits: Arc<Semaphore>,
    cancel: CancellationToken,
) -> SessionLog {
    let mut session = Session {
        setup,
        state,
        log: SessionLog::default(),
        snapshot_changes: 0,
    };
    if let Err(error) = session.drive(id, &connect_permits, &cancel).await {
        session.log.problems.push(format!("{error:#}"));
        session.state.ended.store(true, Ordering::Release);
    }
    session.log
}

struct Session {
    setup: Arc<SessionSetup>,
    state: Arc<SessionState>,
    log: SessionLog,
    /// Changes counted in the snapshot so far.
    snapshot_changes: usize,
}

/// Loopback addresses the sessions connect from, in turn.
const SOURCES: usize = 250;

/// The loopback address session `id` connects from, one of [`SOURCES`] in turn, so that
/// many sessions look like many laptops: the appliance holds at most
/// `MAX_PREAUTH_PER_SOURCE` handshakes per source at once, and the sessions connecting
/// together have consecutive ids. All inside 127.0.0.0/8.
fn source_address(id: usize) -> IpAddr {
    let low = u8::try_from(id % SOURCES + 2).unwrap_or(u8::MAX);
    IpAddr::V4(Ipv4Addr::new(127, 1, 0, low))
}

/// A TCP connection from `source` to the host and port of the `ws://` URL.
async fn connect_from(source: IpAddr, url: &str) -> anyhow::Result<TcpStream> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .with_context(|| format!("{url} is not a ws:// URL"))?;
    let target: SocketAddr = authority
        .parse()
        .with_context(|| format!("{authority} is not IP:PORT"))?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    Ok(socket.connect(target).await?)
}

impl Session {
    async fn drive(
        &mut self,
        id: usize,
        connect_permits: &Semaphore,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let permit = connect_permits
            .acquire()
            .await
            .context("connect permits closed")?;
        let largest = HEADER_LEN + MAX_FRAME_BODY;
        let config = WebSocketConfig::default()
            .max_message_size(Some(largest))
            .max_frame_size(Some(largest));
        let url = self.setup.url.as_str();
        let connect = async {
            let stream = connect_from(source_address(id), url).await?;
            tokio_tungstenite::client_async_with_config(url, stream, Some(config))
                .await
                .map_err(anyhow::Error::from)
        };
        let (mut socket, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| anyhow!("no WebSocket handshake within {CONNECT_TIMEOUT:?}"))?
            .with_context(|| format!("cannot connect to {}", self.setup.url))?;
        let hello = Frame::Hello(Hello {
            client_id: format!("sync-bench-{id}"),
            token: self.setup.token.clone(),
            cursor: None,
            min_version: MIN_PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
        });
        socket
            .send(Message::binary(hello.encode()?))
            .await
            .context("cannot send Hello")?;
        // Further handshakes may start once this one is done.
        drop(permit);
        loop {
            let message = tokio::select! {
                biased;
                () = cancel.cancelled() => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, socket.close(None)).await;
                    return Ok(());
                }
                message = socket.next() => message,
            };
            let at = Instant::now();
            match message {
                None => bail!("the connection ended without a close frame"),
                Some(Err(error)) => bail!("WebSocket error: {error}"),
                Some(Ok(Message::Binary(bytes))) => self.handle(&bytes, at)?,
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(frame) => bail!(
                        "closed by the appliance: {} {:?}",
                        u16::from(frame.code),
                        frame.reason.as_str()
                    ),
                    None => bail!("closed by the appliance without a code"),
                },
                Some(Ok(Message::Text(_))) => bail!("the appliance sent a text message"),
                // Pings are answered by tungstenite itself.
                Some(Ok(_)) => {}
            }
        }
    }

    /// One frame, received at `at`.
    fn handle(&mut self, bytes: &[u8], at: Instant) -> anyhow::Result<()> {
        let (kind, body) = Frame::read_header(bytes)?;
        if kind == frame_type::CHANGES && !self.setup.full_decode {
            let summary = read_changes(body).map_err(|e| anyhow!(e))?;
            self.changes(summary, at);
            return Ok(());
        }
        if kind == frame_type::CHANGES_AFTER && !self.setup.full_decode {
            let summary = read_changes_after(body).map_err(|e| anyhow!(e))?;
            self.changes(summary, at);
            return Ok(());
        }
        let Some(frame) = Frame::decode(bytes)? else {
            self.log.unknown_frames += 1;
            return Ok(());
        };
        match frame {
            Frame::Welcome(welcome) => {
                if welcome.mode != SyncMode::Snapshot {
                    bail!(
                        "Welcome chose {:?} for a client without a cursor",
                        welcome.mode
                    );
                }
                self.log.welcome_head = Some(welcome.head);
            }
            Frame::SnapshotBegin(_) => self.snapshot_changes = 0,
            Frame::SnapshotChunk(chunk) => self.snapshot_changes += chunk.changes.len(),
            Frame::SnapshotEnd(end) => {
                self.log.snapshot_changes = Some(self.snapshot_changes);
                self.state.cursor.fetch_max(end.as_of, Ordering::AcqRel);
                self.state.live.store(true, Ordering::Release);
            }
            Frame::Changes(changes) | Frame::ChangesAfter(ChangesAfter { changes, .. }) => {
                let summary = ChangesSummary {
                    up_to: changes.up_to,
                    entries: changes
                        .entries
                        .iter()
                        .map(|entry| (entry.index, entry.changes.len()))
                        .collect(),
                };
                self.changes(summary, at);
            }
            Frame::Heartbeat(_) => self.log.heartbeats += 1,
            Frame::ResyncRequired(resync) => self
                .log
                .problems
                .push(format!("ResyncRequired: {}", resync.reason)),
            Frame::Error(error) => self
                .log
                .problems
                .push(format!("Error {}: {}", error.code, error.message)),
            Frame::Hello(_) | Frame::Ack(_) => {
                bail!("the appliance sent {}, a client's frame", frame.name())
            }
        }
        Ok(())
    }

    fn changes(&mut self, summary: ChangesSummary, at: Instant) {
        for (index, changes) in summary.entries {
            let delivery = self.log.deliveries.entry(index).or_insert(Delivery {
                at,
                complete: false,
                changes: 0,
            });
            // A part after the entry was complete would be a repeat; keep the time of
            // the part that completed it.
            if !delivery.complete {
                delivery.at = at;
                delivery.changes += changes;
                delivery.complete = summary.up_to >= index;
            }
        }
        self.state.cursor.fetch_max(summary.up_to, Ordering::AcqRel);
    }
}
