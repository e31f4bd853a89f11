//! `outpost serve --satellite TICKET` (`docs/iroh-docs.md`): a node outside the cluster.
//! It follows an export's iroh-docs document from any peer that holds it (the cluster's
//! nodes, other satellites, Lite clients), keeps it in its own replica, serves DNS from it
//! with the same answer engine and plugins as a member, and refuses writes.
//!
//! It is the Lite client's machinery (`outpost_lite::lite::LiteClient` with `--docs` and no
//! appliance URL) under the appliance's configuration: every `dns.listen` address and its
//! UDP workers, `allow_recursion`, `[forward]`, `[plugins]`, `[query_log]`,
//! `[dns.rate_limit]`, `full_any_over_tcp`; DoT, DoH and DoQ (a member's listeners and
//! certificate, in front of the replica's DNS path); and a small admin API
//! (`admin::satellite`). Start: data directory (refused if it is a member's) → admin token →
//! admin and encrypted listeners bound → replica, DNS and the export followed → DoT, DoH,
//! DoQ → admin API → `addresses.json`.
//!
//! Not on a satellite: zone transfers (its copy is not a primary's), and reloading the
//! certificate or settings on SIGHUP (restart it).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use outpost_dns::server::encrypted::cert::{CertResolver, DnsCertificate};
use outpost_dns::server::encrypted::{EncryptedAddrs, EncryptedSockets};
use outpost_dns::server::{DRAIN_DEADLINE, stop_and_drain};
use outpost_lite::config::LiteConfig;
use outpost_lite::lite::LiteClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::satellite::SatelliteAdmin;
use crate::config::Config;
use crate::store::DB_FILE_NAME;

/// Where a satellite's docs endpoint listens without `--export-listen` (the Lite
/// client's default: every interface, port 7470).
const DEFAULT_LISTEN: &str = outpost_lite::docs::DEFAULT_DOCS_LISTEN;

/// A running satellite.
pub struct Satellite {
    lite: LiteClient,
    admin_addr: SocketAddr,
    encrypted_addrs: EncryptedAddrs,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Satellite {
    pub async fn start(config: &Config) -> anyhow::Result<Satellite> {
        let satellite = config
            .satellite
            .as_ref()
            .context("no satellite ticket in the configuration")?;
        if config.data_dir.join(DB_FILE_NAME).exists() {
            anyhow::bail!(
                "{} holds a cluster member's state ({DB_FILE_NAME}): give a satellite a data directory of its own",
                config.data_dir.display()
            );
        }
        outpost_replica::create_data_dir(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        let token = crate::admin::load_or_create_token(&config.data_dir)
            .context("cannot read or create the admin token")?;
        let admin = TcpListener::bind(config.admin).await.with_context(|| {
            format!(
                "cannot bind admin on {} (pick another with --admin)",
                config.admin
            )
        })?;
        let admin_addr = admin.local_addr().context("the admin listener's address")?;
        let encrypted = crate::node::prepare_encrypted(config).await?;
        let listen = config
            .export_listen
            .map_or_else(|| DEFAULT_LISTEN.to_string(), |addr| addr.to_string());
        let docs = outpost_lite::docs::resolve(
            std::slice::from_ref(&satellite.ticket),
            &satellite.peers,
            Some(&listen),
        )?
        .context("the satellite's ticket")?;
        let export = docs.ticket.export.clone();
        let lite = LiteClient::start(lite_config(config, docs)).await?;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let encrypted_addrs = match spawn_encrypted(encrypted, &lite, (&shutdown, &tracker)) {
            Ok(addrs) => addrs,
            Err(error) => {
                stop_and_drain(&shutdown, &tracker, DRAIN_DEADLINE, "encrypted DNS").await;
                if let Err(stop) = lite.shutdown().await {
                    tracing::warn!(error = %stop, "the replica did not stop cleanly");
                }
                return Err(error);
            }
        };
        let state = SatelliteAdmin {
            token,
            data_dir: config.data_dir.clone(),
            export: export.clone(),
            query_log: lite.query_log().clone(),
            metrics: Box::new(lite.metrics()),
        };
        tracker.spawn(crate::admin::satellite::serve(
            admin,
            state,
            shutdown.clone(),
        ));
        tracker.close();
        let satellite = Satellite {
            lite,
            admin_addr,
            encrypted_addrs,
            shutdown,
            tracker,
        };
        satellite.write_addresses(&config.data_dir)?;
        tracing::info!(%export, dns = %satellite.lite.dns_addr(), admin = %admin_addr, "serving as a satellite");
        Ok(satellite)
    }

    pub fn dns_addr(&self) -> SocketAddr {
        self.lite.dns_addr()
    }

    /// `addresses.json`, as a member writes it: the DNS, admin and encrypted DNS addresses
    /// and the pid.
    fn write_addresses(&self, data_dir: &std::path::Path) -> anyhow::Result<()> {
        let path: PathBuf = data_dir.join("addresses.json");
        let temporary = data_dir.join("addresses.json.tmp");
        let body = format!(
            "{{\"dns\":\"{}\",\"admin\":\"{}\",{}\"satellite\":true,\"pid\":{}}}\n",
            self.dns_addr(),
            self.admin_addr,
            crate::node::encrypted_addresses(self.encrypted_addrs),
            std::process::id()
        );
        std::fs::write(&temporary, body)
            .and_then(|()| std::fs::rename(&temporary, &path))
            .with_context(|| format!("cannot write {}", path.display()))
    }

    /// Stops the admin API and DoT, DoH and DoQ (their in-flight work given
    /// [`DRAIN_DEADLINE`]), then the replica, DNS and the export's sync.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let what = "admin and encrypted DNS";
        stop_and_drain(&self.shutdown, &self.tracker, DRAIN_DEADLINE, what).await;
        self.lite.shutdown().await?;
        Ok(())
    }
}

/// DoT, DoH and DoQ in front of the replica's DNS path, when any is on; what they bound.
fn spawn_encrypted(
    (sockets, certificate): (EncryptedSockets, Option<DnsCertificate>),
    lite: &LiteClient,
    (shutdown, tracker): (&CancellationToken, &TaskTracker),
) -> anyhow::Result<EncryptedAddrs> {
    let addrs = sockets
        .local_addrs()
        .context("the encrypted DNS listeners' addresses")?;
    if let Some(certificate) = certificate {
        let resolver = CertResolver::new(&certificate);
        sockets
            .spawn(lite.handler().clone(), resolver, shutdown.clone(), tracker)
            .context("cannot start the encrypted DNS listeners")?;
    }
    Ok(addrs)
}

/// The Lite client a satellite runs: the export only, under the node's settings.
fn lite_config(config: &Config, docs: outpost_lite::docs::DocsConfig) -> LiteConfig {
    LiteConfig {
        appliances: Vec::new(),
        tls: None,
        token: String::new(),
        dns: config.dns[0],
        dns_extra: config.dns[1..].to_vec(),
        udp_workers: config.udp_workers,
        data_dir: config.data_dir.clone(),
        forward: config.forward.clone(),
        recursion_networks: config.recursion_networks.clone(),
        plugins: config.plugins,
        page: None,
        query_log: config.query_log,
        rate_limit: config.rate_limit,
        full_any_over_tcp: config.full_any_over_tcp,
        docs: Some(docs),
    }
}
