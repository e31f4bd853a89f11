//! Honest sync status: what the client knows, the state derived from it, and the
//! `status.json` file that `outpost-lite status` reads.
//!
//! States: Disconnected → Connecting → Syncing → Synced → Stale.
//! **Invariant:** Synced only while connected, with no snapshot in progress, and the
//! stored cursor at or past the latest head the server announced (in `Welcome`,
//! `Heartbeat` or a `Changes` frame's `up_to`). Never after "the first entry".
//! **Invariant:** the state is derived from facts at the moment it is read
//! ([`derive_state`]), so Stale needs no timer of its own: a board read 15 s after the
//! last frame says Stale.

mod report;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_dns::plugin_runtime::PluginState;
use outpost_export::ReaderStats;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::Instant;

pub use report::{
    Digester, STATUS_FILE, STATUS_WRITE_INTERVAL, StatusError, is_running, read_status_file,
    render, spawn_writer, with_zone_names, write_status_file,
};

/// A connected session that has received no frame for this long is Stale. The server
/// sends a heartbeat every 5 s when idle, so this is three missed heartbeats.
pub const STALE_AFTER: Duration = Duration::from_secs(15);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    /// No session, between attempts or for good (see the `error`).
    Disconnected,
    /// Connecting, or waiting for `Welcome`.
    Connecting,
    /// Connected, receiving a snapshot or catching up to the announced head.
    Syncing,
    /// Connected and the cursor has reached the announced head.
    Synced,
    /// Connected, but nothing heard for [`STALE_AFTER`].
    Stale,
}

impl std::fmt::Display for SyncState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// The link to an appliance, as far as the session knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Disconnected,
    Connecting,
    /// `Welcome` received.
    Connected,
}

/// The facts the state is derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub link: Link,
    /// The stored cursor's index.
    pub cursor: Option<u64>,
    /// The latest head announced in this session (or persisted from an earlier one).
    pub head: Option<u64>,
    pub in_snapshot: bool,
    pub last_frame: Option<Instant>,
}

/// The state `facts` mean at `now`.
pub fn derive_state(facts: &Facts, now: Instant) -> SyncState {
    match facts.link {
        Link::Disconnected => SyncState::Disconnected,
        Link::Connecting => SyncState::Connecting,
        Link::Connected => {
            let silent = facts
                .last_frame
                .is_none_or(|last| now.saturating_duration_since(last) >= STALE_AFTER);
            if silent {
                SyncState::Stale
            } else if facts.in_snapshot {
                SyncState::Syncing
            } else {
                match (facts.cursor, facts.head) {
                    (Some(cursor), Some(head)) if cursor >= head => SyncState::Synced,
                    _ => SyncState::Syncing,
                }
            }
        }
    }
}

/// What `status.json` holds. Field names are what scripts read: add, never rename.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusFile {
    pub state: SyncState,
    /// The appliance of the current (or last) session.
    pub appliance: Option<String>,
    pub cursor: Option<u64>,
    pub head: Option<u64>,
    /// `head - cursor`, when both are known.
    pub lag: Option<u64>,
    pub last_contact_unix: Option<u64>,
    pub zones: usize,
    pub records: usize,
    /// SHA-256 of the replica's content ([`outpost_core::digest`]), to compare replicas;
    /// `None` for a moment after a change (it is recomputed at most once a second).
    pub digest: Option<String>,
    /// The bound DNS address (UDP and TCP).
    pub dns: String,
    /// Why the last session ended or was refused; `None` once a session is welcomed.
    pub error: Option<String>,
    pub pid: u32,
    pub updated_unix: u64,
    /// The plugin definitions in the replica and where each stands here.
    #[serde(default)]
    pub plugins: Vec<PluginStatus>,
    /// When the replica last stored a snapshot or a batch of changes (this run).
    #[serde(default)]
    pub last_change_unix: Option<u64>,
    /// The bound address of the status page (`http://ADDR/`), when it is on.
    #[serde(default)]
    pub page: Option<String>,
    /// The origins of the replica's zones.
    #[serde(default)]
    pub zone_names: Vec<String>,
    /// The path that brought the last change stored: `sync` (the WebSocket) or `docs`
    /// (the export followed with `--docs`).
    #[serde(default)]
    pub last_change_path: Option<String>,
    /// The export followed with `--docs`, when it is.
    #[serde(default)]
    pub docs: Option<DocsStatus>,
}

