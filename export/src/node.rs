//! One endpoint that takes part in export documents: an iroh endpoint of its own (not the
//! Raft one: it serves anyone who holds a ticket, where Raft serves members only), and on
//! it iroh-docs (set reconciliation), iroh-blobs (the values) and iroh-gossip (news of
//! new entries), all in memory.
//!
//! Blobs that no document entry refers to any more are collected every
//! [`BLOB_GC_INTERVAL`], so the store holds one copy of each document's current values,
//! not their history.

use std::net::SocketAddr;
use std::time::Duration;

use iroh::endpoint::presets;
use iroh::protocol::Router;
use iroh::{Endpoint, EndpointAddr, RelayMode, SecretKey};
use iroh_blobs::BlobsProtocol;
use iroh_blobs::store::GcConfig;
use iroh_blobs::store::mem::{MemStore, Options};
use iroh_docs::engine::{DefaultAuthorStorage, Engine, ProtectCallbackHandler};
use iroh_docs::protocol::Docs;
use iroh_gossip::net::Gossip;

/// How often blobs no entry refers to are dropped.
pub const BLOB_GC_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("cannot bind the export endpoint on {addr}: {reason}")]
    Bind { addr: SocketAddr, reason: String },
    #[error("cannot start iroh-docs: {0}")]
    Docs(String),
}

/// A running docs endpoint. Cheap to clone.
#[derive(Clone)]
pub struct DocsNode {
    pub(crate) router: Router,
    pub(crate) docs: Docs,
    pub(crate) sync: iroh_docs::actor::SyncHandle,
    pub(crate) blobs: MemStore,
    bound: SocketAddr,
}

impl DocsNode {
    /// Binds `addr` (port 0: any free port) under `key` and starts the three protocols.
    pub async fn bind(key: SecretKey, addr: SocketAddr) -> Result<DocsNode, NodeError> {
        let bind_error = |reason: String| NodeError::Bind { addr, reason };
        let endpoint = Endpoint::builder(presets::Minimal)
            .secret_key(key)
            .relay_mode(RelayMode::Disabled)
            .clear_ip_transports()
            .bind_addr(addr)
            .map_err(|error| bind_error(error.to_string()))?
            .bind()
            .await
            .map_err(|error| bind_error(error.to_string()))?;
        let bound = endpoint
            .bound_sockets()
            .into_iter()
            .find(|bound| bound.is_ipv4() == addr.is_ipv4())
            .ok_or_else(|| bind_error("no socket was bound on that address".to_string()))?;
        let docs_error = |error: anyhow::Error| NodeError::Docs(format!("{error:#}"));
        let (protect, protect_cb) = ProtectCallbackHandler::new();
        let blobs = MemStore::new_with_opts(Options {
            gc_config: Some(GcConfig {
                interval: BLOB_GC_INTERVAL,
                add_protected: Some(protect_cb),
            }),
        });
        let gossip = Gossip::builder().spawn(endpoint.clone());
        let engine = Engine::spawn(
            endpoint.clone(),
            gossip.clone(),
            iroh_docs::store::Store::memory(),
            (*blobs).clone(),
            blobs.downloader(&endpoint),
            DefaultAuthorStorage::Mem,
            Some(protect),
        )
        .await
        .map_err(docs_error)?;
        let sync = engine.sync.clone();
        let docs = Docs::new(engine);
        let router = Router::builder(endpoint)
            .accept(iroh_docs::ALPN, docs.clone())
            .accept(iroh_blobs::ALPN, BlobsProtocol::new(&blobs, None))
            .accept(iroh_gossip::ALPN, gossip)
            .spawn();
        tracing::info!(id = %router.endpoint().id(), %bound, "export endpoint bound");
        Ok(DocsNode {
            router,
            docs,
            sync,
            blobs,
            bound,
        })
    }

    /// This endpoint's id and the address peers dial: the bound one, or when bound on
    /// every interface (`0.0.0.0`, `[::]`), the interfaces' addresses iroh found, at the
    /// bound port (the bound one until it found any).
    pub fn addr(&self) -> EndpointAddr {
        let id = self.router.endpoint().id();
        if !self.bound.ip().is_unspecified() {
            return EndpointAddr::new(id).with_ip_addr(self.bound);
        }
        let found: Vec<SocketAddr> = self
            .router
            .endpoint()
            .addr()
            .ip_addrs()
            .filter(|addr| addr.is_ipv4() == self.bound.is_ipv4() && !addr.ip().is_unspecified())
            .map(|addr| SocketAddr::new(addr.ip(), self.bound.port()))
            .collect();
        if found.is_empty() {
            return EndpointAddr::new(id).with_ip_addr(self.bound);
        }
        found
            .into_iter()
            .fold(EndpointAddr::new(id), |addr, ip| addr.with_ip_addr(ip))
    }

    /// Stops the protocols and closes the endpoint.
    pub async fn shutdown(&self) {
        if let Err(error) = self.router.shutdown().await {
            tracing::warn!(%error, "export endpoint stopped with an error");
        }
    }
}

impl DocsNode {
    /// This endpoint's iroh-docs API: what the writer and the reader use, and what a
    /// tool (or a test playing a hostile peer) writes with directly.
    pub fn api(&self) -> &iroh_docs::api::DocsApi {
        self.docs.api()
    }
}
