//! The Lite sync endpoint: a WebSocket listener on its own port that keeps each Lite
//! client's replica of its zones up to date (`docs/sync-protocol.md` is the contract).
//!
//! The sync path, one hop per module: the store applies a batch and publishes the new
//! view → [`hub::Hub::committed`] `try_send`s it to every session's bounded queue →
//! [`session`] takes the batch's `Changes` frames for its token's zones from
//! [`outbound`] (filtered, split and encoded once per scope, shared by the sessions
//! with that scope) and writes them to the WebSocket → the Lite client applies them.
//!
//! # Layout
//! - [`SyncServer`] (here): the accept loop, TLS, the WebSocket handshake on
//!   `/v1/sync`, and the refusal when the sessions are full.
//! - [`preauth`]: the small pool connections wait in until their token is checked:
//!   its caps (total and per source) and its one deadline.
//! - [`hub`]: the fanout from the store's apply path to the sessions' queues, and the
//!   sync counters of `/metrics`.
//! - [`outbound`]: the scope filter, each batch's frames encoded once per scope, and
//!   the WebSocket fragments long messages go out in.
//! - [`session`]: one client, from `Hello` to close.
//! - [`token`]: Lite token secrets: made, hashed, checked.
//! - [`tls`]: the certificate and key from PEM files.
//!
//! **Boundary:** frames are encoded and decoded by `outpost_core::sync` only; nothing
//! here serializes an internal type onto the wire.

pub(crate) mod hub;
pub(crate) mod outbound;
pub(crate) mod preauth;
pub(crate) mod session;
mod tls;
pub(crate) mod token;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use outpost_core::sync::{HEADER_LEN, MAX_FRAME_BODY};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::store::Store;

use self::hub::Hub;
use self::preauth::{PreauthLimits, PreauthPermit, PreauthPool};
pub use tls::{TlsConfig, TlsError};

/// The one path the WebSocket is served on; others get 404.
pub const SYNC_PATH: &str = "/v1/sync";

/// Concurrent authenticated sessions (connections still before their token is checked
/// are in the [`preauth`] pool instead). When they are all taken, a new connection gets
/// its WebSocket and is closed at once with 1013 "try again later", and so is a client
/// whose token was accepted after the last one was taken; the client backs off or tries
/// another appliance.
pub const MAX_SESSIONS: usize = 4096;

/// Connections being turned away with 1013 at the same time; beyond it a connection
/// is dropped without a word, so a flood costs no more than this many tasks.
const MAX_REFUSALS: usize = 64;

/// RFC 6455 "try again later": the session cap is reached.
const TRY_AGAIN_LATER: u16 = 1013;

/// What a session's WebSocket reads from the socket at a time, allocated up front for
/// every connection (the library's default is 128 KiB: 125 MiB at 1,000 sessions).
/// Clients send only `Hello` and `Ack`; a larger message still grows the buffer to its
/// size, up to the message cap.
const READ_BUFFER: usize = 4 * 1024;

/// Outgoing bytes the WebSocket library gathers before it writes to the socket: none,
/// since every WebSocket frame is flushed as it is sent anyway.
const WRITE_BUFFER: usize = 0;

/// Most bytes a session's WebSocket may hold unsent. Sessions send long messages in
/// fragments of [`outbound::MESSAGE_FRAGMENT`], each flushed before the next, so the
/// buffer holds one fragment, a fragment cut short by shutdown and the close after it,
/// or a pong; four fragments' room is plenty. Beyond it a send fails and the session
/// ends. The library keeps the buffer at its largest size, so this is also about what
/// a session holds when idle.
const MAX_WRITE_BUFFER: usize = 4 * outbound::MESSAGE_FRAGMENT;

/// A WebSocket message carries one frame: header and body.
const LARGEST_MESSAGE: usize = HEADER_LEN + MAX_FRAME_BODY;

/// A spawned sync listener.
#[derive(Debug)]
pub struct SyncServer {
    local_addr: SocketAddr,
}

