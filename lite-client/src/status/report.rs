//! `status.json`: written by the running client, read by `outpost-lite status`.
//!
//! **Invariant:** the file is replaced atomically (write a temporary file, rename), so
//! a reader sees a whole old file or a whole new one.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use outpost_core::state::ReplicatedState;
use outpost_replica::View;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{StatusBoard, StatusFile, SyncState, unix_now};

/// The status file in the data directory.
pub const STATUS_FILE: &str = "status.json";

/// The file is rewritten at least this often even when nothing happens, so a derived
/// state (Stale) and `updated_unix` stay current.
pub const STATUS_WRITE_INTERVAL: Duration = Duration::from_secs(1);

/// Least time between two writes: a burst of frames makes one write, not hundreds.
const MIN_WRITE_GAP: Duration = Duration::from_millis(100);

/// Least time between two digests of a changing replica (hashing 100,000 records takes
/// tens of milliseconds). Meanwhile the file says `"digest": null`; it catches up
/// within this after the last change.
const MIN_DIGEST_GAP: Duration = Duration::from_secs(1);

/// Without `/proc`, a status file not rewritten for this long means the client is gone.
const NOT_RUNNING_AFTER_SECS: u64 = 10;

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no status file at {path}: outpost-lite has not run with this --data-dir")]
    Missing { path: PathBuf },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a status file: {reason}")]
    Parse {
        path: PathBuf,
        #[source]
        reason: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Keeps `status.json` current until `shutdown`: on every change of the board (at most
/// every [`MIN_WRITE_GAP`]) and every [`STATUS_WRITE_INTERVAL`].
pub fn spawn_writer(
    board: Arc<StatusBoard>,
    data_dir: PathBuf,
    view: Arc<ArcSwap<View>>,
    mut digester: Digester,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    tracker.spawn(async move {
        loop {
            tokio::select! {
                () = board.changed() => {}
                () = tokio::time::sleep(STATUS_WRITE_INTERVAL) => {}
                () = shutdown.cancelled() => return,
            }
            let digest = digester.digest(&view, false).await;
            let status = with_zone_names(board.to_file(digest), &view);
            if let Err(error) = write_status_file(&data_dir, &status).await {
                tracing::warn!(%error, "status file not written");
            }
            tokio::time::sleep(MIN_WRITE_GAP).await;
        }
    });
}

/// `status` with the origins of the replica's zones in `view`.
pub fn with_zone_names(mut status: StatusFile, view: &ArcSwap<View>) -> StatusFile {
    status.zone_names = view
        .load()
        .zones
        .iter()
        .map(|zone| zone.origin().to_ascii())
        .collect();
    status
}

/// Remembers the last digest and the replica it was computed for.
#[derive(Default)]
pub struct Digester {
    of: Option<Arc<ReplicatedState>>,
    at: Option<Instant>,
    digest: String,
}

impl Digester {
    /// The digest of the current replica, recomputed when it changed, but at most every
    /// [`MIN_DIGEST_GAP`] unless `force`. `None` while the replica has changed since
    /// the last digest (a file never shows a digest of a replica it does not have).
    pub async fn digest(&mut self, view: &ArcSwap<View>, force: bool) -> Option<String> {
        let current = Arc::clone(&view.load().zones);
        if self.of.as_ref().is_some_and(|of| Arc::ptr_eq(of, &current)) {
            return Some(self.digest.clone());
        }
        if self.at.is_some_and(|at| at.elapsed() < MIN_DIGEST_GAP) && !force {
            return None;
        }
        let of = Arc::clone(&current);
        let digest = tokio::task::spawn_blocking(move || outpost_core::digest::digest(&current))
            .await
            .ok()?;
        self.digest = digest.clone();
        self.of = Some(of);
        self.at = Some(Instant::now());
        Some(digest)
    }
}

/// Replaces `<data_dir>/status.json` atomically.
pub async fn write_status_file(data_dir: &Path, status: &StatusFile) -> Result<(), StatusError> {
    let path = data_dir.join(STATUS_FILE);
    let temporary = data_dir.join(format!("{STATUS_FILE}.tmp"));
    let mut body = serde_json::to_string(status).map_err(|e| StatusError::Write {
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    body.push('\n');
    let result = async {
        tokio::fs::write(&temporary, body).await?;
        tokio::fs::rename(&temporary, &path).await
    }
    .await;
    result.map_err(|source| StatusError::Write { path, source })
}

pub fn read_status_file(data_dir: &Path) -> Result<StatusFile, StatusError> {
    let path = data_dir.join(STATUS_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StatusError::Missing { path });
        }
        Err(source) => return Err(StatusError::Read { path, source }),
    };
    serde_json::from_str(&text).map_err(|reason| StatusError::Parse { path, reason })
}

/// Whether the process that wrote `status` still runs: its pid is a live (not zombie)
/// `outpost-lite` (checked in `/proc`), or, without `/proc`, the file is fresh.
pub fn is_running(status: &StatusFile) -> bool {
    if Path::new("/proc/self").exists() {
        // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, STATE follows the
        // last ')'.
        std::fs::read_to_string(format!("/proc/{}/stat", status.pid)).is_ok_and(|stat| {
            let Some((head, tail)) = stat.rsplit_once(')') else {
                return false;
            };
            let comm = head.split_once('(').map_or("", |(_, comm)| comm);
            let state = tail.trim_start().chars().next().unwrap_or('X');
            comm.starts_with("outpost-lite") && !matches!(state, 'Z' | 'X' | 'x')
        })
    } else {
        unix_now().saturating_sub(status.updated_unix) < NOT_RUNNING_AFTER_SECS
    }
}

/// The readable block `outpost-lite status` prints.
pub fn render(status: &StatusFile, running: bool, now_unix: u64) -> String {
    let mut out = String::new();
    let state = if running {
        status.state.to_string()
    } else {
        format!("not running (pid {} is gone)", status.pid)
    };
    let _ = writeln!(out, "outpost-lite: {state}");
    let _ = writeln!(
        out,
        "  appliance:     {}",
        status.appliance.as_deref().unwrap_or("none yet")
    );
    let number = |value: Option<u64>| value.map_or_else(|| "none".to_string(), |v| v.to_string());
    let _ = writeln!(
        out,
        "  cursor:        {} (head {}, lag {})",
        number(status.cursor),
        number(status.head),
        number(status.lag)
    );
    let contact = match status.last_contact_unix {
        Some(at) => format!("{} s ago", now_unix.saturating_sub(at)),
        None => "never (this run)".to_string(),
    };
    let _ = writeln!(out, "  last contact:  {contact}");
    if let Some(at) = status.last_change_unix {
        let path = status.last_change_path.as_deref().unwrap_or("sync");
        let _ = writeln!(
            out,
            "  last change:   {} s ago (over {path})",
            now_unix.saturating_sub(at)
        );
    }
    if let Some(docs) = &status.docs {
        let _ = writeln!(
            out,
            "  export:        {} over iroh-docs: {} (head {}, {} peers, {} foreign entries ignored)",
            docs.export, docs.state, docs.head, docs.neighbors, docs.foreign_entries
        );
        let _ = writeln!(out, "  docs endpoint: {}", docs.endpoint);
    }
    let _ = writeln!(
        out,
        "  replica:       {} zones, {} records",
        status.zones, status.records
    );
    let _ = writeln!(out, "  dns:           {}", status.dns);
    if let Some(page) = &status.page {
        let _ = writeln!(out, "  page:          http://{page}/");
    }
    let _ = writeln!(
        out,
        "  digest:        {}",
        status.digest.as_deref().unwrap_or("(being computed)")
    );
    for plugin in &status.plugins {
        let _ = writeln!(
            out,
            "  plugin:        {} ({}, version {}): {}",
            plugin.name, plugin.hook, plugin.version, plugin.state
        );
    }
    if let Some(error) = &status.error {
        let _ = writeln!(out, "  error:         {error}");
    }
    if running && status.state != SyncState::Synced {
        let _ = writeln!(
            out,
            "  (answers come from the local replica in every state)"
        );
    }
    out
}
