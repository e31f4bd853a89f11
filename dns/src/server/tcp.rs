//! DNS over TCP (RFC 7766): length-prefixed messages, pipelined; and DNS over TLS
//! (RFC 7858), which is the same once the TLS handshake is done, so it is served by the
//! same loop with the same limits (a pool of connections of its own).
//!
//! A connection's reader answers what it can at once (our zones, policy, the fresh
//! cache) in the order the queries came, and hands a question that needs an upstream
//! to a task of its own, whose reply goes out when it is ready: out of order, as
//! section 6.2.1.1 allows, so one slow upstream does not hold the answers behind it.
//! Answers are gathered while more queries are already buffered and written together.
//!
//! **Invariant:** a message is written whole under the writer's lock, so replies never
//! interleave.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use outpost_core::answer::Transport;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::{MAX_TCP_CONNECTIONS, MAX_TCP_CONNECTIONS_PER_SOURCE, TCP_IDLE_TIMEOUT};
use crate::handler::{Handled, QueryHandler};
use crate::message::MAX_TCP_MESSAGE;
use crate::metrics::Metrics;

/// Forwarded queries of one connection waiting on upstreams at once; the connection
/// reads no further query until one of them is answered.
pub const MAX_PIPELINED_FORWARDS: usize = 16;
/// Longest a write of replies may wait for the client to read: a client that pipelines
/// queries and never reads its answers is disconnected past it, instead of holding its
/// connection slot, and the server's shutdown, forever.
pub const TCP_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes read from a connection at a time: several pipelined queries.
const READ_BUFFER: usize = 16 * 1024;
/// Replies gathered before they are written even if more queries are buffered.
const WRITE_BATCH: usize = 16 * 1024;

/// Serves DNS over TCP on `listeners`, or DNS over TLS when `tls` is given, until
/// `shutdown`. The listeners share one pool of connections.
pub(super) fn spawn(
    listeners: Vec<TcpListener>,
    tls: Option<TlsAcceptor>,
    handler: Arc<QueryHandler>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) {
    let pool = Pool {
        transport: match tls {
            Some(_) => Transport::Tls,
            None => Transport::Tcp,
        },
        tls,
        handler,
        limits: Limits::new(),
        shutdown,
        tracker: tracker.clone(),
    };
    for listener in listeners {
        tracker.spawn(pool.clone().serve(listener));
    }
}

/// What the accept loops of one transport share.
#[derive(Clone)]
struct Pool {
    transport: Transport,
    tls: Option<TlsAcceptor>,
    handler: Arc<QueryHandler>,
    limits: Limits,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Pool {
    async fn serve(self, listener: TcpListener) {
        let Pool {
            transport,
            tls,
            handler,
            limits,
            shutdown,
            tracker,
        } = self;
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
            let Some(admitted) = limits.admit(peer.ip(), handler.metrics()) else {
                continue;
            };
            let connection = Connection {
                peer,
                transport,
                handler: handler.clone(),
                shutdown: shutdown.clone(),
                tracker: tracker.clone(),
            };
            let tls = tls.clone();
            tracker.spawn(
                async move {
                    let served = match tls {
                        None => connection.serve(stream).await,
                        Some(tls) => connection.serve_tls(&tls, stream).await,
                    };
                    if let Err(error) = served {
                        tracing::debug!(%error, "tcp connection ended");
                    }
                    drop(admitted);
                }
                .instrument(tracing::debug_span!("tcp", %peer, transport = transport.as_str())),
            );
        }
    }
}

/// The connection caps of one pool of connections (plain TCP, DoT, DoH each have one):
/// [`MAX_TCP_CONNECTIONS`] in all, [`MAX_TCP_CONNECTIONS_PER_SOURCE`] from one source.
#[derive(Clone)]
pub(super) struct Limits {
    slots: Arc<Semaphore>,
    sources: Arc<Sources>,
}

/// A connection's place under both caps, given back when dropped.
pub(super) struct Admitted {
    _slot: OwnedSemaphorePermit,
    _source: SourceSlot,
}

impl Limits {
    pub(super) fn new() -> Limits {
        Limits {
            slots: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
            sources: Arc::new(Sources::default()),
        }
    }

    /// A place for a connection from `ip`, or `None` when either cap is reached (counted
    /// in `outpost_dns_tcp_refused_total`; the caller closes the connection).
    pub(super) fn admit(&self, ip: IpAddr, metrics: &Metrics) -> Option<Admitted> {
        let admitted = (self.slots.clone().try_acquire_owned().ok())
            .zip(self.sources.admit(ip))
            .map(|(slot, source)| Admitted {
                _slot: slot,
                _source: source,
            });
        if admitted.is_none() {
            Metrics::bump(&metrics.tcp_connections_refused);
        }
        admitted
    }
}

/// Connections open per source ([`super::connection_source`]: an IPv4 address or an
/// IPv6 /64), so one client cannot take every one of [`MAX_TCP_CONNECTIONS`].
#[derive(Default)]
struct Sources {
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted against its source until dropped.
struct SourceSlot {
    sources: Arc<Sources>,
    key: IpAddr,
}

impl Sources {
    /// A slot for a connection from `ip`, or `None` when its source has
    /// [`MAX_TCP_CONNECTIONS_PER_SOURCE`] open.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<SourceSlot> {
        let key = super::connection_source(ip);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= MAX_TCP_CONNECTIONS_PER_SOURCE {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            sources: self.clone(),
            key,
        })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = (self.sources.open.lock()).unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A connection's stream, split so forwarded answers can be written while the next
/// query is read.
trait Stream: Send + 'static {
    type Read: AsyncRead + Unpin + Send;
    type Write: AsyncWrite + Unpin + Send + 'static;
    fn halves(self) -> (Self::Read, Self::Write);
}