/// What every connection task shares.
struct Shared {
    store: Store,
    hub: Arc<Hub>,
    tls: Option<TlsConfig>,
    shutdown: CancellationToken,
    /// Authenticated sessions; a session takes its permit once its token is checked.
    sessions: Arc<Semaphore>,
    refusals: Arc<Semaphore>,
    preauth: Arc<PreauthPool>,
    /// The pre-auth deadline, for the connections turned away with 1013.
    refusal_deadline: Duration,
}

/// The server's caps (tests use smaller ones).
#[derive(Debug, Clone, Copy)]
struct Limits {
    sessions: usize,
    preauth: PreauthLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions: MAX_SESSIONS,
            preauth: PreauthLimits::default(),
        }
    }
}

/// Why a connection task runs: to become a session, or to be told 1013.
enum Entry {
    Session(PreauthPermit),
    Refusal(tokio::sync::OwnedSemaphorePermit),
}

impl Entry {
    fn deadline(&self, shared: &Shared, accepted: Instant) -> Instant {
        match self {
            Entry::Session(permit) => permit.deadline(),
            Entry::Refusal(_) => accepted + shared.refusal_deadline,
        }
    }
}

impl SyncServer {
    /// Serves on `listener` until `shutdown` is cancelled; then every session closes
    /// with 1001. The accept loop and every session run on `tracker`.
    pub fn spawn(
        listener: TcpListener,
        store: Store,
        hub: Arc<Hub>,
        tls: Option<TlsConfig>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> std::io::Result<SyncServer> {
        let limits = Limits::default();
        SyncServer::spawn_limited(listener, store, hub, tls, shutdown, tracker, limits)
    }

    fn spawn_limited(
        listener: TcpListener,
        store: Store,
        hub: Arc<Hub>,
        tls: Option<TlsConfig>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
        limits: Limits,
    ) -> std::io::Result<SyncServer> {
        let local_addr = listener.local_addr()?;
        match &tls {
            Some(tls) => tracing::info!(
                address = %local_addr,
                fingerprint = tls.fingerprint(),
                "Lite sync listening (wss; clients pin this SHA-256 fingerprint)"
            ),
            None => tracing::info!(address = %local_addr, "Lite sync listening (ws, no TLS)"),
        }
        let preauth = PreauthPool::new(limits.preauth, Arc::clone(&hub.preauth));
        let shared = Arc::new(Shared {
            store,
            hub,
            tls,
            shutdown,
            sessions: Arc::new(Semaphore::new(limits.sessions)),
            refusals: Arc::new(Semaphore::new(MAX_REFUSALS)),
            preauth: Arc::new(preauth),
            refusal_deadline: limits.preauth.deadline,
        });
        tracker.spawn(accept_loop(listener, shared, tracker.clone()));
        Ok(SyncServer { local_addr })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    loop {
        let (stream, remote) = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "sync accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let accepted = Instant::now();
        let Some(entry) = admit(&shared, remote) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let span = tracing::info_span!(
            "sync_session",
            %remote,
            client_id = tracing::field::Empty,
            token = tracing::field::Empty,
        );
        let shared = Arc::clone(&shared);
        tracker.spawn(
            async move {
                serve_connection(stream, remote, &shared, entry, accepted).await;
            }
            .instrument(span),
        );
    }
    tracing::info!("Lite sync stopped accepting");
}

/// A place for a new connection: in the pre-auth pool while sessions are free, among
/// the refusals when they are all taken; `None` (counted, logged at debug: a flood
/// must not flood the log too) when there is none, and the connection is dropped.
fn admit(shared: &Arc<Shared>, remote: SocketAddr) -> Option<Entry> {
    if shared.sessions.available_permits() == 0 {
        return match Arc::clone(&shared.refusals).try_acquire_owned() {
            Ok(permit) => Some(Entry::Refusal(permit)),
            Err(_) => {
                tracing::warn!(%remote, "sync session cap and refusal cap reached; connection dropped");
                None
            }
        };
    }
    match shared.preauth.admit(remote.ip()) {
        Ok(permit) => Some(Entry::Session(permit)),
        Err(refusal) => {
            tracing::debug!(%remote, reason = refusal.label(), "sync pre-auth pool full; connection dropped");
            None
        }
    }
}

/// TLS (when configured), the WebSocket handshake, then the session or the refusal,
/// the handshakes within the connection's pre-auth deadline.
async fn serve_connection(
    stream: TcpStream,
    remote: SocketAddr,
    shared: &Shared,
    entry: Entry,
    accepted: Instant,
) {
    let deadline = entry.deadline(shared, accepted);
    match &shared.tls {
        Some(tls) => {
            let handshake = tokio::select! {
                handshake = timeout_at(deadline, tls.acceptor().accept(stream)) => handshake,
                () = shared.shutdown.cancelled() => return,
            };
            match handshake {
                Ok(Ok(stream)) => serve_websocket(stream, remote, shared, entry, deadline).await,
                Ok(Err(error)) => tracing::info!(%error, "TLS handshake failed"),
                Err(_) => expired(&entry, "TLS handshake"),
            }
        }
        None => serve_websocket(stream, remote, shared, entry, deadline).await,
    }
}

async fn serve_websocket<S>(
    stream: S,
    remote: SocketAddr,
    shared: &Shared,
    entry: Entry,
    deadline: Instant,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let handshake = accept_hdr_async_with_config(stream, check_path, Some(websocket_config()));
    let ws = tokio::select! {
        ws = timeout_at(deadline, handshake) => ws,
        () = shared.shutdown.cancelled() => return,
    };
    let ws = match ws {
        Ok(Ok(ws)) => ws,
        Ok(Err(error)) => {
            tracing::info!(%error, "WebSocket handshake failed");
            return;
        }
        Err(_) => {
            expired(&entry, "WebSocket handshake");
            return;
        }
    };
    match entry {
        Entry::Session(preauth) => {
            let context = session::SessionContext {
                store: shared.store.clone(),
                hub: Arc::clone(&shared.hub),
                remote,
                shutdown: shared.shutdown.clone(),
                sessions: Arc::clone(&shared.sessions),
            };
            session::run(ws, context, preauth).await;
        }
        Entry::Refusal(_permit) => refuse(ws).await,
    }
}

/// Logs and counts a connection that missed its deadline in `step`.
fn expired(entry: &Entry, step: &str) {
    if let Entry::Session(preauth) = entry {
        preauth.count_expired();
    }
    tracing::info!(step, "pre-auth deadline passed; connection dropped");
}

/// Every WebSocket message carries one frame: nothing larger is read. The buffers are
/// sized for a thousand mostly idle sessions, not for one fast stream.
fn websocket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(LARGEST_MESSAGE))
        .max_frame_size(Some(LARGEST_MESSAGE))
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_write_buffer_size(MAX_WRITE_BUFFER)
}

/// 404 for any path but [`SYNC_PATH`].
#[allow(clippy::result_large_err)] // reason: the signature is tungstenite's callback's
fn check_path(request: &Request, response: Response) -> Result<Response, ErrorResponse> {
    if request.uri().path() == SYNC_PATH {
        return Ok(response);
    }
    let mut refusal = ErrorResponse::new(Some(format!(
        "no such path: {} (the Lite sync endpoint is {SYNC_PATH})",
        request.uri().path()
    )));
    *refusal.status_mut() = StatusCode::NOT_FOUND;
    Err(refusal)
}

/// Closes at once with 1013: the session cap is reached.
async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(mut ws: WebSocketStream<S>) {
    tracing::warn!(
        max = MAX_SESSIONS,
        "sync session cap reached; refusing with 1013"
    );
    let frame = CloseFrame {
        code: CloseCode::from(TRY_AGAIN_LATER),
        reason: "too many sessions, try again later".into(),
    };
    let closing = async {
        ws.close(Some(frame)).await?;
        while futures_util::StreamExt::next(&mut ws).await.is_some() {}
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), closing).await;
}
