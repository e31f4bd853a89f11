//! One appliance node: starts the store, the DNS server, the admin API and the Lite
//! sync endpoint, and shuts them down in a written order.
//!
//! Start: data directory → sync TLS certificate (when configured) → fanout hub →
//! Raft endpoint bound under `node.key` (when `--raft` is given) → store (Raft + redb,
//! waits for leadership; the hub and the plugin watch observe its applied batches) →
//! Raft endpoint serving the store's RPCs → example zone on first start → admin token →
//! sockets bound → plugins loaded into the DNS path → serving → `/ready` turns 200 →
//! `addresses.json` written.
//!
//! Shutdown: `/ready` turns 503 → stop accepting (DNS, admin) → drain in-flight work
//! for at most [`DRAIN_DEADLINE`] (Lite sessions still receive what it commits) → Lite
//! sessions closed with 1001, for at most [`SYNC_CLOSE_DEADLINE`] → Raft endpoint closed
//! (peers' RPCs and this node's calls stop) → shut Raft down and close redb.
//!
//! Reload ([`Node::reload`], on SIGHUP): who may recurse and `[forward]` are swapped
//! in atomically (queries in flight finish with the settings they started with);
//! keys that need a restart are named in a warning and keep their running value.
//! [`Node::health`] is what the systemd watchdog checks (`node/health.rs`).

mod health;

pub use health::Health;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use outpost_core::zones::Command;
use outpost_dns::forward::Forwarder;
use outpost_dns::handler::QueryHandler;
use outpost_dns::metrics::Metrics;
use outpost_dns::plugins::PluginRuntime;
use outpost_dns::server::DnsSockets;
use outpost_plugin_host::PluginEngine;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::plugins::PluginWatch;
use crate::store::{
    ClusterOptions, ClusterStart, CommitObserver, DB_FILE_NAME, IrohError, JoinError, JoinTicket,
    NODE_KEY_FILE_NAME, PeerAddr, RaftEndpoint, RaftServer, RaftTiming, Store, StoreError,
    StoreOptions, WriteError, load_or_create_node_key, node_id_for,
};
use crate::sync::{Hub, SyncServer, TlsConfig, TlsError};

/// How long shutdown waits for in-flight queries and requests.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
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
    #[error("cannot join the cluster: {0}")]
    Join(#[from] JoinError),
    #[error("cannot create the example zone: {0}")]
    ExampleZone(String),
    #[error("the plugin host cannot start: {0}")]
    Plugins(String),
    #[error(
        "cannot bind {what} on {addr}: {source} (is another server using it? pick another with --{what})"
    )]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
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
    /// The configuration the node started with: what its sockets, data directory and
    /// store were built from, which a reload cannot change.
    started: Config,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Lite sessions stop after DNS and admin drained, so they see every last write.
    sync_shutdown: CancellationToken,
    sync_tracker: TaskTracker,
    dns_addr: SocketAddr,
    admin_addr: SocketAddr,
    sync_addr: SocketAddr,
    /// Serving peers' Raft RPCs, when the node has a Raft address.
    raft: Option<(RaftServer, PeerAddr)>,
}

impl Node {
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        create_data_dir(&config.data_dir)?;
        let tls = match &config.sync.tls {
            Some(files) => Some(TlsConfig::load(&files.cert, &files.key)?),
            None => None,
        };
        let hub = Arc::new(Hub::new());
        let plugin_watch = PluginWatch::new();
        let observers: Vec<Arc<dyn CommitObserver>> = vec![hub.clone(), plugin_watch.clone()];
        let endpoint = match config.raft {
            Some(addr) => Some(bind_raft(&config.data_dir, addr).await?),
            None => None,
        };
        // A ticket only matters to a data directory that was never in a cluster.
        let fresh = !config.data_dir.join(DB_FILE_NAME).exists();
        let timing = RaftTiming {
            commit: config.commit_timeout,
            ..RaftTiming::DEFAULT
        };
        let cluster = match &endpoint {
            Some(endpoint) => ClusterOptions {
                node_info: endpoint.node_info(),
                transport: endpoint.transport(),
                timing,
                ..ClusterOptions::default()
            },
            None => ClusterOptions {
                timing,
                ..ClusterOptions::default()
            },
        };
        let cluster = match (&config.join, &endpoint) {
            (Some(ticket), Some(endpoint)) => ClusterOptions {
                node_id: fresh.then(|| node_id_for(&endpoint.addr().id)),
                cluster_id: Some(ticket.cluster_id.clone()),
                start: ClusterStart::Join,
                ..cluster
            },
            _ => cluster,
        };
        let options = StoreOptions {
            history_entries: config.sync.history_entries,
            observer: Some(Arc::new(observers)),
            cluster,
            tuning: config.snapshots,
        };
        let store = match Store::open_with(&config.data_dir, options).await {
            Ok(store) => store,
            Err(error) => {
                if let Some(endpoint) = endpoint {
                    endpoint.close().await;
                }
                return Err(error.into());
            }
        };
        // Until it is a member, a joining node takes Raft RPCs from the ticket's nodes.
        let expected = config
            .join
            .as_ref()
            .map(JoinTicket::endpoints)
            .unwrap_or_default();
        let raft = endpoint.map(|endpoint| {
            let addr = endpoint.addr().clone();
            (endpoint.serve(store.rpc_handler(), expected), addr)
        });
        if let Some((_, addr)) = &raft
            && let Err(error) = join_or_update_address(&store, config.join.as_ref(), addr).await
        {
            // Release the endpoint and the database before saying why.
            if let Some((server, _)) = raft
                && let Err(error) = server.shutdown().await
            {
                tracing::warn!(%error, "stopping anyway");
            }
            if let Err(error) = store.shutdown().await {
                tracing::warn!(%error, "stopping anyway");
            }
            return Err(error);
        }
        // A joining node takes the cluster's zones; the example zone is a first node's.
        if config.example_zone && config.join.is_none() {
            create_example_zone(&store, &config.data_dir).await?;
        }
        let token =
            admin::load_or_create_token(&config.data_dir).map_err(|source| NodeError::Write {
                path: config.data_dir.join("admin.token"),
                source,
            })?;

