//! The admin API on a hostile LAN: clients that drip a request head, send nothing, or
//! idle on a kept-alive connection are closed past the header-read timeout; the connection
//! cap closes the connections past it and counts them; and a polite client (the CLI, a
//! script) is served meanwhile, and again once slots free. A request body that stalls
//! fails and frees its connection.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use outpost_tests::{Appliance, authoritative_config, wait_until};

/// The appliance's `admin::listener::HEADER_READ_TIMEOUT`.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The appliance's `admin::listener::MAX_CONNECTIONS`.
const MAX_CONNECTIONS: usize = 64;

/// How long past [`HEADER_READ_TIMEOUT`] a slow connection may still be open before the
/// test fails: generous, for a loaded machine.
const CLOSE_MARGIN: Duration = Duration::from_secs(30);

/// Slow clients of each kind.
const SLOW_CLIENTS: usize = 12;

fn connect(admin: SocketAddr) -> TcpStream {
    TcpStream::connect(admin).expect("connect to the admin API")
}

/// Whether the server closed `stream` (end of file or reset), without waiting; bytes it
/// sent (none are expected) are read and dropped.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 512];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

/// `GET /health` on a connection of its own; whether it was answered 200.
fn health(admin: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(admin) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = b"GET /health HTTP/1.1\r\nHost: outpost\r\nConnection: close\r\n\r\n";
    if stream.write_all(request).is_err() {
        return false;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response.starts_with(b"HTTP/1.1 200")
}

#[test]
fn slow_and_silent_admin_clients_are_closed_while_the_cli_is_served() {
    let appliance = Appliance::start(&authoritative_config());
    let admin = appliance.admin_addr();

    // Dripping: a request head that never ends, a byte at a time.
    let mut dripping: Vec<TcpStream> = (0..SLOW_CLIENTS).map(|_| connect(admin)).collect();
    for stream in &mut dripping {
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: outpost\r\nX-Slow: ")
            .expect("the start of a head");
    }
    // Silent: connected, nothing sent.
    let silent: Vec<TcpStream> = (0..SLOW_CLIENTS).map(|_| connect(admin)).collect();
    // Kept alive: one request answered, then nothing.
    let mut kept_alive = connect(admin);
    kept_alive
        .write_all(b"GET /health HTTP/1.1\r\nHost: outpost\r\n\r\n")
        .expect("a request");
    kept_alive
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let mut answer = Vec::new();
    let mut buffer = [0u8; 512];
    while !answer.ends_with(b"ok") {
        let read = kept_alive.read(&mut buffer).expect("the answer");
        assert!(read > 0, "closed before answering");
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");

    // Polite clients are served while the slow ones hold their connections.
    let list = appliance.cli_ok(["zone", "list"]);
    assert!(list.contains("example.internal."), "{list}");
    let (status, _) = appliance.api("GET", "/v1/status", None);
    assert_eq!(status, 200);

    // (dripping, connection): only the dripping ones go on sending.
    let mut open: Vec<(bool, TcpStream)> = dripping.into_iter().map(|s| (true, s)).collect();
    open.extend(silent.into_iter().map(|s| (false, s)));
    open.push((false, kept_alive));
    let started = Instant::now();
    let deadline = HEADER_READ_TIMEOUT + CLOSE_MARGIN;
    while !open.is_empty() && started.elapsed() < deadline {
        for (drips, stream) in &mut open {
            if *drips {
                // Fails once the server closed the connection; the read below says so.
                let _ = stream.write_all(b"a");
            }
        }
        open.retain_mut(|(_, stream)| !closed_by_server(stream));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        open.is_empty(),
        "{} slow admin connections still open {deadline:?} after they started",
        open.len()
    );
    let timeouts = appliance.metric("outpost_admin_header_timeouts_total");
    assert!(timeouts >= SLOW_CLIENTS as f64, "{timeouts}");
    assert!(health(admin));
}

#[test]
fn the_admin_connection_cap_closes_and_counts_the_excess_then_serves_again() {
    let appliance = Appliance::start(&authoritative_config());
    let admin = appliance.admin_addr();

    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(admin)).collect();
    // Past the cap: closed as it is accepted, long before the header-read timeout.
    let mut excess = connect(admin);
    excess
        .set_read_timeout(Some(HEADER_READ_TIMEOUT / 2))
        .expect("read timeout");
    let mut buffer = [0u8; 16];
    match excess.read(&mut buffer) {
        Ok(0) => {}
        Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut => {}
        other => panic!("a connection past the cap was kept: {other:?}"),
    }

    // Slots free as clients leave; a polite client is served again.
    held.truncate(MAX_CONNECTIONS / 2);
    assert!(
        wait_until(Duration::from_secs(20), || health(admin)),
        "not served once slots freed\n{}",
        appliance.log_tail()
    );
    let refused = appliance.metric("outpost_admin_connections_refused_total");
    assert!(refused >= 1.0, "{refused}");
    let list = appliance.cli_ok(["zone", "list"]);
    assert!(list.contains("example.internal."), "{list}");
    drop(held);
}

#[test]
fn a_request_body_that_stalls_fails_and_frees_its_connection() {
    let appliance = Appliance::start(&authoritative_config());
    let admin = appliance.admin_addr();
    // A token holder announces a zone file of 1000 bytes, sends 10, and stops.
    let mut stream = connect(admin);
    let head = format!(
        "PUT /v1/zones/stall.test. HTTP/1.1\r\nHost: outpost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: text/plain\r\nContent-Length: 1000\r\n\r\n$ORIGIN s",
        appliance.token()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    stream
        .set_read_timeout(Some(HEADER_READ_TIMEOUT + CLOSE_MARGIN))
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    // BODY_STALL_TIMEOUT (10 s) after the last byte: a 400 naming the stall, then the
    // connection closes (read_to_end returned).
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("no request body data for 10 s"),
        "{response}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "cut off before the stall timeout: {:?}",
        started.elapsed()
    );
    // Nothing was written, and the API serves others.
    assert!(health(admin));
    let zones = appliance.cli_ok(["zone", "list"]);
    assert!(!zones.contains("stall.test"), "{zones}");
}
