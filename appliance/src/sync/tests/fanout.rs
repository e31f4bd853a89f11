//! Many sessions, one encoding: sessions with the same zones receive the very same
//! bytes, encoded once per batch; long messages arrive whole from their fragments.

use tokio_tungstenite::tungstenite::Bytes;

use super::*;

/// The raw `Changes` messages until the one whose `up_to` reaches `up_to`,
/// heartbeats skipped.
async fn raw_changes_until<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut Client<S>,
    up_to: u64,
) -> Vec<Bytes> {
    let mut messages = Vec::new();
    loop {
        let message = tokio::time::timeout(WAIT, client.ws.next())
            .await
            .expect("nothing from the server in time");
        let bytes = match message {
            Some(Ok(Message::Binary(bytes))) => bytes,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("unexpected from the server: {other:?}"),
        };
        match Frame::decode(&bytes).unwrap().unwrap() {
            Frame::Heartbeat(_) => continue,
            Frame::Changes(changes)
            | Frame::ChangesAfter(outpost_core::sync::ChangesAfter { changes, .. }) => {
                messages.push(bytes);
                if changes.up_to >= up_to {
                    return messages;
                }
            }
            other => panic!("expected Changes, got {other:?}"),
        }
    }
}

fn batch_encodes(hub: &Hub) -> u64 {
    let mut metrics = String::new();
    hub.render_metrics(&mut metrics);
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("outpost_sync_batch_encodes_total "))
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_with_the_same_zones_receive_the_same_bytes_encoded_once() {
    let harness = Harness::start().await;
    harness.create_zone("site.internal.").await;
    // Two tokens, one scope: frames are shared by zones, not by token.
    let alice = harness.token("alice-laptop", &["site.internal."]).await;
    let bob = harness.token("bob-laptop", &["site.internal."]).await;
    let mut clients = Vec::new();
    for token in [&alice, &bob] {
        let mut client = Client::connect(harness.addr).await;
        client.hello(token, None).await;
        client.snapshot().await;
        clients.push(client);
    }
    let encodes_before = batch_encodes(&harness.hub);

    // An import-sized batch (about 200 KB of changes), then a single write.
    let text: String = (0..3000)
        .map(|n| format!("h{n:04} 300 A 10.1.{}.{}\n", n / 256, n % 256))
        .collect();
    harness
        .write(Command::AddRecords {
            records: records("site.internal.", &text),
        })
        .await;
    let last = harness.add_a("site.internal.", "printer", "10.0.0.7").await;

    let mut received = Vec::new();
    for client in &mut clients {
        received.push(raw_changes_until(client, last).await);
    }
    assert_eq!(received[0], received[1], "byte for byte the same frames");
    // The import in one frame, sent in several WebSocket fragments.
    assert_eq!(received[0].len(), 2);
    assert!(received[0][0].len() > 4 * outbound::MESSAGE_FRAGMENT);
    let records: usize = received[0]
        .iter()
        .map(|bytes| match Frame::decode(bytes).unwrap().unwrap() {
            Frame::ChangesAfter(outpost_core::sync::ChangesAfter { changes, .. }) => changes
                .entries
                .iter()
                .flat_map(|entry| &entry.changes)
                .filter(|change| matches!(change, WireChange::RRsetPut { rtype: 1, .. }))
                .count(),
            other => panic!("expected ChangesAfter (protocol 3), got {other:?}"),
        })
        .sum();
    assert_eq!(records, 3001, "every A RRset, once");
    // Two batches, each encoded once for the two sessions.
    assert_eq!(batch_encodes(&harness.hub) - encodes_before, 2);
    harness.stop().await;
}
