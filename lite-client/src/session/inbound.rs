//! What a session does with each frame, where it stands in the protocol: the
//! `Welcome` checks, snapshot staging and install, `Changes` applied and acknowledged,
//! heartbeats, and refusing data that does not fit the replica.
//!
//! **Invariant:** the cursor only moves over indexes whose changes were applied: a
//! `ChangesAfter` that does not follow the stream's position is a gap, and the session
//! resumes from the stored cursor instead of applying it; the parts of an entry split
//! over several frames are held and applied together with its last part.

use outpost_core::sync::{
    Ack, ChangeEntry, Changes, Frame, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, SnapshotChunk,
    SyncMode, Welcome, close,
};

use super::{Phase, Session, SessionEnd};
use crate::replica::{
    MAX_SNAPSHOT_BYTES, ReplicaError, ScopeCheck, SnapshotStaging, StagingError, footprint,
};

/// The most an entry split over several frames may hold back, counted as the bytes of
/// its names and records: the same bound as a snapshot being staged. Past it the
/// session ends and the client resumes from its cursor (the entry is sent again).
pub const MAX_HELD_BYTES: usize = MAX_SNAPSHOT_BYTES;

/// The frames of an entry that continues in the next frame: received, not applied.
#[derive(Debug, Default)]
pub(super) struct Held {
    entries: Vec<ChangeEntry>,
    bytes: usize,
}

