//! One exchange with one upstream: a random query id from a fresh ephemeral port,
//! answers accepted only if id and question match, TCP when the UDP answer is
//! truncated or the upstream is TCP-only.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, Query};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

use super::Resolved;
use super::Upstream;
use crate::message::{MAX_TCP_MESSAGE, MAX_UDP_PAYLOAD};

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("bad answer: {0}")]
    Malformed(String),
    /// hickory could not write the query.
    #[error("bad answer: {0}")]
    Proto(#[from] hickory_proto::ProtoError),
    /// The answer does not decode.
    #[error("bad answer: {0}")]
    Decode(#[from] hickory_proto::serialize::binary::DecodeError),
}

pub async fn exchange(
    upstream: &Upstream,
    query: &Query,
    timeout: Duration,
) -> Result<Resolved, ExchangeError> {
    let deadline = Instant::now() + timeout;
    let (id, request) = build_request(query)?;
    let answer = if upstream.tcp_only {
        exchange_tcp(upstream.addr, &request, deadline).await?
    } else {
        let answer = exchange_udp(upstream.addr, id, query, &request, deadline).await?;
        if answer.metadata.truncation {
            exchange_tcp(upstream.addr, &request, deadline).await?
        } else {
            answer
        }
    };
    if answer.metadata.id != id || answer.queries.first() != Some(query) {
        return Err(ExchangeError::Malformed(
            "answer does not match the question".into(),
        ));
    }
    Ok(Resolved {
        rcode: answer.metadata.response_code,
        answers: answer.answers,
        authorities: answer.authorities,
        additionals: answer.additionals,
    })
}

fn build_request(query: &Query) -> Result<(u16, Vec<u8>), ExchangeError> {
    let mut id = [0u8; 2];
    getrandom::fill(&mut id).map_err(|e| ExchangeError::Io(std::io::Error::other(e)))?;
    let id = u16::from_be_bytes(id);
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(query.clone());
    let mut edns = Edns::new();
    edns.set_max_payload(MAX_UDP_PAYLOAD);
    message.set_edns(edns);
    let bytes = message.to_vec()?;
    Ok((id, bytes))
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
