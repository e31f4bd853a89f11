//! The admin API's accept loop: HTTP/1 connections served by hyper's connection builder,
//! each under a header-read timer, at most [`MAX_CONNECTIONS`] at once.
//!
//! `axum::serve` has no timers, so a client that sends a request head one byte at a time,
//! or opens connections and sends nothing, would hold them for ever (slowloris). Here:
//! - a connection that has not sent a whole request head [`HEADER_READ_TIMEOUT`] after it
//!   started waiting for one is closed. hyper starts that timer when the connection is
//!   accepted and again when a response has been written, so it is also the idle timeout
//!   of a kept-alive connection between requests;
//! - past [`MAX_CONNECTIONS`], a new connection is closed as it is accepted, and counted
//!   (`outpost_admin_connections_refused_total`).
//!
//! Shutdown: stop accepting, ask every connection to finish (an idle one closes at once, a
//! request being served is answered, then the connection closes), wait for them at most
//! [`DRAIN_DEADLINE`], then drop the rest.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use outpost_dns::metrics::write_sample;
use outpost_dns::server::DRAIN_DEADLINE;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// How long a connection has to send a whole request head (request line and headers), from
/// when it was accepted or its previous response was written; it is closed past it. Ten
/// seconds is ample for the CLI, scripts and Prometheus on any link, and bounds how long a
/// silent or dripping client holds one of the [`MAX_CONNECTIONS`].
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Admin connections open at once. The CLI, scripts and a Prometheus scraper need a few;
/// a new connection past the cap is closed as it is accepted, and counted.
pub const MAX_CONNECTIONS: usize = 64;

/// The pause after a failed accept (out of file descriptors, for instance) before the next,
/// so the loop does not spin while the condition lasts.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the accept loop counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections closed as they were accepted, at [`MAX_CONNECTIONS`].
    refused: AtomicU64,
    /// Connections closed part-way through a request head that did not arrive within
    /// [`HEADER_READ_TIMEOUT`] (a connection that sent nothing is closed without a count).
    header_timeouts: AtomicU64,
    /// Connections open now.
    open: AtomicU64,
}

impl ConnectionCounters {
    /// Appends the counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        write_sample(
            out,
            "outpost_admin_connections",
            "gauge",
            "Admin API connections open.",
            self.open.load(Ordering::Relaxed),
        );
        write_sample(
            out,
            "outpost_admin_connections_refused_total",
            "counter",
            "Admin API connections closed as they were accepted, at the connection cap.",
            self.refused.load(Ordering::Relaxed),
        );
        write_sample(
            out,
            "outpost_admin_header_timeouts_total",
            "counter",
            "Admin API connections closed part-way through a request head not sent in time.",
            self.header_timeouts.load(Ordering::Relaxed),
        );
    }
}

/// Accepts and serves connections until `shutdown` is cancelled, then drains them (the
/// module's shutdown order).
pub async fn accept_loop(
    listener: TcpListener,
    router: Router,
    counters: Arc<ConnectionCounters>,
    shutdown: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Dropped on return: aborts the connections that did not finish within the deadline.
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            Some(_) = connections.join_next() => continue,
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "admin accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            counters.refused.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%peer, limit = MAX_CONNECTIONS, "admin connection refused: at the connection cap");
            drop(stream);
            continue;
        };
        let connection = serve_connection(
            stream,
            router.clone(),
            Arc::clone(&counters),
            shutdown.clone(),
            slot,
        );
        connections.spawn(connection.instrument(tracing::debug_span!("admin", %peer)));
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_DEADLINE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(deadline = ?DRAIN_DEADLINE, left = connections.len(), "admin connections did not finish in time; closing them");
    }
}

/// Serves one connection until it closes, times out or, after shutdown, finishes the
/// request in flight.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    counters: Arc<ConnectionCounters>,
    shutdown: CancellationToken,
    slot: OwnedSemaphorePermit,
) {
    counters.open.fetch_add(1, Ordering::Relaxed);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        if error.is_timeout() {
            counters.header_timeouts.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(timeout = ?HEADER_READ_TIMEOUT, "admin connection closed: no request head in time");
        } else {
            tracing::debug!(%error, "admin connection ended");
        }
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
    drop(slot);
}
