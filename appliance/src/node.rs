//! One appliance node: starts the store, the DNS server, the admin API and the Lite
//! sync endpoint, and shuts them down in a written order.
//!
//! Start: data directory → sync TLS certificate (when configured) → fanout hub →
//! Raft endpoint bound under `node.key` (when `--raft` is given) → store (Raft + redb,
//! waits for leadership; the hub and the plugin watch observe its applied batches) →
//! Raft endpoint serving the store's RPCs → example zone on first start → admin token →
//! sockets bound → plugins loaded into the DNS path → serving → `/ready` turns 200 →
//! `addresses.json` written. `node/start.rs` runs it in named phases, each releasing
//! what the phases before it started when it fails.
//!
//! Shutdown: `/ready` turns 503 → stop accepting (DNS, admin) → drain in-flight work
//! for at most [`DRAIN_DEADLINE`](outpost_dns::server::DRAIN_DEADLINE) (Lite sessions still receive what it commits) → Lite
//! sessions closed with 1001, for at most [`SYNC_CLOSE_DEADLINE`] → Raft endpoint closed
//! (peers' RPCs and this node's calls stop) → shut Raft down and close redb.
//!
//! Reload ([`Node::reload`], on SIGHUP): who may recurse and `[forward]` are swapped
//! in atomically (queries in flight finish with the settings they started with);
//! keys that need a restart are named in a warning and keep their running value.
//! [`Node::health`] is what the systemd watchdog checks (`node/health.rs`).

mod cookie_rotation;
pub mod dns_tls;
mod health;
mod start;

pub(crate) use start::prepare_encrypted;

pub use health::Health;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost_core::state::Command;
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use outpost_dns::handler::QueryHandler;
use outpost_dns::server::encrypted::EncryptedAddrs;
use outpost_dns::server::encrypted::cert::CertResolver;
use outpost_dns::server::{drain_in_flight, stop_and_drain};
use outpost_dns::transfer::Transfers;
use outpost_plugin_host::PluginError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::store::{IrohError, JoinError, PeerAddr, RaftServer, Store, StoreError, WriteError};
use crate::sync::TlsError;

/// How long shutdown waits for Lite sessions to close (each waits at most 2 s for its
/// client's close frame).
pub const SYNC_CLOSE_DEADLINE: Duration = Duration::from_secs(3);
/// Written once the node serves, for scripts and tests that bound port 0.
pub const ADDRESSES_FILE: &str = "addresses.json";
/// Compiled plugins kept between runs, inside the data directory.
pub const PLUGIN_CACHE_DIR: &str = "plugin-cache";
/// Present once the example zone was created, so deleting it is not undone by a restart.
const EXAMPLE_ZONE_MARKER: &str = "example-zone-created";

