//! The replica: commits are atomic (changes and cursor together), snapshots replace
//! everything at once, and what was committed is what a restart loads.

use hickory_proto::rr::{Name, RecordType};
use outpost_core::sync::{ChangeEntry, Changes, SnapshotChunk, WireChange};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;

use super::*;

const CLUSTER: &str = "c0ffee";

/// The wire bytes of `text`'s records, parsed in zone `origin`.
fn records(origin: &str, text: &str) -> Vec<u8> {
    let origin = Name::from_ascii(origin).unwrap();
    encode_records(&parse_zone(text, &origin, 300).unwrap()).unwrap()
}

/// A snapshot holding zone `origin` with its SOA and the A records `hosts`.
fn zone_snapshot(origin: &str, hosts: &[(&str, &str)]) -> Vec<WireChange> {
    let mut changes = vec![
        WireChange::ZonePut {
            origin: origin.into(),
        },
        WireChange::RRsetPut {
            zone: origin.into(),
            owner: origin.into(),
            rtype: u16::from(RecordType::SOA),
            records: records(origin, "@ SOA ns1 hostmaster 1 7200 3600 1209600 300"),
        },
    ];
    for (host, ip) in hosts {
        changes.push(a_put(origin, host, ip));
    }
    changes
}

fn a_put(origin: &str, host: &str, ip: &str) -> WireChange {
    WireChange::RRsetPut {
        zone: origin.into(),
        owner: format!("{host}.{origin}"),
        rtype: u16::from(RecordType::A),
        records: records(origin, &format!("{host} A {ip}")),
    }
}

fn a_delete(origin: &str, host: &str) -> WireChange {
    WireChange::RRsetDeleted {
        zone: origin.into(),
        owner: format!("{host}.{origin}"),
        rtype: u16::from(RecordType::A),
    }
}

fn staged(as_of: u64, changes: Vec<WireChange>) -> StagedSnapshot {
    let mut staging = SnapshotStaging::new(as_of);
    staging.push_chunk(SnapshotChunk { changes }).unwrap();
    staging.finish(as_of).unwrap()
}

fn changes(up_to: u64, entries: Vec<(u64, Vec<WireChange>)>) -> Changes {
    Changes {
        up_to,
        entries: entries
            .into_iter()
            .map(|(index, changes)| ChangeEntry { index, changes })
            .collect(),
    }
}

/// The A addresses the published index answers for `name`, or `None` outside it.
fn answer(store: &ReplicaStore, name: &str) -> Option<Vec<String>> {
    let set = store.published().state.zone_set.load_full();
    let answer = set.lookup(&Name::from_ascii(name).unwrap(), RecordType::A)?;
    Some(
        answer
            .answers
            .iter()
            .map(|record| record.data.to_string())
            .collect(),
    )
}

fn scope(zones: &[&str]) -> Vec<String> {
    zones.iter().map(|zone| zone.to_string()).collect()
}

#[tokio::test]
async fn a_snapshot_then_changes_survive_a_reopen_with_their_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    assert!(store.cursor().is_none());
    let client_id = store.client_id().to_string();
    assert_eq!(client_id.len(), 32);

    let snapshot = staged(
        5,
        zone_snapshot("a.test.", &[("x", "10.0.0.1"), ("y", "10.0.0.2")]),
    );
    store
        .install_snapshot(CLUSTER, snapshot, &scope(&["a.test."]), 5)
        .await
        .unwrap();
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
    let cursor = store
        .apply_changes(
            CLUSTER,
            changes(
                7,
                vec![
                    (6, vec![a_put("a.test.", "x", "10.0.0.9")]),
                    (7, vec![a_delete("a.test.", "y")]),
                ],
            ),
        )
        .await
        .unwrap();
    assert_eq!(cursor, 7);
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.9".into()]));
    assert_eq!(answer(&store, "y.a.test."), Some(vec![]));
    let digest_before = outpost_core::digest::digest(&store.published().state.load().zones);
    drop(store);

    let store = ReplicaStore::open(dir.path()).await.unwrap();
    assert_eq!(
        store.cursor(),
        Some(&StoredCursor {
            cluster_id: CLUSTER.into(),
            index: 7
        })
    );
    assert_eq!(store.head(), 7);
    assert_eq!(store.scope(), ["a.test."]);
    assert_eq!(store.client_id(), client_id);
    assert_eq!(store.counts(), (1, 2));
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.9".into()]));
    assert_eq!(
        outpost_core::digest::digest(&store.published().state.load().zones),
        digest_before
    );
}

#[tokio::test]
async fn a_frame_with_one_bad_change_changes_nothing_not_even_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    let snapshot = staged(3, zone_snapshot("a.test.", &[("x", "10.0.0.1")]));
    store
        .install_snapshot(CLUSTER, snapshot, &scope(&["a.test.", "b.test."]), 3)
        .await
        .unwrap();
    // b.test. is in scope but was never created: the put cannot apply.
    let bad = changes(
        5,
        vec![
            (4, vec![a_put("a.test.", "x", "10.0.0.5")]),
            (5, vec![a_put("b.test.", "z", "10.0.0.6")]),
        ],
    );
    let error = store.apply_changes(CLUSTER, bad).await.unwrap_err();
    assert!(
        matches!(error, ReplicaError::Inconsistent { .. }),
        "{error}"
    );
    assert_eq!(store.cursor().map(|c| c.index), Some(3));
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
    drop(store);
    let store = ReplicaStore::open(dir.path()).await.unwrap();
    assert_eq!(store.cursor().map(|c| c.index), Some(3));
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
}

