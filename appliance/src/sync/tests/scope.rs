//! What a session is sent: only its zones, exactly the changes it missed, and a
//! snapshot when its cursor cannot be resumed.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_sees_only_its_zones() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    harness.create_zone("lab.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, None).await;
    let (welcome, snapshot) = client.snapshot().await;
    assert_eq!(welcome.zones, ["site.internal."]);
    assert_eq!(welcome.cluster_id, harness.store.cluster_id());
    assert_eq!(
        snapshot[0],
        WireChange::ZonePut {
            origin: "site.internal.".into()
        }
    );
    // SOA, NS and ns1 A.
    assert_eq!(snapshot.len(), 4, "{snapshot:?}");
    assert!(snapshot.iter().all(|c| zone_of(c) == "site.internal."));

    let other_zone = harness.add_a("lab.internal.", "secret", "10.9.9.9").await;
    let own_zone = harness.add_a("site.internal.", "printer", "10.0.0.7").await;
    let other_token = harness.token("bob-laptop", &["lab.internal."]).await;
    let deleted = harness
        .write(Command::DeleteZone {
            origin: "lab.internal.".into(),
        })
        .await
        .index;
    assert!(!other_token.is_empty());

    // One Changes frame per batch, in order, even when nothing in it is in scope.
    let mut frames = Vec::new();
    while frames.last().is_none_or(|(up_to, _)| *up_to < deleted) {
        match client.frame().await {
            Frame::Changes(changes) => frames.push((changes.up_to, changes.entries)),
            other => panic!("expected Changes, got {other:?}"),
        }
    }
    let up_tos: Vec<u64> = frames.iter().map(|(up_to, _)| *up_to).collect();
    assert!(up_tos.contains(&other_zone) && up_tos.contains(&deleted));
    let entries: Vec<_> = frames.into_iter().flat_map(|(_, e)| e).collect();
    assert_eq!(
        entries.len(),
        1,
        "only the site.internal. write: {entries:?}"
    );
    assert_eq!(entries[0].index, own_zone);
    // The A RRset, and the SOA whose serial the write bumped.
    assert!(
        entries[0].changes.iter().any(|change| matches!(
            change,
            WireChange::RRsetPut { zone, owner, rtype: 1, .. }
                if zone == "site.internal." && owner == "printer.site.internal."
        )),
        "{entries:?}"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_from_a_cursor_sends_exactly_the_missed_changes() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    harness.create_zone("lab.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, None).await;
    let (welcome, _) = client.snapshot().await;
    let cursor = Cursor {
        cluster_id: welcome.cluster_id.clone(),
        index: welcome.head,
    };
    drop(client);

    // Missed while away: two in scope (one of them a delete), one not.
    let first = harness.add_a("site.internal.", "a", "10.0.0.1").await;
    harness.add_a("lab.internal.", "b", "10.0.0.2").await;
    let deleted = harness
        .write(Command::DeleteRecords {
            owner: "ns1.site.internal.".into(),
            rtype: Some(1),
            records: Vec::new(),
        })
        .await
        .index;

    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, Some(cursor)).await;
    let welcome = match client.frame().await {
        Frame::Welcome(welcome) => welcome,
        other => panic!("expected Welcome, got {other:?}"),
    };
    assert_eq!((welcome.mode, welcome.head), (SyncMode::Resume, deleted));
    let entries = client.changes_until(deleted).await;
    let indexes: Vec<u64> = entries.iter().map(|entry| entry.index).collect();
    assert_eq!(indexes, [first, deleted]);
    // The tombstone travels.
    assert!(
        entries[1].changes.iter().any(|change| matches!(
            change,
            WireChange::RRsetDeleted { owner, rtype: 1, .. } if owner == "ns1.site.internal."
        )),
        "{entries:?}"
    );

    // Then live.
    let live = harness.add_a("site.internal.", "c", "10.0.0.3").await;
    let entries = client.changes_until(live).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].index, live);

    let mut metrics = String::new();
    harness.hub.render_metrics(&mut metrics);
    assert!(
        metrics.contains("\noutpost_sync_resumes_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("\noutpost_sync_snapshots_total 1\n"),
        "{metrics}"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_or_foreign_cursor_gets_a_snapshot_then_deltas() {
    let harness = Harness::start_with(Options {
        history_entries: 2,
        ..Options::default()
    })
    .await;
    let created = harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    for i in 0..4 {
        harness
            .add_a("site.internal.", &format!("host{i}"), "10.0.0.1")
            .await;
    }
    let cursors = [
        // Before the two entries of history kept.
        Cursor {
            cluster_id: harness.store.cluster_id().to_string(),
            index: created,
        },
        // Another cluster's index means nothing here.
        Cursor {
            cluster_id: "another-cluster".into(),
            index: harness.store.view().applied,
        },
    ];
    for (n, cursor) in cursors.into_iter().enumerate() {
        let mut client = Client::connect(harness.addr).await;
        client.hello(&token, Some(cursor.clone())).await;
        let (welcome, snapshot) = client.snapshot().await;
        assert_eq!(welcome.head, harness.store.view().applied, "{cursor:?}");
        // The ZonePut, then SOA, NS, ns1, host0..3 and the late hosts added so far.
        assert_eq!(snapshot.len(), 1 + 3 + 4 + n, "{cursor:?}: {snapshot:?}");
        let live = harness
            .add_a("site.internal.", &format!("late{n}"), "10.0.0.9")
            .await;
        let entries = client.changes_until(live).await;
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].index, live);
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_ahead_of_this_node_resumes_and_never_moves_back() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let head = harness.store.view().applied;
    // The client last spoke to a node one entry further along.
    let mut client = Client::connect(harness.addr).await;
    let cursor = Cursor {
        cluster_id: harness.store.cluster_id().to_string(),
        index: head + 1,
    };
    client.hello(&token, Some(cursor)).await;
    match client.frame().await {
        Frame::Welcome(welcome) => {
            assert_eq!((welcome.mode, welcome.head), (SyncMode::Resume, head));
        }
        other => panic!("expected Welcome, got {other:?}"),
    }
    // The entry at the cursor is not sent again; the one after it is.
    let at_cursor = harness.add_a("site.internal.", "a", "10.0.0.1").await;
    let after = harness.add_a("site.internal.", "b", "10.0.0.2").await;
    assert_eq!(at_cursor, head + 1);
    match client.frame().await {
        Frame::Changes(changes) => {
            assert_eq!(changes.up_to, after);
            let indexes: Vec<u64> = changes.entries.iter().map(|e| e.index).collect();
            assert_eq!(indexes, [after]);
        }
        other => panic!("expected Changes, got {other:?}"),
    }
    harness.stop().await;
}

/// Clients of protocols 1 and 2 know no `ChangesAfter`: they get `Changes` frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_2_client_gets_changes_frames() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client
        .send(Frame::Hello(Hello {
            client_id: "old-laptop".into(),
            token: token.clone(),
            cursor: None,
            min_version: 1,
            max_version: 2,
        }))
        .await;
    let (welcome, _) = client.snapshot().await;
    assert_eq!(welcome.version, 2);
    let index = harness.add_a("site.internal.", "a", "10.0.0.1").await;
    let message = tokio::time::timeout(WAIT, client.ws.next())
        .await
        .expect("a frame in time");
    let Some(Ok(Message::Binary(bytes))) = message else {
        panic!("expected a binary message, got {message:?}");
    };
    let (kind, _) = Frame::read_header(&bytes).unwrap();
    assert_eq!(kind, frame_type::CHANGES);
    match Frame::decode(&bytes).unwrap() {
        Some(Frame::Changes(changes)) => assert_eq!(changes.up_to, index),
        other => panic!("expected Changes, got {other:?}"),
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dns_cookie_secret_is_never_sent_to_a_session() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    let token = harness.token("alice-laptop", &["site.internal."]).await;
    let mut client = Client::connect(harness.addr).await;
    client.hello(&token, None).await;
    let (welcome, _) = client.snapshot().await;
    let rotated = harness
        .write(Command::RotateCookieSecret {
            secret: [7; 16],
            now_unix: 1,
            replaces: None,
        })
        .await
        .index;
    assert!(rotated > welcome.head);
    let printer = harness.add_a("site.internal.", "printer", "10.0.0.7").await;
    let entries = client.changes_until(printer).await;
    let indexes: Vec<u64> = entries.iter().map(|entry| entry.index).collect();
    assert_eq!(indexes, [printer], "{entries:?}");
    // Nor in the snapshot a new session starts from.
    let mut fresh = Client::connect(harness.addr).await;
    fresh.hello(&token, None).await;
    let (_, snapshot) = fresh.snapshot().await;
    assert!(snapshot.iter().all(|c| zone_of(c) == "site.internal."));
    harness.stop().await;
}
