//! One running Lite client: the replica, the DNS server over it, the connector that
//! keeps it in sync, and the status file, started and stopped in a written order.
//!
//! Start: data directory (0700) → replica loaded from `lite.redb` and published →
//! its query-policy plugins loaded → DNS sockets bound and serving → `status.json`
//! (with the bound DNS address) → plugin reload task → connector. DNS answers from
//! the stored replica, under the stored policy, before any appliance is reached.
//!
//! Shutdown: cancel, which makes the session close its WebSocket with a close frame
//! (1000) and the DNS sockets stop accepting → the session task and in-flight queries
//! finish within [`DRAIN_DEADLINE`](outpost_dns::server::DRAIN_DEADLINE) → the replica (redb) is closed with the session
//! task → a last `status.json` (Disconnected).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use outpost_dns::forward::Forwarder;
use outpost_dns::handler::QueryHandler;
use outpost_dns::metrics::Metrics;
use outpost_dns::plugin_runtime::PluginRuntime;
use outpost_dns::querylog::QueryLog;
use outpost_dns::server::{DnsSockets, drain_in_flight};
use outpost_plugin_host::PluginEngine;
use outpost_plugin_host::PluginError;
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::LiteConfig;
use crate::page::Page;
use crate::replica::{LiveState, ReplicaError, ReplicaStore};
use crate::resolver;
use crate::status::{self, Digester, PluginStatus, StatusBoard, StatusError};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(
        "cannot bind DNS on {addr}: {source} (is another server using it? pick another with --dns)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the DNS worker: {0}")]
    DnsWorkers(#[source] std::io::Error),
    #[error(transparent)]
    Status(#[from] StatusError),
    #[error("the plugin host cannot start: {0}")]
    Plugins(#[source] PluginError),
    #[error("cannot follow the export: {0}")]
    Docs(String),
}

/// A running client.
pub struct LiteClient {
    data_dir: PathBuf,
    dns_addr: SocketAddr,
    board: Arc<StatusBoard>,
    published: LiveState,
    /// What the page shows, served or not: the query log and the metrics.
    page: Arc<Page>,
    /// The DNS path (plugins included), for more listeners in front of it.
    handler: Arc<QueryHandler>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl LiteClient {
    pub async fn start(config: LiteConfig) -> Result<LiteClient, StartError> {
        create_data_dir(&config.data_dir)?;
        let replica = ReplicaStore::open(&config.data_dir).await?;
        let published = replica.published();
        let (zones, records) = replica.counts();
        tracing::info!(
            zones,
            records,
            cursor = ?replica.cursor().map(|c| c.index),
            "replica loaded"
        );
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let served = serve_dns(&config, &published, &shutdown, &tracker).await?;
        let (dns_addr, plugins, handler) =
            (served.dns_addr, served.plugins.clone(), served.handler);
        let stored_head = (replica.head() > 0).then_some(replica.head());
        let board = Arc::new(StatusBoard::new(
            dns_addr,
            replica.cursor().map(|c| c.index),
            stored_head,
            (zones, records),
        ));
        board.plugins(plugin_statuses(&plugins, &published));
        let page = Arc::new(Page {
            board: board.clone(),
            published: published.clone(),
            log: served.log,
            metrics: served.metrics,
        });
        if let Some(addr) = config.page {
            serve_page(addr, page.clone(), &board, (&shutdown, &tracker)).await;
        }
        let mut digester = Digester::default();
        let digest = digester.digest(&published.state.view, true).await;
        let first = status::with_zone_names(board.to_file(digest), &published.state.view);
        status::write_status_file(&config.data_dir, &first).await?;
        tracker.spawn(keep_resolver(
            config.data_dir.clone(),
            published.clone(),
            shutdown.clone(),
        ));
        status::spawn_writer(
            board.clone(),
            config.data_dir.clone(),
            published.state.view.clone(),
            digester,
            shutdown.clone(),
            &tracker,
        );
        tracker.spawn(reload_plugins(
            Arc::clone(&plugins),
            published.clone(),
            board.clone(),
            shutdown.clone(),
        ));
        if let Err(error) = start_sync_paths(&config, replica, &board, (&shutdown, &tracker)).await
        {
            drain_in_flight(&shutdown, &tracker).await;
            return Err(error);
        }
        tracing::info!(dns = %dns_addr, data_dir = %config.data_dir.display(), "serving");
        Ok(LiteClient {
            data_dir: config.data_dir,
            dns_addr,
            board,
            published,
            page,
            handler,
            shutdown,
            tracker,
        })
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.dns_addr
    }

    pub fn board(&self) -> &StatusBoard {
        &self.board
    }

    /// The DNS path, plugins included: a satellite puts DoT, DoH and DoQ in front of it.
    pub fn handler(&self) -> &Arc<QueryHandler> {
        &self.handler
    }

    /// The queries this client answered, as its page's `/querylog` lists them.
    pub fn query_log(&self) -> &Arc<QueryLog> {
        &self.page.log
    }

    /// What renders Prometheus text as the page's `/metrics` does (the DNS counters and
    /// the sync state), for another server to serve.
    pub fn metrics(&self) -> impl Fn() -> String + Send + Sync + 'static {
        let page = Arc::clone(&self.page);
        move || page.metrics_text()
    }

    /// Stops in the order the module documentation gives.
    pub async fn shutdown(self) -> Result<(), StatusError> {
        drain_in_flight(&self.shutdown, &self.tracker).await;
        self.board.disconnected(None);
        let digest = Digester::default()
            .digest(&self.published.state.view, true)
            .await;
        let last = status::with_zone_names(self.board.to_file(digest), &self.published.state.view);
        status::write_status_file(&self.data_dir, &last).await?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// The two sync paths over the one replica: the export followed over iroh-docs (with
/// `--docs`) and the connector's WebSocket sessions (with `--appliance`).
async fn start_sync_paths(
    config: &LiteConfig,
    replica: ReplicaStore,
    board: &Arc<StatusBoard>,
    (shutdown, tracker): (&CancellationToken, &TaskTracker),
) -> Result<(), StartError> {
    let replica = Arc::new(Mutex::new(replica));
    if let Some(docs) = &config.docs {
        crate::docs::start(
            docs,
            &config.data_dir,
            replica.clone(),
            board.clone(),
            (shutdown, tracker),
        )
        .await
        .map_err(|error| StartError::Docs(format!("{error:#}")))?;
    }
    if !config.appliances.is_empty() {
        let board = board.clone();
        let shutdown = shutdown.clone();
        let (appliances, tls, token) = (
            config.appliances.clone(),
            config.tls.clone(),
            config.token.clone(),
        );
        tracker.spawn(async move {
            crate::connector::run(appliances, tls, token, replica, &board, shutdown).await;
        });
    }
    Ok(())
}

/// Reloads the plugins after every commit that changed their definitions, so the
/// cluster's policy applies here within moments of arriving, until `shutdown`.
async fn reload_plugins(
    plugins: Arc<PluginRuntime>,
    published: LiveState,
    board: Arc<StatusBoard>,
    shutdown: CancellationToken,
) {
    while let Some(fresh) = published.plugins.next_change(&shutdown).await {
        let definitions = published.state.load().zones.plugins().cloned().collect();
        plugins.reload(definitions, fresh).await;
        board.plugins(plugin_statuses(&plugins, &published));
    }
}

/// How often the client looks whether its zones changed under an installed resolver.
const RESOLVER_CHECK: Duration = Duration::from_secs(2);

/// Keeps what `outpost-lite resolver install` wrote in step with the replica's zones
/// (the token's scope grew or shrank), until `shutdown`. Nothing when it was never
/// installed; a failure (no permission) is logged once per set of zones.
async fn keep_resolver(data_dir: PathBuf, published: LiveState, shutdown: CancellationToken) {
    let mut failed_for: Option<Vec<String>> = None;
    loop {
        tokio::select! {
            () = tokio::time::sleep(RESOLVER_CHECK) => {}
            () = shutdown.cancelled() => return,
        }
        let Some(installed) = resolver::read_installed(&data_dir) else {
            continue;
        };
        let zones: Vec<String> = published
            .state
            .view
            .load()
            .zones
            .iter()
            .map(|zone| zone.origin().to_ascii())
            .collect();
        if zones == installed.zones || zones.is_empty() || failed_for.as_ref() == Some(&zones) {
            continue;
        }
        let (os, root, dns) = (installed.os, installed.root.clone(), installed.dns);
        let run_commands = root == std::path::Path::new("/");
        let target = (os, root.as_path(), dns);
        match resolver::reinstall(&data_dir, Some(&installed), target, &zones, run_commands) {
            Ok(_) => {
                tracing::info!(?zones, "resolver configuration follows the new zones");
                failed_for = None;
            }
            Err(error) => {
                tracing::warn!(%error, ?zones, "resolver configuration not updated for the new zones");
                failed_for = Some(zones);
            }
        }
    }
}

/// What [`serve_dns`] started.
struct ServedDns {
    dns_addr: SocketAddr,
    handler: Arc<QueryHandler>,
    plugins: Arc<PluginRuntime>,
    log: Arc<QueryLog>,
    metrics: Arc<Metrics>,
}

/// The status page on `addr`. A page that cannot bind is logged and left off: DNS is the
/// client's job, the page only shows it.
async fn serve_page(
    addr: SocketAddr,
    page: Arc<Page>,
    board: &StatusBoard,
    (shutdown, tracker): (&CancellationToken, &TaskTracker),
) {
    match TcpListener::bind(addr).await {
        Ok(listener) => {
            let bound = listener.local_addr().unwrap_or(addr);
            board.page(bound);
            tracing::info!(page = %format!("http://{bound}/"), "status page");
            crate::page::spawn(listener, page, shutdown.clone(), tracker);
        }
        Err(error) => {
            tracing::warn!(%addr, %error, "the status page is off: its address is taken (choose another with --page ADDR, or --page off)");
        }
    }
}

/// Binds the DNS sockets and serves the replica (its plugins loaded first), until
/// `shutdown`; the DNS tasks are drained with `tracker`'s.
async fn serve_dns(
    config: &LiteConfig,
    published: &LiveState,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<ServedDns, StartError> {
    let addrs: Vec<SocketAddr> = std::iter::once(config.dns)
        .chain(config.dns_extra.iter().copied())
        .collect();
    let dns = DnsSockets::bind(&addrs, config.udp_workers)
        .await
        .map_err(|(addr, source)| StartError::Bind { addr, source })?;
    let dns_addr = dns.local_addr().map_err(|source| StartError::Bind {
        addr: config.dns,
        source,
    })?;
    let metrics = Arc::new(Metrics::default());
    let forwarder = Arc::new(Forwarder::new(&config.forward, metrics.clone()));
    let log = Arc::new(QueryLog::new(config.query_log));
    let handler = QueryHandler::new(
        published.state.zone_set.clone(),
        forwarder,
        config.recursion_networks.clone(),
        metrics.clone(),
    )
    .with_query_log(log.clone());
    handler.set_rate_limit(config.rate_limit);
    handler.set_full_any_over_tcp(config.full_any_over_tcp);
    let handler = Arc::new(handler);
    let engine = PluginEngine::with_disk_cache(&config.data_dir.join("plugin-cache"))
        .map_err(StartError::Plugins)?;
    let plugins = Arc::new(PluginRuntime::new(engine, handler.clone(), config.plugins));
    let definitions = published.state.load().zones.plugins().cloned().collect();
    plugins.reload(definitions, true).await;
    let dns_tracker = TaskTracker::new();
    dns.spawn(handler.clone(), shutdown.clone(), &dns_tracker)
        .map_err(StartError::DnsWorkers)?;
    tracker.spawn(async move {
        dns_tracker.close();
        dns_tracker.wait().await;
    });
    Ok(ServedDns {
        dns_addr,
        handler,
        plugins,
        log,
        metrics,
    })
}

fn plugin_statuses(plugins: &PluginRuntime, published: &LiveState) -> Vec<PluginStatus> {
    published
        .state
        .load()
        .zones
        .plugins()
        .map(|definition| PluginStatus {
            name: definition.name.clone(),
            hook: definition.hook.world().to_string(),
            version: definition.version,
            state: plugins.state_of(definition).0,
        })
        .collect()
}

fn create_data_dir(path: &Path) -> Result<(), StartError> {
    outpost_replica::create_data_dir(path).map_err(|source| StartError::DataDir {
        path: path.to_owned(),
        source,
    })
}
