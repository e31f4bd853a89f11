//! One Lite sync session over an accepted WebSocket: `Hello`, token and version,
//! the starting point (resume from the cursor or a snapshot), then live changes
//! until either side closes.
//!
//! The session is one chain: [`run`] → `serve` (`read_hello` by the connection's
//! pre-auth deadline) → `handshake` (register with the hub, read the view, check the
//! token, negotiate, leave the pre-auth pool for a session slot) →
//! `bring_up` (Welcome, then the history after the client's cursor or `send_snapshot`)
//! → `live` (queued batches, heartbeats, acks) → `close` (an `Error` or
//! `ResyncRequired` frame when there is something to say, then the close code).
//!
//! **Invariant:** the session registers with the hub before it reads the view it
//! starts from, and it checks the token against that same view: a batch applied after
//! the view is in its queue (a revocation included), a batch before it is in the view.
//! **Invariant:** nothing outside the token's zones is sent: every change goes through
//! [`Scope`] before it is encoded, and non-zone changes (tokens) never are. Live
//! batches are encoded once per scope and shared ([`SharedBatch::changes_frames`]);
//! history and snapshots are the session's own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use outpost_core::state::{Change, MAX_TOKEN_NAME, ReplicatedState, parse_name};
use outpost_core::sync::{
    Frame, HEADER_LEN, Heartbeat, Hello, MAX_FRAME_BODY, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION,
    SnapshotBegin, SnapshotChunk, SnapshotEnd, SyncMode, Welcome, WireChange, chunk_changes, close,
    max_frame_body, negotiate, to_wire,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Bytes, Error as WsError, Message};
use tokio_util::sync::CancellationToken;

mod end;

use self::end::{End, overflow_reason, resync};
use super::hub::{Hub, Registration, Update};
use super::outbound::{ChangesForm, Scope, SharedBatch, encode_changes, fragments};
use super::preauth::PreauthPermit;
use super::token;
use crate::store::{Store, View};

/// A `Heartbeat` goes out after this long without any other frame, so the client can
/// tell a quiet cluster from a dead connection (it calls itself Stale after 15 s).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How long one frame (all its WebSocket fragments) may take to reach the socket. A
/// client that takes nothing for this long is gone or stuck; its connection is dropped
/// without a close frame (no room is left to send one).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a closing session waits for the client's close frame in reply.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest close reason: a control frame carries 125 bytes, two of them the code.
const MAX_CLOSE_REASON: usize = 123;

/// Longest client id kept for logs and the session list; the rest is cut, so a
/// client cannot make the appliance keep a megabyte per session.
const MAX_CLIENT_ID: usize = 128;

/// What a session needs from the server.
pub struct SessionContext {
    pub store: Store,
    pub hub: Arc<Hub>,
    pub remote: SocketAddr,
    pub shutdown: CancellationToken,
    /// Authenticated sessions: one permit is taken once the token is accepted.
    pub sessions: Arc<Semaphore>,
}

/// A session between `Hello` and its end.
struct Session<S> {
    ws: WebSocketStream<S>,
    context: SessionContext,
    /// When the next heartbeat is due (pushed back by every frame sent).
    heartbeat_at: Instant,
    /// The largest frame body the client takes: protocol 1's until a version is
    /// agreed, then that version's ([`max_frame_body`]).
    max_body: usize,
    /// How changes travel to this client, by the agreed version.
    form: ChangesForm,
    /// The pre-auth place, given back once the token is accepted (kept through a
    /// refusal's close, so refusals stay within the pool).
    preauth: Option<PreauthPermit>,
    /// The session slot, held from the accepted token to the end.
    slot: Option<OwnedSemaphorePermit>,
}

