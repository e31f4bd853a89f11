//! What sessions send, encoded: the scope filter, each applied batch's `Changes`
//! frames, encoded once per scope and shared by every session with that scope, and
//! the WebSocket fragments a long message goes out in.
//!
//! Filtering, splitting and encoding a batch in every session costs as many times the
//! work as there are sessions: at 1,000 sessions a 10,000-record import took seconds
//! of CPU and slowed the admin API tenfold. So the hub hands each applied batch out as
//! a [`SharedBatch`]; the first session of a scope to reach it encodes the frames
//! (the others of that scope wait for them without blocking a thread), and every
//! session sends the same [`Bytes`], cloned, not copied.
//!
//! The WebSocket library copies every frame it sends into its connection's write
//! buffer, which keeps its largest size for as long as the connection lives: a session
//! sent one 690 KB message holds 690 KB until it closes. So a long message goes out as
//! [`fragments`] of at most [`MESSAGE_FRAGMENT`] bytes (RFC 6455 section 5.4: still one
//! message to the receiver), and that, not the frame size, is what an idle session
//! keeps. Protocol frames stay as large as `MAX_FRAME_BODY` allows, because the Lite
//! client commits every `Changes` frame in a transaction of its own.
//!
//! **Invariant:** frames are shared by scope (the sorted set of zones), so two
//! sessions share frames only when the same filter made them for both.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use outpost_core::state::Change;
use outpost_core::sync::{
    CHANGES_AFTER_VERSION, ChangeEntry, ChunkError, Frame, FrameError, MAX_FRAME_BODY, WireChange,
    chain_after, split_batch, to_wire,
};
use tokio::sync::OnceCell;
use tokio_tungstenite::tungstenite::Bytes;
use tokio_tungstenite::tungstenite::protocol::frame::Frame as WsFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::store::{CommittedBatch, CommittedEntry};

/// Longest WebSocket frame a session sends: a longer message goes out in fragments of
/// this size, each written to the socket before the next is copied into the write
/// buffer. It bounds what every session keeps after a large batch (16 KiB × 1,000
/// sessions = 16 MiB; whole 1 MiB messages could cost 1 GiB) at the price of one write
/// to the socket per fragment.
pub const MESSAGE_FRAGMENT: usize = 16 * 1024;

/// The zones a token may see, in order. Sessions with equal scopes share frames.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    pub fn new(zones: impl IntoIterator<Item = String>) -> Scope {
        Scope(zones.into_iter().collect())
    }

    /// The zones' origins, in order.
    pub fn zones(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Zone data of the scope's zones, and every plugin definition: policy applies to
    /// every client, whatever zones it sees.
    fn contains(&self, change: &Change) -> bool {
        match change {
            Change::PluginPut { .. } | Change::PluginDeleted { .. } => true,
            _ => change.zone().is_some_and(|zone| self.0.contains(zone)),
        }
    }

    /// The entries with something in scope, filtered to it, in wire form.
    pub fn entries<'a>(
        &self,
        entries: impl IntoIterator<Item = &'a CommittedEntry>,
    ) -> Vec<ChangeEntry> {
        entries
            .into_iter()
            .filter_map(|entry| {
                let changes: Vec<WireChange> = entry
                    .changes
                    .iter()
                    .filter(|change| self.contains(change))
                    .filter_map(to_wire)
                    .collect();
                (!changes.is_empty()).then_some(ChangeEntry {
                    index: entry.index,
                    changes,
                })
            })
            .collect()
    }
}

/// How a session's changes travel, by its protocol version: `Changes` frames (1 and 2)
/// or `ChangesAfter` frames (3 on), which name the index each one follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangesForm {
    Plain,
    After,
}

impl ChangesForm {
    pub fn for_version(version: u16) -> ChangesForm {
        if version >= CHANGES_AFTER_VERSION {
            ChangesForm::After
        } else {
            ChangesForm::Plain
        }
    }
}

/// Why a batch's frames could not be made; shared by every session that asked.
#[derive(Clone, Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("cannot split changes up to {up_to}: {source}")]
    Split { up_to: u64, source: ChunkError },
    #[error("cannot encode Changes up to {up_to}: {source}")]
    Encode { up_to: u64, source: FrameError },
}

/// A batch's `Changes` frames for one scope, ready to send; or why there are none.
type EncodedFrames = Result<Arc<[Bytes]>, EncodeError>;

/// The frames of one scope and form, filled by the first session that asks.
type FramesCell = Arc<OnceCell<EncodedFrames>>;

