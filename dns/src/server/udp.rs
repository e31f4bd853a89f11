//! The UDP fast path: a worker thread per socket, receiving up to [`BATCH`] datagrams
//! in one `recvmmsg`, answering each into a reused reply buffer, and sending the
//! replies in one `sendmmsg`.
//!
//! A worker never waits on the network for an answer: a question that needs an
//! upstream is handed to the async runtime (bounded by the shared forwarding slots),
//! which sends its reply from the same socket without blocking (`MSG_DONTWAIT`).
//!
//! **Invariant:** every datagram received gets at most one reply, sent from the socket
//! it arrived on, so the client sees the address it asked.
//! **Bound:** a worker holds [`BATCH`] query buffers of [`QUERY_BUFFER`] bytes and
//! [`BATCH`] reply buffers, each kept at the size of the largest reply it held
//! (at most [`crate::message::MAX_TCP_MESSAGE`], and [`crate::message::MAX_UDP_PAYLOAD`]
//! for real clients).

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{OpCode, ResponseCode};
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg, sendto};
use outpost_core::answer::Transport;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::handler::{ForwardRequest, Handled, QueryHandler};
use crate::message;
use crate::metrics::Metrics;

/// Datagrams received, and replies sent, per system call at most.
pub const BATCH: usize = 32;
/// Bytes read of one datagram; a longer query is cut there and answered FORMERR (queries
/// are a few hundred bytes; RFC 6891 clients offer at most 4,096 for the answer).
pub const QUERY_BUFFER: usize = 4096;
/// How long a worker waits in `recvmmsg` before it looks at the shutdown token again.
pub const SHUTDOWN_POLL: Duration = Duration::from_millis(100);

/// One UDP socket's loop and what it needs to answer.
pub(super) struct Worker {
    pub socket: Arc<socket2::Socket>,
    pub handler: Arc<QueryHandler>,
    pub forward_slots: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Where forwarded questions run.
    pub runtime: tokio::runtime::Handle,
}

/// A worker's buffers, allocated once.
struct Buffers {
    queries: Box<[[u8; QUERY_BUFFER]; BATCH]>,
    received: [Received; BATCH],
    replies: [Vec<u8>; BATCH],
    reply_to: [Option<SockaddrStorage>; BATCH],
    receive_headers: MultiHeaders<SockaddrStorage>,
    send_headers: MultiHeaders<SockaddrStorage>,
}

#[derive(Clone, Copy, Default)]
struct Received {
    len: usize,
    peer: Option<SocketAddr>,
    /// Longer than [`QUERY_BUFFER`]: cut by the kernel.
    truncated: bool,
}

impl Worker {
    /// Serves until the shutdown token is cancelled; runs on a thread of its own.
    pub fn run(self) {
        let mut buffers = Buffers {
            queries: Box::new([[0; QUERY_BUFFER]; BATCH]),
            received: [Received::default(); BATCH],
            replies: std::array::from_fn(|_| Vec::with_capacity(512)),
            reply_to: [None; BATCH],
            receive_headers: MultiHeaders::preallocate(BATCH, None),
            send_headers: MultiHeaders::preallocate(BATCH, None),
        };
        while !self.shutdown.is_cancelled() {
            let count = match buffers.receive(&self.socket) {
                Ok(count) => count,
                // The read timeout: time to look at the shutdown token.
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    // ICMP errors from earlier sends surface here on some systems.
                    tracing::debug!(%error, "udp receive failed");
                    continue;
                }
            };
            let mut replies = 0;
            for index in 0..count {
                let received = buffers.received[index];
                let query = &buffers.queries[index][..received.len];
                let reply = &mut buffers.replies[replies];
                if let Some(peer) = self.answer(query, received, reply) {
                    buffers.reply_to[replies] = Some(SockaddrStorage::from(peer));
                    replies += 1;
                }
            }
            buffers.send(&self.socket, replies);
        }
    }

    /// Answers one datagram into `reply`; the address to send it to, or `None` when
    /// nothing is sent now (dropped, or handed to the runtime).
    fn answer(&self, query: &[u8], received: Received, reply: &mut Vec<u8>) -> Option<SocketAddr> {
        let peer = received.peer.filter(|peer| peer.port() != 0);
        let Some(peer) = peer else {
            Metrics::bump(&self.handler.metrics().dropped);
            return None;
        };
        if received.truncated {
            return formerr(query, reply).then_some(peer);
        }
        match self
            .handler
            .handle(query, peer.ip(), Transport::Udp, None, reply)
        {
            Handled::Reply => Some(peer),
            // Transfers are only ever TCP's (the handler answers TC over UDP).
            Handled::Drop | Handled::Transfer(_) => None,
            Handled::Forward(request) => self.forward(request, peer, reply),
        }
    }

    /// Hands a question to the runtime, or answers SERVFAIL into `reply` at once when
    /// every forwarding slot is taken (fail fast rather than queue).
    fn forward(
        &self,
        request: ForwardRequest,
        peer: SocketAddr,
        reply: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        let Ok(permit) = self.forward_slots.clone().try_acquire_owned() else {
            let question = &request.question;
            let limit = message::udp_limit(question);
            message::encode_into(
                question,
                message::Outcome::bare(ResponseCode::ServFail),
                limit,
                reply,
            );
            return Some(peer);
        };
        let socket = self.socket.clone();
        let handler = self.handler.clone();
        let name = request.question.query.name();
        let span = tracing::debug_span!("forward", %peer, %name);
        let task = async move {
            let bytes = handler.forward(request, Transport::Udp, None).await;
            send_now(&socket, &bytes, peer);
            drop(permit);
        };
        self.tracker.spawn_on(task.instrument(span), &self.runtime);
        None
    }
}

