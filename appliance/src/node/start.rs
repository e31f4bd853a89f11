//! [`Node::start`], in named phases (the order the module doc of `node.rs` gives):
//! [`open_cluster`] (the Raft endpoint, the store, the endpoint serving it, a join),
//! then [`prepare`] (the example zone, the admin token, every socket bound), then
//! [`spawn_services`] (the DNS path with its plugins, the admin API, the Lite sync
//! endpoint), then `/ready` and `addresses.json`.
//!
//! **Invariant:** a phase that fails releases what it started, and [`Node::start`]
//! releases what the phases before it started (the Raft endpoint closed, the store shut
//! down, the tasks stopped) before it returns the error: a failed start leaves nothing
//! running and the database closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use outpost_dns::forward::Forwarder;
use outpost_dns::handler::QueryHandler;
use outpost_dns::metrics::Metrics;
use outpost_dns::plugin_runtime::{PluginRuntime, PluginWatch};
use outpost_dns::querylog::QueryLog;
use outpost_dns::server::encrypted::cert::{CertResolver, DnsCertificate};
use outpost_dns::server::encrypted::{EncryptedAddrs, EncryptedSockets};
use outpost_dns::server::{DnsSockets, drain_in_flight};
use outpost_dns::transfer::Transfers;
use outpost_dns::transfer::notify::Notifier;
use outpost_plugin_host::PluginEngine;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{
    Node, NodeError, PLUGIN_CACHE_DIR, create_data_dir, create_example_zone, dns_tls,
    write_addresses,
};
use crate::admin::{self, AdminState};
use crate::config::Config;
use crate::follow::FollowTrigger;
use crate::sources::SourceSet;
use crate::store::{
    ClusterOptions, ClusterStart, CommitObserver, DB_FILE_NAME, JoinTicket, NODE_KEY_FILE_NAME,
    PeerAddr, RaftEndpoint, RaftServer, RaftTiming, Store, StoreOptions, load_or_create_node_key,
    node_id_for,
};
use crate::sync::hub::Hub;
use crate::sync::{SyncServer, TlsConfig};
use crate::transfers::TransferFeed;

impl Node {
    pub async fn start(config: Config) -> Result<Self, NodeError> {
        create_data_dir(&config.data_dir)?;
        let tls = match &config.sync.tls {
            Some(files) => Some(TlsConfig::load(&files.cert, &files.key)?),
            None => None,
        };
        let hub = Arc::new(Hub::new());
        let watchers = Watchers::default();
        let observers: Vec<Arc<dyn CommitObserver>> = vec![
            hub.clone(),
            watchers.plugins.clone(),
            watchers.transfers.clone(),
            watchers.follow.clone(),
            watchers.exports.clone(),
        ];
        let cluster = open_cluster(&config, Arc::new(observers)).await?;
        let listeners = match prepare(&config, &cluster.store).await {
            Ok(listeners) => listeners,
            Err(error) => return Err(cluster.release(error).await),
        };
        let services =
            match spawn_services(&config, &cluster.store, listeners, hub, watchers, tls).await {
                Ok(services) => services,
                Err(error) => return Err(cluster.release(error).await),
            };
        let Cluster { store, raft } = cluster;
        let node = Node {
            store,
            handler: services.handler,
            transfers: services.transfers,
            sources: services.sources,
            started: config,
            ready: services.ready,
            shutdown: services.shutdown,
            tracker: services.tracker,
            sync_shutdown: services.sync_shutdown,
            sync_tracker: services.sync_tracker,
            dns_addrs: services.dns_addrs,
            admin_addr: services.admin_addr,
            sync_addr: services.sync_addr,
            encrypted_addrs: services.encrypted_addrs,
            dns_cert: services.dns_cert,
            raft,
        };
        node.ready.store(true, Ordering::SeqCst);
        let raft_addr = node.raft_addr();
        if let Err(error) = write_addresses(
            &node.started.data_dir,
            &node.dns_addrs,
            node.admin_addr,
            node.sync_addr,
            node.encrypted_addrs,
            raft_addr,
        ) {
            if let Err(stopped) = node.shutdown().await {
                tracing::warn!(error = %stopped, "stopping anyway");
            }
            return Err(error);
        }
        tracing::info!(dns = ?node.dns_addrs, admin = %node.admin_addr, sync = %node.sync_addr, raft = ?node.raft_addr().map(ToString::to_string), data_dir = %node.started.data_dir.display(), "serving");
        Ok(node)
    }
}