        let dns = DnsSockets::bind(config.dns)
            .await
            .map_err(|source| NodeError::Bind {
                what: "dns",
                addr: config.dns,
                source,
            })?;
        let admin_listener =
            TcpListener::bind(config.admin)
                .await
                .map_err(|source| NodeError::Bind {
                    what: "admin",
                    addr: config.admin,
                    source,
                })?;
        let sync_listener = TcpListener::bind(config.sync.listen)
            .await
            .map_err(|source| NodeError::Bind {
                what: "sync",
                addr: config.sync.listen,
                source,
            })?;
        let dns_addr = dns.local_addr().map_err(|source| NodeError::Bind {
            what: "dns",
            addr: config.dns,
            source,
        })?;
        let admin_addr = admin_listener
            .local_addr()
            .map_err(|source| NodeError::Bind {
                what: "admin",
                addr: config.admin,
                source,
            })?;

        let metrics = Arc::new(Metrics::default());
        let forwarder = Arc::new(Forwarder::new(&config.forward, metrics.clone()));
        let handler = Arc::new(QueryHandler::new(
            store.zone_set(),
            forwarder,
            config.recursion_networks.clone(),
            metrics.clone(),
        ));
        let engine = PluginEngine::with_disk_cache(&config.data_dir.join(PLUGIN_CACHE_DIR))
            .map_err(|e| NodeError::Plugins(e.to_string()))?;
        let plugins = Arc::new(PluginRuntime::new(engine, handler.clone()));
        crate::plugins::load_current(&plugins, &store, true).await;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        tracker.spawn(crate::plugins::run(
            Arc::clone(&plugins),
            plugin_watch,
            store.clone(),
            shutdown.clone(),
        ));
        dns.spawn(handler.clone(), shutdown.clone(), &tracker);

        let ready = Arc::new(AtomicBool::new(false));
        let state = AdminState {
            store: store.clone(),
            metrics,
            token,
            ready: ready.clone(),
            hub: hub.clone(),
            plugins,
        };
        let admin_shutdown = shutdown.clone();
        tracker.spawn(async move {
            if let Err(error) = admin::serve(admin_listener, state, admin_shutdown).await {
                tracing::error!(%error, "admin API stopped");
            }
        });

        let sync_shutdown = CancellationToken::new();
        let sync_tracker = TaskTracker::new();
        let sync = SyncServer::spawn(
            sync_listener,
            store.clone(),
            hub,
            tls,
            sync_shutdown.clone(),
            &sync_tracker,
        )
        .map_err(|source| NodeError::Bind {
            what: "sync",
            addr: config.sync.listen,
            source,
        })?;
        let sync_addr = sync.local_addr();

        ready.store(true, Ordering::SeqCst);
        let raft_addr = raft.as_ref().map(|(_, addr)| addr);
        write_addresses(&config.data_dir, dns_addr, admin_addr, sync_addr, raft_addr)?;
        tracing::info!(dns = %dns_addr, admin = %admin_addr, sync = %sync_addr, raft = ?raft_addr.map(ToString::to_string), data_dir = %config.data_dir.display(), "serving");
        Ok(Self {
            store,
            handler,
            started: config,
            ready,
            shutdown,
            tracker,
            sync_shutdown,
            sync_tracker,
            dns_addr,
            admin_addr,
            sync_addr,
            raft,
        })
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
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