impl Buffers {
    /// Waits for at least one datagram, then takes what else is queued, up to [`BATCH`].
    fn receive(&mut self, socket: &socket2::Socket) -> Result<usize, Errno> {
        let mut slices = self
            .queries
            .each_mut()
            .map(|query| [IoSliceMut::new(query)]);
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.receive_headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        let mut count = 0;
        for (slot, message) in self.received.iter_mut().zip(results) {
            *slot = Received {
                len: message.bytes.min(QUERY_BUFFER),
                peer: message.address.as_ref().and_then(socket_addr),
                truncated: message.flags.contains(MsgFlags::MSG_TRUNC),
            };
            count += 1;
        }
        Ok(count)
    }

    /// Sends the first `count` replies, as many per call as the kernel takes; a reply
    /// the kernel refuses (its client unreachable) is skipped, not retried.
    fn send(&mut self, socket: &socket2::Socket, count: usize) {
        let mut sent = 0;
        while sent < count {
            let slices: [[IoSlice<'_>; 1]; BATCH] =
                std::array::from_fn(|index| [IoSlice::new(&self.replies[index])]);
            let result = sendmmsg(
                socket.as_raw_fd(),
                &mut self.send_headers,
                slices[sent..count].iter(),
                &self.reply_to[sent..count],
                [],
                MsgFlags::empty(),
            );
            match result {
                Ok(results) => sent += results.count().max(1),
                Err(Errno::EINTR) => {}
                Err(error) => {
                    tracing::debug!(%error, "udp send failed");
                    sent += 1;
                }
            }
        }
    }
}

/// Sends one reply from an async task: never blocks a runtime thread; a full socket
/// buffer drops the reply (the client retries, as for any lost datagram).
fn send_now(socket: &socket2::Socket, bytes: &[u8], peer: SocketAddr) {
    let to = SockaddrStorage::from(peer);
    if let Err(error) = sendto(socket.as_raw_fd(), bytes, &to, MsgFlags::MSG_DONTWAIT) {
        tracing::debug!(%peer, %error, "udp send failed");
    }
}

/// A header-only FORMERR for a datagram cut at [`QUERY_BUFFER`]; `false` when it is too
/// short to hold a header or is itself a response (dropped, as `message::decode` does).
fn formerr(query: &[u8], reply: &mut Vec<u8>) -> bool {
    let Some(&[id_high, id_low, flags, _]) = query.get(..4) else {
        return false;
    };
    if flags & 0x80 != 0 {
        return false;
    }
    let op_code = OpCode::from_u8((flags >> 3) & 0x0f);
    let bare = message::encode_bare(
        u16::from_be_bytes([id_high, id_low]),
        op_code,
        flags & 0x01 != 0,
        ResponseCode::FormErr,
    );
    reply.clear();
    reply.extend_from_slice(&bare);
    true
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::from(*v4));
    }
    address.as_sockaddr_in6().map(|v6| SocketAddr::from(*v6))
}
