//! DNS over TLS to an upstream (RFC 7858, framed as RFC 7766 TCP): one connection per
//! upstream, opened on first use and kept while it works, pipelined. Queries are
//! written as they come, each with a message id no other query in flight on that
//! connection has; answers are matched back by id, in whatever order they arrive.
//!
//! **Bounds:** at most [`MAX_PIPELINED`] queries in flight on a connection (a query
//! past it waits for a slot until its own deadline); a write that takes longer than
//! [`UPSTREAM_WRITE_TIMEOUT`] closes the connection; a connection with nothing in
//! flight for [`UPSTREAM_IDLE_TIMEOUT`] is closed (the server would close it anyway).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::time::{Instant, timeout, timeout_at};
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

use super::exchange::ExchangeError;
use super::tls::{UpstreamTls, connect};
use crate::message::MAX_TCP_MESSAGE;
use crate::metrics::Metrics;

/// Queries in flight on one upstream connection.
pub const MAX_PIPELINED: usize = 128;
/// How long one write to an upstream may take before the connection is given up.
pub const UPSTREAM_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an upstream connection with nothing in flight is kept open.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

type Stream = TlsStream<TcpStream>;

/// One DoT upstream and its connection, if one is open.
pub(super) struct DotLink {
    addr: SocketAddr,
    name: String,
    tls: UpstreamTls,
    metrics: Arc<Metrics>,
    /// Held while a connection is opened, so concurrent queries share one.
    current: tokio::sync::Mutex<Option<Arc<Pipe>>>,
}

