//! The socket loops end to end, on loopback port 0: several UDP workers sharing a
//! port, a query longer than a worker's buffer, the forwarder's cache answered inline,
//! TCP pipelining around a slow upstream, a TCP client that never reads, one source
//! that opens too many TCP connections, and shutdown stopping every worker.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use outpost_dns::forward::{ForwardConfig, Forwarder, Upstream};
use outpost_dns::handler::QueryHandler;
use outpost_dns::metrics::Metrics;
use outpost_dns::server::{DnsSockets, stop_and_drain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const ZONE: &str = "
@      300 SOA ns1 hostmaster 1 7200 3600 1209600 60
@      300 NS  ns1
ns1    300 A   10.0.0.1
www    300 A   10.0.0.10
";
/// What the fake upstream answers for every name.
const UPSTREAM_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 7);
/// Long enough for a loaded CI machine; only a broken server waits this long.
const PATIENCE: Duration = Duration::from_secs(10);

/// An upstream that answers every A question with [`UPSTREAM_ADDRESS`], counting the
/// questions it got; a question for a name starting with `slow` is answered only once
/// `release` is notified.
struct FakeUpstream {
    addr: SocketAddr,
    questions: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

async fn upstream() -> FakeUpstream {
    let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = socket.local_addr().unwrap();
    let questions = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (count, hold) = (questions.clone(), release.clone());
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            count.fetch_add(1, Ordering::SeqCst);
            let query = Message::from_vec(&buffer[..len]).unwrap();
            let question = query.queries[0].clone();
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_available = true;
            answer.add_answer(Record::from_rdata(
                question.name().clone(),
                120,
                RData::A(A(UPSTREAM_ADDRESS)),
            ));
            let slow = question.name().to_ascii().starts_with("slow");
            answer.add_query(question);
            let (socket, hold) = (socket.clone(), hold.clone());
            tokio::spawn(async move {
                if slow {
                    hold.notified().await;
                }
                let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
            });
        }
    });
    FakeUpstream {
        addr,
        questions,
        release,
    }
}

