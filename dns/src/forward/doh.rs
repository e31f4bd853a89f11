//! DNS over HTTPS to an upstream (RFC 8484): POST over one HTTP/2 connection per
//! upstream, opened on first use and kept while it works; HTTP/2 streams carry the
//! queries side by side, so they need no ids of their own (id 0, as section 4.1
//! recommends, so answers are cacheable by HTTP caches).
//!
//! **Bounds:** the server's stream limit caps the queries in flight (a query past it
//! waits for a stream until its own deadline); an answer body larger than
//! [`MAX_TCP_MESSAGE`] is refused; a connection unused for
//! [`super::dot::UPSTREAM_IDLE_TIMEOUT`] is closed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use h2::client::SendRequest;
use http::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::HttpsUpstream;
use super::dot::UPSTREAM_IDLE_TIMEOUT;
use super::exchange::ExchangeError;
use super::tls::{UpstreamTls, connect};
use crate::message::MAX_TCP_MESSAGE;
use crate::metrics::Metrics;

const DNS_MESSAGE: &str = "application/dns-message";

/// One DoH upstream and its connection, if one is open.
pub(super) struct DohLink {
    upstream: HttpsUpstream,
    uri: http::Uri,
    tls: UpstreamTls,
    metrics: Arc<Metrics>,
    current: tokio::sync::Mutex<Option<Connection>>,
}

/// An open HTTP/2 connection: its request handle, and the token that ends its task.
struct Connection {
    sender: SendRequest<Bytes>,
    used: Arc<AtomicBool>,
    closed: CancellationToken,
}

impl DohLink {
    pub(super) fn new(upstream: HttpsUpstream, tls: UpstreamTls, metrics: Arc<Metrics>) -> Self {
        let host = match upstream.name.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => format!("[{ip}]"),
            _ => upstream.name.clone(),
        };
        let authority = match upstream.port {
            443 => host,
            port => format!("{host}:{port}"),
        };
        let uri = http::Uri::builder()
            .scheme("https")
            .authority(authority)
            .path_and_query(upstream.path.as_str())
            .build()
            .unwrap_or_else(|_| http::Uri::from_static("https://invalid/dns-query"));
        Self {
            upstream,
            uri,
            tls,
            metrics,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// POSTs `request` and returns the answer's bytes. A connection that was open
    /// before fails only once: the query is sent again on a new one.
    pub(super) async fn exchange(
        &self,
        request: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, ExchangeError> {
        let (sender, fresh) = self.sender(deadline, false).await?;
        match self.post(sender, request, deadline).await {
            Err(error) if !fresh && !matches!(error, ExchangeError::Timeout) => {
                tracing::debug!(upstream = %self.upstream.host, %error, "reconnecting to a DoH upstream");
                let (sender, _) = self.sender(deadline, true).await?;
                self.post(sender, request, deadline).await
            }
            result => result,
        }
    }

    /// The open connection's handle, or a new connection's; `true` when it is new.
    async fn sender(
        &self,
        deadline: Instant,
        renew: bool,
    ) -> Result<(SendRequest<Bytes>, bool), ExchangeError> {
        let mut current = timeout_at(deadline, self.current.lock())
            .await
            .map_err(|_| ExchangeError::Timeout)?;
        if let Some(open) = current.as_ref().filter(|open| !open.closed.is_cancelled()) {
            if !renew {
                open.used.store(true, Ordering::Relaxed);
                return Ok((open.sender.clone(), false));
            }
            open.closed.cancel();
        }
        let addr = self.address(deadline).await?;
        let stream = connect(&self.tls.doh, addr, &self.upstream.name, deadline).await?;
        let (sender, connection) = timeout_at(deadline, h2::client::handshake(stream))
            .await
            .map_err(|_| ExchangeError::Timeout)?
            .map_err(http2)?;
        Metrics::bump(&self.metrics.upstream_connections);
        let open = Connection {
            sender: sender.clone(),
            used: Arc::new(AtomicBool::new(true)),
            closed: CancellationToken::new(),
        };
        tokio::spawn(drive(connection, open.used.clone(), open.closed.clone()));
        *current = Some(open);
        Ok((sender, true))
    }

    /// The upstream's address: written, or looked up through the system's resolver.
    async fn address(&self, deadline: Instant) -> Result<SocketAddr, ExchangeError> {
        let host = self.upstream.host.as_str();
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.upstream.port));
        }
        timeout_at(
            deadline,
            tokio::net::lookup_host((host, self.upstream.port)),
        )
        .await
        .map_err(|_| ExchangeError::Timeout)??
        .next()
        .ok_or_else(|| ExchangeError::Malformed(format!("{host} has no address")))
    }

    async fn post(
        &self,
        sender: SendRequest<Bytes>,
        query: &[u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, ExchangeError> {
        let work = async {
            let mut sender = sender.ready().await.map_err(http2)?;
            let request = http::Request::post(self.uri.clone())
                .header(CONTENT_TYPE, DNS_MESSAGE)
                .header(ACCEPT, DNS_MESSAGE)
                .header(CONTENT_LENGTH, query.len())
                .body(())
                .map_err(|error| ExchangeError::Malformed(error.to_string()))?;
            let (response, mut body) = sender.send_request(request, false).map_err(http2)?;
            body.send_data(Bytes::copy_from_slice(query), true)
                .map_err(http2)?;
            let response = response.await.map_err(http2)?;
            if response.status() != http::StatusCode::OK {
                return Err(ExchangeError::Malformed(format!(
                    "HTTP status {}",
                    response.status()
                )));
            }
            let content_type = response.headers().get(CONTENT_TYPE);
            if content_type.is_none_or(|value| value != DNS_MESSAGE) {
                return Err(ExchangeError::Malformed(format!(
                    "content type {content_type:?}, not {DNS_MESSAGE}"
                )));
            }
            let mut body = response.into_body();
            let mut answer = Vec::new();
            while let Some(chunk) = body.data().await {
                let chunk = chunk.map_err(http2)?;
                let _ = body.flow_control().release_capacity(chunk.len());
                if answer.len() + chunk.len() > MAX_TCP_MESSAGE {
                    return Err(ExchangeError::Malformed("answer too long".into()));
                }
                answer.extend_from_slice(&chunk);
            }
            Ok(answer)
        };
        timeout_at(deadline, work)
            .await
            .map_err(|_| ExchangeError::Timeout)?
    }
}

impl Drop for DohLink {
    /// A link dropped by a config reload closes its connection.
    fn drop(&mut self) {
        if let Some(open) = self.current.get_mut().as_ref() {
            open.closed.cancel();
        }
    }
}

/// Runs the HTTP/2 connection until it ends, is closed, or is left unused for
/// [`UPSTREAM_IDLE_TIMEOUT`].
async fn drive<T>(
    connection: h2::client::Connection<T, Bytes>,
    used: Arc<AtomicBool>,
    closed: CancellationToken,
) where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tokio::pin!(connection);
    let mut tick = tokio::time::interval(UPSTREAM_IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = closed.cancelled() => break,
            _ = &mut connection => break,
            _ = tick.tick() => {
                if !used.swap(false, Ordering::Relaxed) {
                    break;
                }
            }
        }
    }
    closed.cancel();
}

fn http2(error: h2::Error) -> ExchangeError {
    ExchangeError::Malformed(format!("HTTP/2: {error}"))
}
