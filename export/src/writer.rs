//! The cluster's side: every node writes every export's document from its own replica.
//!
//! [`Writer::write`] takes the state after one applied index and brings each export's
//! document to it: the values whose bytes changed since the last write, tombstones for
//! keys that left, then the head. Every entry is signed by the export's author with the
//! index as its timestamp, so two nodes that write the same index write the same entry,
//! and a later index wins everywhere (iroh-docs keeps, per key, the entry with the
//! greatest timestamp).
//!
//! **Invariant:** an entry with timestamp `i` holds the value of its key in the state
//! after `i` (`layout`'s invariant), so it never matters which node's entry a peer keeps.
//! Entries are inserted through iroh-docs' remote-insert path, the one that takes a
//! timestamp; an entry already there at the same or a later index is left as it is.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;
use iroh::{EndpointAddr, PublicKey};
use iroh_docs::engine::LiveEvent;
use tokio_util::task::AbortOnDropHandle;

use iroh_blobs::Hash;
use iroh_docs::sync::{InsertError, Record, SignedEntry};
use iroh_docs::{Author, Capability, ContentStatus, NamespaceId, NamespaceSecret};
use outpost_core::state::{Export, ReplicatedState};

use crate::layout::{self, HEAD_KEY};
use crate::node::DocsNode;
use crate::ticket::{ExportTicket, TicketPeer};

/// Documents waiting for the encoder thread: one, since the writer awaits each before
/// it sends the next.
const ENCODER_QUEUE: usize = 1;
/// Neighbors a write is pushed to at once (the others poll, or hear of it from those).
pub const MAX_PUSH_PEERS: usize = 16;
/// When a write is pushed to the neighbors a second time.
pub const PUSH_AGAIN_AFTER: std::time::Duration = std::time::Duration::from_millis(250);
/// Neighbors remembered per document (gossip keeps only a few active ones anyway).
const MAX_NEIGHBORS: usize = 64;

/// What one [`Writer::write`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WriteReport {
    /// Entries written (values and heads).
    pub entries: usize,
    /// Keys that left a document.
    pub tombstones: usize,
    /// Documents dropped (their export was removed).
    pub dropped: usize,
}

/// The documents this node writes, with what it last wrote in each.
pub struct Writer {
    node: DocsNode,
    documents: BTreeMap<String, Written>,
    encoder: Encoder,
}

/// One thread of its own that encodes documents: CPU work off the runtime's threads, and
/// always on the same thread, so the allocator reuses the memory one large export's
/// encoding took instead of leaving it in the arena of each pool thread it ran on.
struct Encoder {
    jobs: std::sync::mpsc::SyncSender<Job>,
}

type Job = (
    Arc<ReplicatedState>,
    Export,
    String,
    u64,
    tokio::sync::oneshot::Sender<layout::Document>,
);

impl Encoder {
    fn start() -> Encoder {
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(ENCODER_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("export-encoder".to_string())
            .spawn(move || {
                while let Ok((state, export, cluster_id, index, reply)) = queue.recv() {
                    let _ = reply.send(layout::document(&state, &export, &cluster_id, index));
                }
            });
        if let Err(error) = spawned {
            tracing::error!(%error, "cannot start the export encoder thread; exports are not written");
        }
        Encoder { jobs }
    }

    async fn document(
        &self,
        state: Arc<ReplicatedState>,
        export: Export,
        cluster_id: String,
        index: u64,
    ) -> anyhow::Result<layout::Document> {
        let (reply, document) = tokio::sync::oneshot::channel();
        self.jobs
            .send((state, export, cluster_id, index, reply))
            .map_err(|_| anyhow::anyhow!("the export encoder thread is gone"))?;
        Ok(document.await?)
    }
}

struct Written {
    doc: iroh_docs::api::Doc,
    /// The document's gossip neighbors (readers that joined it through this node),
    /// kept by a task that drains the document's events while the document is open.
    neighbors: Arc<Mutex<BTreeSet<PublicKey>>>,
    _events: AbortOnDropHandle<()>,
    id: NamespaceId,
    namespace: NamespaceSecret,
    author: Author,
    /// Each key's hash as last written.
    values: BTreeMap<Vec<u8>, Hash>,
    /// The index of the last head written.
    index: u64,
}

impl Writer {
    pub fn new(node: DocsNode) -> Writer {
        Writer {
            node,
            documents: BTreeMap::new(),
            encoder: Encoder::start(),
        }
    }

