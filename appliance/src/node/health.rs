//! Whether a running node still does its job, for the systemd watchdog: its Raft
//! core has not stopped, and its DNS sockets answer a query over UDP and over TCP.
//!
//! The probe asks for the root's SOA with RD clear. Unless the node hosts the root
//! zone that name is not ours, and without RD it is never forwarded: the answer
//! (REFUSED) comes from the local query path alone and no probe leaves the machine.
//! Probes are real queries, so they appear in `/metrics` (two per watchdog interval).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

use crate::store::{NodeState, Store};

/// How often an unanswered UDP probe is sent again (a server shedding load may drop
/// a datagram; one answer to any copy is enough).
const UDP_RESEND: Duration = Duration::from_millis(250);
/// Largest probe answer read: a REFUSED is the question alone.
const ANSWER_LIMIT: usize = 512;

/// What the watchdog checks; cheap to clone.
#[derive(Clone)]
pub struct Health {
    store: Store,
    /// Where the probe goes: the DNS address, with a wildcard IP replaced by loopback.
    dns: SocketAddr,
}

impl Health {
    pub(crate) fn new(store: Store, dns: SocketAddr) -> Health {
        let ip = match dns.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        Health {
            store,
            dns: SocketAddr::new(ip, dns.port()),
        }
    }

    /// `Ok` when Raft runs and DNS answers over UDP and TCP, each within half of
    /// `budget`; otherwise what is wrong.
    pub async fn check(&self, budget: Duration) -> Result<(), String> {
        if self.store.status().state == NodeState::Shutdown {
            return Err("raft has stopped (see the errors logged before)".into());
        }
        let each = budget / 2;
        tokio::time::timeout(each, probe_udp(self.dns))
            .await
            .map_err(|_| format!("no DNS answer over UDP from {} within {each:?}", self.dns))?
            .map_err(|error| format!("DNS probe over UDP to {}: {error}", self.dns))?;
        tokio::time::timeout(each, probe_tcp(self.dns))
            .await
            .map_err(|_| format!("no DNS answer over TCP from {} within {each:?}", self.dns))?
            .map_err(|error| format!("DNS probe over TCP to {}: {error}", self.dns))?;
        Ok(())
    }
}

/// A query with a fresh id, and that id.
fn probe_query() -> std::io::Result<(u16, Vec<u8>)> {
    static NEXT_ID: AtomicU16 = AtomicU16::new(1);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(Name::root(), RecordType::SOA));
    let bytes = message.to_vec().map_err(std::io::Error::other)?;
    Ok((id, bytes))
}

/// Whether `bytes` is a response (QR set) to query `id`. Only the header is read.
fn answers(bytes: &[u8], id: u16) -> bool {
    matches!(bytes, [high, low, flags, ..] if u16::from_be_bytes([*high, *low]) == id && flags & 0x80 != 0)
}

/// Sends the probe every [`UDP_RESEND`] until an answer comes; the caller bounds it.
async fn probe_udp(dns: SocketAddr) -> std::io::Result<()> {
    let (id, query) = probe_query()?;
    let local: SocketAddr = match dns {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(dns).await?;
    let mut buffer = [0u8; ANSWER_LIMIT];
    loop {
        socket.send(&query).await?;
        let deadline = tokio::time::Instant::now() + UDP_RESEND;
        while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv(&mut buffer)).await {
            // Errors here are ICMP reports of earlier sends: keep trying until the
            // caller's deadline.
            if let Ok(len) = received
                && answers(buffer.get(..len).unwrap_or_default(), id)
            {
                return Ok(());
            }
        }
    }
}

/// One query over one new connection; the caller bounds it.
async fn probe_tcp(dns: SocketAddr) -> std::io::Result<()> {
    let (id, query) = probe_query()?;
    let mut stream = TcpStream::connect(dns).await?;
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let len = usize::from(u16::from_be_bytes(len)).min(ANSWER_LIMIT);
    let mut answer = vec![0u8; len];
    stream.read_exact(&mut answer).await?;
    if answers(&answer, id) {
        Ok(())
    } else {
        Err(std::io::Error::other(
            "the answer is not a response to the probe",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_response_with_the_probes_id_counts() {
        assert!(answers(&[0x12, 0x34, 0x80, 0x05], 0x1234));
        assert!(!answers(&[0x12, 0x34, 0x00, 0x00], 0x1234), "a query");
        assert!(!answers(&[0x12, 0x35, 0x80, 0x05], 0x1234), "another id");
        assert!(!answers(&[0x12], 0x1234), "a runt");
    }
}