/// Runs one session on an accepted WebSocket until it ends, then closes it. `preauth`
/// is the connection's place in the pre-auth pool, and its deadline for `Hello`.
pub async fn run<S>(ws: WebSocketStream<S>, context: SessionContext, preauth: PreauthPermit)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = Session {
        ws,
        context,
        heartbeat_at: Instant::now() + HEARTBEAT_INTERVAL,
        max_body: MAX_FRAME_BODY,
        form: ChangesForm::Plain,
        preauth: Some(preauth),
        slot: None,
    };
    let end = session.serve().await;
    session.close(end).await;
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    async fn serve(&mut self) -> End {
        let shutdown = self.context.shutdown.clone();
        let Some(deadline) = self.preauth.as_ref().map(PreauthPermit::deadline) else {
            return End::internal("a session started outside the pre-auth pool".to_string());
        };
        let hello = tokio::select! {
            hello = timeout_at(deadline, self.read_hello()) => match hello {
                Ok(Ok(hello)) => hello,
                Ok(Err(end)) => return end,
                Err(_) => return self.hello_too_late(),
            },
            () = shutdown.cancelled() => return End::shutdown(),
        };
        let span = tracing::Span::current();
        span.record("client_id", truncate(&hello.client_id, MAX_CLIENT_ID));
        span.record("token", claimed_name(&hello.token));

        let (mut registration, scope, head) = match self.handshake(&hello).await {
            Ok(started) => started,
            Err(end) => return end,
        };
        tracing::info!(head, "sync session live");
        self.live(&mut registration, &scope, head).await
    }

    /// The pre-auth deadline passed before a `Hello`: 4001, counted as a protocol error
    /// and as a pre-auth refusal.
    fn hello_too_late(&self) -> End {
        self.context.hub.count_protocol_error();
        let allowed = self.preauth.as_ref().map_or(Duration::ZERO, |preauth| {
            preauth.count_expired();
            preauth.allowed()
        });
        End::error(
            close::PROTOCOL_ERROR,
            format!("no Hello within {} s of connecting", allowed.as_secs()),
        )
    }

    /// Takes a session slot for the accepted token, giving back the pre-auth place;
    /// 1013 when every slot is taken.
    fn take_slot(&mut self) -> Result<(), End> {
        let Ok(slot) = Arc::clone(&self.context.sessions).try_acquire_owned() else {
            tracing::warn!(
                "sync session cap reached after the token was checked; refusing with 1013"
            );
            return Err(End::sessions_full());
        };
        self.slot = Some(slot);
        self.preauth = None;
        Ok(())
    }

    /// The first frame: a `Hello` (frames of unknown types are skipped).
    async fn read_hello(&mut self) -> Result<Hello, End> {
        match self.receive().await? {
            Frame::Hello(hello) => Ok(hello),
            other => {
                self.context.hub.count_protocol_error();
                Err(End::error(
                    close::PROTOCOL_ERROR,
                    format!("expected Hello as the first frame, got {}", other.name()),
                ))
            }
        }
    }

    /// Registers, checks the token and version against the current view, and brings
    /// the client up to that view. Returns where the live stream starts.
    async fn handshake(&mut self, hello: &Hello) -> Result<(Registration, Scope, u64), End> {
        let store = self.context.store.clone();
        let hub = Arc::clone(&self.context.hub);
        let claimed = claimed_name(&hello.token);
        let client_id = truncate(&hello.client_id, MAX_CLIENT_ID);
        // Register first: from here on every applied batch reaches the queue.
        let registration = hub.register(client_id, claimed, self.context.remote);
        let view = store.view();
        let Some(lite_token) = token::check(&view.zones, &hello.token) else {
            hub.count_auth_failure();
            tracing::warn!("sync session refused: unknown, revoked or wrong token");
            return Err(End::error(
                close::UNAUTHORIZED,
                format!(
                    "Lite token {claimed:?} is unknown, revoked or wrong (ask the operator for a new one: outpost lite-token create)"
                ),
            ));
        };
        let Some(version) = negotiate(hello.min_version, hello.max_version) else {
            tracing::warn!(
                min = hello.min_version,
                max = hello.max_version,
                "sync session refused: no common protocol version"
            );
            return Err(End::error(
                close::NO_COMMON_VERSION,
                format!(
                    "client speaks sync protocol versions {}..={}, this appliance {}..={}: upgrade the older side",
                    hello.min_version, hello.max_version, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION
                ),
            ));
        };
        self.take_slot()?;
        self.max_body = max_frame_body(version);
        self.form = ChangesForm::for_version(version);
        let scope = Scope::new(lite_token.zones.iter().cloned());
        let welcome = |mode| {
            Frame::Welcome(Welcome {
                version,
                cluster_id: store.cluster_id().to_string(),
                head: view.applied,
                zones: lite_token.zones.clone(),
                mode,
            })
        };

        let start = self.bring_up(hello, &view, &scope, welcome).await?;
        Ok((registration, scope, start))
    }

    /// Brings the client up to `view`: the history after its cursor when this cluster's
    /// history reaches back to it (`Welcome { Resume }`), else a snapshot. A cursor beyond
    /// the view (the client last spoke to a node further along) resumes too, with
    /// nothing sent until the stream passes it. Returns where the live stream starts.
    async fn bring_up(
        &mut self,
        hello: &Hello,
        view: &View,
        scope: &Scope,
        welcome: impl Fn(SyncMode) -> Frame,
    ) -> Result<u64, End> {
        let store = self.context.store.clone();
        let hub = Arc::clone(&self.context.hub);
        let resumable = hello
            .cursor
            .as_ref()
            .filter(|cursor| cursor.cluster_id == store.cluster_id())
            .map(|cursor| cursor.index);
        let history = match resumable {
            Some(cursor) => match store.history(cursor, view.applied).await {
                Ok(history) => history.map(|history| (cursor, history)),
                Err(error) => {
                    tracing::warn!(%error, "cannot read the change history; sending a snapshot");
                    None
                }
            },
            None => None,
        };
        let Some((cursor, history)) = history else {
            hub.count_snapshot();
            tracing::info!(as_of = view.applied, cursor = ?hello.cursor, "sending a snapshot");
            self.send(welcome(SyncMode::Snapshot)).await?;
            self.send_snapshot(&view.zones, scope, view.applied).await?;
            return Ok(view.applied);
        };
        hub.count_resume();
        tracing::info!(
            cursor,
            head = view.applied,
            "resuming from the client's cursor"
        );
        self.send(welcome(SyncMode::Resume)).await?;
        if cursor < view.applied {
            let entries = scope.entries(history.iter().filter(|entry| entry.index > cursor));
            drop(history);
            let frames = encode_changes(self.form, cursor, view.applied, entries)
                .map_err(|error| End::internal(error.to_string()))?;
            self.send_encoded(&frames).await?;
        }
        Ok(cursor.max(view.applied))
    }

    /// `SnapshotBegin`, every plugin definition, every zone in scope as `ZonePut` +
    /// `RRsetPut`s, `SnapshotEnd`.
    async fn send_snapshot(
        &mut self,
        zones: &ReplicatedState,
        scope: &Scope,
        as_of: u64,
    ) -> Result<(), End> {
        self.send(Frame::SnapshotBegin(SnapshotBegin { as_of }))
            .await?;
        let definitions = zones
            .plugins()
            .filter_map(|definition| {
                to_wire(&Change::PluginPut {
                    definition: Arc::clone(definition),
                })
            })
            .collect();
        let chunks = chunk_changes(definitions, MAX_FRAME_BODY)
            .map_err(|error| End::internal(format!("cannot split the snapshot: {error}")))?;
        for changes in chunks {
            self.send(Frame::SnapshotChunk(SnapshotChunk { changes }))
                .await?;
        }
        for origin in scope.zones() {
            let Some(zone) = parse_name(origin).ok().and_then(|name| zones.get(&name)) else {
                continue;
            };
            let mut changes = vec![WireChange::ZonePut {
                origin: origin.to_string(),
            }];
            for rrset in zone.rrsets() {
                changes.push(WireChange::RRsetPut {
                    zone: origin.to_string(),
                    owner: rrset.owner().to_ascii(),
                    rtype: rrset.record_type().into(),
                    records: rrset.to_wire(),
                });
            }
            let chunks = chunk_changes(changes, MAX_FRAME_BODY)
                .map_err(|error| End::internal(format!("cannot split the snapshot: {error}")))?;
            for changes in chunks {
                self.send(Frame::SnapshotChunk(SnapshotChunk { changes }))
                    .await?;
            }
        }
        self.send(Frame::SnapshotEnd(SnapshotEnd { as_of })).await
    }

    /// Frames encoded beforehand, in order.
    async fn send_encoded(&mut self, frames: &[Bytes]) -> Result<(), End> {
        for bytes in frames {
            self.send_bytes("Changes", bytes.clone()).await?;
        }
        Ok(())
    }

    /// A live batch's frames: the ones shared with every session of the scope and
    /// form, or, when the session starts inside the batch (a cursor beyond the view),
    /// its own, without the entries up to `sent_up_to`, following `sent_up_to`.
    async fn send_batch(
        &mut self,
        shared: &SharedBatch,
        scope: &Scope,
        sent_up_to: u64,
    ) -> Result<(), End> {
        let batch = &shared.batch;
        // The shared frames follow the index before the batch, so they fit only a
        // session that stands exactly there.
        let whole = batch.first == sent_up_to + 1;
        let frames = if whole {
            shared
                .changes_frames(scope, self.form, || self.context.hub.count_batch_encode())
                .await
        } else {
            let entries = scope.entries(
                batch
                    .entries
                    .iter()
                    .filter(|entry| entry.index > sent_up_to),
            );
            encode_changes(self.form, sent_up_to, batch.up_to, entries).map(Arc::from)
        };
        let frames = frames.map_err(|error| End::internal(error.to_string()))?;
        self.send_encoded(&frames).await
    }

    /// Queued batches, heartbeats and acks until the session ends.
    async fn live(&mut self, registration: &mut Registration, scope: &Scope, start: u64) -> End {
        let shutdown = self.context.shutdown.clone();
        let mut sent_up_to = start;
        loop {
            let heartbeat_at = self.heartbeat_at;
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return End::shutdown(),
                update = registration.updates.recv() => {
                    // The hub drops the queue's sender when it overflows.
                    let update = match update {
                        Some(update) if !registration.info.overflowed() => update,
                        _ => return resync(overflow_reason()),
                    };
                    let shared = match update {
                        // Updates up to the starting point are in the view or the client's
                        // replica already.
                        update if update.up_to() <= sent_up_to => continue,
                        Update::Replaced { as_of } => {
                            // The state jumped from somewhere at or before `sent_up_to` to
                            // `as_of`; which entries lie between is not known here.
                            self.context.hub.count_replaced_resync();
                            tracing::info!(as_of, sent_up_to, "a snapshot replaced the state past this session; asking for a resync");
                            return resync(format!(
                                "this appliance installed a Raft snapshot as of index {as_of}, past this session's {sent_up_to}: resume from your cursor"
                            ));
                        }
                        Update::Batch(shared) => shared,
                    };
                    if shared.batch.first > sent_up_to + 1 {
                        // Never expected: the store publishes every step. Moving the
                        // client's cursor over the hole would hide it for good.
                        self.context.hub.count_gap();
                        tracing::error!(first = shared.batch.first, sent_up_to, "gap in the applied batches; asking for a resync");
                        return resync(format!(
                            "indexes {} to {} never reached this session: resume from your cursor",
                            sent_up_to + 1,
                            shared.batch.first - 1
                        ));
                    }
                    if shared.revokes(&registration.info.token) {
                        tracing::info!("token revoked; closing the session");
                        return End::error(
                            close::UNAUTHORIZED,
                            format!("Lite token {:?} was revoked", registration.info.token),
                        );
                    }
                    if let Err(end) = self.send_batch(&shared, scope, sent_up_to).await {
                        return end;
                    }
                    sent_up_to = shared.batch.up_to;
                }
                received = self.receive() => match received {
                    Ok(Frame::Ack(ack)) => registration.info.record_ack(ack.cursor),
                    Ok(other) => {
                        self.context.hub.count_protocol_error();
                        return End::error(
                            close::PROTOCOL_ERROR,
                            format!("unexpected {} frame from a client (only Ack may follow Hello)", other.name()),
                        );
                    }
                    Err(end) => return end,
                },
                () = sleep_until(heartbeat_at) => {
                    let head = self.context.store.view().applied;
                    if let Err(end) = self.send(Frame::Heartbeat(Heartbeat { head })).await {
                        return end;
                    }
                }
            }
        }
    }

    /// The next known frame from the client, skipping unknown types, pings and pongs.
    /// Cancel-safe: nothing is lost when another branch of a `select!` wins.
    async fn receive(&mut self) -> Result<Frame, End> {
        loop {
            let message = match self.ws.next().await {
                Some(Ok(message)) => message,
                Some(Err(WsError::Capacity(error))) => {
                    self.context.hub.count_protocol_error();
                    return Err(End::error(
                        close::TOO_LARGE,
                        format!(
                            "message too large: {error} (frames are at most {MAX_FRAME_BODY} bytes of body)"
                        ),
                    ));
                }
                Some(Err(WsError::Protocol(error))) => {
                    self.context.hub.count_protocol_error();
                    return Err(End::error(
                        close::PROTOCOL_ERROR,
                        format!("websocket protocol error: {error}"),
                    ));
                }
                Some(Err(error)) => return Err(End::Gone(format!("connection failed: {error}"))),
                None => return Err(End::Gone("connection closed".to_string())),
            };
            match message {
                Message::Binary(bytes) => match Frame::decode(&bytes) {
                    Ok(Some(frame)) => return Ok(frame),
                    Ok(None) => {
                        tracing::debug!(len = bytes.len(), "skipping a frame of an unknown type");
                    }
                    Err(error) => {
                        self.context.hub.count_protocol_error();
                        tracing::warn!(%error, "malformed frame from the client");
                        return Err(End::error(error.close_code(), error.to_string()));
                    }
                },
                Message::Text(_) => {
                    self.context.hub.count_protocol_error();
                    return Err(End::error(
                        close::PROTOCOL_ERROR,
                        "text message (frames travel in binary messages)".to_string(),
                    ));
                }
                Message::Close(_) => return Err(End::Gone("client closed".to_string())),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// Encodes and sends one frame.
    async fn send(&mut self, frame: Frame) -> Result<(), End> {
        let bytes = frame
            .encode()
            .map_err(|error| End::internal(format!("cannot encode {}: {error}", frame.name())))?;
        self.send_bytes(frame.name(), bytes.into()).await
    }

    /// Sends one encoded frame (`name` for errors) as one WebSocket message, in
    /// [`fragments`] so that the write buffer never holds more than one of them, within
    /// [`SEND_TIMEOUT`]; and pushes the next heartbeat back.
    async fn send_bytes(&mut self, name: &str, bytes: Bytes) -> Result<(), End> {
        let body = bytes.len().saturating_sub(HEADER_LEN);
        if body > self.max_body {
            // Only a large plugin definition makes such a frame (protocol 2).
            return Err(End::error(
                close::TOO_LARGE,
                format!(
                    "a {name} frame of {body} bytes holds a definition larger than this client's protocol takes ({} bytes): upgrade outpost-lite",
                    self.max_body
                ),
            ));
        }
        let ws = &mut self.ws;
        let sending = async move {
            for fragment in fragments(bytes) {
                ws.send(Message::Frame(fragment)).await?;
            }
            Ok::<(), WsError>(())
        };
        tokio::select! {
            sent = timeout(SEND_TIMEOUT, sending) => match sent {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(End::Gone(format!("cannot send {name}: {error}"))),
                Err(_) => return Err(End::Gone(format!(
                    "the client took no data for {} s", SEND_TIMEOUT.as_secs()
                ))),
            },
            () = self.context.shutdown.cancelled() => return Err(End::shutdown()),
        }
        self.heartbeat_at = Instant::now() + HEARTBEAT_INTERVAL;
        Ok(())
    }

    /// Says why (when there is a frame for it), sends the close code, and waits briefly
    /// for the client's close in reply, so the client reads everything sent before.
    async fn close(mut self, end: End) {
        let (code, reason, frame) = match end {
            End::Close {
                code,
                reason,
                frame,
            } => (code, reason, frame),
            End::Gone(why) => {
                tracing::info!(%why, "sync session ended");
                return;
            }
        };
        tracing::info!(code, %reason, "closing sync session");
        let closing = async {
            if let Some(frame) = frame
                && let Ok(bytes) = frame.encode()
            {
                for fragment in fragments(bytes.into()) {
                    self.ws.send(Message::Frame(fragment)).await?;
                }
            }
            self.ws
                .close(Some(CloseFrame {
                    code: CloseCode::from(code),
                    reason: truncate(&reason, MAX_CLOSE_REASON).into(),
                }))
                .await?;
            // Read until the client's close arrives (tungstenite ends the stream then).
            while self.ws.next().await.is_some() {}
            Ok::<(), WsError>(())
        };
        match timeout(CLOSE_TIMEOUT, closing).await {
            Ok(Ok(())) | Ok(Err(WsError::ConnectionClosed)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "close did not complete"),
            Err(_) => tracing::debug!("the client did not answer the close in time"),
        }
    }
}

/// The token name the client claims, cut to the longest valid name (for logs).
fn claimed_name(presented: &str) -> &str {
    truncate(token::claimed_name(presented), MAX_TOKEN_NAME)
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
