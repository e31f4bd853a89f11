//! The sockets: UDP and TCP in front of the [`QueryHandler`].
//!
//! hickory-proto does the protocol (decoding, encoding, name compression); the socket
//! loops are ours because hickory-server's spawn a task per UDP packet with no bound
//! and pass every answer through a channel, which costs both the bound we promise
//! and most of the speed.
//!
//! **Bounds:** [`UDP_WORKERS`] tasks read the UDP socket; at most
//! [`MAX_FORWARDS_IN_FLIGHT`] forwarded UDP queries wait on upstreams (beyond that a
//! query is answered SERVFAIL at once); at most [`MAX_TCP_CONNECTIONS`] TCP
//! connections are served (beyond that a new one is closed at once); a TCP connection
//! idle for [`TCP_IDLE_TIMEOUT`] is closed.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::handler::{Handled, QueryHandler};
use crate::message::{self, MAX_TCP_MESSAGE};
use crate::metrics::Metrics;
use outpost_core::answer::Transport;

/// Tasks reading the UDP socket; each answers authoritative queries inline.
pub const UDP_WORKERS: usize = 4;
/// Forwarded UDP queries waiting on upstreams at once.
pub const MAX_FORWARDS_IN_FLIGHT: usize = 1024;
/// TCP connections served at once.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection with no complete query for this long is closed (RFC 7766 section 6.2.3).
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest UDP datagram read.
const UDP_RECV_BUFFER: usize = 65_535;
/// Kernel receive buffer asked for on the UDP socket, to ride out bursts.
const UDP_SOCKET_RCVBUF: usize = 4 << 20;

/// The bound sockets, UDP and TCP on the same port.
pub struct DnsSockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl DnsSockets {
    /// Binds UDP and TCP on `addr`. With port 0, the TCP socket takes the port the
    /// kernel gave the UDP one (retrying if another process holds it for TCP).
    pub async fn bind(addr: SocketAddr) -> io::Result<Self> {
        let mut last_error = None;
        for _ in 0..16 {
            let udp = bind_udp(addr)?;
            let port = udp.local_addr()?.port();
            match TcpListener::bind(SocketAddr::new(addr.ip(), port)).await {
                Ok(tcp) => return Ok(Self { udp, tcp }),
                Err(error) if addr.port() == 0 => last_error = Some(error),
                Err(error) => return Err(error),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("no free port for UDP and TCP together")))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Serves until `shutdown`; in-flight work is tracked by `tracker`.
    pub fn spawn(
        self,
        handler: Arc<QueryHandler>,
        shutdown: CancellationToken,
        tracker: &TaskTracker,
    ) {
        let udp = Arc::new(self.udp);
        let forward_slots = Arc::new(Semaphore::new(MAX_FORWARDS_IN_FLIGHT));
        for _ in 0..UDP_WORKERS {
            tracker.spawn(serve_udp(
                udp.clone(),
                handler.clone(),
                forward_slots.clone(),
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tracker.spawn(serve_tcp(self.tcp, handler, shutdown, tracker.clone()));
    }
}

fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    // Best effort: the kernel caps it at net.core.rmem_max.
    let _ = socket.set_recv_buffer_size(UDP_SOCKET_RCVBUF);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    handler: Arc<QueryHandler>,
    forward_slots: Arc<Semaphore>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut buffer = vec![0u8; UDP_RECV_BUFFER];
    loop {
        let received = tokio::select! {
            received = socket.recv_from(&mut buffer) => received,
            () = shutdown.cancelled() => return,
        };
        let (len, peer) = match received {
            Ok(received) => received,
            Err(error) => {
                // ICMP errors from earlier sends surface here on some systems.
                tracing::debug!(%error, "udp receive failed");
                continue;
            }
        };
        if peer.port() == 0 {
            Metrics::bump(&handler.metrics().dropped);
            continue;
        }
        match handler.handle(&buffer[..len], peer.ip(), Transport::Udp, None) {
            Handled::Reply(bytes) => send(&socket, &bytes, peer).await,
            Handled::Drop => {}
            Handled::Forward(request) => match forward_slots.clone().try_acquire_owned() {
                Ok(permit) => {
                    let socket = socket.clone();
                    let handler = handler.clone();
                    let name = request.question.query.name();
                    let span = tracing::debug_span!("forward", %peer, %name);
                    tracker.spawn(
                        async move {
                            let bytes = handler.forward(request, Transport::Udp, None).await;
                            send(&socket, &bytes, peer).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(_) => {
                    // Every forwarding slot is taken: fail fast rather than queue.
                    let question = &request.question;
                    let bytes = message::encode(
                        question,
                        message::Outcome::bare(ResponseCode::ServFail),
                        message::udp_limit(question),
                    );
                    send(&socket, &bytes, peer).await;
                }
            },
        }
    }
}

async fn send(socket: &UdpSocket, bytes: &[u8], peer: SocketAddr) {
    if let Err(error) = socket.send_to(bytes, peer).await {
        tracing::debug!(%peer, %error, "udp send failed");
    }
}

async fn serve_tcp(
    listener: TcpListener,
    handler: Arc<QueryHandler>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let connection_slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::debug!(%error, "tcp accept failed");
                continue;
            }
        };
        let Ok(permit) = connection_slots.clone().try_acquire_owned() else {
            Metrics::bump(&handler.metrics().tcp_connections_refused);
            continue;
        };
        let handler = handler.clone();
        let shutdown = shutdown.clone();
        tracker.spawn(
            async move {
                if let Err(error) = serve_connection(stream, peer, &handler, &shutdown).await {
                    tracing::debug!(%error, "tcp connection ended");
                }
                drop(permit);
            }
            .instrument(tracing::debug_span!("tcp", %peer)),
        );
    }
}

/// Serves one connection's queries in order until it closes, idles out, sends
/// something that is not DNS, or the server shuts down.
async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    handler: &QueryHandler,
    shutdown: &CancellationToken,
) -> io::Result<()> {
    let mut buffer = vec![0u8; MAX_TCP_MESSAGE];
    loop {
        let read = async {
            let len = usize::from(stream.read_u16().await?);
            stream.read_exact(&mut buffer[..len]).await?;
            io::Result::Ok(len)
        };
        let len = tokio::select! {
            read = tokio::time::timeout(TCP_IDLE_TIMEOUT, read) => match read {
                Ok(Ok(len)) => len,
                Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Ok(Err(error)) => return Err(error),
                Err(_) => return Ok(()),
            },
            () = shutdown.cancelled() => return Ok(()),
        };
        let limit = Some(MAX_TCP_MESSAGE);
        let bytes = match handler.handle(&buffer[..len], peer.ip(), Transport::Tcp, limit) {
            Handled::Reply(bytes) => bytes,
            Handled::Forward(request) => handler.forward(request, Transport::Tcp, limit).await,
            // Not a query: this is not a DNS client worth serving.
            Handled::Drop => return Ok(()),
        };
        let Ok(len) = u16::try_from(bytes.len()) else {
            return Ok(());
        };
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(&bytes);
        stream.write_all(&framed).await?;
    }
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
