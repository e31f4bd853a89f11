//! DNS over HTTPS (RFC 8484) over HTTP/2: GET (`?dns=` base64url) and POST
//! (`application/dns-message`) on [`DOH_PATH`]. Ours rather than hickory-server's,
//! whose 0.26 listener answers GET with an error while the RFC requires both.
//!
//! **Bounds:** as many connections as plain TCP, in a pool of their own: at most
//! [`MAX_TCP_CONNECTIONS`](crate::server::MAX_TCP_CONNECTIONS), [`MAX_TCP_CONNECTIONS_PER_SOURCE`](crate::server::MAX_TCP_CONNECTIONS_PER_SOURCE)
//! from one source (beyond
//! either, a new one is closed at once and counted in `outpost_dns_tcp_refused_total`); the
//! TLS handshake, the HTTP/2 handshake and the wait for each next request each within
//! [`ENCRYPTED_TIMEOUT`] (then the connection is closed); at most [`DOH_MAX_STREAMS`]
//! requests in flight on one connection (HTTP/2 refuses more); a POST body over 65535
//! bytes is refused (413).
//!
//! An answer carries `Cache-Control: max-age` no longer than its smallest TTL (section
//! 5.1), so an HTTP cache between client and server never serves it stale.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use http::{Method, Request, Response, StatusCode};
use outpost_core::answer::Transport;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::super::tcp::Limits;
use super::{DOH_PATH, ENCRYPTED_TIMEOUT};
use crate::handler::{Handled, QueryHandler};
use crate::message::MAX_TCP_MESSAGE;

/// Requests in flight on one DoH connection (HTTP/2 `SETTINGS_MAX_CONCURRENT_STREAMS`);
/// a client opening more is refused the extra streams by HTTP/2 itself.
pub const DOH_MAX_STREAMS: u32 = 100;

const DNS_MESSAGE: &str = "application/dns-message";

/// Accepts DoH connections until `shutdown`.
pub(super) async fn serve(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    handler: Arc<QueryHandler>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = Limits::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::debug!(%error, "DoH accept failed");
                    continue;
                }
            },
            () = shutdown.cancelled() => return,
        };
        let Some(admitted) = limits.admit(peer.ip(), handler.metrics()) else {
            continue;
        };
        let connection = connection(stream, peer, acceptor.clone(), handler.clone());
        let shutdown = shutdown.clone();
        tracker.spawn(async move {
            tokio::select! {
                () = connection => {}
                () = shutdown.cancelled() => {}
            }
            drop(admitted);
        });
    }
}

/// One client: TLS, HTTP/2, then each request on a task of its own.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    handler: Arc<QueryHandler>,
) {
    // HTTP/2 writes an answer as two frames (HEADERS, DATA): with Nagle on, the second
    // waits for the client's delayed ACK, 40 ms per answer.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "cannot set TCP_NODELAY on a DoH connection");
    }
    let Ok(Ok(tls)) = timeout(ENCRYPTED_TIMEOUT, acceptor.accept(stream)).await else {
        tracing::debug!(%peer, "DoH TLS handshake failed or timed out");
        return;
    };
    let handshake = h2::server::Builder::new()
        .max_concurrent_streams(DOH_MAX_STREAMS)
        .handshake::<_, Bytes>(tls);
    let Ok(Ok(mut http)) = timeout(ENCRYPTED_TIMEOUT, handshake).await else {
        tracing::debug!(%peer, "DoH HTTP/2 handshake failed or timed out");
        return;
    };
    while let Ok(Some(Ok((request, respond)))) = timeout(ENCRYPTED_TIMEOUT, http.accept()).await {
        let handler = handler.clone();
        tokio::spawn(async move {
            let (status, body) = answer(request, peer, &handler).await;
            if let Err(error) = reply(respond, status, body) {
                tracing::debug!(%peer, %error, "cannot send a DoH answer");
            }
        });
    }
}