impl Stream for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl Stream for TlsStream<TcpStream> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

struct Connection {
    peer: SocketAddr,
    transport: Transport,
    handler: Arc<QueryHandler>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Connection {
    /// Serves the connection's queries until it closes, idles out, sends something that
    /// is not DNS, or the server shuts down.
    async fn serve(self, stream: TcpStream) -> io::Result<()> {
        // Replies are small and pipelined: Nagle would hold each behind the last ACK.
        stream.set_nodelay(true)?;
        self.serve_stream(stream).await
    }

    /// [`Connection::serve`] after a TLS handshake, which must end within the idle
    /// timeout (and before shutdown).
    async fn serve_tls(self, tls: &TlsAcceptor, stream: TcpStream) -> io::Result<()> {
        stream.set_nodelay(true)?;
        let handshake = tokio::time::timeout(TCP_IDLE_TIMEOUT, tls.accept(stream));
        let stream = tokio::select! {
            done = handshake => match done {
                Ok(stream) => stream?,
                Err(_) => return Ok(()),
            },
            () = self.shutdown.cancelled() => return Ok(()),
        };
        self.serve_stream(stream).await
    }

    async fn serve_stream<S: Stream>(self, stream: S) -> io::Result<()> {
        let (reader, writer) = stream.halves();
        let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
        let writer = Arc::new(Mutex::new(writer));
        let forwards = Arc::new(Semaphore::new(MAX_PIPELINED_FORWARDS));
        let mut query = vec![0u8; MAX_TCP_MESSAGE];
        let mut reply = Vec::with_capacity(512);
        let mut pending = Vec::with_capacity(WRITE_BATCH);
        loop {
            // Write what is gathered before waiting for more input.
            if !has_whole_message(reader.buffer()) || pending.len() >= WRITE_BATCH {
                write_all(&writer, &pending).await?;
                pending.clear();
            }
            let Some(len) = self.read_query(&mut reader, &mut query).await? else {
                return Ok(());
            };
            let limit = Some(MAX_TCP_MESSAGE);
            match self.handler.handle(
                &query[..len],
                self.peer.ip(),
                self.transport,
                limit,
                &mut reply,
            ) {
                Handled::Reply => frame(&reply, &mut pending),
                // Not a query: this is not a DNS client worth serving.
                Handled::Drop => return write_all(&writer, &pending).await,
                Handled::Transfer(mut outgoing) => {
                    write_all(&writer, &pending).await?;
                    pending.clear();
                    // Each message whole under the lock, so a forwarded answer may
                    // come between two of them, never inside one.
                    while let Some(message) = outgoing.next_message().map_err(io::Error::other)? {
                        frame(&message, &mut pending);
                        write_all(&writer, &pending).await?;
                        pending.clear();
                    }
                }
                Handled::Forward(request) => {
                    let slot = match forwards.clone().try_acquire_owned() {
                        Ok(slot) => slot,
                        Err(_) => {
                            // Every slot is taken: send what is gathered, then wait.
                            write_all(&writer, &pending).await?;
                            pending.clear();
                            let Ok(slot) = forwards.clone().acquire_owned().await else {
                                return Ok(());
                            };
                            slot
                        }
                    };
                    let handler = self.handler.clone();
                    let writer = writer.clone();
                    let transport = self.transport;
                    self.tracker.spawn(async move {
                        let bytes = handler.forward(request, transport, limit).await;
                        let mut framed = Vec::with_capacity(bytes.len() + 2);
                        frame(&bytes, &mut framed);
                        // The connection may be gone: nothing to tell anyone.
                        let _ = write_all(&writer, &framed).await;
                        drop(slot);
                    });
                }
            }
        }
    }

    /// Reads the next message into `query`; `None` when the connection closed, idled
    /// out or the server is shutting down.
    async fn read_query(
        &self,
        reader: &mut BufReader<impl AsyncRead + Unpin>,
        query: &mut [u8],
    ) -> io::Result<Option<usize>> {
        let read = async {
            let len = usize::from(reader.read_u16().await?);
            reader.read_exact(&mut query[..len]).await?;
            io::Result::Ok(len)
        };
        tokio::select! {
            read = tokio::time::timeout(TCP_IDLE_TIMEOUT, read) => match read {
                Ok(Ok(len)) => Ok(Some(len)),
                Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
                Ok(Err(error)) => Err(error),
                Err(_) => Ok(None),
            },
            () = self.shutdown.cancelled() => Ok(None),
        }
    }
}

/// Whether `buffered` starts with a whole length-prefixed message.
fn has_whole_message(buffered: &[u8]) -> bool {
    match buffered {
        [high, low, rest @ ..] => rest.len() >= usize::from(u16::from_be_bytes([*high, *low])),
        _ => false,
    }
}

/// Appends `message` with its length prefix; a message too long for one is left out.
fn frame(message: &[u8], out: &mut Vec<u8>) {
    if let Ok(len) = u16::try_from(message.len()) {
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(message);
    }
}

/// Writes `bytes` whole, or fails with `TimedOut` when the client has not read them
/// within [`TCP_WRITE_TIMEOUT`] (the wait for the lock included).
async fn write_all(writer: &Mutex<impl AsyncWrite + Unpin>, bytes: &[u8]) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let write = async {
        let mut writer = writer.lock().await;
        writer.write_all(bytes).await?;
        // TLS holds records until flushed; a socket has nothing to flush.
        writer.flush().await
    };
    tokio::time::timeout(TCP_WRITE_TIMEOUT, write)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its answers",
            ))
        })
}