    /// Brings every export's document to `state`, the state after `index` of cluster
    /// `cluster_id`, and drops the documents of exports that are gone.
    pub async fn write(
        &mut self,
        state: Arc<ReplicatedState>,
        cluster_id: &str,
        index: u64,
    ) -> anyhow::Result<WriteReport> {
        let mut report = WriteReport::default();
        // Gone: removed, or removed and made again under the same name (new secrets).
        let gone: Vec<String> = self
            .documents
            .iter()
            .filter(|(name, written)| {
                state.export(name).is_none_or(|export| {
                    NamespaceSecret::from_bytes(&export.namespace_secret).id() != written.id
                })
            })
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(written) = self.documents.get(&name) {
                // Forgotten only once dropped, so a failure is tried again.
                self.node.api().drop_doc(written.id).await?;
                self.documents.remove(&name);
                tracing::info!(export = %name, "export removed: its document is no longer served");
                report.dropped += 1;
            }
        }
        let exports: Vec<Export> = state.exports().cloned().collect();
        for export in &exports {
            let step = self
                .write_export(state.clone(), export, cluster_id, index)
                .await?;
            report.entries += step.entries;
            report.tombstones += step.tombstones;
        }
        Ok(report)
    }

    async fn write_export(
        &mut self,
        state: Arc<ReplicatedState>,
        export: &Export,
        cluster_id: &str,
        index: u64,
    ) -> anyhow::Result<WriteReport> {
        if !self.documents.contains_key(&export.name) {
            let written = self.open(export).await?;
            self.documents.insert(export.name.clone(), written);
        }
        let written = self
            .documents
            .get_mut(&export.name)
            .expect("inserted above");
        if written.index >= index {
            return Ok(WriteReport::default());
        }
        let document = self
            .encoder
            .document(state, export.clone(), cluster_id.to_string(), index)
            .await?;
        let mut report = WriteReport::default();
        for (key, value) in &document.values {
            let hash = Hash::new(value);
            // Skipped only when the document's entry (ours, or another node's at a later
            // index) still holds this value: a value that came back after another node
            // wrote a different one must be written again, or the head would list a hash
            // no entry refers to, which no reader could fetch.
            if written.values.get(key) == Some(&hash) && written.holds(key, hash).await {
                continue;
            }
            insert(&self.node, written, key, value.clone(), index).await?;
            written.values.insert(key.clone(), hash);
            report.entries += 1;
        }
        let left: Vec<Vec<u8>> = written
            .values
            .keys()
            .filter(|key| !document.values.contains_key(*key))
            .cloned()
            .collect();
        for key in left {
            let entry = SignedEntry::from_parts(
                &written.namespace,
                &written.author,
                key.clone(),
                Record::empty(index),
            );
            put(&self.node, written.id, entry).await?;
            written.values.remove(&key);
            report.tombstones += 1;
        }
        let head = layout::encode_head(&document.head);
        insert(&self.node, written, HEAD_KEY, head, index).await?;
        written.index = index;
        report.entries += 1;
        written.push().await;
        Ok(report)
    }

    /// Opens an export's document for writing, with sync on so peers can fetch it.
    async fn open(&self, export: &Export) -> anyhow::Result<Written> {
        let namespace = NamespaceSecret::from_bytes(&export.namespace_secret);
        let doc = self
            .node
            .api()
            .import_namespace(Capability::Write(namespace.clone()))
            .await?;
        doc.start_sync(Vec::new()).await?;
        let neighbors = Arc::new(Mutex::new(BTreeSet::new()));
        let events = doc.subscribe().await?;
        let events =
            AbortOnDropHandle::new(tokio::spawn(keep_neighbors(events, neighbors.clone())));
        Ok(Written {
            doc,
            neighbors,
            _events: events,
            id: namespace.id(),
            namespace,
            author: Author::from_bytes(&export.author_secret),
            values: BTreeMap::new(),
            index: 0,
        })
    }

