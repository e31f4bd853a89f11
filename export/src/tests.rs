//! Real endpoints on loopback: a writer, readers that fetch from it and from each other,
//! and a forger that holds the namespace secret but not the cluster's author key.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use hickory_proto::rr::Name;
use iroh_docs::sync::{Record, SignedEntry};
use iroh_docs::{Author, ContentStatus, NamespaceSecret};
use outpost_core::state::{Command, Export, ReplicatedState};
use outpost_core::sync::WireChange;
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;
use tokio_util::sync::CancellationToken;

use super::*;

const LOOPBACK: &str = "127.0.0.1:0";
const WAIT: Duration = Duration::from_secs(30);

fn key(byte: u8) -> SecretKey {
    SecretKey::from_bytes(&[byte; 32])
}

async fn node(byte: u8) -> DocsNode {
    DocsNode::bind(key(byte), LOOPBACK.parse::<SocketAddr>().unwrap())
        .await
        .unwrap()
}

fn zone_command(origin: &str, body: &str) -> Command {
    let name = Name::from_ascii(origin).unwrap();
    let text = format!("@ 3600 SOA ns1 hostmaster 1 7200 3600 1209600 300\n{body}");
    let records = parse_zone(&text, &name, 300).unwrap();
    Command::ReplaceZone {
        origin: origin.into(),
        records: encode_records(&records).unwrap(),
    }
}

fn export() -> Export {
    Export {
        name: "field-kit".into(),
        zones: vec!["site.internal.".into()],
        namespace_secret: [7; 32],
        author_secret: [9; 32],
    }
}

fn state_with(body: &str) -> ReplicatedState {
    let mut state = ReplicatedState::default();
    state.apply(&zone_command("site.internal.", body)).unwrap();
    state
        .apply(&zone_command("other.internal.", "secret A 10.9.9.9\n"))
        .unwrap();
    state
        .apply(&Command::PutExport { export: export() })
        .unwrap();
    state
}

/// Waits until the reader hands on a snapshot at `index` or later.
async fn snapshot_at(mailbox: &Mailbox, index: u64) -> DocSnapshot {
    tokio::time::timeout(WAIT, async {
        loop {
            let snapshot = mailbox.take().await;
            if snapshot.index >= index {
                return snapshot;
            }
        }
    })
    .await
    .expect("the reader handed on the snapshot in time")
}

/// Every change of a snapshot, in the order they are handed on.
fn changes(snapshot: &DocSnapshot) -> Vec<WireChange> {
    let mut all = Vec::new();
    snapshot
        .chunks(|chunk| {
            all.extend(chunk);
            Ok::<(), LayoutError>(())
        })
        .unwrap();
    all
}

fn owners(snapshot: &DocSnapshot) -> Vec<String> {
    let mut owners: Vec<String> = changes(snapshot)
        .iter()
        .filter_map(|change| match change {
            WireChange::RRsetPut { owner, .. } => Some(owner.clone()),
            _ => None,
        })
        .collect();
    owners.sort();
    owners.dedup();
    owners
}

