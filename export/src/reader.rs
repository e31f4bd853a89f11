//! A reader's side (a satellite, a Lite client with `--docs`): follow an export's document
//! from any peer, believe only the cluster's author, and hand on whole snapshots.
//!
//! [`follow`] joins the document with a read capability (so it also serves and relays
//! it to other readers), syncs with the ticket's peers and the extra ones, again every
//! [`RESYNC_INTERVAL`] (the cluster writes with timestamps of its own, which iroh-docs
//! does not gossip live), and after each burst of news looks for a complete document:
//! the author's head, newer than the last one handed on, and the blob of every value it
//! lists. Then it hands on the whole state it describes as a [`DocSnapshot`].
//!
//! **Invariant:** only entries signed by the ticket's author are read; entries of any
//! other author (someone who holds the namespace secret, not the cluster's author key)
//! are counted in [`ReaderStats::foreign_entries`] and never read.
//! **Invariant:** a snapshot is handed on only when every value its head lists is here:
//! a document half-synced, or a head whose values have not all arrived, is never applied.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::StreamExt as _;
use iroh::EndpointAddr;
use iroh_blobs::Hash;
use iroh_docs::engine::LiveEvent;
use iroh_docs::{AuthorId, Capability, NamespaceId};
use outpost_core::sync::WireChange;
use tokio_util::sync::CancellationToken;

use crate::layout::{self, HEAD_KEY, Head, LayoutError, MAX_HEAD_BYTES, MAX_VALUE_BYTES};
use crate::node::DocsNode;
use crate::ticket::ExportTicket;

/// How often the reader syncs with its peers even without news.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(2);
/// How long the reader waits after news for more before it looks for a whole document.
const SETTLE: Duration = Duration::from_millis(50);

/// A whole export as of one index of the cluster: its head and the bytes of every value
/// the head lists, each checked against its hash.
#[derive(Debug, Clone)]
pub struct DocSnapshot {
    pub cluster_id: String,
    pub index: u64,
    pub zones: Vec<String>,
    head: Head,
    values: BTreeMap<Vec<u8>, Bytes>,
}

impl DocSnapshot {
    /// The changes that rebuild it from nothing, a value at a time (definitions, then
    /// each zone and its buckets; see [`layout::assemble`]).
    pub fn chunks<E: From<LayoutError>>(
        &self,
        each: impl FnMut(Vec<WireChange>) -> Result<(), E>,
    ) -> Result<(), E> {
        layout::assemble(
            &self.head,
            |key| self.values.get(key).map_or(&[][..], |value| &value[..]),
            each,
        )
    }
}

impl DocSnapshot {
    /// The changes from `older` (a snapshot of the same document, already applied) to
    /// this one; `None` when they hold different zones (see [`layout::diff`]).
    pub fn changes_since(
        &self,
        older: &DocSnapshot,
    ) -> Result<Option<Vec<WireChange>>, LayoutError> {
        layout::diff(
            &older.head,
            |key| older.values.get(key).map_or(&[][..], |value| &value[..]),
            &self.head,
            |key| self.values.get(key).map_or(&[][..], |value| &value[..]),
        )
    }
}

/// Where the reader leaves the newest whole snapshot for its consumer: one slot, so a
/// consumer that is still busy finds only the newest one next, and the reader keeps
/// nothing once it is taken.
#[derive(Debug, Default)]
pub struct Mailbox {
    slot: std::sync::Mutex<Option<DocSnapshot>>,
    filled: tokio::sync::Notify,
}

impl Mailbox {
    fn put(&self, snapshot: DocSnapshot) {
        *self.slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(snapshot);
        self.filled.notify_one();
    }

    /// The newest snapshot, once there is one.
    pub async fn take(&self) -> DocSnapshot {
        loop {
            if let Some(snapshot) = self.slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                return snapshot;
            }
            self.filled.notified().await;
        }
    }
}

/// What a reader reports (for status and metrics).
#[derive(Debug, Default)]
pub struct ReaderStats {
    /// Entries of another author than the ticket's, ignored.
    pub foreign_entries: AtomicU64,
    /// The index of the last snapshot handed on (0: none).
    pub head: AtomicU64,
    /// Peers connected in the document's swarm now.
    pub neighbors: AtomicUsize,
    /// Unix time of the last finished sync with a peer (0: none).
    pub last_sync_unix: AtomicU64,
    /// Heads that could not be read (another format, damaged).
    pub bad_heads: AtomicU64,
}

