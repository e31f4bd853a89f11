//! `--docs TICKET`: the second sync path (`docs/iroh-docs.md`). The client joins the
//! export's iroh-docs document with a read capability, fetches it from the ticket's
//! peers and the `--docs-peer`s (other Lite clients on the LAN serve it too: every
//! reader relays), and installs each whole snapshot the reader hands on into the
//! replica, as a WebSocket snapshot is installed.
//!
//! **Invariant:** a snapshot is installed only when it is newer than the replica's
//! cursor for the same cluster, under the replica's lock (which a WebSocket session holds
//! while it lasts: the export waits for it), so the two paths never move the cursor back
//! and never interleave.
//! **Invariant:** only entries of the ticket's author are read (the reader's
//! invariant); others are counted in `status.json`'s `docs.foreign_entries`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use outpost_core::sync::{ChangeEntry, Changes, SnapshotChunk};
use outpost_export::{
    DocSnapshot, DocsNode, EndpointAddr, ExportTicket, Mailbox, PublicKey, ReaderStats, SecretKey,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::replica::{ReplicaStore, SnapshotStaging, StagedSnapshot};
use crate::status::StatusBoard;

/// The name of the docs endpoint's key in the data directory (hex, 0600): the client
/// keeps its endpoint id across restarts, so the `--docs-peer`s others give stay valid.
pub const KEY_FILE: &str = "docs.key";
/// Default address of the docs endpoint: every interface, a fixed port, so the peer
/// address other clients were given stays valid across restarts.
pub const DEFAULT_DOCS_LISTEN: &str = "0.0.0.0:7470";

/// How long the reader waits before it joins the document again after an error.
pub const FOLLOW_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// The validated `--docs`, `--docs-peer` and `--docs-listen`.
#[derive(Debug, Clone)]
pub struct DocsConfig {
    /// The export's ticket, with the peers of every `--docs` given.
    pub ticket: ExportTicket,
    /// More peers to fetch from (`--docs-peer ID@IP:PORT`).
    pub peers: Vec<EndpointAddr>,
    pub listen: SocketAddr,
}

#[derive(Debug, thiserror::Error)]
pub enum DocsConfigError {
    #[error("--docs: {0}")]
    Ticket(#[from] outpost_export::TicketError),
    #[error("--docs tickets name different exports ({0} and {1}): give tickets of one export only")]
    Mixed(String, String),
    #[error(
        "--docs-peer {value:?} is not a peer (use ENDPOINT_ID@IP:PORT, as `outpost-lite status` shows it)"
    )]
    Peer { value: String },
    #[error("--docs-peer or --docs-listen is given without --docs")]
    NoTicket,
    #[error("--docs-listen {value:?} is not an address (use IP:PORT, e.g. 0.0.0.0:7470)")]
    Listen { value: String },
}

