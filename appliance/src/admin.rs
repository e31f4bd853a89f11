//! The admin HTTP API: zone and record writes, reads of the zones model, health and
//! Prometheus metrics.
//!
//! Every handler is the same short chain: extract and check the request, build a
//! [`Command`](outpost_core::state::Command), [`Store::write`] it (Raft commit and
//! apply), and map the [`Written`](crate::store::Written) or the refusal to a response.
//! Reads come from the local replica ([`Store::zones`]), which is stale by at most the
//! replication lag, or, with `?consistency=linearizable`, from a state confirmed through the
//! leader to hold every write acknowledged before the request ([`cluster::Consistent`]).
//!
//! # Layout
//! - [`listener`]: the accept loop: hyper connections under a header-read timeout, a
//!   connection cap, graceful shutdown.
//! - [`auth`]: the admin token file and the bearer check on `/v1`.
//! - [`console`]: the operator's web console under `/ui/`, and its sign-in sessions.
//! - [`body`]: the JSON bodies of the answers, shared with the CLI.
//! - [`error`]: [`ApiError`], the one error type, and extractors that produce it.
//! - [`status`]: `/health`, `/ready`, `/metrics` and `/v1/status`.
//! - [`zones`]: `/v1/zones…`: list, create, delete, import a master file, export.
//! - [`records`]: `/v1/records` and `/v1/zones/{origin}/records`.
//! - [`tokens`]: `/v1/lite-tokens…` (Lite tokens) and `/v1/sync/sessions`.
//! - [`exports`]: `/v1/exports…`: iroh-docs exports and their read-only tickets.
//! - [`plugins`]: `/v1/plugins…`: WebAssembly plugins checked, installed, listed,
//!   removed.
//! - [`cluster`]: `/v1/cluster…`: join invites, cluster status, retiring a node; and the
//!   read view of listings (`?consistency=local|linearizable`).
//! - [`satellite`]: a satellite's admin API: `/metrics`, `/v1/status`, `/v1/querylog…`;
//!   every other `/v1` refused.
//! - [`querylog`]: `/v1/querylog…`: this node's recent queries and per-minute aggregates.
//! - [`transform`]: record-transform plugins over the records of a write.
//! - [`presentation`]: records as master-file text, for export and listings.
//!
//! **Boundary:** the JSON bodies are defined here, separate from the internal types;
//! they are the compatibility surface of the `outpost` CLI and of scripts.

mod auth;
pub(crate) mod body;
mod cluster;
mod connection;
pub mod console;
mod error;
mod exports;
pub(crate) mod follow;
mod idempotency;
mod listener;
pub mod plugins;
mod presentation;
mod querylog;
mod records;
pub mod satellite;
mod status;
mod tokens;
mod transform;
mod zones;

#[cfg(test)]
pub(crate) mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post, put};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::store::Store;
use crate::sync::hub::Hub;
use outpost_dns::metrics::Metrics;
use outpost_dns::plugin_runtime::PluginRuntime;
use outpost_dns::querylog::QueryLog;
use outpost_dns::server::encrypted::cert::CertResolver;

pub use auth::{TOKEN_FILE_NAME, load_or_create_token};
pub use error::ApiError;
pub use listener::ConnectionCounters;

/// Largest master file `PUT /v1/zones/{origin}` accepts. A zone import is one Raft
/// entry, and the parsed records take several times the text in memory, so this bounds
/// the memory one request can take. 64 MiB is about a million records of typical
/// size, the most one write may hold ([`outpost_core::wire::MAX_RECORDS_PER_BLOB`]).
pub const ZONE_FILE_LIMIT_BYTES: usize = 64 * 1024 * 1024;

