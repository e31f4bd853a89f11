//! An unauthenticated flood against a real appliance's sync port: raw TCP connections
//! that never start TLS or the upgrade, and WebSockets that never send `Hello`, opened
//! faster than the pre-auth deadline lets them go, from addresses other than the Lite
//! client's. The Lite client still connects and syncs (its answers over DNS), the
//! per-source cap drops the excess at once, and every flood connection is closed once
//! the deadline passes.

use std::io::Read as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use outpost_tests::{Appliance, Lite, authoritative_config, create_lite_token, wait_until};
use socket2::{Domain, Socket, Type};
use tokio_tungstenite::tungstenite::{self, Message};

/// The appliance's `sync::MAX_SESSIONS`: a flood that holds more than this many
/// connections fills every slot of a server that counts strangers as sessions.
const MAX_SESSIONS: usize = 4096;

/// The appliance's `sync::preauth::MAX_PREAUTH_PER_SOURCE`.
const MAX_PREAUTH_PER_SOURCE: usize = 16;

/// The appliance's `sync::preauth::PREAUTH_DEADLINE`.
const PREAUTH_DEADLINE: Duration = Duration::from_secs(10);

/// Connections the flood keeps open at once: every session slot and every refusal
/// slot (`MAX_REFUSALS` = 64) of a server without a pre-auth pool, and more.
const FLOOD_HELD: usize = MAX_SESSIONS + 300;

/// New flood connections per tick of [`FLOOD_TICK`]: 2,500 a second, far faster than
/// a 10 s deadline lets connections go.
const FLOOD_PER_TICK: usize = 50;
const FLOOD_TICK: Duration = Duration::from_millis(20);

/// The flood's sources: 127.0.0.3 to 127.0.0.6. The Lite client connects from
/// 127.0.0.1.
const FLOOD_SOURCES: [u8; 4] = [3, 4, 5, 6];

/// Where the WebSockets that never send `Hello` come from.
const SILENT_SOURCE: u8 = 7;

/// The flood's own deadline for anything the server should do.
const GENEROUS: Duration = Duration::from_secs(40);

/// The sync endpoint's address, from the appliance's `addresses.json`.
fn sync_addr(appliance: &Appliance) -> SocketAddr {
    appliance.listener("sync")
}

/// A blocking TCP connection to `addr` from `127.0.0.<last>`.
fn connect_from(last: u8, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
    socket.bind(&source.into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(1))?;
    Ok(socket.into())
}

/// Whether the server closed a non-blocking `stream` (EOF or reset).
fn closed_by_server(mut stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    match stream.read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(error) => error.kind() != std::io::ErrorKind::WouldBlock,
    }
}

/// Raw TCP connections that say nothing, kept at [`FLOOD_HELD`] open, reopened as the
/// server closes them, until stopped.
struct Flood {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicUsize>,
    closed_by_server: Arc<AtomicUsize>,
    thread: Option<JoinHandle<Vec<TcpStream>>>,
}

impl Flood {
    fn start(addr: SocketAddr) -> Flood {
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (stop, opened, closed) = (stop.clone(), opened.clone(), closed.clone());
            thread::spawn(move || {
                let mut open: Vec<TcpStream> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..FLOOD_PER_TICK.min(FLOOD_HELD.saturating_sub(open.len())) {
                        let count = opened.load(Ordering::Relaxed);
                        let source = FLOOD_SOURCES[count % FLOOD_SOURCES.len()];
                        let Ok(stream) = connect_from(source, addr) else {
                            break;
                        };
                        stream.set_nonblocking(true).unwrap();
                        open.push(stream);
                        opened.fetch_add(1, Ordering::Relaxed);
                    }
                    let before = open.len();
                    open.retain(|stream| !closed_by_server(stream));
                    closed.fetch_add(before - open.len(), Ordering::Relaxed);
                    thread::sleep(FLOOD_TICK);
                }
                open
            })
        };
        Flood {
            stop,
            opened,
            closed_by_server: closed,
            thread: Some(thread),
        }
    }

    /// Stops opening connections; returns the ones still open.
    fn stop(mut self) -> Vec<TcpStream> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A WebSocket to the sync endpoint from `127.0.0.<last>` that never sends `Hello`.