#[tokio::test]
async fn changes_outside_the_scope_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    let mut content = zone_snapshot("a.test.", &[]);
    content.extend(zone_snapshot("secret.test.", &[("db", "10.9.9.9")]));
    let error = store
        .install_snapshot(CLUSTER, staged(2, content), &scope(&["a.test."]), 2)
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReplicaError::OutOfScope { ref zone, .. } if zone == "secret.test."),
        "{error}"
    );
    assert!(store.cursor().is_none());
    assert_eq!(store.counts(), (0, 0));

    store
        .install_snapshot(
            CLUSTER,
            staged(2, zone_snapshot("a.test.", &[])),
            &scope(&["a.test."]),
            2,
        )
        .await
        .unwrap();
    let error = store
        .apply_changes(
            CLUSTER,
            changes(3, vec![(3, zone_snapshot("secret.test.", &[]))]),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, ReplicaError::OutOfScope { .. }), "{error}");
    assert_eq!(answer(&store, "db.secret.test."), None);
}

#[tokio::test]
async fn a_snapshot_replaces_the_whole_replica() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    let mut content = zone_snapshot("a.test.", &[("old", "10.0.0.1")]);
    content.extend(zone_snapshot("b.test.", &[("gone", "10.0.0.2")]));
    store
        .install_snapshot(
            "old-cluster",
            staged(40, content),
            &scope(&["a.test.", "b.test."]),
            40,
        )
        .await
        .unwrap();

    let snapshot = staged(9, zone_snapshot("a.test.", &[("new", "10.0.1.1")]));
    store
        .install_snapshot(CLUSTER, snapshot, &scope(&["a.test.", "b.test."]), 12)
        .await
        .unwrap();
    assert_eq!(
        answer(&store, "old.a.test."),
        Some(vec![]),
        "NXDOMAIN in a.test."
    );
    assert_eq!(answer(&store, "new.a.test."), Some(vec!["10.0.1.1".into()]));
    assert_eq!(answer(&store, "gone.b.test."), None);
    assert_eq!(
        store.cursor(),
        Some(&StoredCursor {
            cluster_id: CLUSTER.into(),
            index: 9
        })
    );
    assert_eq!(store.head(), 12);
    drop(store);
    let store = ReplicaStore::open(dir.path()).await.unwrap();
    assert_eq!(store.counts(), (1, 2));
    assert_eq!(answer(&store, "gone.b.test."), None);
}

#[tokio::test]
async fn entries_at_or_below_the_cursor_are_not_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    store
        .install_snapshot(
            CLUSTER,
            staged(10, zone_snapshot("a.test.", &[("x", "10.0.0.1")])),
            &scope(&["a.test."]),
            10,
        )
        .await
        .unwrap();
    let replayed = changes(
        11,
        vec![
            (9, vec![a_delete("a.test.", "x")]),
            (11, vec![a_put("a.test.", "w", "10.0.0.3")]),
        ],
    );
    assert_eq!(store.apply_changes(CLUSTER, replayed).await.unwrap(), 11);
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
    assert_eq!(answer(&store, "w.a.test."), Some(vec!["10.0.0.3".into()]));
}

#[tokio::test]
async fn resuming_drops_zones_that_left_the_scope_and_notices_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    let mut content = zone_snapshot("a.test.", &[("x", "10.0.0.1")]);
    content.extend(zone_snapshot("b.test.", &[("y", "10.0.0.2")]));
    store
        .install_snapshot(
            CLUSTER,
            staged(4, content),
            &scope(&["a.test.", "b.test."]),
            4,
        )
        .await
        .unwrap();

    assert_eq!(
        store
            .resume(&scope(&["A.test.", "c.test."]), 6)
            .await
            .unwrap(),
        ScopeCheck::Grew
    );
    assert_eq!(store.counts().0, 2, "nothing changes when the scope grew");

    assert_eq!(
        store.resume(&scope(&["A.test."]), 6).await.unwrap(),
        ScopeCheck::Covered
    );
    assert_eq!(answer(&store, "y.b.test."), None);
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
    assert_eq!(store.head(), 6);
    assert_eq!(store.cursor().map(|c| c.index), Some(4));
    drop(store);
    let store = ReplicaStore::open(dir.path()).await.unwrap();
    assert_eq!(store.scope(), ["a.test."]);
    assert_eq!(store.counts().0, 1);
}

#[tokio::test]
async fn forgetting_the_cursor_keeps_the_data_answering() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    store
        .install_snapshot(
            CLUSTER,
            staged(4, zone_snapshot("a.test.", &[("x", "10.0.0.1")])),
            &scope(&["a.test."]),
            4,
        )
        .await
        .unwrap();
    store.forget_cursor().await.unwrap();
    drop(store);
    let store = ReplicaStore::open(dir.path()).await.unwrap();
    assert!(store.cursor().is_none());
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
}

