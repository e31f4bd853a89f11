//! One exchange with one upstream. Plain UDP and TCP: a random query id from a fresh
//! ephemeral port, TCP when the UDP answer is truncated or the upstream is TCP-only.
//! DoT and DoH go over the upstream's kept connection ([`super::dot`], [`super::doh`]).
//! Whatever the transport, an answer is accepted only if its id and question match.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::doh::DohLink;
use super::dot::DotLink;
use super::exchange::ExchangeError;
use super::exchange::random_id;
use super::tls::UpstreamTls;
use super::{Resolved, Upstream};
use crate::message::{MAX_TCP_MESSAGE, MAX_UDP_PAYLOAD};
use crate::metrics::Metrics;

/// How one upstream is reached; the encrypted ones hold their open connection.
pub(super) enum Link {
    Udp(SocketAddr),
    Tcp(SocketAddr),
    Tls(DotLink),
    Https(DohLink),
    /// An encrypted upstream configured without TLS settings (a caller's mistake the
    /// config loaders do not make): every exchange fails, saying so.
    NoTls,
}

impl Link {
    pub(super) fn new(
        upstream: &Upstream,
        tls: Option<&UpstreamTls>,
        metrics: &Arc<Metrics>,
    ) -> Link {
        match (upstream, tls) {
            (Upstream::Udp(addr), _) => Link::Udp(*addr),
            (Upstream::Tcp(addr), _) => Link::Tcp(*addr),
            (Upstream::Tls { addr, name }, Some(tls)) => Link::Tls(DotLink::new(
                *addr,
                name.clone(),
                tls.clone(),
                metrics.clone(),
            )),
            (Upstream::Https(https), Some(tls)) => {
                Link::Https(DohLink::new(https.clone(), tls.clone(), metrics.clone()))
            }
            (Upstream::Tls { .. } | Upstream::Https(_), None) => Link::NoTls,
        }
    }

    /// Asks this upstream `query`; the answer must match it.
    pub(super) async fn exchange(
        &self,
        query: &Query,
        timeout: Duration,
    ) -> Result<Resolved, ExchangeError> {
        let deadline = Instant::now() + timeout;
        // DoH carries id 0 (RFC 8484 section 4.1): the HTTP/2 stream pairs the answer.
        let id = match self {
            Link::Https(_) => 0,
            _ => random_id()?,
        };
        let mut request = build_request(query, id)?;
        let answer = match self {
            Link::Udp(addr) => {
                let answer = exchange_udp(*addr, id, query, &request, deadline).await?;
                if answer.metadata.truncation {
                    exchange_tcp(*addr, &request, deadline).await?
                } else {
                    answer
                }
            }
            Link::Tcp(addr) => exchange_tcp(*addr, &request, deadline).await?,
            Link::Tls(link) => {
                let mut answer = link.exchange(&mut request, deadline).await?;
                // The connection chose its own id and matched the answer by it.
                answer[..2].copy_from_slice(&id.to_be_bytes());
                Message::from_vec(&answer)?
            }
            Link::Https(link) => Message::from_vec(&link.exchange(&request, deadline).await?)?,
            Link::NoTls => {
                return Err(ExchangeError::Malformed(
                    "no TLS settings for an encrypted upstream".into(),
                ));
            }
        };
        if answer.metadata.message_type != MessageType::Response
            || answer.metadata.id != id
            || answer.queries.first() != Some(query)
        {
            return Err(ExchangeError::Malformed(
                "answer does not match the question".into(),
            ));
        }
        Ok(Resolved {
            rcode: answer.metadata.response_code,
            authoritative: false,
            answers: answer.answers,
            authorities: answer.authorities,
            additionals: answer.additionals,
        })
    }
}

fn build_request(query: &Query, id: u16) -> Result<Vec<u8>, ExchangeError> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    message.set_edns(edns);
    Ok(message.to_vec()?)
}

async fn exchange_udp(
    addr: SocketAddr,
    id: u16,
    query: &Query,
    request: &[u8],
    deadline: Instant,
) -> Result<Message, ExchangeError> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(addr).await?;
    socket.send(request).await?;
    let mut buffer = vec![0u8; usize::from(MAX_UDP_PAYLOAD).max(4096)];
    loop {
        let len = timeout_at(deadline, socket.recv(&mut buffer))
            .await
            .map_err(|_| ExchangeError::Timeout)??;
        // Anything that is not the answer to our question is ignored: a spoofed or
        // late packet must not end the wait.
        let Ok(answer) = Message::from_vec(&buffer[..len]) else {
            continue;
        };
        if answer.metadata.message_type == MessageType::Response
            && answer.metadata.id == id
            && answer.queries.first() == Some(query)
        {
            return Ok(answer);
        }
    }
}

async fn exchange_tcp(
    addr: SocketAddr,
    request: &[u8],
    deadline: Instant,
) -> Result<Message, ExchangeError> {
    let work = async {
        let mut stream = TcpStream::connect(addr).await?;
        let len = u16::try_from(request.len())
            .map_err(|_| ExchangeError::Malformed("request too long".into()))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await?;
        let len = usize::from(stream.read_u16().await?);
        let mut buffer = vec![0u8; len.min(MAX_TCP_MESSAGE)];
        stream.read_exact(&mut buffer).await?;
        Message::from_vec(&buffer).map_err(ExchangeError::Decode)
    };
    timeout_at(deadline, work)
        .await
        .map_err(|_| ExchangeError::Timeout)?
}