fn silent_websocket(last: u8, addr: SocketAddr) -> tungstenite::WebSocket<TcpStream> {
    let stream = connect_from(last, addr).unwrap();
    stream.set_read_timeout(Some(GENEROUS)).unwrap();
    let (socket, _) =
        tungstenite::client(format!("ws://{addr}/v1/sync"), stream).expect("the WebSocket upgrade");
    socket
}

/// The close code the server ends `socket` with (frames before it skipped).
fn close_code(socket: &mut tungstenite::WebSocket<TcpStream>) -> Option<u16> {
    loop {
        match socket.read() {
            Ok(Message::Close(frame)) => return frame.map(|frame| frame.code.into()),
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

#[test]
fn a_lite_client_syncs_through_an_unauthenticated_flood() {
    let appliance = Appliance::start(&authoritative_config());
    let token = create_lite_token(&appliance, "laptop", "example.internal.");
    let addr = sync_addr(&appliance);

    let mut silent: Vec<_> = (0..4)
        .map(|_| silent_websocket(SILENT_SOURCE, addr))
        .collect();
    let upgraded = Instant::now();
    let flood = Flood::start(addr);
    assert!(
        wait_until(GENEROUS, || flood.opened.load(Ordering::Relaxed)
            > FLOOD_HELD),
        "the flood could not open its connections"
    );

    // The flood goes on while a real client connects, syncs and follows a change.
    let lite = Lite::start_for(&appliance, &token);
    lite.wait_synced();
    lite.wait_for_a("www.example.internal.", &["10.0.0.10"]);
    appliance.cli_ok(["record", "add", "flood.example.internal.", "A", "10.9.9.9"]);
    lite.wait_for_a("flood.example.internal.", &["10.9.9.9"]);
    // Through it all the client was never turned away (1013, or a dropped connection).
    let log = lite.log();
    assert!(
        !log.contains("session ended; retrying"),
        "the Lite client was turned away during the flood:\n{}",
        lite.log_tail()
    );

    // One host's strangers never hold more than the per-source cap: the rest were
    // dropped at once, and the pool itself never filled.
    let in_stage = appliance.metric("outpost_sync_preauth_connections");
    let sources = FLOOD_SOURCES.len() + 2; // the silent WebSockets and the Lite client
    assert!(
        in_stage <= (sources * MAX_PREAUTH_PER_SOURCE) as f64,
        "{in_stage} connections in the pre-auth stage"
    );
    assert!(appliance.metric("outpost_sync_preauth_refused_total{reason=\"source_full\"}") > 0.0);
    assert_eq!(
        appliance.metric("outpost_sync_preauth_refused_total{reason=\"pool_full\"}"),
        0.0
    );
    assert!(flood.closed_by_server.load(Ordering::Relaxed) > 0);

    // Every connection still held is closed by the server once the deadline passes:
    // the WebSockets with 4001, the raw connections with EOF or a reset.
    for socket in &mut silent {
        assert_eq!(close_code(socket), Some(4001));
    }
    assert!(upgraded.elapsed() >= PREAUTH_DEADLINE - Duration::from_millis(500));
    let mut held = flood.stop();
    assert!(
        wait_until(GENEROUS, || {
            held.retain(|stream| !closed_by_server(stream));
            held.is_empty()
        }),
        "{} flood connections still open well past the pre-auth deadline",
        held.len()
    );
    assert!(appliance.metric("outpost_sync_preauth_refused_total{reason=\"deadline\"}") >= 4.0);
    let status = lite.wait_synced();
    assert_eq!(status["state"], "Synced", "{status}");
}
