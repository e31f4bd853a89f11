//! The sockets: UDP and TCP in front of the [`QueryHandler`].
//!
//! hickory-proto does the protocol (decoding, encoding, name compression); the socket
//! loops are ours because hickory-server's spawn a task per UDP packet with no bound
//! and pass every answer through a channel, which costs both the bound we promise
//! and most of the speed.
//!
//! - [`udp`]: the fast path. One worker thread per core, each with its own socket on the
//!   shared port (`SO_REUSEPORT`: the kernel spreads clients over them), receiving and
//!   sending in batches (`recvmmsg`/`sendmmsg`) and answering into reused buffers
//!   without leaving the thread; only questions that need an upstream go to the async
//!   runtime. The kernel lets only a process of the same user join a `SO_REUSEPORT`
//!   group, so another user cannot take a share of the port's queries.
//! - [`tcp`]: RFC 7766 connections, pipelined: answers from our zones are written in
//!   order at once, forwarded ones when they arrive, out of order.
//!
//! **Bounds:** at most [`MAX_UDP_WORKERS`] UDP workers, each with [`udp::BATCH`]
//! reply buffers; at most [`MAX_FORWARDS_IN_FLIGHT`] forwarded UDP queries wait on
//! upstreams (beyond that a query is answered SERVFAIL at once); at most
//! [`MAX_TCP_CONNECTIONS`] TCP connections are served, [`MAX_TCP_CONNECTIONS_PER_SOURCE`]
//! from one source (beyond either, a new one is closed at once), each with at most
//! [`tcp::MAX_PIPELINED_FORWARDS`] forwarded queries outstanding; a TCP connection idle
//! for [`TCP_IDLE_TIMEOUT`] is closed, and one whose client does not read its replies
//! within [`tcp::TCP_WRITE_TIMEOUT`].

pub mod encrypted;
pub mod tcp;
mod udp;

use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::handler::QueryHandler;

/// UDP worker threads at most, whatever the config asks.
pub const MAX_UDP_WORKERS: usize = 64;
/// Forwarded UDP queries waiting on upstreams at once, over every worker.
pub const MAX_FORWARDS_IN_FLIGHT: usize = 1024;
/// TCP connections served at once.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// TCP connections served at once from one source (an IPv4 address, an IPv6 /64).
pub const MAX_TCP_CONNECTIONS_PER_SOURCE: usize = 32;

/// The source a per-source connection cap counts `ip` under: an IPv4 address (an
/// IPv4-mapped IPv6 address, as a dual-stack socket reports an IPv4 client, is that
/// address), or the /64 of an IPv6 address, the smallest block a host on a LAN is
/// handed. Shared by the DNS TCP and DoH listeners and the Lite sync pre-auth pool.
pub fn connection_source(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX))),
    }
}
/// A TCP connection with no complete query for this long is closed (RFC 7766 section
/// 6.2.3); from the accept, this is also the time a new connection has to send its first.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Kernel receive buffer asked for on each UDP socket, to ride out bursts.
const UDP_SOCKET_RCVBUF: usize = 4 << 20;

/// UDP workers when the config does not say: one per core.
pub fn default_udp_workers() -> NonZeroUsize {
    std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN)
}

/// The bound sockets: on each address, one UDP socket per worker and a TCP listener on
/// the same port.
pub struct DnsSockets {
    udp: Vec<socket2::Socket>,
    tcp: Vec<TcpListener>,
}

impl DnsSockets {
    /// Binds every address of `addrs` (see [`DnsSockets::bind_one`]); an error comes
    /// with the address that failed.
    pub async fn bind(
        addrs: &[SocketAddr],
        udp_workers: NonZeroUsize,
    ) -> Result<Self, (SocketAddr, io::Error)> {
        let mut sockets = DnsSockets {
            udp: Vec::new(),
            tcp: Vec::new(),
        };
        for addr in addrs {
            let (udp, tcp) = Self::bind_one(*addr, udp_workers)
                .await
                .map_err(|error| (*addr, error))?;
            sockets.udp.extend(udp);
            sockets.tcp.push(tcp);
        }
        Ok(sockets)
    }

