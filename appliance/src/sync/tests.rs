//! The sync endpoint over real sockets: a [`Store`] on a temporary directory with the
//! hub as its observer, the server on 127.0.0.1:0, and tokio-tungstenite clients that
//! speak the frames of `outpost_core::sync` by hand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hickory_proto::rr::Name;
use outpost_core::state::{Command, LiteToken};
use outpost_core::sync::{
    Ack, Cursor, Frame, HEADER_LEN, Hello, MAGIC, PROTOCOL_VERSION, SyncMode, WireChange, close,
    frame_type,
};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::*;
use crate::store::{CommitObserver, CommittedBatch, StateEvent, StoreOptions, Written};

mod fanout;
mod overflow;
mod preauth_pool;
mod scope;
mod transport;

/// Long enough for a loaded two-core machine; every wait that should succeed is
/// much shorter.
const WAIT: Duration = Duration::from_secs(10);

/// A store with the hub as its observer and a sync server in front of it.
struct Harness {
    store: Store,
    hub: Arc<Hub>,
    addr: SocketAddr,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    _dir: tempfile::TempDir,
}

struct Options {
    queue: usize,
    history_entries: u64,
    max_sessions: usize,
    preauth: PreauthLimits,
    tls: Option<TlsConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            queue: super::hub::SESSION_QUEUE,
            history_entries: crate::store::DEFAULT_HISTORY_ENTRIES,
            max_sessions: MAX_SESSIONS,
            preauth: PreauthLimits::default(),
            tls: None,
        }
    }
}

impl Harness {
    async fn start() -> Harness {
        Harness::start_with(Options::default()).await
    }

    async fn start_with(options: Options) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::with_queue(options.queue));
        let store = Store::open_with(
            dir.path(),
            StoreOptions {
                history_entries: options.history_entries,
                observer: Some(hub.clone()),
                ..StoreOptions::default()
            },
        )
        .await
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let server = SyncServer::spawn_limited(
            listener,
            store.clone(),
            hub.clone(),
            options.tls,
            shutdown.clone(),
            &tracker,
            Limits {
                sessions: options.max_sessions,
                preauth: options.preauth,
            },
        )
        .unwrap();
        Harness {
            store,
            hub,
            addr: server.local_addr(),
            shutdown,
            tracker,
            _dir: dir,
        }
    }

    async fn write(&self, command: Command) -> Written {
        self.store.write(command).await.unwrap()
    }

    /// A zone with an SOA, an NS and `ns1 A`.
    async fn create_zone(&self, origin: &str) -> u64 {
        let records = records(
            origin,
            "@ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ NS ns1\nns1 A 127.0.0.1\n",
        );
        self.write(Command::CreateZone {
            origin: origin.into(),
            records,
        })
        .await
        .index
    }

    /// Adds `name A ip` (a name relative to `origin`).
    async fn add_a(&self, origin: &str, name: &str, ip: &str) -> u64 {
        let records = records(origin, &format!("{name} 300 A {ip}\n"));
        self.write(Command::AddRecords { records }).await.index
    }

    /// A token for `zones`; returns what a client presents.
    async fn token(&self, name: &str, zones: &[&str]) -> String {
        let secret = token::generate(name).unwrap();
        self.write(Command::PutLiteToken {
            token: LiteToken {
                name: name.into(),
                zones: zones.iter().map(|zone| zone.to_string()).collect(),
                secret_sha256: secret.secret_sha256,
            },
        })
        .await;
        secret.token
    }

    /// Proves shutdown finishes: every task ends, then the store closes.
    async fn stop(self) {
        self.shutdown.cancel();
        self.tracker.close();
        tokio::time::timeout(WAIT, self.tracker.wait())
            .await
            .expect("sync server did not stop");
        self.store.shutdown().await.unwrap();
    }
}

/// Master-file `text` of zone `origin` as wire records.
fn records(origin: &str, text: &str) -> Vec<u8> {
    let origin = Name::from_ascii(origin).unwrap();
    encode_records(&parse_zone(text, &origin, 300).unwrap()).unwrap()
}

/// What a test client reads.
#[derive(Debug, PartialEq)]
enum Received {
    Frame(Frame),
    Closed { code: u16, reason: String },
}

/// A Lite client, by hand. It speaks the newest protocol, checks that every
/// `ChangesAfter` follows the position the stream reached (the cursor it sent, a
/// snapshot's `as_of`, the last frame's `up_to`), and hands it to the test as the
/// `Changes` inside.
struct Client<S> {
    ws: WebSocketStream<S>,
    position: Option<u64>,
}