/// Follows the document of `ticket` until `shutdown`, leaving each newer whole snapshot
/// in `out` (which keeps only the newest: a slow consumer skips to it). Snapshots at or
/// below `after` are not handed on.
pub async fn follow(
    node: DocsNode,
    ticket: ExportTicket,
    extra_peers: Vec<EndpointAddr>,
    after: u64,
    out: Arc<Mailbox>,
    stats: Arc<ReaderStats>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let namespace = NamespaceId::from(&ticket.namespace);
    let author = AuthorId::from(&ticket.author);
    let mut peers: Vec<EndpointAddr> = ticket
        .peers
        .iter()
        .filter_map(|peer| peer.endpoint_addr())
        .collect();
    peers.extend(extra_peers);
    peers.retain(|peer| peer.id != node.addr().id);
    let doc = node
        .api()
        .import_namespace(Capability::Read(namespace))
        .await?;
    let mut events = doc.subscribe().await?;
    doc.start_sync(peers.clone()).await?;
    let mut resync = tokio::time::interval(RESYNC_INTERVAL);
    let mut handed_on = after;
    let mut bad_head: Option<Hash> = None;
    let mut settle: Option<tokio::time::Instant> = Some(tokio::time::Instant::now());
    loop {
        let settled = async {
            match settle {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = events.next() => match event {
                Some(Ok(event)) => {
                    note(&event, author, &stats);
                    settle.get_or_insert_with(|| tokio::time::Instant::now() + SETTLE);
                }
                Some(Err(error)) => tracing::debug!(%error, "document event stream error"),
                None => anyhow::bail!("the document's event stream ended"),
            },
            _ = resync.tick() => {
                if let Err(error) = doc.start_sync(peers.clone()).await {
                    tracing::debug!(%error, "sync with the document's peers failed; trying again");
                }
            }
            () = settled => {
                settle = None;
                match whole_document(&node, &doc, author, handed_on).await {
                    Ok(Some(snapshot)) => {
                        handed_on = snapshot.index;
                        stats.head.store(snapshot.index, Ordering::Relaxed);
                        out.put(snapshot);
                    }
                    Ok(None) => {}
                    Err(error) => {
                        // Counted and logged once per head: it stays the newest until
                        // another comes.
                        let head = doc.get_exact(author, HEAD_KEY, false).await.ok().flatten();
                        let head = head.map(|entry| entry.content_hash());
                        if head != bad_head {
                            bad_head = head;
                            stats.bad_heads.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(%error, "the export's head cannot be read; waiting for another");
                        }
                    }
                }
            }
        }
    }
}

/// Counts what an event says about the document's peers and authors.
fn note(event: &LiveEvent, author: AuthorId, stats: &ReaderStats) {
    match event {
        LiveEvent::InsertRemote { entry, from, .. } if entry.author() != author => {
            stats.foreign_entries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                peer = %from,
                author = %entry.author(),
                "an entry not signed by the cluster's author was ignored"
            );
        }
        LiveEvent::NeighborUp(_) => {
            stats.neighbors.fetch_add(1, Ordering::Relaxed);
        }
        LiveEvent::NeighborDown(_) => {
            let _ = stats
                .neighbors
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        LiveEvent::SyncFinished(_) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_secs());
            stats.last_sync_unix.store(now, Ordering::Relaxed);
        }
        _ => {}
    }
}

/// The document as of the author's head, if the head is newer than `after` and every
/// value it lists is here.
async fn whole_document(
    node: &DocsNode,
    doc: &iroh_docs::api::Doc,
    author: AuthorId,
    after: u64,
) -> anyhow::Result<Option<DocSnapshot>> {
    let Some(entry) = doc.get_exact(author, HEAD_KEY, false).await? else {
        return Ok(None);
    };
    if entry.content_len() > MAX_HEAD_BYTES as u64 {
        anyhow::bail!(
            "the head is {} bytes; at most {MAX_HEAD_BYTES}",
            entry.content_len()
        );
    }
    // The entry's timestamp is the head's index (the writer's invariant).
    if entry.timestamp() <= after {
        return Ok(None);
    }
    let Some(bytes) = blob(node, entry.content_hash()).await else {
        return Ok(None);
    };
    let head = layout::decode_head(&bytes)?;
    if head.index <= after {
        return Ok(None);
    }
    let mut values: BTreeMap<Vec<u8>, Bytes> = BTreeMap::new();
    for listed in &head.entries {
        if listed.len > MAX_VALUE_BYTES as u64 {
            anyhow::bail!(
                "{} is {} bytes; at most {MAX_VALUE_BYTES}",
                layout::describe_key(&listed.key),
                listed.len
            );
        }
        let Some(value) = blob(node, Hash::from_bytes(listed.hash)).await else {
            return Ok(None);
        };
        values.insert(listed.key.clone(), value);
    }
    Ok(Some(DocSnapshot {
        cluster_id: head.cluster_id.clone(),
        index: head.index,
        zones: head.zones.clone(),
        head,
        values,
    }))
}

/// A blob's bytes, if it is here whole.
async fn blob(node: &DocsNode, hash: Hash) -> Option<Bytes> {
    if !node.blobs.has(hash).await.unwrap_or(false) {
        return None;
    }
    node.blobs.get_bytes(hash).await.ok()
}