/// A server for example.internal. forwarding to `upstream`, with `workers` UDP workers.
struct Server {
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

async fn server(upstream: SocketAddr, workers: usize) -> Server {
    let metrics = Arc::new(Metrics::default());
    let forward = ForwardConfig {
        upstreams: vec![Upstream::Udp(upstream)],
        timeout: PATIENCE,
        cache_entries: 100,
        serve_stale: Duration::ZERO,
        tls: None,
        zones: Vec::new(),
    };
    let handler = Arc::new(QueryHandler::new(
        Arc::new(ArcSwap::from_pointee(common::zone_set(
            "example.internal.",
            ZONE,
        ))),
        Arc::new(Forwarder::new(&forward, metrics.clone())),
        vec!["127.0.0.0/8".parse().unwrap()],
        metrics.clone(),
    ));
    let workers = NonZeroUsize::new(workers).unwrap();
    let sockets = DnsSockets::bind(&[SocketAddr::from((Ipv4Addr::LOCALHOST, 0))], workers)
        .await
        .unwrap();
    let addr = sockets.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    sockets.spawn(handler, shutdown.clone(), &tracker).unwrap();
    Server {
        addr,
        metrics,
        shutdown,
        tracker,
    }
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    message.to_vec().unwrap()
}

/// The id, rcode and A addresses of a reply.
fn read(bytes: &[u8]) -> (u16, ResponseCode, Vec<Ipv4Addr>) {
    let message = Message::from_vec(bytes).unwrap();
    let addresses = message
        .answers
        .iter()
        .filter_map(|record| match &record.data {
            RData::A(A(address)) => Some(*address),
            _ => None,
        })
        .collect();
    (
        message.metadata.id,
        message.metadata.response_code,
        addresses,
    )
}

/// Sends `packet` from `socket` until a reply comes (UDP may drop), at most 5 times.
async fn exchange(socket: &UdpSocket, to: SocketAddr, packet: &[u8]) -> (Vec<u8>, SocketAddr) {
    let mut buffer = vec![0u8; 4096];
    for _ in 0..5 {
        socket.send_to(packet, to).await.unwrap();
        let wait = Duration::from_secs(2);
        if let Ok(Ok((len, from))) = tokio::time::timeout(wait, socket.recv_from(&mut buffer)).await
        {
            return (buffer[..len].to_vec(), from);
        }
    }
    panic!("no reply from {to}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_gets_its_answer_from_the_address_it_asked_whichever_worker_serves_it() {
    let upstream = upstream().await;
    let server = server(upstream.addr, 4).await;
    // Many source ports, so the kernel spreads the clients over the four sockets.
    let mut clients = Vec::new();
    for id in 0..64u16 {
        let to = server.addr;
        clients.push(tokio::spawn(async move {
            let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let (reply, from) = exchange(&socket, to, &query(id, "www.example.internal.")).await;
            (id, read(&reply), from)
        }));
    }
    for client in clients {
        let (id, reply, from) = client.await.unwrap();
        assert_eq!(from, server.addr, "the reply comes from the address asked");
        assert_eq!(
            reply,
            (id, ResponseCode::NoError, vec![Ipv4Addr::new(10, 0, 0, 10)])
        );
    }
    assert!(stop_and_drain(&server.shutdown, &server.tracker, PATIENCE, "dns").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_datagram_longer_than_a_worker_reads_is_answered_formerr() {
    let upstream = upstream().await;
    let server = server(upstream.addr, 1).await;
    let mut packet = query(0x4242, "www.example.internal.");
    // Padding past the 4 KiB a worker reads: the kernel cuts the datagram.
    packet.resize(5000, 0);
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (reply, _) = exchange(&socket, server.addr, &packet).await;
    assert_eq!(read(&reply), (0x4242, ResponseCode::FormErr, vec![]));
    // The worker still serves the next one.
    let (reply, _) = exchange(&socket, server.addr, &query(7, "www.example.internal.")).await;
    assert_eq!(read(&reply).1, ResponseCode::NoError);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_cached_forward_is_answered_without_asking_the_upstream_again() {
    let upstream = upstream().await;
    let server = server(upstream.addr, 2).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for id in 1..=3 {
        let (reply, _) = exchange(&socket, server.addr, &query(id, "cached.example.org.")).await;
        assert_eq!(
            read(&reply),
            (id, ResponseCode::NoError, vec![UPSTREAM_ADDRESS])
        );
    }
    assert_eq!(upstream.questions.load(Ordering::SeqCst), 1);
    assert_eq!(server.metrics.cache_hits.load(Ordering::Relaxed), 2);
}

/// Reads one length-prefixed message.
async fn read_message(stream: &mut TcpStream) -> Vec<u8> {
    let read = async {
        let len = usize::from(stream.read_u16().await.unwrap());
        let mut message = vec![0u8; len];
        stream.read_exact(&mut message).await.unwrap();
        message
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("a reply within the patience: answers behind a slow upstream were held back")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_answers_behind_a_slow_upstream_are_not_held_back() {
    let upstream = upstream().await;
    let server = server(upstream.addr, 1).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    // Three pipelined queries in one write: the first needs the upstream, which answers
    // only after the other two replies have arrived.
    let mut pipelined = Vec::new();
    for (id, name) in [
        (1, "slow.example.org."),
        (2, "www.example.internal."),
        (3, "ns1.example.internal."),
    ] {
        let message = query(id, name);
        pipelined.extend_from_slice(&u16::try_from(message.len()).unwrap().to_be_bytes());
        pipelined.extend_from_slice(&message);
    }
    stream.write_all(&pipelined).await.unwrap();
    let first = read(&read_message(&mut stream).await);
    let second = read(&read_message(&mut stream).await);
    assert_eq!(
        [first, second],
        [
            (2, ResponseCode::NoError, vec![Ipv4Addr::new(10, 0, 0, 10)]),
            (3, ResponseCode::NoError, vec![Ipv4Addr::new(10, 0, 0, 1)]),
        ]
    );
    upstream.release.notify_one();
    assert_eq!(
        read(&read_message(&mut stream).await),
        (1, ResponseCode::NoError, vec![UPSTREAM_ADDRESS])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_every_udp_worker_and_closes_the_port() {
    let upstream = upstream().await;
    let server = server(upstream.addr, 3).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    exchange(&socket, server.addr, &query(1, "www.example.internal.")).await;
    let drained = stop_and_drain(&server.shutdown, &server.tracker, PATIENCE, "dns").await;
    assert!(drained, "every worker thread stopped");
    // Every socket is closed: the port can be bound again.
    std::net::UdpSocket::bind(server.addr).expect("the DNS port is free after shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_client_that_never_reads_is_cut_off_and_others_are_served() {
    let upstream = upstream().await;
    let server = server(upstream.addr, 1).await;
    // Pipelines queries and never reads: the answers fill both sockets' buffers, and the
    // server's writes wait on a reader who never comes.
    let hostile = TcpStream::connect(server.addr).await.unwrap();
    let (_unread, mut writer) = hostile.into_split();
    let flood = tokio::spawn(async move {
        let message = query(1, "www.example.internal.");
        let mut framed = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
        framed.extend_from_slice(&message);
        let batch = framed.repeat(1024);
        loop {
            // Ends once the server has closed the connection (it resets it: our
            // queries are still unread in its buffer).
            if let Err(error) = writer.write_all(&batch).await {
                return error;
            }
        }
    });

    // A well-behaved client is answered meanwhile.
    let mut polite = TcpStream::connect(server.addr).await.unwrap();
    let message = query(2, "ns1.example.internal.");
    polite
        .write_all(&u16::try_from(message.len()).unwrap().to_be_bytes())
        .await
        .unwrap();
    polite.write_all(&message).await.unwrap();
    assert_eq!(
        read(&read_message(&mut polite).await),
        (2, ResponseCode::NoError, vec![Ipv4Addr::new(10, 0, 0, 1)])
    );

    // The server gives up on the flood past its write deadline; without one, this waits
    // forever.
    let ended = tokio::time::timeout(
        outpost_dns::server::tcp::TCP_WRITE_TIMEOUT + PATIENCE,
        flood,
    )
    .await
    .expect("the server cut off a client that never reads")
    .unwrap();
    assert!(
        matches!(
            ended.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{ended}"
    );
    // And it still shuts down at once.
    let drained = stop_and_drain(&server.shutdown, &server.tracker, PATIENCE, "dns").await;
    assert!(drained, "shutdown was not held by the cut-off client");
}

/// A TCP connection from `source` that asked one question: its answer, or `None` when
/// the server closed the connection instead.
async fn tcp_ask_from(
    source: Ipv4Addr,
    server: SocketAddr,
    id: u16,
) -> (TcpStream, Option<Vec<u8>>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut stream = socket.connect(server).await.unwrap();
    let message = query(id, "www.example.internal.");
    let mut framed = u16::try_from(message.len()).unwrap().to_be_bytes().to_vec();
    framed.extend_from_slice(&message);
    // A closed connection may already refuse the write.
    if stream.write_all(&framed).await.is_err() {
        return (stream, None);
    }
    let read = async {
        let len = usize::from(stream.read_u16().await.ok()?);
        let mut reply = vec![0u8; len];
        stream.read_exact(&mut reply).await.ok()?;
        Some(reply)
    };
    let reply = tokio::time::timeout(PATIENCE, read)
        .await
        .expect("an answer or a close within the patience");
    (stream, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_source_cannot_take_every_tcp_connection() {
    use outpost_dns::server::MAX_TCP_CONNECTIONS_PER_SOURCE;
    let upstream = upstream().await;
    let server = server(upstream.addr, 1).await;
    let greedy = Ipv4Addr::new(127, 0, 0, 1);
    let mut open = Vec::new();
    for id in 0..MAX_TCP_CONNECTIONS_PER_SOURCE {
        let (stream, reply) = tcp_ask_from(greedy, server.addr, u16::try_from(id).unwrap()).await;
        assert!(
            reply.is_some(),
            "connection {id} of the allowance is served"
        );
        open.push(stream);
    }
    let refused_before = server
        .metrics
        .tcp_connections_refused
        .load(Ordering::Relaxed);
    let (_, reply) = tcp_ask_from(greedy, server.addr, 9000).await;
    assert!(
        reply.is_none(),
        "one connection over the allowance is closed"
    );
    assert_eq!(
        server
            .metrics
            .tcp_connections_refused
            .load(Ordering::Relaxed),
        refused_before + 1
    );

    // Another client is served meanwhile.
    let (_, reply) = tcp_ask_from(Ipv4Addr::new(127, 0, 0, 2), server.addr, 9001).await;
    assert_eq!(
        read(&reply.expect("another source is served")),
        (
            9001,
            ResponseCode::NoError,
            vec![Ipv4Addr::new(10, 0, 0, 10)]
        )
    );

    // A connection closed gives its slot back (once the server has seen the close).
    drop(open.pop());
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if tcp_ask_from(greedy, server.addr, 9002).await.1.is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