/// An applied batch as every session receives it from the hub: the store's batch,
/// and its `Changes` frames per scope, encoded when a session of that scope first
/// asks. Dropped, frames and all, once the last session has sent it.
pub struct SharedBatch {
    pub batch: Arc<CommittedBatch>,
    /// One cell per scope and form asked for so far; the first session to reach a cell
    /// fills it.
    frames: Mutex<HashMap<(Scope, ChangesForm), FramesCell>>,
    /// The Lite tokens the batch revokes, looked for once.
    revoked: OnceLock<Box<[String]>>,
}

impl SharedBatch {
    /// Cheap: the hub makes one on the apply path; the work waits for the sessions.
    pub fn new(batch: Arc<CommittedBatch>) -> SharedBatch {
        SharedBatch {
            batch,
            frames: Mutex::new(HashMap::new()),
            revoked: OnceLock::new(),
        }
    }

    /// The batch's frames for `scope` in `form`, every entry included; the last one
    /// carries the batch's `up_to`, the first follows the index before the batch.
    /// Encoded by the first session of the scope and form to ask, which calls
    /// `on_encode` (the hub counts it in `outpost_sync_batch_encodes_total`); the others
    /// wait for it and get the same bytes.
    pub async fn changes_frames(
        &self,
        scope: &Scope,
        form: ChangesForm,
        on_encode: impl FnOnce(),
    ) -> EncodedFrames {
        let key = (scope.clone(), form);
        let cell = {
            let mut frames = self.frames.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(frames.entry(key).or_default())
        };
        let encoded = cell.get_or_init(|| async {
            on_encode();
            let batch = &self.batch;
            let after = batch.first.saturating_sub(1);
            encode_changes(form, after, batch.up_to, scope.entries(&batch.entries)).map(Arc::from)
        });
        encoded.await.clone()
    }