impl Session<'_> {
    /// One decoded frame, where the session stands.
    pub(super) async fn handle(&mut self, frame: Frame) -> Result<(), SessionEnd> {
        let phase = std::mem::replace(&mut self.phase, Phase::Live);
        match (phase, frame) {
            (Phase::AwaitWelcome, Frame::Welcome(welcome)) => self.on_welcome(welcome).await,
            (Phase::AwaitSnapshot, Frame::SnapshotBegin(begin)) => {
                tracing::info!(as_of = begin.as_of, "snapshot begins");
                self.phase = Phase::Snapshot(Box::new(SnapshotStaging::new(begin.as_of)));
                Ok(())
            }
            (Phase::Snapshot(staging), Frame::SnapshotChunk(chunk)) => {
                self.on_snapshot_chunk(staging, chunk).await
            }
            (Phase::Snapshot(staging), Frame::SnapshotEnd(end)) => {
                self.on_snapshot_end(*staging, end.as_of).await
            }
            (Phase::Live, Frame::Changes(changes)) => self.on_changes(None, changes).await,
            (Phase::Live, Frame::ChangesAfter(frame)) => {
                self.on_changes(Some(frame.after), frame.changes).await
            }
            (phase, Frame::Heartbeat(heartbeat)) if !matches!(phase, Phase::AwaitWelcome) => {
                self.phase = phase;
                self.head = self.head.max(heartbeat.head);
                self.board.announced(heartbeat.head);
                Ok(())
            }
            (phase, Frame::ResyncRequired(resync)) => {
                self.phase = phase;
                tracing::warn!(reason = %resync.reason, "the appliance asks for a resync");
                self.resync_reason = Some(resync.reason);
                Ok(())
            }
            (phase, Frame::Error(error)) => {
                self.phase = phase;
                tracing::warn!(code = error.code, message = %error.message, "the appliance reports an error");
                self.error_frame = Some(error);
                Ok(())
            }
            (phase, frame) => {
                let message = format!("the appliance sent {} while {}", frame.name(), phase.name());
                Err(self.refuse(close::PROTOCOL_ERROR, &message).await)
            }
        }
    }

    /// One chunk applied to the staged snapshot, off the runtime's threads (CPU work).
    async fn on_snapshot_chunk(
        &mut self,
        mut staging: Box<SnapshotStaging>,
        chunk: SnapshotChunk,
    ) -> Result<(), SessionEnd> {
        let pushed = tokio::task::spawn_blocking(move || {
            let result = staging.push_chunk(chunk);
            (staging, result)
        })
        .await;
        match pushed {
            Ok((staging, Ok(()))) => {
                self.phase = Phase::Snapshot(staging);
                Ok(())
            }
            Ok((_, Err(error @ StagingError::BadChange(_)))) => {
                Err(self.refuse(close::PROTOCOL_ERROR, &error.to_string()).await)
            }
            Ok((_, Err(error))) => Err(self.abort(&error.to_string()).await),
            Err(error) => {
                let message = format!("staging the snapshot failed: {error}");
                Err(self.abort(&message).await)
            }
        }
    }

    /// The staged snapshot installed in place of the replica, as of `as_of`.
    async fn on_snapshot_end(
        &mut self,
        staging: SnapshotStaging,
        as_of: u64,
    ) -> Result<(), SessionEnd> {
        let staged = match staging.finish(as_of) {
            Ok(staged) => staged,
            Err(error) => {
                return Err(self.refuse(close::PROTOCOL_ERROR, &error.to_string()).await);
            }
        };
        let (cluster_id, zones) = match &self.welcome {
            Some(welcome) => (welcome.cluster_id.clone(), welcome.zones.clone()),
            None => {
                return Err(self
                    .refuse(close::PROTOCOL_ERROR, "snapshot before Welcome")
                    .await);
            }
        };
        if staged.definitions_skipped > 0 {
            tracing::info!(
                count = staged.definitions_skipped,
                "definitions of a kind or hook this client does not know skipped"
            );
        }
        let as_of = staged.as_of;
        self.position = as_of;
        let result = self
            .replica
            .install_snapshot(&cluster_id, staged, &zones, self.head)
            .await;
        self.committed(result, as_of).await
    }

    async fn on_welcome(&mut self, welcome: Welcome) -> Result<(), SessionEnd> {
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&welcome.version) {
            let message = format!(
                "the appliance chose protocol version {}, outside this client's {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}",
                welcome.version
            );
            self.close(close::NO_COMMON_VERSION, &message).await;
            return Err(SessionEnd::Incompatible(message));
        }
        tracing::info!(version = welcome.version, head = welcome.head, mode = ?welcome.mode, zones = ?welcome.zones, "welcomed");
        self.head = welcome.head;
        let mode = welcome.mode;
        let (zones, head) = (welcome.zones.clone(), welcome.head);
        let resumable = self
            .replica
            .cursor()
            .is_some_and(|c| c.cluster_id == welcome.cluster_id);
        self.welcome = Some(welcome);
        match mode {
            SyncMode::Snapshot => {
                self.board.welcomed(head, true);
                self.phase = Phase::AwaitSnapshot;
                Ok(())
            }
            SyncMode::Resume if !resumable => {
                Err(self.reject_data(ReplicaError::NoCursorToResume).await)
            }
            SyncMode::Resume => match self.replica.resume(&zones, head).await {
                Ok(ScopeCheck::Covered) => {
                    self.position = self.replica.cursor().map_or(0, |cursor| cursor.index);
                    self.board.welcomed(head, false);
                    self.report_commit();
                    self.phase = Phase::Live;
                    Ok(())
                }
                Ok(ScopeCheck::Grew) => {
                    tracing::info!(
                        "the token now sees zones this replica never received: asking for a snapshot"
                    );
                    if let Err(error) = self.replica.forget_cursor().await {
                        return Err(self.storage_failed(error).await);
                    }
                    self.close(close::NORMAL, "scope grew; reconnecting for a snapshot")
                        .await;
                    Err(SessionEnd::ReconnectNow(
                        "the token's zones grew; taking a snapshot".into(),
                    ))
                }
                Err(error) => Err(self.reject_data(error).await),
            },
        }
    }

    /// A `Changes` frame, or a `ChangesAfter` (`after` given) whose `after` must be the
    /// stream's position. A frame whose last entry continues in the next one is held;
    /// the held frames are applied with the frame that completes the entry, in one
    /// commit.
    async fn on_changes(&mut self, after: Option<u64>, changes: Changes) -> Result<(), SessionEnd> {
        if let Some(after) = after
            && after != self.position
        {
            let message = format!(
                "{} sent changes following index {after}, but this client stands at {}: resuming from its cursor",
                self.url, self.position
            );
            tracing::warn!(after, position = self.position, "gap in the change stream");
            self.held = None;
            self.close(close::NORMAL, "gap in the change stream").await;
            return Err(SessionEnd::ReconnectNow(message));
        }
        let up_to = changes.up_to;
        self.position = up_to;
        self.head = self.head.max(up_to);
        self.board.announced(up_to);
        let mut held = self.held.take().unwrap_or_default();
        held.bytes += changes.entries.iter().map(entry_bytes).sum::<usize>();
        held.entries.extend(changes.entries);
        if held.entries.last().is_some_and(|entry| entry.index > up_to) {
            if held.bytes > MAX_HELD_BYTES {
                let message = format!(
                    "an entry split over several frames holds over {MAX_HELD_BYTES} bytes; resuming from the cursor"
                );
                return Err(self.abort(&message).await);
            }
            tracing::debug!(
                up_to,
                bytes = held.bytes,
                "holding part of an entry until its last part"
            );
            self.held = Some(held);
            return Ok(());
        }
        let cluster_id = self
            .welcome
            .as_ref()
            .map(|w| w.cluster_id.clone())
            .unwrap_or_default();
        let whole = Changes {
            up_to,
            entries: held.entries,
        };
        let result = self
            .replica
            .apply_changes(&cluster_id, whole)
            .await
            .map(|_| ());
        self.committed(result, up_to).await
    }

    /// After a commit attempt: report and acknowledge, or end the session.
    async fn committed(
        &mut self,
        result: Result<(), ReplicaError>,
        what: u64,
    ) -> Result<(), SessionEnd> {
        if let Err(error) = result {
            return Err(self.reject_data(error).await);
        }
        self.report_commit();
        let cursor = self.replica.cursor().map_or(what, |c| c.index);
        tracing::debug!(cursor, "committed");
        self.send(&Frame::Ack(Ack { cursor })).await
    }

    fn report_commit(&self) {
        self.board.committed(
            self.replica.cursor().map(|c| c.index),
            self.replica.counts(),
        );
    }

    /// A replica error: data the server sent that does not fit (forget the cursor, so
    /// the next session takes a snapshot) or local storage trouble.
    async fn reject_data(&mut self, error: ReplicaError) -> SessionEnd {
        match error {
            ReplicaError::Inconsistent { .. }
            | ReplicaError::NoCursorToResume
            | ReplicaError::OutOfScope { .. }
            | ReplicaError::BadChange(_) => {
                tracing::error!(%error, "refusing the appliance's data; the next session takes a snapshot");
                if let Err(forget) = self.replica.forget_cursor().await {
                    return self.storage_failed(forget).await;
                }
                self.refuse(close::PROTOCOL_ERROR, &error.to_string()).await
            }
            other => self.storage_failed(other).await,
        }
    }

    pub(super) async fn storage_failed(&mut self, error: ReplicaError) -> SessionEnd {
        tracing::error!(%error, "replica storage failed");
        // 1011: the endpoint met a condition that prevented it from going on.
        self.close(1011, "client storage failed").await;
        SessionEnd::Retry(error.to_string())
    }
}

/// What an entry holds in memory, roughly (as a snapshot being staged counts it).
fn entry_bytes(entry: &ChangeEntry) -> usize {
    entry.changes.iter().map(footprint).sum()
}