/// The `--docs` part of `status.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocsStatus {
    pub export: String,
    /// This client's docs endpoint, `ENDPOINT_ID@IP:PORT`: what other clients pass as
    /// `--docs-peer` to fetch the export from this one.
    pub endpoint: String,
    /// `Synced` (a peer synced within the last 15 s and a snapshot was taken), `Stale`
    /// (a snapshot was taken, no peer since), or `Waiting` (none yet).
    pub state: String,
    /// The index of the last whole snapshot the document gave (0: none yet).
    pub head: u64,
    /// Peers in the document's swarm now.
    pub neighbors: usize,
    pub last_sync_unix: Option<u64>,
    /// Entries not signed by the cluster's author, ignored.
    pub foreign_entries: u64,
    /// Heads of the cluster's author that could not be read (another format, damaged),
    /// each counted once; the replica stays as it was.
    #[serde(default)]
    pub bad_heads: u64,
}

/// One plugin in `status.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginStatus {
    pub name: String,
    pub hook: String,
    /// The cluster's version of the definition.
    pub version: u64,
    /// `running`, `disabled`, `stopped: <why>`, `failed: <why>` or `loading`.
    pub state: PluginState,
}

/// The live facts, shared by the session task and the status writer.
pub struct StatusBoard {
    inner: Mutex<Inner>,
    /// Wakes the writer on every change of facts.
    changed: Notify,
}

#[derive(Clone, Debug)]
struct Inner {
    facts: Facts,
    appliance: Option<String>,
    last_contact_unix: Option<u64>,
    zones: usize,
    records: usize,
    error: Option<String>,
    dns: SocketAddr,
    plugins: Vec<PluginStatus>,
    last_change_unix: Option<u64>,
    page: Option<SocketAddr>,
    last_change_path: Option<&'static str>,
    docs: Option<DocsFacts>,
}

/// What the docs reader reports, read when the file is written.
#[derive(Clone, Debug)]
struct DocsFacts {
    export: String,
    endpoint: String,
    stats: Arc<ReaderStats>,
}

/// A peer must have synced within this for the docs path to be `Synced`.
const DOCS_FRESH_SECS: u64 = 15;

impl DocsFacts {
    fn status(&self, now_unix: u64) -> DocsStatus {
        let head = self.stats.head.load(Ordering::Relaxed);
        let last_sync = self.stats.last_sync_unix.load(Ordering::Relaxed);
        let state = if head == 0 {
            "Waiting"
        } else if last_sync > 0 && now_unix.saturating_sub(last_sync) <= DOCS_FRESH_SECS {
            "Synced"
        } else {
            "Stale"
        };
        DocsStatus {
            export: self.export.clone(),
            endpoint: self.endpoint.clone(),
            state: state.to_string(),
            head,
            neighbors: self.stats.neighbors.load(Ordering::Relaxed),
            last_sync_unix: (last_sync > 0).then_some(last_sync),
            foreign_entries: self.stats.foreign_entries.load(Ordering::Relaxed),
            bad_heads: self.stats.bad_heads.load(Ordering::Relaxed),
        }
    }
}