/// The status and body for one request.
async fn answer(
    request: Request<h2::RecvStream>,
    peer: SocketAddr,
    handler: &QueryHandler,
) -> (StatusCode, Bytes) {
    let (parts, body) = request.into_parts();
    if parts.uri.path() != DOH_PATH {
        return (StatusCode::NOT_FOUND, Bytes::new());
    }
    let query = match parts.method {
        Method::GET => match dns_parameter(parts.uri.query().unwrap_or("")) {
            Some(query) => query,
            None => return (StatusCode::BAD_REQUEST, Bytes::new()),
        },
        ref method => {
            // Read first, so the client is not reset in the middle of its body.
            let query = match read_body(body).await {
                Ok(query) => query,
                Err(status) => return (status, Bytes::new()),
            };
            if *method != Method::POST {
                return (StatusCode::METHOD_NOT_ALLOWED, Bytes::new());
            }
            let content_type = parts.headers.get(http::header::CONTENT_TYPE);
            if content_type.and_then(|value| value.to_str().ok()) != Some(DNS_MESSAGE) {
                return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Bytes::new());
            }
            query
        }
    };
    let limit = Some(MAX_TCP_MESSAGE);
    let mut reply = Vec::with_capacity(512);
    match handler.handle(&query, peer.ip(), Transport::Https, limit, &mut reply) {
        Handled::Reply => (StatusCode::OK, Bytes::from(reply)),
        Handled::Forward(forward) => {
            let bytes = handler.forward(forward, Transport::Https, limit).await;
            (StatusCode::OK, Bytes::from(bytes))
        }
        // Transfers are TCP's and TLS's only (the handler refuses them here).
        Handled::Drop | Handled::Transfer(_) => (StatusCode::BAD_REQUEST, Bytes::new()),
    }
}

/// The `dns` parameter of a GET: a DNS message in base64url, unpadded (padding is
/// tolerated).
fn dns_parameter(query: &str) -> Option<Vec<u8>> {
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("dns="))?;
    let decoded = URL_SAFE_NO_PAD.decode(value.trim_end_matches('=')).ok()?;
    (decoded.len() <= MAX_TCP_MESSAGE).then_some(decoded)
}

/// A POST body, at most one DNS message long.
async fn read_body(mut body: h2::RecvStream) -> Result<Vec<u8>, StatusCode> {
    let mut query = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(|_| StatusCode::BAD_REQUEST)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if query.len() + chunk.len() > MAX_TCP_MESSAGE {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        query.extend_from_slice(&chunk);
    }
    Ok(query)
}

/// How long an HTTP cache may keep an answer (RFC 8484 section 5.1): the smallest TTL
/// of its answer section or, for a negative answer, its SOA's, which is already the
/// negative TTL (RFC 2308); 0 when it has neither, or cannot be read back.
fn max_age(reply: &[u8]) -> u32 {
    let Ok(message) = Message::from_vec(reply) else {
        return 0;
    };
    (message.answers.iter().map(|record| record.ttl).min())
        .or_else(|| {
            (message.authorities.iter())
                .find(|record| record.record_type() == RecordType::SOA)
                .map(|record| record.ttl)
        })
        .unwrap_or(0)
}

fn reply(
    mut respond: h2::server::SendResponse<Bytes>,
    status: StatusCode,
    body: Bytes,
) -> Result<(), h2::Error> {
    let mut response = Response::builder().status(status);
    if status == StatusCode::OK {
        response = response
            .header(http::header::CONTENT_TYPE, DNS_MESSAGE)
            .header(
                http::header::CACHE_CONTROL,
                format!("max-age={}", max_age(&body)),
            );
    }
    let response = response
        .header(http::header::CONTENT_LENGTH, body.len())
        .body(())
        .unwrap_or_default();
    let mut stream = respond.send_response(response, body.is_empty())?;
    if !body.is_empty() {
        stream.send_data(body, true)?;
    }
    Ok(())
}