/// The store, and the Raft endpoint serving it when the node has a Raft address.
struct Cluster {
    store: Store,
    raft: Option<(RaftServer, PeerAddr)>,
}

impl Cluster {
    /// Closes the endpoint and the store after a later phase failed; returns `error`.
    async fn release(self, error: NodeError) -> NodeError {
        if let Some((server, _)) = self.raft
            && let Err(stopped) = server.shutdown().await
        {
            tracing::warn!(error = %stopped, "stopping anyway");
        }
        if let Err(stopped) = self.store.shutdown().await {
            tracing::warn!(error = %stopped, "stopping anyway");
        }
        error
    }
}

/// The Raft endpoint bound (with `--raft`), the store opened with `observer`, the endpoint
/// serving the store's RPCs, and the join (or a changed address recorded).
async fn open_cluster(
    config: &Config,
    observer: Arc<dyn CommitObserver>,
) -> Result<Cluster, NodeError> {
    let endpoint = match config.raft {
        Some(addr) => Some(bind_raft(config, addr).await?),
        None => None,
    };
    let options = StoreOptions {
        history_entries: config.sync.history_entries,
        observer: Some(observer),
        cluster: cluster_options(config, endpoint.as_ref()),
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
    let cluster = Cluster { store, raft };
    if let Some((_, addr)) = &cluster.raft
        && let Err(error) = join_or_update_address(&cluster.store, config.join.as_ref(), addr).await
    {
        return Err(cluster.release(error).await);
    }
    Ok(cluster)
}

/// The store's place in a cluster: alone, or over the endpoint (joining with a ticket
/// when the data directory was never in a cluster).
fn cluster_options(config: &Config, endpoint: Option<&RaftEndpoint>) -> ClusterOptions {
    let timing = RaftTiming {
        commit: config.commit_timeout,
        ..RaftTiming::DEFAULT
    };
    let Some(endpoint) = endpoint else {
        return ClusterOptions {
            timing,
            ..ClusterOptions::default()
        };
    };
    let cluster = ClusterOptions {
        node_info: endpoint.node_info(),
        transport: endpoint.transport(),
        timing,
        ..ClusterOptions::default()
    };
    match &config.join {
        Some(ticket) => {
            // A ticket only matters to a data directory that was never in a cluster.
            let fresh = !config.data_dir.join(DB_FILE_NAME).exists();
            ClusterOptions {
                node_id: fresh.then(|| node_id_for(&endpoint.addr().id)),
                cluster_id: Some(ticket.cluster_id.clone()),
                start: ClusterStart::Join,
                ..cluster
            }
        }
        None => cluster,
    }
}

/// The sockets a node serves on, bound before anything is spawned, and the admin token.
struct Listeners {
    dns: DnsSockets,
    /// DoT, DoH and DoQ, with the certificate they present (`None` when all are off).
    encrypted: (EncryptedSockets, Option<DnsCertificate>),
    admin: TcpListener,
    sync: TcpListener,
    token: String,
    /// The export endpoint, with `[export] listen`.
    export: Option<outpost_export::DocsNode>,
}

/// The example zone on a first node's first start, the admin token, every socket bound.
async fn prepare(config: &Config, store: &Store) -> Result<Listeners, NodeError> {
    // A joining node takes the cluster's zones; the example zone is a first node's.
    if config.example_zone && config.join.is_none() {
        create_example_zone(store, &config.data_dir).await?;
    }
    let token =
        admin::load_or_create_token(&config.data_dir).map_err(|source| NodeError::Write {
            path: config.data_dir.join("admin.token"),
            source,
        })?;
    let bind =
        |what: &'static str, addr: SocketAddr| move |source| NodeError::Bind { what, addr, source };
    let dns = DnsSockets::bind(&config.dns, config.udp_workers)
        .await
        .map_err(|(addr, source)| bind("dns", addr)(source))?;
    let admin = TcpListener::bind(config.admin)
        .await
        .map_err(bind("admin", config.admin))?;
    let encrypted = prepare_encrypted(config).await?;
    let sync = TcpListener::bind(config.sync.listen)
        .await
        .map_err(bind("sync", config.sync.listen))?;
    let export = crate::exports::bind(config).await?;
    // The config check let these through only under `insecure_plaintext = true`.
    if !config.admin.ip().is_loopback() {
        tracing::warn!(address = %config.admin, "the admin API listens off loopback without TLS (admin.insecure_plaintext): its bearer token crosses the network in the clear");
    }
    if config.sync.tls.is_none() && !config.sync.listen.ip().is_loopback() {
        tracing::warn!(address = %config.sync.listen, "Lite sync listens off loopback without TLS (sync.insecure_plaintext): Lite tokens cross the network in the clear");
    }
    Ok(Listeners {
        dns,
        encrypted,
        admin,
        sync,
        token,
        export,
    })
}

/// The encrypted listeners bound and, when any is on, their certificate (its pin
/// logged, as the sync endpoint's is).
pub(crate) async fn prepare_encrypted(
    config: &Config,
) -> Result<(EncryptedSockets, Option<DnsCertificate>), NodeError> {
    let addrs = config.encrypted.addrs;
    let certificate = match addrs.any() {
        true => Some(dns_tls::load(config)?),
        false => None,
    };
    let sockets = EncryptedSockets::bind(addrs)
        .await
        .map_err(NodeError::Encrypted)?;
    if let Some(certificate) = &certificate {
        let bound = sockets.local_addrs().map_err(NodeError::Encrypted)?;
        tracing::info!(
            tls = ?bound.tls.map(|addr| addr.to_string()),
            https = ?bound.https.map(|addr| addr.to_string()),
            quic = ?bound.quic.map(|addr| addr.to_string()),
            fingerprint = certificate.fingerprint(),
            "DNS over TLS, HTTPS and QUIC listening (clients pin this SHA-256 fingerprint)"
        );
    }
    Ok((sockets, certificate))
}

/// Serves DNS over UDP and TCP (our loops), then DoT, DoH and DoQ (hickory-server's);
/// what the encrypted listeners bound and the certificate to swap on reload. On
/// failure, what was spawned is drained before the error returns.
async fn spawn_dns(
    dns: DnsSockets,
    (encrypted, certificate): (EncryptedSockets, Option<DnsCertificate>),
    handler: &Arc<QueryHandler>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<(EncryptedAddrs, Option<Arc<CertResolver>>), NodeError> {
    let spawned = dns
        .spawn(handler.clone(), shutdown.clone(), tracker)
        .map_err(NodeError::DnsWorkers)
        .and_then(|()| {
            let addrs = encrypted.local_addrs().map_err(NodeError::Encrypted)?;
            let Some(certificate) = certificate else {
                return Ok((addrs, None));
            };
            let resolver = CertResolver::new(&certificate);
            encrypted
                .spawn(handler.clone(), resolver.clone(), shutdown.clone(), tracker)
                .map_err(NodeError::Encrypted)?;
            Ok((addrs, Some(resolver)))
        });
    if spawned.is_err() {
        drain_in_flight(shutdown, tracker).await;
    }
    spawned
}

/// What [`spawn_services`] started.
struct Services {
    encrypted_addrs: EncryptedAddrs,
    dns_cert: Option<Arc<CertResolver>>,
    handler: Arc<QueryHandler>,
    transfers: Arc<Transfers>,
    sources: Arc<SourceSet>,
    ready: Arc<AtomicBool>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    sync_shutdown: CancellationToken,
    sync_tracker: TaskTracker,
    dns_addrs: Vec<SocketAddr>,
    admin_addr: SocketAddr,
    sync_addr: SocketAddr,
}

/// The DNS path (its plugins loaded first, then reloaded after every change), the admin
/// API and the Lite sync endpoint, serving on `listeners`. On failure, what was spawned
/// is stopped before the error returns.
async fn spawn_services(
    config: &Config,
    store: &Store,
    listeners: Listeners,
    hub: Arc<Hub>,
    watchers: Watchers,
    tls: Option<TlsConfig>,
) -> Result<Services, NodeError> {
    let bind =
        |what: &'static str, addr: SocketAddr| move |source| NodeError::Bind { what, addr, source };
    let dns_addrs = listeners
        .dns
        .local_addrs()
        .map_err(bind("dns", config.dns[0]))?;
    let admin_addr = listeners
        .admin
        .local_addr()
        .map_err(bind("admin", config.admin))?;
    let metrics = Arc::new(Metrics::default());
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let tasks = (&tracker, &shutdown);
    let transfers = start_transfers(config, store, &metrics, &watchers, tasks);
    let handler = query_handler(config, store, &metrics, transfers.clone());
    let engine = PluginEngine::with_disk_cache(&config.data_dir.join(PLUGIN_CACHE_DIR))
        .map_err(NodeError::Plugins)?;
    let plugins = Arc::new(PluginRuntime::new(engine, handler.clone(), config.plugins));
    crate::plugin_reload::load_current(&plugins, store, true).await;
    let sources = spawn_zone_feeds(config, store, watchers.follow, tasks);
    spawn_background_tasks(&tracker, &plugins, watchers.plugins, store, &shutdown);
    let (encrypted_addrs, dns_cert) = spawn_dns(
        listeners.dns,
        listeners.encrypted,
        &handler,
        &shutdown,
        &tracker,
    )
    .await?;
    let ready = Arc::new(AtomicBool::new(false));
    let exports = crate::exports::spawn(listeners.export, store, watchers.exports, tasks);
    let state = AdminState {
        store: store.clone(),
        metrics,
        token: listeners.token,
        ready: ready.clone(),
        hub: hub.clone(),
        plugins,
        connections: Arc::default(),
        dns_tls: dns_cert.clone(),
        query_log: handler.query_log().cloned(),
        sessions: Default::default(),
        exports,
    };
    spawn_admin(listeners.admin, state, &shutdown, &tracker);
    let (sync_addr, sync_shutdown, sync_tracker) = match spawn_sync(store, listeners.sync, hub, tls)
    {
        Ok(sync) => sync,
        Err(source) => {
            drain_in_flight(&shutdown, &tracker).await;
            return Err(bind("sync", config.sync.listen)(source));
        }
    };
    Ok(Services {
        encrypted_addrs,
        dns_cert,
        handler,
        transfers,
        sources,
        ready,
        shutdown,
        tracker,
        sync_shutdown,
        sync_tracker,
        dns_addrs,
        admin_addr,
        sync_addr,
    })
}

/// The tasks that write zones from elsewhere: followed zones (from their primaries) and
/// record sources (from files). The sources' set, for a reload.
fn spawn_zone_feeds(
    config: &Config,
    store: &Store,
    follow: Arc<FollowTrigger>,
    (tracker, shutdown): (&TaskTracker, &CancellationToken),
) -> Arc<SourceSet> {
    tracker.spawn(crate::follow::run(store.clone(), follow, shutdown.clone()));
    let sources = Arc::new(SourceSet::new(config.sources.clone()));
    tracker.spawn(crate::sources::run(
        store.clone(),
        sources.clone(),
        shutdown.clone(),
    ));
    sources
}

/// The admin API on `listener`, until `shutdown`.
fn spawn_admin(
    listener: TcpListener,
    state: AdminState,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) {
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(error) = admin::serve(listener, state, shutdown).await {
            tracing::error!(%error, "admin API stopped");
        }
    });
}