impl StatusBoard {
    /// The board at start: disconnected, with what the stored replica holds.
    pub fn new(
        dns: SocketAddr,
        cursor: Option<u64>,
        head: Option<u64>,
        counts: (usize, usize),
    ) -> Self {
        Self {
            inner: Mutex::new(Inner {
                facts: Facts {
                    link: Link::Disconnected,
                    cursor,
                    head,
                    in_snapshot: false,
                    last_frame: None,
                },
                appliance: None,
                last_contact_unix: None,
                zones: counts.0,
                records: counts.1,
                error: None,
                dns,
                plugins: Vec::new(),
                last_change_unix: None,
                page: None,
                last_change_path: None,
                docs: None,
            }),
            changed: Notify::new(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut Inner)) {
        // A poisoned lock only means a panic elsewhere; the facts are still usable.
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        change(&mut inner);
        drop(inner);
        self.changed.notify_one();
    }

    /// The status page is served on `page`.
    pub fn page(&self, page: SocketAddr) {
        self.update(|inner| inner.page = Some(page));
    }

    pub fn connecting(&self, appliance: &str) {
        self.update(|inner| {
            inner.facts.link = Link::Connecting;
            inner.facts.in_snapshot = false;
            inner.appliance = Some(appliance.to_string());
        });
    }

    /// `Welcome` received: connected; a snapshot follows when `snapshot` is set.
    pub fn welcomed(&self, head: u64, snapshot: bool) {
        self.update(|inner| {
            inner.facts.link = Link::Connected;
            inner.facts.head = Some(head);
            inner.facts.in_snapshot = snapshot;
            inner.error = None;
            touch(inner);
        });
    }

    /// Any frame received.
    pub fn heard(&self) {
        self.update(touch);
    }

    /// A head announced by `Heartbeat` or `Changes.up_to`.
    pub fn announced(&self, head: u64) {
        self.update(|inner| {
            inner.facts.head = Some(inner.facts.head.map_or(head, |known| known.max(head)));
            touch(inner);
        });
    }

    /// A commit: the stored cursor and the replica's size; ends a snapshot.
    pub fn committed(&self, cursor: Option<u64>, counts: (usize, usize)) {
        self.update(|inner| {
            inner.facts.cursor = cursor;
            inner.facts.in_snapshot = false;
            inner.zones = counts.0;
            inner.records = counts.1;
            inner.last_change_unix = Some(unix_now());
            inner.last_change_path = Some("sync");
        });
    }

    /// The client follows `export` over iroh-docs, from `endpoint`.
    pub fn docs(&self, export: String, endpoint: String, stats: Arc<ReaderStats>) {
        self.update(|inner| {
            inner.docs = Some(DocsFacts {
                export,
                endpoint,
                stats,
            });
        });
    }

    /// A snapshot from the export was stored: the cursor and the replica's size.
    pub fn docs_installed(&self, cursor: Option<u64>, counts: (usize, usize)) {
        self.update(|inner| {
            inner.facts.cursor = cursor;
            inner.zones = counts.0;
            inner.records = counts.1;
            inner.last_change_unix = Some(unix_now());
            inner.last_change_path = Some("docs");
        });
    }

    /// The session ended; `error` says why (kept until the next `Welcome`).
    pub fn disconnected(&self, error: Option<String>) {
        self.update(|inner| {
            inner.facts.link = Link::Disconnected;
            inner.facts.in_snapshot = false;
            if error.is_some() {
                inner.error = error;
            }
        });
    }

    /// The state right now.
    /// The plugins after a reload.
    pub fn plugins(&self, plugins: Vec<PluginStatus>) {
        self.update(|inner| inner.plugins = plugins);
    }

    pub fn state(&self) -> SyncState {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        derive_state(&inner.facts, Instant::now())
    }

    /// The file's content right now (the digest is filled in by the writer).
    pub fn to_file(&self, digest: Option<String>) -> StatusFile {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let state = derive_state(&inner.facts, Instant::now());
        let lag = match (inner.facts.cursor, inner.facts.head) {
            (Some(cursor), Some(head)) => Some(head.saturating_sub(cursor)),
            _ => None,
        };
        StatusFile {
            state,
            appliance: inner.appliance,
            cursor: inner.facts.cursor,
            head: inner.facts.head,
            lag,
            last_contact_unix: inner.last_contact_unix,
            zones: inner.zones,
            records: inner.records,
            digest,
            dns: inner.dns.to_string(),
            error: inner.error,
            pid: std::process::id(),
            updated_unix: unix_now(),
            plugins: inner.plugins,
            last_change_unix: inner.last_change_unix,
            page: inner.page.map(|page| page.to_string()),
            zone_names: Vec::new(),
            last_change_path: inner.last_change_path.map(str::to_string),
            docs: inner.docs.map(|docs| docs.status(unix_now())),
        }
    }

    /// Resolves when the facts changed since the last call.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

fn touch(inner: &mut Inner) {
    inner.facts.last_frame = Some(Instant::now());
    inner.last_contact_unix = Some(unix_now());
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