impl DotLink {
    pub(super) fn new(
        addr: SocketAddr,
        name: String,
        tls: UpstreamTls,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            addr,
            name,
            tls,
            metrics,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends `request` (a whole DNS message; its id is replaced) and returns the
    /// answer's bytes. A connection that was open before fails only once: the query
    /// is sent again on a new one (the server may have closed it while idle).
    pub(super) async fn exchange(
        &self,
        request: &mut [u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, ExchangeError> {
        let (pipe, fresh) = self.pipe(deadline).await?;
        match pipe.exchange(request, deadline).await {
            Err(ExchangeError::Closed) if !fresh => {
                let (pipe, _) = self.pipe(deadline).await?;
                pipe.exchange(request, deadline).await
            }
            result => result,
        }
    }

    /// The open connection, or a new one; `true` when it is new.
    async fn pipe(&self, deadline: Instant) -> Result<(Arc<Pipe>, bool), ExchangeError> {
        let mut current = timeout_at(deadline, self.current.lock())
            .await
            .map_err(|_| ExchangeError::Timeout)?;
        if let Some(pipe) = current.as_ref().filter(|pipe| !pipe.closed.is_cancelled()) {
            return Ok((pipe.clone(), false));
        }
        let stream = connect(&self.tls.dot, self.addr, &self.name, deadline).await?;
        Metrics::bump(&self.metrics.upstream_connections);
        let pipe = Pipe::start(stream);
        *current = Some(pipe.clone());
        Ok((pipe, true))
    }
}

impl Drop for DotLink {
    /// A link dropped by a config reload closes its connection.
    fn drop(&mut self) {
        if let Some(pipe) = self.current.get_mut().as_ref() {
            pipe.closed.cancel();
        }
    }
}

/// One open connection: a writer task, a reader task, and the queries in flight.
struct Pipe {
    frames: mpsc::Sender<Vec<u8>>,
    waiting: Mutex<HashMap<u16, oneshot::Sender<Vec<u8>>>>,
    slots: Semaphore,
    /// Set by each query; the reader's idle tick clears it.
    used: AtomicBool,
    closed: CancellationToken,
}

impl Pipe {
    fn start(stream: Stream) -> Arc<Pipe> {
        let (reader, writer) = tokio::io::split(stream);
        let (frames, queue) = mpsc::channel(MAX_PIPELINED);
        let pipe = Arc::new(Pipe {
            frames,
            waiting: Mutex::new(HashMap::new()),
            slots: Semaphore::new(MAX_PIPELINED),
            used: AtomicBool::new(true),
            closed: CancellationToken::new(),
        });
        tokio::spawn(write_frames(writer, queue, pipe.closed.clone()));
        tokio::spawn(read_answers(reader, pipe.clone()));
        pipe
    }

    async fn exchange(
        self: &Arc<Self>,
        request: &mut [u8],
        deadline: Instant,
    ) -> Result<Vec<u8>, ExchangeError> {
        let _slot = timeout_at(deadline, self.slots.acquire())
            .await
            .map_err(|_| ExchangeError::Timeout)?
            .map_err(|_| ExchangeError::Closed)?;
        let (id, answer) = self.register()?;
        let _registered = Registered { pipe: self, id };
        if request.len() < 2 {
            return Err(ExchangeError::Malformed("request too short".into()));
        }
        request[..2].copy_from_slice(&id.to_be_bytes());
        let len = u16::try_from(request.len())
            .map_err(|_| ExchangeError::Malformed("request too long".into()))?;
        let mut frame = Vec::with_capacity(request.len() + 2);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(request);
        timeout_at(deadline, self.frames.send(frame))
            .await
            .map_err(|_| ExchangeError::Timeout)?
            .map_err(|_| ExchangeError::Closed)?;
        timeout_at(deadline, answer)
            .await
            .map_err(|_| ExchangeError::Timeout)?
            .map_err(|_| ExchangeError::Closed)
    }

    /// A message id no query in flight has, and where its answer will arrive.
    fn register(&self) -> Result<(u16, oneshot::Receiver<Vec<u8>>), ExchangeError> {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if self.closed.is_cancelled() {
            return Err(ExchangeError::Closed);
        }
        // At most MAX_PIPELINED of 65,536 ids are taken, so this ends quickly.
        let id = loop {
            let id = super::exchange::random_id()?;
            if !waiting.contains_key(&id) {
                break id;
            }
        };
        self.used.store(true, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        waiting.insert(id, sender);
        Ok((id, receiver))
    }

    fn deliver(&self, answer: Vec<u8>) {
        let id = u16::from_be_bytes([answer[0], answer[1]]);
        let sender = self
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        // An answer nobody waits for (its query timed out) is dropped.
        if let Some(sender) = sender {
            let _ = sender.send(answer);
        }
    }

    fn idle(&self) -> bool {
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Marks the connection closed and fails every query waiting on it.
    fn close(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        self.closed.cancel();
        waiting.clear();
    }
}

/// A query in flight; its id is freed when the exchange ends, however it ends.
struct Registered<'a> {
    pipe: &'a Pipe,
    id: u16,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.pipe
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

async fn write_frames(
    mut writer: WriteHalf<Stream>,
    mut queue: mpsc::Receiver<Vec<u8>>,
    closed: CancellationToken,
) {
    loop {
        let frame = tokio::select! {
            _ = closed.cancelled() => break,
            frame = queue.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
        };
        let write = async {
            writer.write_all(&frame).await?;
            writer.flush().await
        };
        match timeout(UPSTREAM_WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    closed.cancel();
    let _ = timeout(UPSTREAM_WRITE_TIMEOUT, writer.shutdown()).await;
}

async fn read_answers(reader: ReadHalf<Stream>, pipe: Arc<Pipe>) {
    // The read is kept across ticks: dropping it half way through a frame would lose
    // the framing.
    let mut read = Box::pin(read_frame(reader));
    let mut tick = tokio::time::interval(UPSTREAM_IDLE_TIMEOUT);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = pipe.closed.cancelled() => break,
            (reader, answer) = &mut read => match answer {
                Ok(answer) => {
                    pipe.deliver(answer);
                    read = Box::pin(read_frame(reader));
                }
                Err(_) => break,
            },
            _ = tick.tick() => {
                if !pipe.used.swap(false, Ordering::Relaxed) && pipe.idle() {
                    break;
                }
            }
        }
    }
    pipe.close();
}

/// One length-prefixed message, at least long enough to carry an id.
async fn read_frame(mut reader: ReadHalf<Stream>) -> (ReadHalf<Stream>, std::io::Result<Vec<u8>>) {
    let read = async {
        let len = usize::from(reader.read_u16().await?);
        if len < 2 {
            return Err(std::io::Error::other("a message too short to carry an id"));
        }
        let mut answer = vec![0u8; len.min(MAX_TCP_MESSAGE)];
        reader.read_exact(&mut answer).await?;
        Ok(answer)
    };
    let answer = read.await;
    (reader, answer)
}
