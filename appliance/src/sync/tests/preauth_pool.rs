//! The pre-auth pool: only authenticated sessions take a session slot; strangers wait
//! in a small pool, capped per source, with one deadline from accept to `Hello`.

use std::net::{IpAddr, Ipv4Addr};

use tokio::io::AsyncReadExt as _;

use super::*;

/// A TCP connection to `addr` from `127.0.0.<last>` (any 127/8 address is local).
async fn connect_from(last: u8, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    let source = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
    socket.bind(source).unwrap();
    socket.connect(addr).await.unwrap()
}

/// Waits for the server to drop `stream`: EOF or a reset, nothing else.
async fn expect_dropped(mut stream: TcpStream) {
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
        .await
        .expect("the server kept a connection over the cap");
    match read {
        Ok(0) | Err(_) => {}
        Ok(len) => panic!("expected the connection dropped, got {len} bytes"),
    }
}

fn metrics(harness: &Harness) -> String {
    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    metrics
}

/// The `outpost_sync_preauth_refused_total` sample for `reason`.
fn refused(metrics: &str, reason: &str) -> Option<u64> {
    let prefix = format!("outpost_sync_preauth_refused_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authenticated_sessions_count_toward_the_session_cap() {
    let harness = Harness::start_with(Options {
        max_sessions: 1,
        ..Options::default()
    })
    .await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;

    // Two connections that have not said who they are take no session slot.
    let _silent = Client::connect(harness.addr).await;
    let mut late = Client::connect(harness.addr).await;
    let mut alice = Client::connect(harness.addr).await;
    alice.hello(&token, None).await;
    alice.snapshot().await;

    // The one slot is taken now: a token accepted after that gets 1013.
    late.hello(&token, None).await;
    late.expect_close(TRY_AGAIN_LATER).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_over_the_pool_or_their_source_cap_are_dropped() {
    let harness = Harness::start_with(Options {
        preauth: PreauthLimits {
            connections: 3,
            per_source: 2,
            deadline: Duration::from_secs(60),
        },
        ..Options::default()
    })
    .await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;

    let first = connect_from(1, harness.addr).await;
    let _second = connect_from(1, harness.addr).await;
    expect_dropped(connect_from(1, harness.addr).await).await;
    let _neighbour = connect_from(2, harness.addr).await;
    expect_dropped(connect_from(3, harness.addr).await).await;

    let metrics = metrics(&harness);
    assert!(
        metrics.contains("\noutpost_sync_preauth_connections 3\n"),
        "{metrics}"
    );
    assert_eq!(refused(&metrics, "source_full"), Some(1), "{metrics}");
    assert_eq!(refused(&metrics, "pool_full"), Some(1), "{metrics}");

    // The connections within the caps were held: the first still becomes a session,
    // and the place it leaves lets another source in.
    let mut first = Client::over(first, harness.addr).await;
    first.hello(&token, None).await;
    first.snapshot().await;
    let mut third = Client::over(connect_from(3, harness.addr).await, harness.addr).await;
    third.hello(&token, None).await;
    third.snapshot().await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_deadline_covers_the_upgrade_and_the_hello() {
    let deadline = Duration::from_secs(4);
    let harness = Harness::start_with(Options {
        preauth: PreauthLimits {
            deadline,
            ..PreauthLimits::default()
        },
        ..Options::default()
    })
    .await;

    let started = std::time::Instant::now();
    let never_upgrades = TcpStream::connect(harness.addr).await.unwrap();
    let slow = TcpStream::connect(harness.addr).await.unwrap();
    // Most of the deadline goes before the upgrade; the Hello does not get a fresh one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut slow = Client::over(slow, harness.addr).await;
    let message = slow.expect_error_and_close(close::PROTOCOL_ERROR).await;
    assert_eq!(message, "no Hello within 4 s of connecting");
    let elapsed = started.elapsed();
    // A deadline per step would close it 4 s after the upgrade, 7 s after connecting.
    assert!(
        elapsed < Duration::from_secs(6),
        "closed {elapsed:?} after connecting"
    );
    expect_dropped(never_upgrades).await;
    let counted = metrics(&harness);
    assert_eq!(refused(&counted, "deadline"), Some(2), "{counted}");

    // Their places come back once the server is done with them.
    drop(slow);
    let emptied = async {
        while !metrics(&harness).contains("\noutpost_sync_preauth_connections 0\n") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WAIT, emptied)
        .await
        .expect("the pool never emptied");
    harness.stop().await;
}