impl Client<TcpStream> {
    async fn connect(addr: SocketAddr) -> Client<TcpStream> {
        Client::over(TcpStream::connect(addr).await.unwrap(), addr).await
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn over(stream: S, addr: SocketAddr) -> Client<S> {
        let (ws, _) = client_async(format!("ws://{addr}{SYNC_PATH}"), stream)
            .await
            .unwrap();
        Client { ws, position: None }
    }

    async fn send(&mut self, frame: Frame) {
        self.send_raw(frame.encode().unwrap()).await;
    }

    async fn send_raw(&mut self, bytes: Vec<u8>) {
        self.ws.send(Message::Binary(bytes.into())).await.unwrap();
    }

    async fn hello(&mut self, token: &str, cursor: Option<Cursor>) {
        self.position = cursor.as_ref().map(|cursor| cursor.index);
        self.send(hello(token, cursor)).await;
    }

    /// The next frame or the close, skipping heartbeats.
    async fn next(&mut self) -> Received {
        loop {
            match self.next_with_heartbeats().await {
                Received::Frame(Frame::Heartbeat(_)) => continue,
                other => return other,
            }
        }
    }

    async fn next_with_heartbeats(&mut self) -> Received {
        loop {
            let message = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("nothing from the server in time");
            match message {
                Some(Ok(Message::Binary(bytes))) => {
                    let frame = Frame::decode(&bytes).unwrap().unwrap();
                    return Received::Frame(self.follow(frame));
                }
                Some(Ok(Message::Close(Some(frame)))) => {
                    return Received::Closed {
                        code: frame.code.into(),
                        reason: frame.reason.to_string(),
                    };
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("unexpected from the server: {other:?}"),
            }
        }
    }

    /// Checks a frame against the stream's position and moves it.
    fn follow(&mut self, frame: Frame) -> Frame {
        match frame {
            Frame::ChangesAfter(frame) => {
                if let Some(position) = self.position {
                    assert_eq!(
                        frame.after, position,
                        "a ChangesAfter that does not follow the stream: {frame:?}"
                    );
                }
                self.position = Some(frame.changes.up_to);
                Frame::Changes(frame.changes)
            }
            Frame::Changes(changes) => {
                self.position = Some(changes.up_to);
                Frame::Changes(changes)
            }
            Frame::Welcome(welcome) => {
                if welcome.mode == SyncMode::Snapshot {
                    self.position = None;
                }
                Frame::Welcome(welcome)
            }
            Frame::SnapshotEnd(end) => {
                self.position = Some(end.as_of);
                Frame::SnapshotEnd(end)
            }
            other => other,
        }
    }

    async fn frame(&mut self) -> Frame {
        match self.next().await {
            Received::Frame(frame) => frame,
            closed => panic!("expected a frame, got {closed:?}"),
        }
    }

    /// Expects an `Error` frame with `code`, then the close with the same code;
    /// returns the message.
    async fn expect_error_and_close(&mut self, code: u16) -> String {
        let message = match self.next().await {
            Received::Frame(Frame::Error(error)) => {
                assert_eq!(error.code, code, "{}", error.message);
                error.message
            }
            other => panic!("expected an Error frame with {code}, got {other:?}"),
        };
        self.expect_close(code).await;
        message
    }

    async fn expect_close(&mut self, code: u16) {
        match self.next().await {
            Received::Closed { code: got, reason } => assert_eq!(got, code, "{reason}"),
            other => panic!("expected close {code}, got {other:?}"),
        }
    }

    /// Reads `Welcome` and the snapshot after it; returns the welcome and the
    /// snapshot's changes.
    async fn snapshot(&mut self) -> (outpost_core::sync::Welcome, Vec<WireChange>) {
        let welcome = match self.frame().await {
            Frame::Welcome(welcome) => welcome,
            other => panic!("expected Welcome, got {other:?}"),
        };
        assert_eq!(welcome.mode, SyncMode::Snapshot);
        assert_eq!(
            self.frame().await,
            Frame::SnapshotBegin(outpost_core::sync::SnapshotBegin {
                as_of: welcome.head
            })
        );
        let mut changes = Vec::new();
        loop {
            match self.frame().await {
                Frame::SnapshotChunk(chunk) => changes.extend(chunk.changes),
                Frame::SnapshotEnd(end) => {
                    assert_eq!(end.as_of, welcome.head);
                    return (welcome, changes);
                }
                other => panic!("expected a snapshot chunk, got {other:?}"),
            }
        }
    }

    /// `Changes` frames until one reaches `up_to`; returns their entries.
    async fn changes_until(&mut self, up_to: u64) -> Vec<outpost_core::sync::ChangeEntry> {
        let mut entries = Vec::new();
        loop {
            match self.frame().await {
                Frame::Changes(changes) => {
                    entries.extend(changes.entries);
                    if changes.up_to >= up_to {
                        assert_eq!(changes.up_to, up_to, "frames end on batch boundaries");
                        return entries;
                    }
                }
                other => panic!("expected Changes, got {other:?}"),
            }
        }
    }
}

fn hello(token: &str, cursor: Option<Cursor>) -> Frame {
    Frame::Hello(Hello {
        client_id: "test-laptop".into(),
        token: token.into(),
        cursor,
        min_version: 1,
        max_version: PROTOCOL_VERSION,
    })
}

/// A frame with any type and body, bypassing the encoder.
fn raw_frame(frame_type: u16, declared_len: u32, body: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_LEN + body.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&frame_type.to_be_bytes());
    bytes.extend_from_slice(&declared_len.to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

/// The zone of every change, for scope checks.
fn zone_of(change: &WireChange) -> &str {
    match change {
        WireChange::ZonePut { origin } | WireChange::ZoneDeleted { origin } => origin,
        WireChange::RRsetPut { zone, .. } | WireChange::RRsetDeleted { zone, .. } => zone,
        other => panic!("a definition in a zone test: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_unknown_and_revoked_tokens_close_with_4003() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;

    let mut unknown = Client::connect(harness.addr).await;
    unknown
        .hello(&format!("bob:{}", "0".repeat(64)), None)
        .await;
    let message = unknown.expect_error_and_close(close::UNAUTHORIZED).await;
    assert!(
        message.contains("\"bob\" is unknown, revoked or wrong"),
        "{message}"
    );

    let (name, secret) = token.rsplit_once(':').unwrap();
    let wrong_secret = format!("{name}:{}", secret.chars().rev().collect::<String>());
    let mut wrong = Client::connect(harness.addr).await;
    wrong.hello(&wrong_secret, None).await;
    wrong.expect_error_and_close(close::UNAUTHORIZED).await;

    let mut live = Client::connect(harness.addr).await;
    live.hello(&token, None).await;
    live.snapshot().await;
    assert_eq!(harness.hub.sessions_per_token()["alice-laptop"], 1);
    harness
        .write(Command::RevokeLiteToken {
            name: "alice-laptop".into(),
        })
        .await;
    let message = live.expect_error_and_close(close::UNAUTHORIZED).await;
    assert!(message.contains("was revoked"), "{message}");

    let mut again = Client::connect(harness.addr).await;
    again.hello(&token, None).await;
    again.expect_error_and_close(close::UNAUTHORIZED).await;

    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    assert!(
        metrics.contains("\noutpost_sync_auth_failures_total 3\n"),
        "{metrics}"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_common_version_closes_with_4002() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client
        .send(Frame::Hello(Hello {
            client_id: "future-laptop".into(),
            token,
            cursor: None,
            min_version: PROTOCOL_VERSION + 1,
            max_version: PROTOCOL_VERSION + 3,
        }))
        .await;
    let message = client
        .expect_error_and_close(close::NO_COMMON_VERSION)
        .await;
    assert!(message.contains("upgrade the older side"), "{message}");
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_heartbeats_and_shutdown() {
    let harness = Harness::start().await;
    let head = harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, None).await;
    let (welcome, _) = client.snapshot().await;
    assert!(welcome.head > head);
    client
        .send(Frame::Ack(Ack {
            cursor: welcome.head,
        }))
        .await;

    // Idle: a heartbeat with the head comes within the interval (plus slack).
    let heartbeat = tokio::time::timeout(
        session::HEARTBEAT_INTERVAL + Duration::from_secs(3),
        client.next_with_heartbeats(),
    )
    .await
    .expect("no heartbeat");
    assert_eq!(
        heartbeat,
        Received::Frame(Frame::Heartbeat(outpost_core::sync::Heartbeat {
            head: welcome.head
        }))
    );
    let sessions = harness.hub.sessions();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].cursor_acked, Some(welcome.head));
    assert_eq!(sessions[0].client_id, "test-laptop");
    assert_eq!(sessions[0].token, "alice-laptop");

    harness.shutdown.cancel();
    client.expect_close(close::GOING_AWAY).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_says_nothing_is_closed_with_4001() {
    let harness = Harness::start().await;
    let mut silent = Client::connect(harness.addr).await;
    let started = std::time::Instant::now();
    // Longer than the client's own patience (`WAIT`), so read the socket directly.
    let message = tokio::time::timeout(
        preauth::PREAUTH_DEADLINE + Duration::from_secs(5),
        silent.ws.next(),
    )
    .await
    .expect("no close after the Hello timeout");
    assert!(started.elapsed() >= preauth::PREAUTH_DEADLINE - Duration::from_millis(100));
    let Some(Ok(Message::Binary(bytes))) = message else {
        panic!("expected an Error frame, got {message:?}");
    };
    match Frame::decode(&bytes).unwrap() {
        Some(Frame::Error(error)) => {
            assert_eq!(error.code, close::PROTOCOL_ERROR);
            assert_eq!(error.message, "no Hello within 10 s of connecting");
        }
        other => panic!("expected an Error frame, got {other:?}"),
    }
    silent.expect_close(close::PROTOCOL_ERROR).await;
    harness.stop().await;
}