/// Checks the docs flags; `None` when `--docs` is not given.
pub fn resolve(
    tickets: &[String],
    peers: &[String],
    listen: Option<&str>,
) -> Result<Option<DocsConfig>, DocsConfigError> {
    if tickets.is_empty() {
        if !peers.is_empty() || listen.is_some() {
            return Err(DocsConfigError::NoTicket);
        }
        return Ok(None);
    }
    let mut merged: Option<ExportTicket> = None;
    for text in tickets {
        let ticket: ExportTicket = text.parse()?;
        match &mut merged {
            None => merged = Some(ticket),
            Some(first) => {
                let same = first.namespace == ticket.namespace
                    && first.author == ticket.author
                    && first.cluster_id == ticket.cluster_id;
                if !same {
                    return Err(DocsConfigError::Mixed(first.export.clone(), ticket.export));
                }
                first.peers.extend(ticket.peers);
            }
        }
    }
    let ticket = merged.ok_or(DocsConfigError::NoTicket)?;
    let peers = peers
        .iter()
        .map(|text| {
            parse_peer(text).ok_or_else(|| DocsConfigError::Peer {
                value: text.clone(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let listen_text = listen.unwrap_or(DEFAULT_DOCS_LISTEN);
    let listen = listen_text.parse().map_err(|_| DocsConfigError::Listen {
        value: listen_text.to_string(),
    })?;
    Ok(Some(DocsConfig {
        ticket,
        peers,
        listen,
    }))
}

/// `ID@IP:PORT`.
fn parse_peer(text: &str) -> Option<EndpointAddr> {
    let (id, addr) = text.trim().split_once('@')?;
    let id: PublicKey = id.parse().ok()?;
    let addr: SocketAddr = addr.parse().ok()?;
    Some(EndpointAddr::new(id).with_ip_addr(addr))
}

/// Binds the docs endpoint and starts following the export: the reader, and the task
/// that installs what it hands on. Returns the endpoint's `ID@IP:PORT`.
pub async fn start(
    config: &DocsConfig,
    data_dir: &Path,
    replica: Arc<Mutex<ReplicaStore>>,
    board: Arc<StatusBoard>,
    (shutdown, tracker): (&CancellationToken, &TaskTracker),
) -> anyhow::Result<()> {
    let key = load_or_create_key(data_dir)?;
    let node = DocsNode::bind(key, config.listen).await?;
    let addr = node.addr();
    let endpoint = format!(
        "{}@{}",
        addr.id,
        addr.ip_addrs()
            .next()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    tracing::info!(export = %config.ticket.export, %endpoint, "following the export over iroh-docs");
    let stats = Arc::new(ReaderStats::default());
    board.docs(config.ticket.export.clone(), endpoint, stats.clone());
    let after = {
        let replica = replica.lock().await;
        replica
            .cursor()
            .filter(|cursor| cursor.cluster_id == config.ticket.cluster_id)
            .map_or(0, |cursor| cursor.index)
    };
    let mailbox = Arc::new(Mailbox::default());
    let (ticket, peers, out) = (config.ticket.clone(), config.peers.clone(), mailbox.clone());
    let follow_shutdown = shutdown.clone();
    tracker.spawn(async move {
        // The reader stops only with the client: an error (a failed first sync, the
        // document's events ending) is logged and the document joined again.
        loop {
            let followed = outpost_export::follow(
                node.clone(),
                ticket.clone(),
                peers.clone(),
                after,
                out.clone(),
                stats.clone(),
                follow_shutdown.clone(),
            )
            .await;
            if let Err(error) = followed {
                tracing::warn!(error = %format!("{error:#}"), "following the export failed; trying again in {FOLLOW_RETRY:?}");
            }
            tokio::select! {
                () = tokio::time::sleep(FOLLOW_RETRY) => {}
                () = follow_shutdown.cancelled() => break,
            }
        }
        node.shutdown().await;
    });
    tracker.spawn(install(replica, mailbox, board, shutdown.clone()));
    Ok(())
}

/// Installs each snapshot the reader hands on, until `shutdown`: as the changes from
/// the one installed last when the replica still stands there (only the buckets that
/// changed are read), whole otherwise.
async fn install(
    replica: Arc<Mutex<ReplicaStore>>,
    mailbox: Arc<Mailbox>,
    board: Arc<StatusBoard>,
    shutdown: CancellationToken,
) {
    // The snapshot the replica holds now, kept while nothing else moved its cursor.
    let mut installed: Option<DocSnapshot> = None;
    loop {
        let snapshot = tokio::select! {
            snapshot = mailbox.take() => snapshot,
            () = shutdown.cancelled() => return,
        };
        let mut replica = replica.lock().await;
        let current = replica
            .cursor()
            .filter(|cursor| cursor.cluster_id == snapshot.cluster_id)
            .map(|cursor| cursor.index);
        if current.is_some_and(|index| index >= snapshot.index) {
            continue;
        }
        // The replica still is the snapshot installed last: nothing else moved its cursor
        // or narrowed its zones since.
        let base = installed
            .take()
            .filter(|older| current == Some(older.index) && replica.scope() == older.zones);
        let index = snapshot.index;
        let incremental = base.is_some();
        let (mut result, mut snapshot) = apply(&mut replica, snapshot, base).await;
        if incremental
            && let Err(error) = &result
            && let Some(whole) = snapshot.take()
        {
            tracing::warn!(%error, index, "the export's changes do not apply; installing it whole");
            (result, snapshot) = apply(&mut replica, whole, None).await;
        }
        match result {
            Ok(how) => {
                tracing::info!(index, how, "export snapshot installed");
                board.docs_installed(replica.cursor().map(|c| c.index), replica.counts());
                installed = snapshot;
            }
            Err(error) => {
                tracing::warn!(%error, index, "export snapshot refused; the replica is kept");
            }
        }
    }
}

/// Applies `snapshot` to the replica: as its changes from `base` when there is one and
/// they hold the same zones, else whole. Says which, and gives the snapshot back (not
/// when its staging panicked).
async fn apply(
    replica: &mut ReplicaStore,
    snapshot: DocSnapshot,
    base: Option<DocSnapshot>,
) -> (Result<&'static str, String>, Option<DocSnapshot>) {
    let (cluster_id, index, zones) = (
        snapshot.cluster_id.clone(),
        snapshot.index,
        snapshot.zones.clone(),
    );
    let worked = tokio::task::spawn_blocking(move || {
        let changes = base.map(|base| snapshot.changes_since(&base));
        let work = match changes {
            Some(Ok(Some(changes))) => Ok(Work::Changes(changes)),
            Some(Err(error)) => Err(error.to_string()),
            None | Some(Ok(None)) => stage(&snapshot).map(|staged| Work::Whole(Box::new(staged))),
        };
        (work, snapshot)
    })
    .await;
    let Ok((work, snapshot)) = worked else {
        return (Err("staging the snapshot failed".to_string()), None);
    };
    let result = match work {
        Ok(Work::Changes(changes)) => {
            let frame = Changes {
                up_to: index,
                entries: vec![ChangeEntry { index, changes }],
            };
            replica
                .apply_changes(&cluster_id, frame)
                .await
                .map(|_| "as changes")
        }
        Ok(Work::Whole(staged)) => replica
            .install_snapshot(&cluster_id, *staged, &zones, index)
            .await
            .map(|()| "whole"),
        Err(error) => return (Err(error), None),
    };
    (result.map_err(|error| error.to_string()), Some(snapshot))
}

/// What a snapshot comes to: its changes from the one installed, or all of it, staged.
enum Work {
    Changes(Vec<outpost_core::sync::WireChange>),
    Whole(Box<StagedSnapshot>),
}

/// Stages the snapshot's changes a value at a time, as a WebSocket snapshot's chunks are.
fn stage(snapshot: &DocSnapshot) -> Result<StagedSnapshot, String> {
    let mut staging = SnapshotStaging::new(snapshot.index);
    snapshot
        .chunks(|changes| {
            staging
                .push_chunk(SnapshotChunk { changes })
                .map_err(|error| Staging(error.to_string()))
        })
        .map_err(|Staging(error)| error)?;
    staging
        .finish(snapshot.index)
        .map_err(|error| error.to_string())
}

/// Why staging a snapshot failed, as text (a value that does not decode, or a change
/// that does not fit).
struct Staging(String);

impl From<outpost_export::LayoutError> for Staging {
    fn from(error: outpost_export::LayoutError) -> Staging {
        Staging(error.to_string())
    }
}

/// The docs endpoint's key, created on first use.
fn load_or_create_key(data_dir: &Path) -> anyhow::Result<SecretKey> {
    let path = data_dir.join(KEY_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let bytes = decode_hex(text.trim()).ok_or_else(|| {
                anyhow::anyhow!(
                    "{} is not a key (64 hex digits); remove it to make a new one",
                    path.display()
                )
            })?;
            Ok(SecretKey::from_bytes(&bytes))
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|error| anyhow::anyhow!("no randomness for the docs key: {error}"))?;
            let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            write_private(&path, &hex)?;
            Ok(SecretKey::from_bytes(&bytes))
        }
        Err(error) => Err(anyhow::anyhow!("cannot read {}: {error}", path.display())),
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| anyhow::anyhow!("cannot write {}: {error}", path.display()))
}

fn decode_hex(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}
