//! DNS over TLS (RFC 7858), over HTTPS (RFC 8484, HTTP/2, GET and POST) and over QUIC
//! (RFC 9250), in front of the same [`QueryHandler`] as our UDP and TCP loops, so
//! answers, policy plugins, metrics and limits are the same.
//!
//! - **DoT** is our TCP loop ([`super::tcp`]) behind a TLS handshake: after it, DoT is
//!   RFC 7766 TCP, and our loop has what hickory-server 0.26's TLS listener lacks: a
//!   cap on connections overall and per source, a write timeout, out-of-order
//!   pipelining, and answers written without being decoded and encoded again.
//! - **DoH** is ours too ([`doh`], on the `h2` crate): hickory-server 0.26 answers GET
//!   with an error.
//! - **DoQ** is hickory-server's listener: it does the QUIC framing and hands each
//!   message to [`Encrypted`], which runs it through [`QueryHandler::handle`] (and
//!   [`QueryHandler::forward`] when it needs an upstream) and sends our encoded answer
//!   back as hickory-server's response.
//!
//! Every encrypted transport is treated as TCP: answers up to 65535 bytes, no response
//! rate limiting (the handshake proves the client's address).
//!
//! **Bounds:** a client that completes no TLS or QUIC handshake, or sends no message
//! within [`ENCRYPTED_TIMEOUT`], is disconnected (our TCP loop's idle timeout for DoT,
//! hickory-server's one timer for DoQ, the same in [`doh`]); DoT has the TCP loop's
//! connection caps in a pool of its own; see [`doh`] for its stream cap. DoQ
//! connections are not capped (hickory-server's QUIC listener has no cap; each
//! connection is closed after 100 queries or [`ENCRYPTED_TIMEOUT`] idle).

pub mod cert;
mod doh;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Header, HeaderCounts, Message, MessageType, Metadata, ResponseCode};
use hickory_server::Server;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponseBuilder;
use outpost_core::answer::Transport;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::{Handled, QueryHandler};
use crate::message::MAX_TCP_MESSAGE;
use cert::CertResolver;

/// hickory-server's timer on each DoT, DoH and DoQ connection: the TLS (or QUIC)
/// handshake must finish, and each next message arrive, within it; otherwise the
/// connection is closed. The same as our plain TCP's idle timeout.
pub const ENCRYPTED_TIMEOUT: Duration = super::TCP_IDLE_TIMEOUT;

/// The path DoH queries are served on (RFC 8484's example, what clients default to).
pub const DOH_PATH: &str = "/dns-query";

/// Where the encrypted listeners are to be: each optional.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EncryptedAddrs {
    pub tls: Option<SocketAddr>,
    pub https: Option<SocketAddr>,
    pub quic: Option<SocketAddr>,
}

impl EncryptedAddrs {
    pub fn any(&self) -> bool {
        self.tls.is_some() || self.https.is_some() || self.quic.is_some()
    }
}

/// The bound sockets of the encrypted listeners, bound before serving so a port taken
/// is an error at start and port 0 gets its real number.
#[derive(Debug)]
pub struct EncryptedSockets {
    tls: Option<TcpListener>,
    https: Option<TcpListener>,
    quic: Option<UdpSocket>,
}