    /// The read-only ticket of `export`, naming this node as its peer.
    pub fn ticket(&self, export: &Export, cluster_id: &str) -> ExportTicket {
        ticket(
            export,
            cluster_id,
            vec![TicketPeer::from_addr(&self.node.addr())],
        )
    }
}

/// The read-only ticket of `export` with `peers` to fetch it from.
pub fn ticket(export: &Export, cluster_id: &str, peers: Vec<TicketPeer>) -> ExportTicket {
    ExportTicket {
        cluster_id: cluster_id.to_string(),
        export: export.name.clone(),
        namespace: *NamespaceSecret::from_bytes(&export.namespace_secret)
            .id()
            .as_bytes(),
        author: *Author::from_bytes(&export.author_secret).id().as_bytes(),
        peers,
    }
}

impl Written {
    /// Whether the document's entry of our author for `key` holds `hash` now.
    async fn holds(&self, key: &[u8], hash: Hash) -> bool {
        match self.doc.get_exact(self.author.id(), key, false).await {
            Ok(Some(entry)) => entry.content_hash() == hash,
            _ => false,
        }
    }

    /// Syncs with the document's neighbors (at most [`MAX_PUSH_PEERS`]) now, and once
    /// more [`PUSH_AGAIN_AFTER`] later, so they take what was just written at once instead
    /// of at their next poll (a push that meets a sync already running with that peer is
    /// skipped by iroh-docs: the second one covers it); they tell their own neighbors in
    /// turn (iroh-docs' sync reports).
    async fn push(&self) {
        let peers: Vec<EndpointAddr> = lock(&self.neighbors)
            .iter()
            .take(MAX_PUSH_PEERS)
            .map(|id| EndpointAddr::new(*id))
            .collect();
        if peers.is_empty() {
            return;
        }
        if let Err(error) = self.doc.start_sync(peers.clone()).await {
            tracing::debug!(%error, "cannot push the export to its neighbors; they poll");
        }
        let doc = self.doc.clone();
        tokio::spawn(async move {
            tokio::time::sleep(PUSH_AGAIN_AFTER).await;
            let _ = doc.start_sync(peers).await;
        });
    }
}

/// Keeps `neighbors` in step with the document's gossip neighbors until the events end.
async fn keep_neighbors(
    mut events: impl futures_util::Stream<Item = anyhow::Result<LiveEvent>> + Unpin,
    neighbors: Arc<Mutex<BTreeSet<PublicKey>>>,
) {
    while let Some(event) = events.next().await {
        match event {
            Ok(LiveEvent::NeighborUp(peer)) => {
                let mut neighbors = lock(&neighbors);
                if neighbors.len() < MAX_NEIGHBORS {
                    neighbors.insert(peer);
                }
            }
            Ok(LiveEvent::NeighborDown(peer)) => {
                lock(&neighbors).remove(&peer);
            }
            _ => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stores `value` as a blob and signs the entry of `key` pointing at it.
async fn insert(
    node: &DocsNode,
    written: &Written,
    key: &[u8],
    value: Vec<u8>,
    index: u64,
) -> anyhow::Result<()> {
    let len = value.len() as u64;
    // The temporary tag keeps the blob until the entry refers to it.
    let tag = node.blobs.add_bytes(value).temp_tag().await?;
    let record = Record::new(tag.hash(), len, index);
    let entry = SignedEntry::from_parts(&written.namespace, &written.author, key, record);
    put(node, written.id, entry).await?;
    drop(tag);
    Ok(())
}

/// Inserts a signed entry; one already there at the same or a later index stays.
async fn put(node: &DocsNode, id: NamespaceId, entry: SignedEntry) -> anyhow::Result<()> {
    let from = *node.addr().id.as_bytes();
    match node
        .sync
        .insert_remote(id, entry, from, ContentStatus::Complete)
        .await
    {
        Err(error)
            if matches!(
                error.downcast_ref::<InsertError>(),
                Some(InsertError::NewerEntryExists)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}
