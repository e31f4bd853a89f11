//! A slow consumer: its queue overflows, it is told to resync, and the others are not
//! held back.

use super::*;

/// Writes tried before giving up on filling the slow client's socket and queue.
const MAX_WRITES: usize = 400;

/// An RRset of 200 TXT records of 250 bytes at `owner` (about 50 KiB on the wire).
fn big_rrset(origin: &str, owner: &str) -> Vec<u8> {
    let text: String = (0..200)
        .map(|i| format!("{owner} 300 TXT \"{i:03}{}\"\n", "x".repeat(247)))
        .collect();
    records(origin, &text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_told_to_resync_while_others_keep_receiving() {
    let harness = Harness::start_with(Options {
        queue: 4,
        ..Options::default()
    })
    .await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;

    // The slow client takes its snapshot, then stops reading; a small receive buffer
    // makes the server's socket fill sooner.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(harness.addr).await.unwrap();
    let mut slow = Client::over(stream, harness.addr).await;
    slow.hello(&token, None).await;
    slow.snapshot().await;
    let mut fast = Client::connect(harness.addr).await;
    fast.hello(&token, None).await;
    fast.snapshot().await;

    let mut writes = 0;
    let overflowed = loop {
        assert!(
            writes < MAX_WRITES,
            "no overflow after {MAX_WRITES} writes: {:?}",
            harness.hub.sessions()
        );
        let owner = format!("big{writes}.site.internal.");
        let index = harness
            .write(Command::ReplaceRRset {
                owner: owner.clone(),
                rtype: 16,
                records: big_rrset("site.internal.", &owner),
            })
            .await
            .index;
        writes += 1;
        // The fast client gets every write promptly, whatever the slow one does.
        let entries = tokio::time::timeout(Duration::from_secs(2), fast.changes_until(index))
            .await
            .expect("the fast session was held back");
        assert_eq!(entries.len(), 1);
        let sessions = harness.hub.sessions();
        if sessions.iter().any(|session| session.overflows > 0) {
            break sessions;
        }
    };
    println!("overflowed after {writes} writes");
    assert_eq!(
        overflowed.iter().map(|s| s.overflows).collect::<Vec<_>>(),
        [1, 0],
        "the slow session (registered first) overflowed, the fast one did not"
    );

    // Reading again, the slow client gets what was already sent, then the resync.
    let reason = loop {
        match slow.next().await {
            Received::Frame(Frame::Changes(_)) => continue,
            Received::Frame(Frame::ResyncRequired(resync)) => break resync.reason,
            other => panic!("expected Changes then ResyncRequired, got {other:?}"),
        }
    };
    assert!(reason.contains("resume from your cursor"), "{reason}");
    slow.expect_close(close::RESYNC_REQUIRED).await;

    let index = harness.add_a("site.internal.", "after", "10.0.0.1").await;
    assert_eq!(fast.changes_until(index).await.len(), 1);
    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    assert!(
        metrics.contains("\noutpost_sync_overflows_total 1\n"),
        "{metrics}"
    );
    harness.stop().await;
}

/// A Raft snapshot installed past a session's position: the entries in between are
/// unknown, so the session is told to resync rather than handed the next batch as if it
/// followed; a session already at or past the snapshot goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_install_past_a_session_asks_it_to_resync() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, None).await;
    let (welcome, _) = client.snapshot().await;

    // At the session's position: nothing to repair, the stream goes on.
    harness.hub.observe(&StateEvent::Replaced {
        as_of: welcome.head,
    });
    let index = harness.add_a("site.internal.", "a", "10.0.0.1").await;
    assert_eq!(client.changes_until(index).await.len(), 1);

    // Past it, as a follower cut off behind a purged log would install.
    harness
        .hub
        .observe(&StateEvent::Replaced { as_of: index + 5 });
    let reason = match client.next().await {
        Received::Frame(Frame::ResyncRequired(resync)) => resync.reason,
        other => panic!("expected ResyncRequired, got {other:?}"),
    };
    assert!(reason.contains("snapshot as of index"), "{reason}");
    client.expect_close(close::RESYNC_REQUIRED).await;
    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    assert!(
        metrics.contains("\noutpost_sync_snapshot_resyncs_total 1\n"),
        "{metrics}"
    );
    harness.stop().await;
}

/// A batch that does not start right after the last one a session sent is never passed
/// on as if it did: the client's cursor would move over the missing indexes for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_after_a_gap_asks_the_session_to_resync() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, None).await;
    let (welcome, _) = client.snapshot().await;
    let head = welcome.head;
    harness
        .hub
        .observe(&StateEvent::Applied(Arc::new(CommittedBatch {
            first: head + 3,
            up_to: head + 4,
            entries: Vec::new(),
        })));
    let reason = match client.next().await {
        Received::Frame(Frame::ResyncRequired(resync)) => resync.reason,
        other => panic!("expected ResyncRequired, got {other:?}"),
    };
    assert!(reason.contains("never reached this session"), "{reason}");
    client.expect_close(close::RESYNC_REQUIRED).await;
    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    assert!(
        metrics.contains("\noutpost_sync_gaps_total 1\n"),
        "{metrics}"
    );
    harness.stop().await;
}
