//! Several stores as one cluster over the in-process transport: membership, replication,
//! failover, catch-up after a crash and by snapshot, minority partitions, node identity.

use std::collections::BTreeSet;
use std::time::Duration;

use super::harness::{CONVERGE_WAIT, TestCluster, address};
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_stores_replicate_every_write_and_followers_relay_theirs() {
    let cluster = TestCluster::start(3, 1, Tuning::DEFAULT).await;
    let members = cluster.store(1).members();
    let voters: Vec<(u64, bool)> = members.iter().map(|m| (m.id, m.voter)).collect();
    assert_eq!(voters, [(1, true), (2, true), (3, true)]);
    assert_eq!(members[1].node, address(2));

    let created = cluster
        .store(1)
        .write(create_zone(SITE))
        .await
        .expect("create");
    let mut last = created.index;
    for number in 1..=5 {
        last = cluster
            .store(1)
            .write(add_host(number))
            .await
            .expect("add")
            .index;
    }
    let zones = cluster.converge(last).await;
    assert!(zones.contains(&Change::ZonePut {
        origin: SITE.to_string()
    }));
    for id in cluster.ids() {
        assert_eq!(cluster.store(id).zone_set().load().len(), 1, "node {id}");
        assert_eq!(
            cluster.store(id).cluster_id(),
            cluster.store(1).cluster_id()
        );
    }
    let read = cluster
        .store(1)
        .read_linearizable()
        .await
        .expect("leader reads");
    assert!(read.applied >= last, "{} < {last}", read.applied);
    // A follower's linearizable read asks the leader for its read index, then waits to apply.
    let read = cluster
        .store(2)
        .read_linearizable()
        .await
        .expect("a follower reads through the leader");
    assert!(read.applied >= last, "{} < {last}", read.applied);

    // A follower relays a write to the leader and returns the leader's answer.
    let relayed = cluster.store(2).write(add_host(9)).await.expect("relayed");
    assert!(relayed.index > last, "{relayed:?}");
    let refused = cluster.store(3).write(create_zone(SITE)).await;
    assert!(
        matches!(
            refused,
            Err(WriteError::Rejected(CommandError::ZoneExists { .. }))
        ),
        "{refused:?}"
    );
    let zones = cluster.converge(relayed.index + 1).await;
    assert!(
        zones.iter().any(|change| matches!(change,
            Change::RRsetPut { owner, .. } if owner == "host9.site.internal.")),
        "the relayed write reached every node"
    );
    let refused = cluster.store(3).add_voters(BTreeSet::from([4])).await;
    assert!(
        matches!(
            refused,
            Err(MembershipError::Leader(LeaderError::NotLeader {
                leader: Some(1)
            }))
        ),
        "{refused:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_leader_takes_over_when_the_leader_crashes_and_the_old_one_catches_up() {
    let mut cluster = TestCluster::start(3, 2, Tuning::DEFAULT).await;
    let wait = CONVERGE_WAIT;
    cluster
        .write(create_zone(SITE), wait)
        .await
        .expect("create");
    let before = cluster.write(add_host(1), wait).await.expect("add").index;

    cluster.crash(1).await;
    let leader = cluster.wait_for_leader(&[1]).await;
    assert_ne!(leader, 1);
    let mut last = before;
    for number in 2..=6 {
        last = cluster
            .write(add_host(number), wait)
            .await
            .expect("write after failover")
            .index;
    }
    assert!(last > before);

    cluster.restart(1).await;
    let zones = cluster.converge(last).await;
    assert_eq!(cluster.store(1).node_id(), 1);
    for number in 1..=6 {
        let owner = format!("host{number}.{SITE}");
        assert!(
            zones.iter().any(|change| matches!(change,
                Change::RRsetPut { owner: o, .. } if *o == owner)),
            "{owner} lost"
        );
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_behind_a_compacted_log_catches_up_by_snapshot() {
    let tuning = Tuning {
        snapshot_every_entries: 10,
        log_entries_kept_after_snapshot: 2,
    };
    let mut cluster = TestCluster::start(3, 3, tuning).await;
    let wait = CONVERGE_WAIT;
    cluster
        .write(create_zone(SITE), wait)
        .await
        .expect("create");
    cluster.crash(3).await;
    let mut last = 0;
    for number in 1..=30 {
        last = cluster
            .write(add_host(number), wait)
            .await
            .expect("add")
            .index;
    }
    let leader = cluster.leader().expect("leader");
    // Snapshots are built, and the log purged, in the background.
    cluster
        .store(leader)
        .inner
        .raft
        .wait(Some(CONVERGE_WAIT))
        .metrics(
            |m| m.purged.as_ref().is_some_and(|purged| purged.index > 10),
            "the leader purged the entries node 3 lacks",
        )
        .await
        .expect("purge");

    cluster.restart(3).await;
    cluster.converge(last).await;
    let status = cluster.store(3).status();
    assert!(
        status.snapshot_index.is_some(),
        "node 3 took a snapshot: {status:?}"
    );
    // The install reached node 3's observers (the Lite hub, the plugin watcher) as an
    // event of its own, and every batch after it follows it.
    let events = cluster.events(3);
    events.assert_unbroken();
    let replaced = events
        .0
        .lock()
        .expect("lock")
        .iter()
        .any(|event| matches!(event, StateEvent::Replaced { as_of } if *as_of > 10));
    assert!(replaced, "node 3's observers heard of the snapshot install");
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_from_the_quorum_fails_writes_and_the_majority_carries_on() {
    let cluster = TestCluster::start(3, 4, Tuning::DEFAULT).await;
    let wait = CONVERGE_WAIT;
    cluster
        .write(create_zone(SITE), wait)
        .await
        .expect("create");
    cluster.net.isolate(1, &[2, 3]);

    // The cut-off leader cannot commit: the write ends with an error, not a hang.
    let started = std::time::Instant::now();
    let stranded = cluster.store(1).write(add_host(66)).await;
    assert!(
        matches!(
            stranded,
            Err(WriteError::Timeout { .. } | WriteError::Leader(LeaderError::NotLeader { .. }))
        ),
        "{stranded:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nor can it confirm a consistent read.
    let stranded = cluster.store(1).read_linearizable().await;
    assert!(
        matches!(
            stranded,
            Err(ReadError::NoQuorum(_)
                | ReadError::Timeout(_)
                | ReadError::Leader(LeaderError::NotLeader { .. }))
        ),
        "{stranded:?}"
    );

    let leader = cluster.wait_for_leader(&[1]).await;
    let written = cluster
        .store(leader)
        .write(add_host(7))
        .await
        .expect("the majority writes");

    cluster.net.heal_all();
    let zones = cluster.converge(written.index).await;
    let owners: Vec<&str> = zones
        .iter()
        .filter_map(|change| match change {
            Change::RRsetPut { owner, .. } => Some(owner.as_str()),
            _ => None,
        })
        .collect();
    assert!(owners.contains(&"host7.site.internal."), "{owners:?}");
    // The stranded write never committed, so healing replaced it with the majority's log.
    assert!(!owners.contains(&"host66.site.internal."), "{owners:?}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_data_dir_keeps_its_node_id_and_refuses_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = |node_id| StoreOptions {
        cluster: ClusterOptions {
            node_id,
            ..ClusterOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options(Some(7)))
        .await
        .expect("open");
    assert_eq!(store.node_id(), 7);
    assert_eq!(store.status().node_id, 7);
    assert_eq!(store.status().state, NodeState::Leader);
    store.shutdown().await.expect("shutdown");

    let store = Store::open_with(dir.path(), options(None))
        .await
        .expect("reopen");
    assert_eq!(
        store.node_id(),
        7,
        "the file's id wins when none is asked for"
    );
    store.shutdown().await.expect("shutdown");

    let Err(err) = Store::open_with(dir.path(), options(Some(8))).await else {
        panic!("opened node 7's files as node 8");
    };
    assert!(
        matches!(
            err,
            StoreError::NodeId {
                found: 7,
                wanted: 8,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_file_from_before_node_ids_is_node_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    store.write(create_zone(SITE)).await.expect("create");
    store.shutdown().await.expect("shutdown");
    {
        // As a file written before node ids were stored.
        let opened = tables::open_database(&dir.path().join(DB_FILE_NAME), 99, None).expect("open");
        let txn = opened.db.begin_write().expect("write");
        {
            let mut meta = txn.open_table(tables::LOG_META).expect("table");
            meta.remove(tables::NODE_ID).expect("remove");
        }
        txn.commit().expect("commit");
    }
    let options = StoreOptions {
        cluster: ClusterOptions {
            node_id: Some(FIRST_NODE_ID),
            ..ClusterOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = Store::open_with(dir.path(), options).await.expect("reopen");
    assert_eq!(store.status().state, NodeState::Leader);
    assert_eq!(store.zone_set().load().len(), 1);
    store.shutdown().await.expect("shutdown");
}

#[test]
fn node_info_is_stored_exactly_as_format_1_stored_basic_node() {
    let old = openraft::BasicNode::new("localhost");
    let new = NodeInfo::new("localhost");
    let old_bytes = postcard::to_allocvec(&old).expect("encode");
    assert_eq!(postcard::to_allocvec(&new).expect("encode"), old_bytes);
    assert_eq!(
        postcard::from_bytes::<NodeInfo>(&old_bytes).expect("decode"),
        new
    );
}

#[tokio::test]
async fn a_write_too_large_for_one_raft_message_is_refused_before_it_is_proposed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).await.expect("open");
    let huge = Command::DeleteZone {
        origin: "x".repeat(MAX_PROPOSAL_BYTES + 1),
    };
    let applied = store.status().applied_index;
    let err = store.write(huge).await.expect_err("too large");
    assert!(matches!(err, WriteError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("split it"), "{err}");
    assert_eq!(store.status().applied_index, applied);
    store.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_from_the_leader_says_so_and_writes_nothing() {
    let cluster = TestCluster::start(3, 5, Tuning::DEFAULT).await;
    let created = cluster
        .write(create_zone(SITE), CONVERGE_WAIT)
        .await
        .expect("create");
    cluster.converge(created.index).await;
    // Node 3 still knows node 1 leads, but the link is down.
    cluster.net.cut(3, 1);
    let err = cluster
        .store(3)
        .write(add_host(5))
        .await
        .expect_err("the leader is unreachable");
    assert!(
        matches!(
            err,
            WriteError::Leader(LeaderError::Unreachable { leader: 1, .. })
        ),
        "{err}"
    );
    assert!(err.to_string().contains("nothing was written"), "{err}");
    cluster.net.heal_all();
    let written = cluster
        .store(3)
        .write(add_host(6))
        .await
        .expect("relayed after healing");
    let zones = cluster.converge(written.index).await;
    let owners: Vec<&str> = zones
        .iter()
        .filter_map(|change| match change {
            Change::RRsetPut { owner, .. } => Some(owner.as_str()),
            _ => None,
        })
        .collect();
    assert!(owners.contains(&"host6.site.internal."), "{owners:?}");
    assert!(!owners.contains(&"host5.site.internal."), "{owners:?}");
    cluster.shutdown().await;
}

/// A write retried under its idempotency key through another node, after the leader that
/// took it is gone, is answered as the first success and applied once: the retry of a
/// client that never heard back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_write_retried_after_a_failover_applies_once() {
    let mut cluster = TestCluster::start(3, 21, Tuning::DEFAULT).await;
    let wait = CONVERGE_WAIT;
    cluster
        .write(create_zone(SITE), wait)
        .await
        .expect("create");
    let keyed = Command::Once {
        key: "retry-me".into(),
        now_unix: 1_000,
        command: Box::new(add_host(7)),
    };
    let leader = cluster.leader().expect("leader");
    let first = cluster
        .write_via(Some(leader), keyed.clone(), wait)
        .await
        .expect("first");
    assert!(!first.replayed && !first.changes.is_empty());
    cluster.converge(first.index).await;
    let serial_after = cluster.store(leader).zones().to_changes();
    cluster.crash(leader).await;

    let other = *cluster
        .ids()
        .iter()
        .find(|&&id| id != leader)
        .expect("another node");
    let retried = cluster
        .write_via(Some(other), keyed, wait)
        .await
        .expect("retry");
    assert!(retried.replayed, "{retried:?}");
    assert_eq!(retried.index, first.index, "the first write's index");
    assert!(retried.changes.is_empty());
    // Nothing changed on the survivors: not the record, not the SOA serial.
    assert_eq!(cluster.store(other).zones().to_changes(), serial_after);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_ticks_stop_while_a_node_leads_alone_and_resume_when_a_member_joins() {
    let mut cluster = TestCluster::start(1, 5, Tuning::DEFAULT).await;
    let quiet = |cluster: &TestCluster, want: bool| {
        let store = cluster.store(1).clone();
        async move {
            tokio::time::timeout(CONVERGE_WAIT, async {
                while store.raft_ticking() != want {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
            .await
            .is_ok()
        }
    };
    assert!(quiet(&cluster, false).await, "a node alone stops ticking");
    // Alone and not ticking, it still takes writes.
    let created = cluster
        .store(1)
        .write(create_zone(SITE))
        .await
        .expect("write");
    // A joining node is first a learner: ticks resume so the leader heartbeats it, and
    // it becomes a voter and follows as in a cluster started whole.
    cluster.open_joiner(2).await;
    cluster
        .store(1)
        .add_learner(2, address(2))
        .await
        .expect("add learner");
    assert!(quiet(&cluster, true).await, "a member joined: ticks resume");
    cluster
        .store(1)
        .add_voters(BTreeSet::from([2]))
        .await
        .expect("promote");
    cluster.converge(created.index).await;
    cluster.shutdown().await;
}