/// The node's background tasks: the plugin reload and the cookie secret's rotation.
fn spawn_background_tasks(
    tracker: &TaskTracker,
    plugins: &Arc<PluginRuntime>,
    plugin_watch: Arc<PluginWatch>,
    store: &Store,
    shutdown: &CancellationToken,
) {
    tracker.spawn(crate::plugin_reload::run(
        Arc::clone(plugins),
        plugin_watch,
        store.clone(),
        shutdown.clone(),
    ));
    tracker.spawn(super::cookie_rotation::run(store.clone(), shutdown.clone()));
}

/// The commit observers registered before the store opens, which the services started
/// after it use.
#[derive(Default)]
struct Watchers {
    plugins: Arc<PluginWatch>,
    transfers: Arc<TransferFeed>,
    follow: Arc<FollowTrigger>,
    exports: Arc<crate::exports::ExportTrigger>,
}

/// Zone transfers out over the store's state, under the config's rules; the feed starts
/// their journal and NOTIFY, which this node sends while it leads. Our primaries'
/// NOTIFYs wake the followed zones' refresh.
fn start_transfers(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    watchers: &Watchers,
    (tracker, shutdown): (&TaskTracker, &CancellationToken),
) -> Arc<Transfers> {
    let state = store.clone();
    let transfers = Arc::new(Transfers::new(Box::new(move || state.zones())));
    transfers.set_rules(config.transfer.clone());
    let follow = watchers.follow.clone();
    transfers.on_notify(Box::new(move |zone| follow.notified(zone)));
    let feed = &watchers.transfers;
    let leader = store.clone();
    let notifier = Notifier::new(
        transfers.clone(),
        metrics.clone(),
        Box::new(move || leader.is_leader()),
        tracker.clone(),
        shutdown.clone(),
    );
    feed.start(store.clone(), transfers.clone(), notifier);
    transfers
}