    /// Whether the batch revokes the token named `name`.
    pub fn revokes(&self, name: &str) -> bool {
        self.revoked
            .get_or_init(|| {
                self.batch
                    .entries
                    .iter()
                    .flat_map(|entry| &entry.changes)
                    .filter_map(|change| match change {
                        Change::LiteTokenRevoked { name } => Some(name.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .iter()
            .any(|revoked| revoked == name)
    }
}

/// The frames of `entries` (the changes after index `after`, up to `up_to`) in
/// `form`, split under `MAX_FRAME_BODY` and encoded; the last one carries `up_to`.
pub fn encode_changes(
    form: ChangesForm,
    after: u64,
    up_to: u64,
    entries: Vec<ChangeEntry>,
) -> Result<Vec<Bytes>, EncodeError> {
    let split = split_batch(up_to, entries, MAX_FRAME_BODY)
        .map_err(|source| EncodeError::Split { up_to, source })?;
    let frames: Vec<Frame> = match form {
        ChangesForm::Plain => split.into_iter().map(Frame::Changes).collect(),
        ChangesForm::After => chain_after(after, split)
            .into_iter()
            .map(Frame::ChangesAfter)
            .collect(),
    };
    frames
        .into_iter()
        .map(|frame| {
            frame
                .encode()
                .map(Bytes::from)
                .map_err(|source| EncodeError::Encode { up_to, source })
        })
        .collect()
}

/// One binary WebSocket message as frames of at most [`MESSAGE_FRAGMENT`] bytes of
/// payload: a `Binary` frame, then `Continue` frames, the last one final. Each is a
/// slice of `message`, not a copy.
pub fn fragments(message: Bytes) -> impl Iterator<Item = WsFrame> {
    let len = message.len();
    let starts = (0..len.max(1)).step_by(MESSAGE_FRAGMENT);
    starts.map(move |start| {
        let end = (start + MESSAGE_FRAGMENT).min(len);
        let opcode = match start {
            0 => Data::Binary,
            _ => Data::Continue,
        };
        WsFrame::message(message.slice(start..end), OpCode::Data(opcode), end == len)
    })
}

#[cfg(test)]
mod tests {
    use outpost_core::sync::Changes;

    use super::super::hub::Hub;
    use super::*;

    fn rrset_put(zone: &str, owner: &str, records: usize) -> Change {
        Change::RRsetPut {
            zone: zone.into(),
            owner: format!("{owner}.{zone}"),
            rtype: 16,
            records: vec![7; records],
        }
    }

    /// Entry 10 in `site.`, entry 11 in `lab.`, entry 12 revokes a token.
    fn batch() -> Arc<SharedBatch> {
        Arc::new(SharedBatch::new(Arc::new(CommittedBatch {
            first: 10,
            up_to: 12,
            entries: vec![
                CommittedEntry {
                    index: 10,
                    changes: vec![rrset_put("site.", "printer", 20)],
                },
                CommittedEntry {
                    index: 11,
                    changes: vec![rrset_put("lab.", "secret", 20)],
                },
                CommittedEntry {
                    index: 12,
                    changes: vec![Change::LiteTokenRevoked {
                        name: "bob-laptop".into(),
                    }],
                },
            ],
        })))
    }

    fn encodes(hub: &Hub) -> u64 {
        let mut metrics = String::new();
        hub.render_metrics(&mut metrics);
        let line = metrics
            .lines()
            .find(|line| line.starts_with("outpost_sync_batch_encodes_total "))
            .unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    }

    fn decode(frames: &[Bytes]) -> Vec<Changes> {
        frames
            .iter()
            .map(|bytes| match Frame::decode(bytes).unwrap() {
                Some(Frame::Changes(changes)) => changes,
                other => panic!("expected Changes, got {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn sessions_with_the_same_scope_share_frames_encoded_once() {
        let hub = Hub::new();
        let batch = batch();
        // Two sessions' scopes: equal sets, built apart and in another order.
        let first = Scope::new(["site.".to_string(), "other.".to_string()]);
        let second = Scope::new(["other.".to_string(), "site.".to_string()]);
        let (one, two) = tokio::join!(
            batch.changes_frames(&first, ChangesForm::Plain, || hub.count_batch_encode()),
            batch.changes_frames(&second, ChangesForm::Plain, || hub.count_batch_encode())
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        assert_eq!(encodes(&hub), 1);
        assert!(Arc::ptr_eq(&one, &two));
        assert_eq!(one.len(), 1);
        // The very same bytes, not a copy.
        assert_eq!(one[0].as_ptr(), two[0].as_ptr());

        let changes = decode(&one);
        assert_eq!(changes[0].up_to, 12);
        assert_eq!(changes[0].entries.len(), 1, "only site.: {changes:?}");
        assert_eq!(changes[0].entries[0].index, 10);

        // Another scope is encoded on its own, with its own filter.
        let lab = batch
            .changes_frames(
                &Scope::new(["lab.".to_string()]),
                ChangesForm::Plain,
                || hub.count_batch_encode(),
            )
            .await
            .unwrap();
        assert_eq!(encodes(&hub), 2);
        let changes = decode(&lab);
        assert_eq!(changes[0].entries[0].index, 11);

        // Protocol 3 sessions of the same scope get their own frames, which name the
        // index the batch follows.
        let after = batch
            .changes_frames(&first, ChangesForm::After, || hub.count_batch_encode())
            .await
            .unwrap();
        assert_eq!(encodes(&hub), 3);
        match Frame::decode(&after[0]).unwrap() {
            Some(Frame::ChangesAfter(frame)) => {
                assert_eq!((frame.after, frame.changes.up_to), (9, 12));
                assert_eq!(frame.changes.entries[0].index, 10);
            }
            other => panic!("expected ChangesAfter, got {other:?}"),
        }
        assert!(batch.revokes("bob-laptop"));
        assert!(!batch.revokes("alice-laptop"));
    }

    #[test]
    fn a_long_message_goes_out_in_fragments_of_one_buffer() {
        let message = Bytes::from(
            (0..=255u8)
                .cycle()
                .take(2 * MESSAGE_FRAGMENT + 10)
                .collect::<Vec<u8>>(),
        );
        let frames: Vec<WsFrame> = fragments(message.clone()).collect();
        let shape: Vec<(OpCode, bool, usize)> = frames
            .iter()
            .map(|frame| {
                (
                    frame.header().opcode,
                    frame.header().is_final,
                    frame.payload().len(),
                )
            })
            .collect();
        assert_eq!(
            shape,
            [
                (OpCode::Data(Data::Binary), false, MESSAGE_FRAGMENT),
                (OpCode::Data(Data::Continue), false, MESSAGE_FRAGMENT),
                (OpCode::Data(Data::Continue), true, 10),
            ]
        );
        let joined: Vec<u8> = frames
            .iter()
            .flat_map(|frame| frame.payload().to_vec())
            .collect();
        assert_eq!(joined, message);
        // Slices of the shared bytes, not copies.
        assert_eq!(
            frames[1].payload().as_ptr(),
            message[MESSAGE_FRAGMENT..].as_ptr()
        );

        // A short message, and an empty one, are one final frame.
        for len in [0, 5, MESSAGE_FRAGMENT] {
            let frames: Vec<WsFrame> = fragments(Bytes::from(vec![1; len])).collect();
            assert_eq!(frames.len(), 1, "{len} bytes");
            assert_eq!(frames[0].header().opcode, OpCode::Data(Data::Binary));
            assert!(frames[0].header().is_final);
            assert_eq!(frames[0].payload().len(), len);
        }
    }
}