/// What the handlers share.
pub struct AdminState {
    /// Where writes go and reads come from.
    pub store: Store,
    /// The DNS counters rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The bearer token every `/v1` request must carry (from [`load_or_create_token`]).
    pub token: String,
    /// Set once every listener is up; `/ready` reports it to load balancers.
    pub ready: Arc<AtomicBool>,
    /// The Lite sync sessions, for `/v1/sync/sessions`, token listings and `/metrics`.
    pub hub: Arc<Hub>,
    /// The plugins in force: checked installs, transforms on writes, counters.
    pub plugins: Arc<PluginRuntime>,
    /// The accept loop's counters (refused and timed-out connections), for `/metrics`.
    pub connections: Arc<ConnectionCounters>,
    /// The certificate of DoT, DoH and DoQ, whose pin `/v1/status` shows; `None` when
    /// every encrypted listener is off.
    pub dns_tls: Option<Arc<CertResolver>>,
    /// What this node's DNS clients asked, for `/v1/querylog`; `None`: no log kept.
    pub query_log: Option<Arc<QueryLog>>,
    /// The console's signed-in sessions.
    pub sessions: console::Sessions,
    /// This node's export endpoint and writer; `None` without `[export] listen`.
    pub exports: Option<Arc<crate::exports::ExportService>>,
}

/// Serves until `shutdown` is cancelled, then finishes in-flight requests for at most
/// [`DRAIN_DEADLINE`](outpost_dns::server::DRAIN_DEADLINE) ([`listener`]'s shutdown order).
pub async fn serve(
    listener: TcpListener,
    state: AdminState,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "admin API listening");
    }
    let counters = Arc::clone(&state.connections);
    listener::accept_loop(listener, router(state), counters, shutdown).await;
    Ok(())
}

/// Every route; `/v1` behind the bearer token.
pub fn router(state: AdminState) -> Router {
    let state = Arc::new(state);
    let v1 = Router::new()
        .route("/v1/status", get(status::status))
        .route("/v1/zones", get(zones::list).post(zones::create))
        .route(
            "/v1/zones/{origin}",
            put(zones::import)
                .delete(zones::delete)
                .layer(DefaultBodyLimit::max(ZONE_FILE_LIMIT_BYTES)),
        )
        .route("/v1/zones/{origin}/export", get(zones::export))
        .route("/v1/follows", get(follow::list).post(follow::follow))
        .route("/v1/follows/{origin}", delete(follow::unfollow))
        .route("/v1/zones/{origin}/records", get(records::list))
        .route(
            "/v1/records",
            put(records::replace)
                .post(records::add)
                .delete(records::delete),
        )
        .route("/v1/lite-tokens", get(tokens::list).post(tokens::create))
        .route("/v1/lite-tokens/{name}", delete(tokens::revoke))
        .route("/v1/exports", get(exports::list).post(exports::create))
        .route(
            "/v1/exports/{name}",
            get(exports::show).delete(exports::remove),
        )
        .route("/v1/sync/sessions", get(tokens::sessions))
        .route("/v1/plugins", get(plugins::list))
        .route("/v1/querylog", get(querylog::search))
        .route("/v1/querylog/stats", get(querylog::stats))
        .route("/v1/cluster", get(cluster::status))
        .route("/v1/cluster/invites", post(cluster::invite))
        .route("/v1/cluster/nodes/{id}", delete(cluster::remove))
        .route(
            "/v1/plugins/{name}",
            put(plugins::install)
                .delete(plugins::remove)
                .layer(DefaultBodyLimit::max(plugins::PLUGIN_BODY_LIMIT_BYTES)),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require_token,
        ));
    let ui = Router::new()
        .route("/ui", get(console::redirect))
        .route("/ui/", get(console::index))
        .route("/ui/app.js", get(console::script))
        .route("/ui/app.css", get(console::style))
        .route(
            "/ui/session",
            get(console::current)
                .post(console::sign_in)
                .delete(console::sign_out),
        );
    Router::new()
        .route("/health", get(status::health))
        .route("/ready", get(status::ready))
        .route("/metrics", get(status::metrics))
        .merge(v1)
        .merge(ui)
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(axum::middleware::from_fn(connection::close_if_body_unread))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no such route: {} (the admin API lives under /v1)",
        uri.path()
    ))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}
