//! Record sources (`[[sources]]`, `docs/sources.md`): this node reads each configured file
//! every [`SOURCE_POLL`] and, when the names it gives changed (a host added, a lease
//! expired), proposes the source's whole set through Raft (`Command::SyncSource`), like
//! any write. The node that has the file in its config is the one that feeds it.
//!
//! A file that cannot be read leaves the records as they are (logged): a DHCP server
//! rewriting its file, or a disk hiccup, never empties a zone.

mod parse;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{Name, RData, Record};
use outpost_core::state::Command;
use outpost_core::wire::encode_records;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::store::{Store, WriteError};

/// How often each source's file is read.
pub const SOURCE_POLL: Duration = Duration::from_secs(2);
/// Largest file a source reads; a larger one is not read (logged), its records stay.
pub const MAX_SOURCE_FILE_BYTES: u64 = 16 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Hosts,
    Dnsmasq,
    Kea,
}

/// One `[[sources]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub path: PathBuf,
    pub zone: Name,
    pub ttl: u32,
    pub reverse: bool,
}

/// The sources in force, swapped on a reload.
pub struct SourceSet {
    list: ArcSwap<Vec<SourceConfig>>,
    changed: Notify,
}

impl SourceSet {
    pub fn new(list: Vec<SourceConfig>) -> SourceSet {
        SourceSet {
            list: ArcSwap::from_pointee(list),
            changed: Notify::new(),
        }
    }

    pub fn set(&self, list: Vec<SourceConfig>) {
        self.list.store(Arc::new(list));
        self.changed.notify_one();
    }
}

/// Reads the sources' files until `shutdown`, proposing each source's set when it
/// changed.
pub async fn run(store: Store, sources: Arc<SourceSet>, shutdown: CancellationToken) {
    // The set last written for each source (its encoded records).
    let mut written: HashMap<String, Vec<u8>> = HashMap::new();
    loop {
        let list = sources.list.load_full();
        for source in list.iter() {
            let records = match read(source, now_unix()) {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(source = %source.name, path = %source.path.display(), %error, "cannot read the record source; its records stay");
                    continue;
                }
            };
            if written.get(&source.name) == Some(&records) {
                continue;
            }
            let command = Command::SyncSource {
                name: source.name.clone(),
                records: records.clone(),
            };
            let write = tokio::select! {
                write = store.write(command) => write,
                () = shutdown.cancelled() => return,
            };
            match write {
                Ok(written_now) => {
                    if !written_now.changes.is_empty() {
                        tracing::info!(source = %source.name, index = written_now.index, "record source changed");
                    }
                    written.insert(source.name.clone(), records);
                }
                // Refused by the model, or too large for one write: the same set would be
                // again, so it waits for the file to change.
                Err(error @ (WriteError::Rejected(_) | WriteError::TooLarge { .. })) => {
                    tracing::warn!(source = %source.name, %error, "the record source's records were refused; waiting for the file to change");
                    written.insert(source.name.clone(), records);
                }
                Err(error) => {
                    tracing::warn!(source = %source.name, %error, "cannot write the record source's records; trying again")
                }
            }
        }
        written.retain(|name, _| list.iter().any(|source| source.name == *name));
        let poll = async {
            match list.is_empty() {
                true => std::future::pending().await,
                false => tokio::time::sleep(SOURCE_POLL).await,
            }
        };
        tokio::select! {
            () = poll => {}
            () = sources.changed.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// The source's records as its file now says, encoded in a stable order.
fn read(source: &SourceConfig, now_unix: u64) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(&source.path)
        .map_err(|e| e.to_string())?
        .len();
    if size > MAX_SOURCE_FILE_BYTES {
        return Err(format!("{size} bytes is over {MAX_SOURCE_FILE_BYTES}"));
    }
    let text = std::fs::read_to_string(&source.path).map_err(|e| e.to_string())?;
    let hosts = match source.kind {
        SourceKind::Hosts => parse::hosts_file(&text, &source.zone),
        SourceKind::Dnsmasq => parse::dnsmasq_leases(&text, &source.zone, now_unix),
        SourceKind::Kea => parse::kea_leases(&text, &source.zone, now_unix),
    };
    if hosts.skipped > 0 {
        tracing::debug!(source = %source.name, lines = hosts.skipped, "lines skipped");
    }
    let mut records = Vec::new();
    for (name, addresses) in &hosts.addresses {
        for ip in addresses {
            let data = match ip {
                std::net::IpAddr::V4(ip) => RData::A(A(*ip)),
                std::net::IpAddr::V6(ip) => RData::AAAA(AAAA(*ip)),
            };
            records.push(Record::from_rdata(name.clone(), source.ttl, data));
            if source.reverse {
                let ptr = RData::PTR(PTR(name.clone()));
                records.push(Record::from_rdata(Name::from(*ip), source.ttl, ptr));
            }
        }
    }
    encode_records(&records).map_err(|e| e.to_string())
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