fn start_reader(
    node: &DocsNode,
    ticket: &ExportTicket,
    extra: Vec<iroh::EndpointAddr>,
    shutdown: &CancellationToken,
) -> (Arc<Mailbox>, Arc<ReaderStats>) {
    let mailbox = Arc::new(Mailbox::default());
    let stats = Arc::new(ReaderStats::default());
    tokio::spawn(follow(
        node.clone(),
        ticket.clone(),
        extra,
        0,
        mailbox.clone(),
        stats.clone(),
        shutdown.clone(),
    ));
    (mailbox, stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_take_whole_snapshots_from_the_cluster_and_from_each_other() {
    let shutdown = CancellationToken::new();
    let cluster = node(1).await;
    let mut writer = Writer::new(cluster.clone());
    let state = state_with("www A 10.0.0.1\nmail A 10.0.0.2\n");
    writer.write(Arc::new(state), "cluster-a", 5).await.unwrap();
    let ticket: ExportTicket = writer
        .ticket(&export(), "cluster-a")
        .to_string()
        .parse()
        .unwrap();

    let laptop_a = node(2).await;
    let (rx_a, _) = start_reader(&laptop_a, &ticket, Vec::new(), &shutdown);
    let first = snapshot_at(&rx_a, 5).await;
    assert_eq!(first.index, 5);
    assert_eq!(first.cluster_id, "cluster-a");
    assert_eq!(first.zones, vec!["site.internal.".to_string()]);
    assert_eq!(
        owners(&first),
        [
            "mail.site.internal.",
            "site.internal.",
            "www.site.internal."
        ]
    );
    assert!(
        !owners(&first).iter().any(|owner| owner.contains("other")),
        "a zone outside the export never leaves the cluster"
    );

    // A change reaches A; then the cluster goes away.
    let state = state_with("www A 10.0.0.1\nvpn A 10.0.0.3\n");
    writer.write(Arc::new(state), "cluster-a", 9).await.unwrap();
    let second = snapshot_at(&rx_a, 9).await;
    assert_eq!(
        owners(&second),
        ["site.internal.", "vpn.site.internal.", "www.site.internal."],
        "the deleted owner is gone and the new one is there"
    );
    cluster.shutdown().await;

    // B knows the cluster's ticket (unreachable now) and A's address only.
    let laptop_b = node(3).await;
    let (rx_b, stats_b) = start_reader(&laptop_b, &ticket, vec![laptop_a.addr()], &shutdown);
    let from_a = snapshot_at(&rx_b, 9).await;
    assert_eq!(owners(&from_a), owners(&second));
    assert_eq!(changes(&from_a), changes(&second));

    // Someone with the namespace secret but another author writes a head and a bucket
    // into A's copy: B syncs it, counts it, and hands on nothing new.
    let forger = Author::from_bytes(&[66; 32]);
    let namespace = NamespaceSecret::from_bytes(&export().namespace_secret);
    let forged_value = b"forged".to_vec();
    let tag = laptop_a
        .blobs
        .add_bytes(forged_value.clone())
        .temp_tag()
        .await
        .unwrap();
    let entry = SignedEntry::from_parts(
        &namespace,
        &forger,
        HEAD_KEY,
        Record::new(tag.hash(), forged_value.len() as u64, 1_000),
    );
    laptop_a
        .sync
        .insert_remote(
            namespace.id(),
            entry,
            *laptop_a.addr().id.as_bytes(),
            ContentStatus::Complete,
        )
        .await
        .unwrap();
    tokio::time::timeout(WAIT, async {
        while stats_b.foreign_entries.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("B saw the forged entry and counted it");
    tokio::time::sleep(RESYNC_INTERVAL).await;
    assert!(
        tokio::time::timeout(Duration::from_millis(100), rx_b.take())
            .await
            .is_err(),
        "nothing new is handed on"
    );
    assert_eq!(stats_b.head.load(Ordering::Relaxed), 9);
    shutdown.cancel();
}

#[test]
fn keys_are_never_prefixes_of_each_other() {
    let mut keys = vec![HEAD_KEY.to_vec()];
    for origin in ["a.", "a.b.", "b.a.", "ab.", "x.y.z."] {
        for bucket in [0u8, 1, 10, 255] {
            keys.push(layout::zone_key(origin, bucket));
        }
    }
    for (kind, name) in [("policy", "ads"), ("policy", "adsx"), ("transform", "a")] {
        keys.push(layout::definition_key(kind, name));
    }
    for a in &keys {
        for b in &keys {
            if a != b {
                assert!(!b.starts_with(a), "{a:?} is a prefix of {b:?}");
            }
        }
    }
}

#[test]
fn every_node_writes_the_same_document_for_the_same_state() {
    let one = document(&state_with("www A 10.0.0.1\n"), &export(), "c", 3);
    let two = document(&state_with("www A 10.0.0.1\n"), &export(), "c", 3);
    assert_eq!(one.head, two.head);
    assert_eq!(one.values, two.values);
    let changed = document(&state_with("www A 10.0.0.2\n"), &export(), "c", 4);
    let differing = one
        .head
        .entries
        .iter()
        .zip(&changed.head.entries)
        .filter(|(a, b)| a.hash != b.hash)
        .count();
    assert_eq!(differing, 1, "one record changed: one bucket is rewritten");
}

#[test]
fn a_misplaced_or_damaged_value_is_refused_with_its_key() {
    let doc = document(&state_with("www A 10.0.0.1\n"), &export(), "c", 3);
    let listed = doc.head.entries.iter().find(|e| e.key[0] == b'z').unwrap();
    let error = assemble(
        &doc.head,
        |key| {
            if key == listed.key.as_slice() {
                &b"\xff\xff"[..]
            } else {
                &doc.values[key][..]
            }
        },
        |_| Ok::<(), LayoutError>(()),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("zone site.internal. bucket"),
        "{error}"
    );
    // A definition key that holds anything but a definition.
    let mut head = doc.head.clone();
    head.entries = vec![HeadEntry {
        key: layout::definition_key("policy", "ads"),
        hash: [0; 32],
        len: 0,
    }];
    let stray = postcard::to_stdvec(&WireChange::ZoneDeleted {
        origin: "site.internal.".into(),
    })
    .unwrap();
    let error = assemble(&head, |_| &stray[..], |_| Ok::<(), LayoutError>(())).unwrap_err();
    assert!(matches!(error, LayoutError::Misplaced { .. }), "{error}");
    let mut other = document(&state_with("www A 10.0.0.1\n"), &export(), "c", 3);
    other.head.format = 2;
    assert_eq!(
        assemble(&other.head, |_| &[][..], |_| Ok::<(), LayoutError>(())).unwrap_err(),
        LayoutError::Format(2)
    );
}

#[test]
fn tickets_round_trip_and_bad_ones_say_why() {
    let ticket = writer::ticket(
        &export(),
        "c",
        vec![TicketPeer {
            id: *key(1).public().as_bytes(),
            addrs: vec!["192.0.2.1:7000".parse().unwrap()],
        }],
    );
    let text = ticket.to_string();
    assert!(text.starts_with(TICKET_PREFIX));
    assert_eq!(text.parse::<ExportTicket>().unwrap(), ticket);
    assert_eq!("doc123".parse::<ExportTicket>(), Err(TicketError::Prefix));
    assert!(matches!(
        format!("{TICKET_PREFIX}!!!").parse::<ExportTicket>(),
        Err(TicketError::Damaged(_))
    ));
    let none = writer::ticket(&export(), "c", Vec::new()).to_string();
    assert_eq!(none.parse::<ExportTicket>(), Err(TicketError::NoPeers));
    let text = ticket.to_string();
    assert!(!text.contains(&format!("{:?}", export().namespace_secret)));
}

/// The state a document describes, rebuilt from its changes.
fn rebuild(doc: &Document) -> ReplicatedState {
    let mut state = ReplicatedState::default();
    assemble(
        &doc.head,
        |key| &doc.values[key][..],
        |changes| {
            for change in changes {
                if let Some(change) = outpost_core::sync::from_wire(&change).unwrap() {
                    state.apply_change(&change).unwrap();
                }
            }
            Ok::<(), LayoutError>(())
        },
    )
    .unwrap();
    state
}

#[test]
fn the_changes_between_two_heads_take_one_state_to_the_other() {
    let before = document(
        &state_with("www A 10.0.0.1\nmail A 10.0.0.2\nold A 10.0.0.9\n"),
        &export(),
        "c",
        3,
    );
    let after = document(
        &state_with("www A 10.0.0.7\nmail A 10.0.0.2\nnew A 10.0.0.3\nnew AAAA ::1\n"),
        &export(),
        "c",
        8,
    );
    let changes = diff(
        &before.head,
        |key| &before.values[key][..],
        &after.head,
        |key| &after.values[key][..],
    )
    .unwrap()
    .expect("the same zones");
    let mut state = rebuild(&before);
    for change in &changes {
        let change = outpost_core::sync::from_wire(change).unwrap().unwrap();
        state.apply_change(&change).unwrap();
    }
    assert_eq!(state.to_changes(), rebuild(&after).to_changes());
    // Only what changed: www's A, old deleted, new's two RRsets, and the SOA's serial.
    assert!(changes.len() <= 6, "{changes:?}");

    let mut other_zones = document(&state_with("www A 10.0.0.1\n"), &export(), "c", 9);
    other_zones.head.zones.push("lab.internal.".into());
    let whole = diff(
        &before.head,
        |k| &before.values[k][..],
        &other_zones.head,
        |k| other_zones.values.get(k).map_or(&[][..], |v| &v[..]),
    );
    assert_eq!(
        whole,
        Ok(None),
        "other zones: only the whole document will do"
    );
}