    /// Applies what `next` changes live: who may recurse and `[forward]` (upstreams,
    /// timeout, cache bounds). Returns the keys whose change needs a restart, which
    /// keep their running value (and are logged here as a warning).
    pub fn reload(&self, next: &Config) -> Vec<&'static str> {
        self.handler
            .reconfigure(next.recursion_networks.clone(), &next.forward);
        let upstreams: Vec<String> = next
            .forward
            .upstreams
            .iter()
            .map(|upstream| match upstream.tcp_only {
                true => format!("tcp://{}", upstream.addr),
                false => upstream.addr.to_string(),
            })
            .collect();
        tracing::info!(
            allow_recursion = ?next.recursion_networks,
            upstreams = ?upstreams,
            timeout = ?next.forward.timeout,
            cache_entries = next.forward.cache_entries,
            "reloaded recursion and forwarding settings"
        );
        let restart = self.started.restart_required(next);
        if !restart.is_empty() {
            tracing::warn!(
                keys = %restart.join(", "),
                "changed settings that apply only after a restart; the running values stay"
            );
        }
        restart
    }

    /// What the systemd watchdog checks.
    pub fn health(&self) -> Health {
        Health::new(self.store.clone(), self.dns_addr)
    }

    /// Stops in the order the module documentation gives.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        tracing::info!("shutting down");
        self.ready.store(false, Ordering::SeqCst);
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(DRAIN_DEADLINE, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?DRAIN_DEADLINE, "in-flight work did not finish; stopping anyway");
        }
        self.sync_shutdown.cancel();
        self.sync_tracker.close();
        if tokio::time::timeout(SYNC_CLOSE_DEADLINE, self.sync_tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(deadline = ?SYNC_CLOSE_DEADLINE, "Lite sessions did not close in time; stopping anyway");
        }
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
    let error = |source| NodeError::DataDir {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(path).map_err(error)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(error)?;
    }
    Ok(())
}

async fn create_example_zone(store: &Store, data_dir: &Path) -> Result<(), NodeError> {
    let marker = data_dir.join(EXAMPLE_ZONE_MARKER);
    if marker.exists() {
        return Ok(());
    }
    let origin = outpost_core::zones::parse_name(EXAMPLE_ORIGIN)
        .map_err(|e| NodeError::ExampleZone(e.to_string()))?;
    let records = parse_zone(EXAMPLE_ZONE, &origin, 300)
        .map_err(|e| NodeError::ExampleZone(e.to_string()))?;
    let records = encode_records(&records).map_err(|e| NodeError::ExampleZone(e.to_string()))?;
    match store
        .write(Command::CreateZone {
            origin: EXAMPLE_ORIGIN.into(),
            records,
        })
        .await
    {
        Ok(_) | Err(WriteError::Rejected(outpost_core::zones::CommandError::ZoneExists { .. })) => {
        }
        Err(error) => return Err(NodeError::ExampleZone(error.to_string())),
    }
    std::fs::write(&marker, b"").map_err(|source| NodeError::Write {
        path: marker,
        source,
    })
}

/// Joins the ticket's cluster when this node is not a member yet; otherwise makes sure the
/// membership records the address this node listens on now (a node that ran alone before it
/// had `--raft`, or moved to another address).
async fn join_or_update_address(
    store: &Store,
    ticket: Option<&JoinTicket>,
    addr: &PeerAddr,
) -> Result<(), NodeError> {
    let member = store
        .members()
        .into_iter()
        .find(|m| m.id == store.node_id());
    match (member, ticket) {
        (None, Some(ticket)) => {
            tracing::info!(nodes = ?ticket.nodes, node_id = store.node_id(), "joining a cluster");
            store.join(ticket, addr).await?;
            Ok(())
        }
        (None, None) => Ok(()),
        (Some(member), ticket) => {
            if ticket.is_some() {
                tracing::info!(
                    node_id = store.node_id(),
                    "this node is already a cluster member: the join ticket is ignored"
                );
            }
            if member.node == addr.node_info() {
                return Ok(());
            }
            tracing::info!(from = %member.node, to = %addr, "recording this node's new raft address");
            // Not fatal: the node still answers DNS from its replica, and the next start tries
            // again.
            if let Err(error) = store.set_own_address(addr.node_info()).await {
                tracing::warn!(%error, %addr, "cannot record this node's new raft address; peers cannot reach it until it is");
            }
            Ok(())
        }
    }
}

/// Binds the Raft endpoint on `addr` under the node key in `data_dir` (created on first start).
async fn bind_raft(data_dir: &Path, addr: SocketAddr) -> Result<RaftEndpoint, NodeError> {
    let key = load_or_create_node_key(data_dir).map_err(|source| NodeError::NodeKey {
        path: data_dir.join(NODE_KEY_FILE_NAME),
        source,
    })?;
    Ok(RaftEndpoint::bind(key, addr).await?)
}

fn write_addresses(
    data_dir: &Path,
    dns: SocketAddr,
    admin: SocketAddr,
    sync: SocketAddr,
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
    let body = format!(
        "{{\"dns\":\"{dns}\",\"admin\":\"{admin}\",\"sync\":\"{sync}\",{raft}\"pid\":{}}}\n",
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
    use crate::store::{NodeInfo, Transport, TransportError};

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
