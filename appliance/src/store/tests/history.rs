//! A history check: one writer and one consistent reader of a few keys across leader crashes,
//! a restart and a partition. Every write and read is recorded with when it began and ended;
//! afterwards: no acknowledged write is lost, and no read returns a value older than one
//! whose write was acknowledged before the read began (a read sees every write that
//! finished before it started, as a linearizable read must).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::harness::{CONVERGE_WAIT, TestCluster};
use super::*;

/// Keys the history writes: the A records of `k0`..`k2` in the site zone.
const KEYS: u32 = 3;
/// Writes in the history; each writes a value larger than all before it.
const WRITES: u32 = 45;

fn key_owner(key: u32) -> String {
    format!("k{key}.{SITE}")
}

/// Sets `key` to `value`, carried in the address 10.1.x.y.
fn set(key: u32, value: u32) -> Command {
    Command::ReplaceRRset {
        owner: key_owner(key),
        rtype: 1,
        records: records(
            SITE,
            &format!("k{key} A 10.1.{}.{}\n", value / 256, value % 256),
        ),
    }
}

/// The value each key holds in a state given as changes (0 when absent).
fn values(changes: &[Change]) -> Vec<u32> {
    (0..KEYS)
        .map(|key| {
            let owner = key_owner(key);
            changes
                .iter()
                .find_map(|change| match change {
                    Change::RRsetPut {
                        owner: o,
                        rtype: 1,
                        records,
                        ..
                    } if *o == owner => {
                        // One A record: its last four bytes are the address.
                        let address = &records[records.len() - 4..];
                        Some(u32::from(address[2]) * 256 + u32::from(address[3]))
                    }
                    _ => None,
                })
                .unwrap_or(0)
        })
        .collect()
}

struct WriteRecord {
    key: u32,
    value: u32,
    ended: Instant,
}

struct ReadRecord {
    node: u64,
    began: Instant,
    values: Vec<u32>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_write_is_lost_and_no_consistent_read_is_stale() {
    let mut cluster = TestCluster::start(3, 7, Tuning::DEFAULT).await;
    cluster
        .write(create_zone(SITE), CONVERGE_WAIT)
        .await
        .expect("create");

    // The reader polls whichever stores it was given, concurrently with the writes.
    let reads = Arc::new(Mutex::new(Vec::<ReadRecord>::new()));
    let readers: Arc<Mutex<Vec<Store>>> =
        Arc::new(Mutex::new(cluster.stores.values().cloned().collect()));
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = tokio::spawn({
        let (reads, readers, stop) = (Arc::clone(&reads), Arc::clone(&readers), stop.clone());
        async move {
            while !stop.is_cancelled() {
                let stores: Vec<Store> = readers.lock().expect("lock").clone();
                for store in stores {
                    let began = Instant::now();
                    if let Ok(view) = store.read_linearizable().await {
                        reads.lock().expect("lock").push(ReadRecord {
                            node: store.node_id(),
                            began,
                            values: values(&view.zones.to_changes()),
                        });
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    });

    let mut writes = Vec::new();
    for value in 1..=WRITES {
        match value {
            // Each fault heals before the next, so a quorum is back within an election.
            12 | 32 => {
                let leader = cluster.wait_for_leader(&[]).await;
                cluster.crash(leader).await;
                readers
                    .lock()
                    .expect("lock")
                    .retain(|store| store.node_id() != leader);
            }
            18 | 38 => {
                let down: Vec<u64> = cluster
                    .ids()
                    .into_iter()
                    .filter(|id| !cluster.stores.contains_key(id))
                    .collect();
                for id in down {
                    cluster.restart(id).await;
                    readers
                        .lock()
                        .expect("lock")
                        .push(cluster.store(id).clone());
                }
            }
            25 => {
                let leader = cluster.wait_for_leader(&[]).await;
                cluster.net.isolate(leader, &[1, 2, 3]);
            }
            28 => cluster.net.heal_all(),
            _ => {}
        }
        let key = value % KEYS;
        if cluster
            .write(set(key, value), Duration::from_secs(3))
            .await
            .is_ok()
        {
            writes.push(WriteRecord {
                key,
                value,
                ended: Instant::now(),
            });
        }
    }
    stop.cancel();
    reader.await.expect("reader");

    cluster.net.heal_all();
    for id in cluster.ids() {
        if !cluster.stores.contains_key(&id) {
            cluster.restart(id).await;
        }
    }
    let last = cluster
        .write(create_zone("after.internal."), CONVERGE_WAIT)
        .await
        .expect("the healed cluster writes");
    let final_values = values(&cluster.converge(last.index).await);
    let reads = std::mem::take(&mut *reads.lock().expect("lock"));
    eprintln!(
        "history: {} writes acknowledged of {WRITES}, {} consistent reads",
        writes.len(),
        reads.len()
    );
    assert!(
        reads.len() > 20,
        "only {} consistent reads succeeded",
        reads.len()
    );
    assert!(
        writes.len() as u32 > WRITES / 2,
        "only {} writes acknowledged",
        writes.len()
    );

    for write in &writes {
        let kept = final_values[write.key as usize];
        assert!(
            kept >= write.value,
            "acknowledged write k{} = {} lost: the cluster holds {kept}",
            write.key,
            write.value
        );
    }
    for read in &reads {
        for key in 0..KEYS {
            let newest_finished = writes
                .iter()
                .filter(|write| write.key == key && write.ended < read.began)
                .map(|write| write.value)
                .max()
                .unwrap_or(0);
            let seen = read.values[key as usize];
            assert!(
                seen >= newest_finished,
                "stale read on node {}: k{key} = {seen}, but {newest_finished} was acknowledged before the read began",
                read.node
            );
        }
    }
    cluster.shutdown().await;
}
