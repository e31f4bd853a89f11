//! The iroh-docs exports on an appliance (`docs/iroh-docs.md`): with `[export] listen`,
//! the node runs an export endpoint and writes every export's document from its own
//! replica, after every applied batch, so any node serves every export.
//!
//! [`ExportTrigger`] is the commit observer: it only wakes the writer task, one permit
//! deep, so a burst of batches costs one write of the state after the last of them (the
//! full re-export a writer that fell behind needs, and never a queue). The task reads the
//! published view, which is the state after one index, and hands it to
//! [`outpost_export::Writer`].
//!
//! Each node also records its export endpoint in the replicated state ([`keep_recorded`]),
//! so the ticket any node gives names every node that serves the exports: a satellite
//! started from it still finds the document when the node that gave it is gone.
//!
//! **Invariant:** the writer only ever reads a published view (state and index together),
//! so the document it writes at an index is the state after that index.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use outpost_core::state::{Command, Export, ExportPeer};
use outpost_export::{DocsNode, ExportTicket, MAX_TICKET_PEERS, TicketPeer, Writer};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::node::NodeError;
use crate::store::{
    CommitObserver, NODE_KEY_FILE_NAME, StateEvent, Store, WriteError, load_or_create_node_key,
};

/// How long the writer waits after a failed write before it tries again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// How often a node checks that the state records its export endpoint as it is (a
/// snapshot or an operator may have changed it).
const RECORD_CHECK: Duration = Duration::from_secs(10);

/// How long a node waits to record its export endpoint again after the write failed (no
/// leader yet, or not yet a member).
const RECORD_RETRY: Duration = Duration::from_secs(2);

/// Wakes the export writer after every change of the state.
#[derive(Default)]
pub struct ExportTrigger {
    wake: Notify,
}

impl CommitObserver for ExportTrigger {
    fn observe(&self, _event: &StateEvent) {
        self.wake.notify_one();
    }
}

/// This node's export endpoint and what its writer did.
pub struct ExportService {
    node: DocsNode,
    cluster_id: String,
    /// Entries written (values and heads) since start.
    pub entries: AtomicU64,
    /// Keys that left a document since start.
    pub tombstones: AtomicU64,
    /// The index of the state last written into the documents.
    pub index: AtomicU64,
    /// Writes that failed (and were tried again).
    pub failures: AtomicU64,
}