/// The zone a bare `outpost serve` answers from on first start.
pub const EXAMPLE_ORIGIN: &str = "example.internal.";
const EXAMPLE_ZONE: &str = "\
$TTL 300
@       3600 SOA ns1 hostmaster 1 7200 3600 1209600 300
@            NS  ns1
ns1          A   127.0.0.1
www          A   10.0.0.10
www          AAAA fd00::10
printer      A   10.0.0.7
mail         MX  10 www
docs         CNAME www
";

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot read or create the node key {path}: {source}")]
    NodeKey {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Raft(#[from] IrohError),
    #[error("{0} (pick another with --export-listen)")]
    Export(#[from] outpost_export::NodeError),
    #[error("cannot join the cluster: {0}")]
    Join(#[from] JoinError),
    #[error("cannot create the example zone: {0}")]
    ExampleZone(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("the plugin host cannot start: {0}")]
    Plugins(#[source] PluginError),
    #[error(
        "cannot bind {what} on {addr}: {source} (is another server using it? pick another with --{what})"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    DnsTls(#[from] dns_tls::DnsTlsError),
    #[error("cannot start the encrypted DNS listeners: {0}")]
    Encrypted(#[source] std::io::Error),
    #[error("cannot start the DNS workers: {0} (lower dns.udp_workers?)")]
    DnsWorkers(#[source] std::io::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running node.
pub struct Node {
    store: Store,
    /// Kept to reconfigure recursion and forwarding on reload.
    handler: Arc<QueryHandler>,
    /// Kept to apply the transfer rules on reload.
    transfers: Arc<Transfers>,
    /// Kept to apply `[[sources]]` on reload.
    sources: Arc<crate::sources::SourceSet>,
    /// The configuration the node started with: what its sockets, data directory and
    /// store were built from, which a reload cannot change.
    started: Config,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Lite sessions stop after DNS and admin drained, so they see every last write.
    sync_shutdown: CancellationToken,
    sync_tracker: TaskTracker,
    /// Every DNS address, in the order configured.
    dns_addrs: Vec<SocketAddr>,
    admin_addr: SocketAddr,
    sync_addr: SocketAddr,
    /// The DoT, DoH and DoQ listeners bound (none when off), and the certificate they
    /// present, swapped on reload when it comes from files.
    encrypted_addrs: EncryptedAddrs,
    dns_cert: Option<Arc<CertResolver>>,
    /// Serving peers' Raft RPCs, when the node has a Raft address.
    raft: Option<(RaftServer, PeerAddr)>,
}

impl Node {
    /// The first DNS address (the one the health probe and `addresses.json`'s `dns` name).
    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addrs[0]
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    pub fn sync_addr(&self) -> SocketAddr {
        self.sync_addr
    }

    /// The Raft endpoint's id and address, when the node has one.
    pub fn raft_addr(&self) -> Option<&PeerAddr> {
        self.raft.as_ref().map(|(_, addr)| addr)
    }

    /// Applies what `next` changes live: who may recurse, `[dns.rate_limit]`,
    /// `dns.full_any_over_tcp`, `[forward]` (upstreams, timeout, cache bounds),
    /// `[transfer]` and `[[sources]]`. Returns the keys whose change needs a restart, which
    /// keep their running value (and are logged here as a warning).
    pub fn reload(&self, next: &Config) -> Vec<&'static str> {
        self.handler
            .reconfigure(next.recursion_networks.clone(), &next.forward);
        self.handler.set_rate_limit(next.rate_limit);
        self.handler.set_full_any_over_tcp(next.full_any_over_tcp);
        self.transfers.set_rules(next.transfer.clone());
        self.sources.set(next.sources.clone());
        if let Some(log) = self.handler.query_log() {
            log.reconfigure(next.query_log);
        }
        let upstreams: Vec<String> = next
            .forward
            .upstreams
            .iter()
            .map(ToString::to_string)
            .collect();
        tracing::info!(
            allow_recursion = ?next.recursion_networks,
            upstreams = ?upstreams,
            timeout = ?next.forward.timeout,
            cache_entries = next.forward.cache_entries,
            "reloaded recursion and forwarding settings"
        );
        self.reload_dns_certificate(next);
        let restart = self.started.restart_required(next);
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "changed settings that apply only after a restart; the running values stay"
            );
        }
        restart
    }

    /// Reads the encrypted listeners' certificate files again; a bad file keeps the
    /// certificate in use (logged).
    fn reload_dns_certificate(&self, next: &Config) {
        let (Some(resolver), Some(files)) = (&self.dns_cert, &next.encrypted.files) else {
            return;
        };
        match dns_tls::load_files(files) {
            Ok(certificate) => {
                resolver.replace(&certificate);
                tracing::info!(
                    fingerprint = certificate.fingerprint(),
                    "reloaded the DNS over TLS, HTTPS and QUIC certificate"
                );
            }
            Err(error) => {
                tracing::error!(%error, "kept the DNS over TLS, HTTPS and QUIC certificate in use");
            }
        }
    }

    /// The DoT, DoH and DoQ addresses bound.
    pub fn encrypted_addrs(&self) -> EncryptedAddrs {
        self.encrypted_addrs
    }

    /// What the systemd watchdog checks.
    pub fn health(&self) -> Health {
        Health::new(self.store.clone(), self.dns_addr())
    }

    /// Stops in the order the module documentation gives.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.ready.store(false, Ordering::SeqCst);
        drain_in_flight(&self.shutdown, &self.tracker).await;
        stop_and_drain(
            &self.sync_shutdown,
            &self.sync_tracker,
            SYNC_CLOSE_DEADLINE,
            "Lite sessions",
        )
        .await;
        if let Some((server, _)) = self.raft
            && let Err(error) = server.shutdown().await
        {
            tracing::warn!(%error, "stopping anyway");
        }
        self.store.shutdown().await?;
        tracing::info!("stopped");
        Ok(())
    }
}

fn create_data_dir(path: &Path) -> Result<(), NodeError> {
    outpost_replica::create_data_dir(path).map_err(|source| NodeError::DataDir {
        path: path.to_owned(),
        source,
    })
}

async fn create_example_zone(store: &Store, data_dir: &Path) -> Result<(), NodeError> {
    let marker = data_dir.join(EXAMPLE_ZONE_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let origin = outpost_core::state::parse_name(EXAMPLE_ORIGIN)
        .map_err(|e| NodeError::ExampleZone(e.into()))?;
    let records =
        parse_zone(EXAMPLE_ZONE, &origin, 300).map_err(|e| NodeError::ExampleZone(e.into()))?;
    let records = encode_records(&records).map_err(|e| NodeError::ExampleZone(e.into()))?;
    match store
        .write(Command::CreateZone {
            origin: EXAMPLE_ORIGIN.into(),
            records,
        })
        .await
    {
        Ok(_) | Err(WriteError::Rejected(outpost_core::state::CommandError::ZoneExists { .. })) => {
        }
        Err(error) => return Err(NodeError::ExampleZone(error.into())),
    }
    std::fs::write(&marker, b"").map_err(|source| NodeError::Write {
        path: marker,
        source,
    })
}

/// The encrypted listeners' keys of `addresses.json`, each only when it is on, each with
/// its trailing comma.
pub(crate) fn encrypted_addresses(encrypted: EncryptedAddrs) -> String {
    [
        ("dns_tls", encrypted.tls),
        ("dns_https", encrypted.https),
        ("dns_quic", encrypted.quic),
    ]
    .into_iter()
    .filter_map(|(key, addr)| addr.map(|addr| format!("\"{key}\":\"{addr}\",")))
    .collect()
}

fn write_addresses(
    data_dir: &Path,
    dns: &[SocketAddr],
    admin: SocketAddr,
    sync: SocketAddr,
    encrypted: EncryptedAddrs,
    raft: Option<&PeerAddr>,
) -> Result<(), NodeError> {
    let path = data_dir.join(ADDRESSES_FILE);
    let temporary = data_dir.join(format!("{ADDRESSES_FILE}.tmp"));
    // Both only with a Raft endpoint: `raft` is what peers dial, `endpoint_id` whom they
    // reach there; together they are the node's address in the membership.
    let raft = raft
        .map(|raft| {
            format!(
                "\"raft\":\"{}\",\"endpoint_id\":\"{}\",",
                raft.addr, raft.id
            )
        })
        .unwrap_or_default();
    let encrypted = encrypted_addresses(encrypted);
    let dns_listen: Vec<String> = dns.iter().map(|addr| format!("\"{addr}\"")).collect();
    let body = format!(
        "{{\"dns\":\"{}\",\"dns_listen\":[{}],\"admin\":\"{admin}\",\"sync\":\"{sync}\",{encrypted}{raft}\"pid\":{}}}\n",
        dns[0],
        dns_listen.join(","),
        std::process::id()
    );
    std::fs::write(&temporary, body)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .map_err(|source| NodeError::Write { path, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Overrides, RawConfig};
    use crate::store::{
        NodeInfo, RaftEndpoint, RaftTransport, TransportError, load_or_create_node_key,
    };

    fn config(dir: &Path, admin: &str) -> Config {
        let toml = format!(
            "data_dir = {:?}\nexample_zone = false\n[dns]\nlisten = \"127.0.0.1:0\"\n\
             [admin]\nlisten = \"{admin}\"\n[sync]\nlisten = \"127.0.0.1:0\"\n\
             [forward]\nupstreams = [\"127.0.0.1:9\"]\n[cluster]\nraft = \"127.0.0.1:0\"\n",
            dir.display().to_string()
        );
        RawConfig::from_toml(&toml)
            .expect("toml")
            .resolve(Overrides::default())
            .expect("config")
    }

    /// A start that fails after the store and the Raft endpoint are up (here: the admin
    /// port is taken) releases both: the same data directory opens again in this process,
    /// which redb refuses while a database is still open (redb lets go of the file a
    /// moment after the last handle is dropped, hence the short wait; a store left
    /// running holds it for good).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_start_releases_the_store_and_the_raft_endpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
        let taken_addr = taken.local_addr().expect("address").to_string();
        let failed = Node::start(config(dir.path(), &taken_addr)).await;
        assert!(
            matches!(&failed, Err(NodeError::Bind { what: "admin", .. })),
            "{:?}",
            failed.as_ref().err()
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let node = loop {
            match Node::start(config(dir.path(), "127.0.0.1:0")).await {
                Ok(node) => break node,
                Err(error) if tokio::time::Instant::now() < deadline => {
                    assert!(matches!(error, NodeError::Store(_)), "{error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("the data directory was not released: {error}"),
            }
        };
        node.shutdown().await.expect("clean shutdown");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_with_a_raft_address_serves_raft_names_it_and_shuts_down() {
        let dir = tempfile::tempdir().expect("tempdir");
        let toml = format!(
            "data_dir = {:?}\nexample_zone = false\n[dns]\nlisten = \"127.0.0.1:0\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n[sync]\nlisten = \"127.0.0.1:0\"\n\
             [forward]\nupstreams = [\"127.0.0.1:9\"]\n[cluster]\nraft = \"127.0.0.1:0\"\n",
            dir.path().display().to_string()
        );
        let config = RawConfig::from_toml(&toml)
            .expect("toml")
            .resolve(Overrides::default())
            .expect("config");
        let node = Node::start(config).await.expect("start");

        let raft = node.raft_addr().expect("a raft endpoint").clone();
        assert_ne!(raft.addr.port(), 0);
        let key = load_or_create_node_key(dir.path()).expect("node key");
        assert_eq!(raft.id, key.public());
        let text = std::fs::read_to_string(dir.path().join(ADDRESSES_FILE)).expect("addresses");
        let addresses: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(addresses["raft"], raft.addr.to_string());
        assert_eq!(addresses["endpoint_id"], raft.id.to_string());
        // The membership this node initialised records its iroh address.
        let members = node.store.members();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].node, raft.node_info());

        // The endpoint serves, and refuses a stranger.
        let stranger = RaftEndpoint::bind(
            iroh::SecretKey::from_bytes(&[5; 32]),
            "127.0.0.1:0".parse().expect("address"),
        )
        .await
        .expect("bind");
        let refused = stranger
            .transport()
            .call(1, &NodeInfo::new(raft.to_string()), vec![1])
            .await;
        assert!(
            matches!(&refused, Err(TransportError::Unreachable { reason, .. }) if reason.contains("not a member")),
            "{refused:?}"
        );
        stranger.close().await;

        tokio::time::timeout(Duration::from_secs(30), node.shutdown())
            .await
            .expect("shutdown finishes")
            .expect("clean shutdown");
    }
}