impl EncryptedSockets {
    /// Binds what `addrs` asks for; the error names the listener.
    pub async fn bind(addrs: EncryptedAddrs) -> io::Result<EncryptedSockets> {
        let named = |what: &'static str| {
            move |error: io::Error| io::Error::new(error.kind(), format!("{what}: {error}"))
        };
        Ok(EncryptedSockets {
            tls: match addrs.tls {
                Some(addr) => Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(named("dns.tls_listen"))?,
                ),
                None => None,
            },
            https: match addrs.https {
                Some(addr) => Some(
                    TcpListener::bind(addr)
                        .await
                        .map_err(named("dns.https_listen"))?,
                ),
                None => None,
            },
            quic: match addrs.quic {
                Some(addr) => Some(
                    UdpSocket::bind(addr)
                        .await
                        .map_err(named("dns.quic_listen"))?,
                ),
                None => None,
            },
        })
    }

    /// The addresses bound (with the ports chosen for port 0).
    pub fn local_addrs(&self) -> io::Result<EncryptedAddrs> {
        Ok(EncryptedAddrs {
            tls: self.tls.as_ref().map(TcpListener::local_addr).transpose()?,
            https: self
                .https
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
            quic: self.quic.as_ref().map(UdpSocket::local_addr).transpose()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tls.is_none() && self.https.is_none() && self.quic.is_none()
    }

    /// Serves until `shutdown`, presenting what `certificate` holds.
    pub fn spawn(
        self,
        handler: Arc<QueryHandler>,
        certificate: Arc<CertResolver>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> io::Result<()> {
        if self.is_empty() {
            return Ok(());
        }
        let mut server = Server::new(Encrypted {
            handler: handler.clone(),
        });
        if let Some(listener) = self.tls {
            super::tcp::spawn(
                vec![listener],
                Some(acceptor(certificate.clone(), b"dot")?),
                handler.clone(),
                shutdown.clone(),
                tracker,
            );
        }
        if let Some(listener) = self.https {
            let acceptor = acceptor(certificate.clone(), b"h2")?;
            tracker.spawn(doh::serve(
                listener,
                acceptor,
                handler.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        if let Some(socket) = self.quic {
            server.register_quic_listener(socket, ENCRYPTED_TIMEOUT, certificate)?;
        }
        tracker.spawn(async move {
            let result = tokio::select! {
                result = server.block_until_done() => result,
                () = shutdown.cancelled() => server.shutdown_gracefully().await,
            };
            if let Err(error) = result {
                tracing::error!(%error, "an encrypted DNS listener stopped");
            }
        });
        Ok(())
    }
}

/// TLS presenting `certificate`, for one protocol: `dot` (RFC 7858 as registered) or
/// `h2` (DoH: HTTP/2 only, as RFC 8484 recommends).
fn acceptor(certificate: Arc<CertResolver>, alpn: &[u8]) -> io::Result<TlsAcceptor> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(certificate);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// hickory-server's request handler: our query path under the transport the message
/// came on.
struct Encrypted {
    handler: Arc<QueryHandler>,
}

fn transport(protocol: Protocol) -> Transport {
    match protocol {
        Protocol::Udp => Transport::Udp,
        Protocol::Tls => Transport::Tls,
        Protocol::Quic => Transport::Quic,
        _ => Transport::Tcp,
    }
}

#[async_trait::async_trait]
impl RequestHandler for Encrypted {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response: R,
    ) -> ResponseInfo {
        let transport = transport(request.protocol());
        let limit = Some(MAX_TCP_MESSAGE);
        let mut reply = Vec::with_capacity(512);
        let handled = self.handler.handle(
            request.as_slice(),
            request.src().ip(),
            transport,
            limit,
            &mut reply,
        );
        let bytes = match handled {
            Handled::Reply => reply,
            Handled::Forward(forward) => self.handler.forward(forward, transport, limit).await,
            // Not a query worth an answer: nothing is sent.
            // Transfers are TCP's and TLS's only (the handler refuses them here).
            Handled::Drop | Handled::Transfer(_) => return unanswered(request),
        };
        // Our answer, already encoded, goes back through hickory-server's builder: its
        // sections are re-emitted after the request's own question section.
        let message = match Message::from_vec(&bytes) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "cannot re-read our own answer");
                return unanswered(request);
            }
        };
        let mut builder = MessageResponseBuilder::new(&request.queries, None);
        if let Some(edns) = &message.edns {
            builder.edns(edns);
        }
        let built = builder.build(
            message.metadata,
            &message.answers,
            &message.authorities,
            std::iter::empty(),
            &message.additionals,
        );
        match response.send_response(built).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "cannot send an encrypted DNS answer");
                unanswered(request)
            }
        }
    }
}

/// What hickory-server is told when no answer went out.
fn unanswered(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