impl ExportService {
    pub fn new(node: DocsNode, cluster_id: String) -> ExportService {
        ExportService {
            node,
            cluster_id,
            entries: AtomicU64::new(0),
            tombstones: AtomicU64::new(0),
            index: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    /// The read-only ticket of `export`: this node's export endpoint first, then those the
    /// other members recorded (at most [`MAX_TICKET_PEERS`] in all).
    pub fn ticket(&self, export: &Export, store: &Store) -> ExportTicket {
        let this = store.node_id();
        let members: Vec<u64> = store.members().iter().map(|member| member.id).collect();
        let zones = store.zones();
        let others = zones
            .export_peers()
            .filter(|(node, _)| *node != this && members.contains(node))
            .map(|(_, peer)| TicketPeer::from(peer));
        let peers = std::iter::once(TicketPeer::from_addr(&self.node.addr()))
            .chain(others)
            .take(MAX_TICKET_PEERS)
            .collect();
        outpost_export::ticket(export, &self.cluster_id, peers)
    }

    /// This node's export endpoint as the state records it.
    fn recorded(&self) -> Option<ExportPeer> {
        TicketPeer::from_addr(&self.node.addr()).to_recorded()
    }

    /// The export endpoint's id and address, as `ID@IP:PORT`.
    pub fn endpoint(&self) -> String {
        let addr = self.node.addr();
        let ip = addr.ip_addrs().next().map(ToString::to_string);
        format!("{}@{}", addr.id, ip.unwrap_or_default())
    }
}

/// The export endpoint on `[export] listen`, under the node key; `None` when it is unset.
pub async fn bind(config: &Config) -> Result<Option<DocsNode>, NodeError> {
    let Some(addr) = config.export_listen else {
        return Ok(None);
    };
    let key = load_or_create_node_key(&config.data_dir).map_err(|source| NodeError::NodeKey {
        path: config.data_dir.join(NODE_KEY_FILE_NAME),
        source,
    })?;
    Ok(Some(DocsNode::bind(key, addr).await?))
}

/// Starts writing the documents on `node`, until `shutdown`. Without a node, only takes
/// this node's endpoint out of the tickets, if an earlier start recorded one.
pub fn spawn(
    node: Option<DocsNode>,
    store: &Store,
    trigger: Arc<ExportTrigger>,
    (tracker, shutdown): (&TaskTracker, &CancellationToken),
) -> Option<Arc<ExportService>> {
    let Some(node) = node else {
        tracker.spawn(keep_recorded(store.clone(), None, shutdown.clone()));
        return None;
    };
    let service = Arc::new(ExportService::new(node, store.cluster_id().to_string()));
    tracker.spawn(keep_recorded(
        store.clone(),
        service.recorded(),
        shutdown.clone(),
    ));
    tracker.spawn(run(
        service.clone(),
        store.clone(),
        trigger,
        shutdown.clone(),
    ));
    Some(service)
}

/// Writes the documents after every change until `shutdown`, then closes the endpoint.
async fn run(
    service: Arc<ExportService>,
    store: Store,
    trigger: Arc<ExportTrigger>,
    shutdown: CancellationToken,
) {
    let mut writer = Writer::new(service.node.clone());
    // The state loaded at start is written before the first change comes.
    trigger.wake.notify_one();
    loop {
        tokio::select! {
            () = trigger.wake.notified() => {}
            () = shutdown.cancelled() => break,
        }
        let view = store.view();
        match writer
            .write(view.zones.clone(), store.cluster_id(), view.applied)
            .await
        {
            Ok(report) => {
                service
                    .entries
                    .fetch_add(report.entries as u64, Ordering::Relaxed);
                service
                    .tombstones
                    .fetch_add(report.tombstones as u64, Ordering::Relaxed);
                service.index.store(view.applied, Ordering::Relaxed);
                if report.entries > 0 || report.dropped > 0 {
                    tracing::debug!(index = view.applied, ?report, "exports written");
                }
            }
            Err(error) => {
                service.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %format!("{error:#}"), index = view.applied, "cannot write the exports; trying again");
                tokio::select! {
                    () = tokio::time::sleep(RETRY_AFTER) => trigger.wake.notify_one(),
                    () = shutdown.cancelled() => break,
                }
            }
        }
    }
    service.node.shutdown().await;
}

/// Keeps this node's export endpoint in the replicated state equal to `peer` (`None`: a
/// node without `[export] listen` removes the one it recorded before), checking every
/// [`RECORD_CHECK`] until `shutdown`.
async fn keep_recorded(store: Store, peer: Option<ExportPeer>, shutdown: CancellationToken) {
    let node_id = store.node_id();
    loop {
        let wait = if needs_record(&store, node_id, peer.as_ref()) {
            let command = Command::SetExportPeer {
                node_id,
                peer: peer.clone(),
            };
            tokio::select! {
                result = store.write(command) => match result {
                    Ok(written) => {
                        let endpoint = peer.as_ref().map(|peer| &peer.addrs);
                        tracing::info!(index = written.index, ?endpoint, "export endpoint recorded");
                        RECORD_CHECK
                    }
                    // Committed, or perhaps committed, but not applied here yet: look
                    // again once this node has caught up, rather than write it twice.
                    Err(error @ (WriteError::NotAppliedHere { .. } | WriteError::Timeout { .. })) => {
                        tracing::debug!(%error, "export endpoint perhaps recorded; checking later");
                        RECORD_CHECK
                    }
                    Err(error) => {
                        tracing::debug!(%error, "export endpoint not recorded yet; trying again");
                        RECORD_RETRY
                    }
                },
                () = shutdown.cancelled() => return,
            }
        } else {
            RECORD_CHECK
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// Whether the state's record of this node's export endpoint differs from `peer`, while
/// this node is a member (one being removed must not record itself again).
fn needs_record(store: &Store, node_id: u64, peer: Option<&ExportPeer>) -> bool {
    let zones = store.zones();
    let held = zones
        .export_peers()
        .find(|(node, _)| *node == node_id)
        .map(|(_, held)| held);
    held != peer && store.members().iter().any(|member| member.id == node_id)
}