/// The DNS query path over the store's replica, with its forwarder.
fn query_handler(
    config: &Config,
    store: &Store,
    metrics: &Arc<Metrics>,
    transfers: Arc<Transfers>,
) -> Arc<QueryHandler> {
    let forwarder = Arc::new(Forwarder::new(&config.forward, metrics.clone()));
    let handler = QueryHandler::new(
        store.zone_set(),
        forwarder,
        config.recursion_networks.clone(),
        metrics.clone(),
    )
    .with_cookie_secrets(store.cookie_secrets())
    .with_transfers(transfers)
    .with_query_log(Arc::new(QueryLog::new(config.query_log)));
    handler.set_rate_limit(config.rate_limit);
    handler.set_full_any_over_tcp(config.full_any_over_tcp);
    Arc::new(handler)
}

/// The Lite sync endpoint on `listener`, with its own shutdown and tracker: sessions stop
/// after DNS and admin drained, so they see every last write.
fn spawn_sync(
    store: &Store,
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Option<TlsConfig>,
) -> std::io::Result<(SocketAddr, CancellationToken, TaskTracker)> {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sync = SyncServer::spawn(
        listener,
        store.clone(),
        hub,
        tls,
        shutdown.clone(),
        &tracker,
    )?;
    Ok((sync.local_addr(), shutdown, tracker))
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
async fn bind_raft(config: &Config, addr: SocketAddr) -> Result<RaftEndpoint, NodeError> {
    let data_dir = &config.data_dir;
    let key = load_or_create_node_key(data_dir).map_err(|source| NodeError::NodeKey {
        path: data_dir.join(NODE_KEY_FILE_NAME),
        source,
    })?;
    Ok(RaftEndpoint::bind(key, addr).await?)
}