    /// Binds `udp_workers` UDP sockets (at most [`MAX_UDP_WORKERS`]) and a TCP listener
    /// on `addr`. With port 0, every socket takes the port the kernel gave the first UDP
    /// one (retrying if another process holds it for TCP).
    async fn bind_one(
        addr: SocketAddr,
        udp_workers: NonZeroUsize,
    ) -> io::Result<(Vec<socket2::Socket>, TcpListener)> {
        let workers = udp_workers.get().min(MAX_UDP_WORKERS);
        let mut last_error = None;
        for _ in 0..16 {
            let first = bind_udp(addr)?;
            let port = first
                .local_addr()?
                .as_socket()
                .map_or(0, |bound| bound.port());
            let shared = SocketAddr::new(addr.ip(), port);
            let mut udp = vec![first];
            for _ in 1..workers {
                udp.push(bind_udp(shared)?);
            }
            match TcpListener::bind(shared).await {
                Ok(tcp) => return Ok((udp, tcp)),
                Err(error) if addr.port() == 0 => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP together")))
    }

    /// The first address bound (with the port chosen for port 0).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp
            .first()
            .ok_or_else(|| io::Error::other("no DNS address"))?
            .local_addr()
    }

    /// The addresses bound, in the order given (with the ports chosen for port 0).
    pub fn local_addrs(&self) -> io::Result<Vec<SocketAddr>> {
        self.tcp.iter().map(TcpListener::local_addr).collect()
    }

    /// Serves until `shutdown`; in-flight work (the UDP worker threads among it) is
    /// tracked by `tracker`, so draining it waits for every worker to stop. Fails when
    /// the system refuses a thread; the workers started before it stop with `shutdown`.
    pub fn spawn(
        self,
        handler: Arc<QueryHandler>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) -> io::Result<()> {
        let forward_slots = Arc::new(Semaphore::new(MAX_FORWARDS_IN_FLIGHT));
        for (index, socket) in self.udp.into_iter().enumerate() {
            let worker = udp::Worker {
                socket: Arc::new(socket),
                handler: handler.clone(),
                forward_slots: forward_slots.clone(),
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
                runtime: tokio::runtime::Handle::current(),
            };
            // A thread of its own rather than the runtime's blocking pool, which a
            // runtime being dropped waits for: the worker is tracked by a token
            // instead, released when its loop ends.
            let running = tracker.token();
            let spawned = std::thread::Builder::new()
                .name(format!("dns-udp-{index}"))
                .spawn(move || {
                    worker.run();
                    drop(running);
                });
            spawned?;
        }
        tcp::spawn(self.tcp, None, handler, shutdown, tracker);
        Ok(())
    }
}

/// One UDP socket on `addr`, sharing its port with the others (`SO_REUSEPORT`), in
/// blocking mode with a read timeout so its worker notices shutdown.
fn bind_udp(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(UDP_SOCKET_RCVBUF);
    socket.set_reuse_port(true)?;
    socket.set_read_timeout(Some(udp::SHUTDOWN_POLL))?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// How long a daemon's shutdown waits for its in-flight queries, requests and sessions.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);

/// The first step of both daemons' shutdown: logs it, cancels `shutdown` and waits for the
/// tasks of `tracker` (the in-flight work) at most [`DRAIN_DEADLINE`].
pub async fn drain_in_flight(shutdown: &CancellationToken, tracker: &TaskTracker) -> bool {
    tracing::info!("shutting down");
    stop_and_drain(shutdown, tracker, DRAIN_DEADLINE, "in-flight work").await
}

/// Cancels `shutdown`, then waits for the tasks of `tracker` to finish, at most
/// `deadline`; `false` (logged) when some did not, and were left behind.
pub async fn stop_and_drain(
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
    deadline: Duration,
    what: &str,
) -> bool {
    shutdown.cancel();
    tracker.close();
    let drained = tokio::time::timeout(deadline, tracker.wait()).await.is_ok();
    if !drained {
        tracing::warn!(?deadline, what, "did not finish in time; stopping anyway");
    }
    drained
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_source_is_an_ipv4_address_even_mapped_or_an_ipv6_64() {
        let source = |text: &str| connection_source(text.parse().unwrap()).to_string();
        assert_eq!(source("192.0.2.7"), "192.0.2.7");
        // A dual-stack socket reports IPv4 clients as mapped addresses: each is its own.
        assert_eq!(source("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(source("::ffff:192.0.2.8"), "192.0.2.8");
        assert_eq!(source("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(source("2001:db8:1:2:ffff::9"), "2001:db8:1:2::");
    }
}