#[tokio::test]
async fn one_data_directory_serves_one_client() {
    let dir = tempfile::tempdir().unwrap();
    let _store = ReplicaStore::open(dir.path()).await.unwrap();
    let error = ReplicaStore::open(dir.path()).await.err().unwrap();
    assert!(matches!(error, ReplicaError::InUse { .. }), "{error}");
    assert!(error.to_string().contains("--data-dir"), "{error}");
}

#[test]
fn snapshot_staging_is_bounded_and_checks_its_index() {
    let mut staging = SnapshotStaging::with_limit(3, 1000);
    staging
        .push_chunk(SnapshotChunk {
            changes: zone_snapshot("a.test.", &[]),
        })
        .unwrap();
    assert!(staging.bytes() > 0);
    let big = WireChange::RRsetPut {
        zone: "a.test.".into(),
        owner: "big.a.test.".into(),
        rtype: 16,
        records: vec![0; 2000],
    };
    assert_eq!(
        staging.push_chunk(SnapshotChunk { changes: vec![big] }),
        Err(StagingError::TooLarge { limit: 1000 })
    );

    let staging = SnapshotStaging::new(3);
    assert_eq!(
        staging.finish(4).unwrap_err(),
        StagingError::AsOfMismatch { began: 3, ended: 4 }
    );
    // A definition of a kind this client does not know is skipped; a plugin whose
    // body does not decode is refused.
    let mut staging = SnapshotStaging::new(3);
    staging
        .push_chunk(SnapshotChunk {
            changes: vec![WireChange::DefinitionPut {
                kind: "policy".into(),
                name: "p".into(),
                version: 1,
                body: vec![1, 2, 3],
            }],
        })
        .unwrap();
    let staged = staging.finish(3).unwrap();
    assert_eq!(staged.definitions_skipped, 1);
    assert!(staged.zones().is_empty());
    let mut staging = SnapshotStaging::new(3);
    let refused = staging.push_chunk(SnapshotChunk {
        changes: vec![WireChange::DefinitionPut {
            kind: "plugin".into(),
            name: "p".into(),
            version: 1,
            body: vec![1, 2, 3],
        }],
    });
    assert!(
        matches!(refused, Err(StagingError::BadChange(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_snapshot_with_a_change_that_does_not_apply_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    store
        .install_snapshot(
            CLUSTER,
            staged(2, zone_snapshot("a.test.", &[("x", "10.0.0.1")])),
            &scope(&["a.test.", "b.test."]),
            2,
        )
        .await
        .unwrap();
    // b.test. is in scope but the snapshot never puts it.
    let mut content = zone_snapshot("a.test.", &[("new", "10.0.1.1")]);
    content.push(a_put("b.test.", "z", "10.0.0.6"));
    let error = store
        .install_snapshot(
            CLUSTER,
            staged(5, content),
            &scope(&["a.test.", "b.test."]),
            5,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ReplicaError::Inconsistent { ref change, .. } if change.contains("z.b.test.")),
        "{error}"
    );
    assert_eq!(store.cursor().map(|c| c.index), Some(2));
    assert_eq!(answer(&store, "x.a.test."), Some(vec!["10.0.0.1".into()]));
    assert_eq!(answer(&store, "new.a.test."), Some(vec![]));
}

#[tokio::test]
async fn a_snapshot_is_stored_as_it_loads_plugins_included() {
    use outpost_core::state::{FailureMode, Hook, PluginDefinition};
    use outpost_core::sync::to_wire;
    use sha2::{Digest as _, Sha256};

    let component: Arc<[u8]> = Arc::from(&b"\0asm not really"[..]);
    let definition = PluginDefinition {
        name: "blocklist".into(),
        hook: Hook::QueryPolicy,
        order: 1,
        on_error: FailureMode::FailOpen,
        enabled: true,
        version: 3,
        sha256: Sha256::digest(&component).into(),
        component,
        config: Arc::from(&b"ads.example."[..]),
    };
    let mut content = zone_snapshot("a.test.", &[("x", "10.0.0.1"), ("y", "10.0.0.2")]);
    content.extend(to_wire(&Change::PluginPut {
        definition: Arc::new(definition.clone()),
    }));
    let dir = tempfile::tempdir().unwrap();
    let mut store = ReplicaStore::open(dir.path()).await.unwrap();
    store
        .install_snapshot(CLUSTER, staged(4, content), &scope(&["a.test."]), 4)
        .await
        .unwrap();
    let installed = Arc::clone(&store.published().state.load().zones);
    assert_eq!(
        installed.plugin("blocklist").map(|p| &**p),
        Some(&definition)
    );
    drop(store);

    let store = ReplicaStore::open(dir.path()).await.unwrap();
    let loaded = Arc::clone(&store.published().state.load().zones);
    assert_eq!(*loaded, *installed, "the model written is the model loaded");
    assert_eq!(answer(&store, "y.a.test."), Some(vec!["10.0.0.2".into()]));
}
