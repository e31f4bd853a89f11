//! Partitions with Lite clients attached: a node's Raft traffic is cut on loopback
//! (iptables) while its DNS, admin API and sync listeners stay up, writes go on on the
//! other side, the cut heals, and the convergence checker then compares every node and
//! every Lite client with what the cluster holds. Each scenario runs under three seeds,
//! which choose the node cut, the record deleted and where the deletion falls among the
//! writes.

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use outpost_tests::cluster::{CLUSTER_WAIT, add_record, leader, start_cluster};
use outpost_tests::convergence::assert_converged;
use outpost_tests::partition::Partition;
use outpost_tests::{
    Appliance, Lite, create_lite_token, install_plugin, query_udp, sync_url, wait_until,
};

/// Snapshots every 20 entries with 5 kept behind them: a node away for 60 writes finds
/// the entries it lacks purged, and can only catch up by snapshot.
const COMPACTING: &str = "snapshot_every_entries = 20\nlog_entries_kept = 5\n";
const EXAMPLE: &str = "example.internal.";
const GONE: &str = "gone.internal.";
/// Records written while the node is cut off.
const WRITES: usize = 60;

/// A small deterministic generator: the same seed makes the same choices.
struct Seeded(u64);

impl Seeded {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn status(node: &Appliance) -> serde_json::Value {
    let (code, status) = node.api_json("GET", "/v1/status", None);
    assert_eq!(code, 200, "{status}");
    status
}

/// Waits until `leader` purged its log past what `behind` applied: `behind` can then
/// only catch up by snapshot.
fn wait_purged_past(leader: &Appliance, behind: &Appliance) {
    let applied = status(behind)["applied_index"].as_u64().unwrap_or(0);
    let purged = wait_until(CLUSTER_WAIT, || {
        status(leader)["purged_index"]
            .as_u64()
            .is_some_and(|purged| purged > applied)
    });
    assert!(
        purged,
        "the leader did not purge past index {applied}: {}",
        status(leader)
    );
}

fn delete_record(node: &Appliance, name: &str) {
    let (code, body) = node.api("DELETE", &format!("/v1/records?name={name}&type=A"), None);
    assert_eq!(code, 200, "delete {name}: {body}");
}

fn answers(addr: std::net::SocketAddr, name: &str) -> Vec<String> {
    outpost_tests::answers_of(&query_udp(addr, name, RecordType::A, None), RecordType::A)
}

/// The scenario: a Lite client syncs from a follower; the follower's Raft port
/// is cut while 60 records are added and one deleted through the leader (with `extras`,
/// a plugin installed and a zone deleted too); the cut heals, the follower catches up by
/// snapshot, and the Lite client must end exactly where the cluster is.
fn follower_behind_the_purged_log(seed: u64, extras: bool) {
    let mut random = Seeded(seed);
    let nodes = start_cluster(3, COMPACTING);
    let all = [0, 1, 2];
    let leader = leader(&nodes, &all);
    let followers: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let cut = followers[random.below(2) as usize];
    nodes[leader].import_zone(
        GONE,
        "$ORIGIN gone.internal.\n@ 300 IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ 300 IN NS ns1\nns1 300 IN A 10.7.0.1\nold 300 IN A 10.7.0.2\n",
    );
    let victims: Vec<String> = (0..3).map(|i| format!("victim{i}.{EXAMPLE}")).collect();
    for (i, victim) in victims.iter().enumerate() {
        add_record(
            nodes[leader].admin_addr(),
            nodes[leader].token(),
            victim,
            &format!("10.9.0.{}", i + 1),
        )
        .expect("a victim record");
    }
    let token = create_lite_token(&nodes[leader], "laptop", &format!("{EXAMPLE},{GONE}"));
    let lite = Lite::start(&[sync_url(&nodes[cut])], &token);
    lite.wait_caught_up(&nodes[leader]);
    let victim = &victims[random.below(3) as usize];
    assert_eq!(
        answers(lite.dns_addr(), victim).len(),
        1,
        "{victim} before the cut"
    );

    let partition = Partition::isolate_udp_port(nodes[cut].raft_port());
    let delete_at = random.below(WRITES as u64) as usize;
    let plugin_at = random.below(WRITES as u64) as usize;
    for i in 0..WRITES {
        let name = format!("s{i}.{EXAMPLE}");
        add_record(
            nodes[leader].admin_addr(),
            nodes[leader].token(),
            &name,
            &format!("10.2.{}.{}", i / 200, i % 200 + 1),
        )
        .unwrap_or_else(|e| panic!("write {i} through the leader: {e}"));
        if i == delete_at {
            delete_record(&nodes[leader], victim);
        }
        if extras && i == plugin_at {
            install_plugin(
                &nodes[leader],
                "blocklist",
                "block-www",
                "query-policy",
                &format!("www.{EXAMPLE}\n"),
                &[],
            );
        }
    }
    if extras {
        let (code, body) = nodes[leader].api("DELETE", &format!("/v1/zones/{GONE}"), None);
        assert_eq!(code, 200, "delete {GONE}: {body}");
    }
    wait_purged_past(&nodes[leader], &nodes[cut]);
    // Cut off, the follower and its Lite client still answer what they had.
    assert_eq!(answers(nodes[cut].dns_addr(), victim).len(), 1);
    assert_eq!(answers(lite.dns_addr(), victim).len(), 1);
    partition.heal();

    let zones = [EXAMPLE, GONE];
    let refs: Vec<&Appliance> = nodes.iter().collect();
    let content = assert_converged(&nodes[leader], &zones, &[victim], &refs, &[&lite]);
    assert!(
        nodes[cut].log().contains("snapshot received"),
        "the follower caught up without a snapshot, so the scenario did not run\n{}",
        nodes[cut].log_tail()
    );
    for i in 0..WRITES {
        let name = format!("s{i}.{EXAMPLE}");
        assert_eq!(
            answers(lite.dns_addr(), &name).len(),
            1,
            "{name} on the Lite client"
        );
    }
    let deleted = query_udp(lite.dns_addr(), victim, RecordType::A, None);
    assert_eq!(
        deleted.metadata.response_code,
        ResponseCode::NXDomain,
        "{victim}"
    );
    if extras {
        // The plugin installed in the gap runs on the Lite client: www is blocked there.
        let blocked = query_udp(
            lite.dns_addr(),
            &format!("www.{EXAMPLE}"),
            RecordType::A,
            None,
        );
        assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            lite.status_file()["zones"],
            1,
            "{GONE} is gone from the replica"
        );
    }
    assert!(
        content.rrsets() > WRITES,
        "{} RRsets compared",
        content.rrsets()
    );
    // How the Lite client got past the install: the session it had then was told to
    // resync (the seam under test); or, on a loaded machine, it had no session at that
    // moment and started a new one afterwards (from a snapshot, or resumed from the
    // history the install brought). Its first session is one of these counts.
    let resyncs = nodes[cut].metric("outpost_sync_snapshot_resyncs_total");
    let started = nodes[cut].metric("outpost_sync_snapshots_total")
        + nodes[cut].metric("outpost_sync_resumes_total");
    assert!(
        resyncs >= 1.0 || started >= 2.0,
        "the session was not told to resync ({resyncs}), and no session started after the first ({started} in all)\n{}",
        lite.log_tail()
    );
}

/// The leader is cut off while clients write to both sides: writes to it fail (no
/// quorum), writes to the majority are acknowledged; after the heal every node and every
/// Lite client (one on each side) holds every acknowledged write and nothing else.
fn isolated_leader(seed: u64) {
    let mut random = Seeded(seed);
    let nodes = start_cluster(3, COMPACTING);
    let all = [0, 1, 2];
    let old_leader = leader(&nodes, &all);
    let majority: Vec<usize> = all.into_iter().filter(|&i| i != old_leader).collect();
    let token = create_lite_token(&nodes[old_leader], "laptop", EXAMPLE);
    let on_old = Lite::start(&[sync_url(&nodes[old_leader])], &token);
    let on_majority = Lite::start(
        &[sync_url(&nodes[majority[random.below(2) as usize]])],
        &token,
    );
    on_old.wait_caught_up(&nodes[old_leader]);
    on_majority.wait_caught_up(&nodes[old_leader]);

    let partition = Partition::isolate_udp_port(nodes[old_leader].raft_port());
    let new_leader = leader(&nodes, &majority);
    let mut acknowledged = Vec::new();
    let mut refused = Vec::new();
    for i in 0..30 {
        // Now and then the minority side is asked (each refusal waits out the commit
        // timeout, so a few).
        let (node, side) = if i % 10 == random.below(10) as usize {
            (old_leader, "old")
        } else {
            (majority[i % 2], "majority")
        };
        let name = format!("w{i}.{side}.{EXAMPLE}");
        match add_record(
            nodes[node].admin_addr(),
            nodes[node].token(),
            &name,
            "10.3.0.1",
        ) {
            Ok(()) => acknowledged.push(name),
            Err(error) => refused.push((name, error)),
        }
    }
    assert!(
        acknowledged.iter().all(|name| !name.contains(".old.")),
        "the cut-off leader acknowledged a write: {acknowledged:?}"
    );
    assert!(
        acknowledged.len() >= 20,
        "the majority took {acknowledged:?}; refused {refused:?}"
    );
    partition.heal();

    let refs: Vec<&Appliance> = nodes.iter().collect();
    assert_converged(
        &nodes[new_leader],
        &[EXAMPLE],
        &[],
        &refs,
        &[&on_old, &on_majority],
    );
    for name in &acknowledged {
        for lite in [&on_old, &on_majority] {
            assert_eq!(
                answers(lite.dns_addr(), name),
                ["10.3.0.1"],
                "{name} was acknowledged"
            );
        }
    }
}

/// A Lite client moves from an up-to-date node to one that is cut off and behind it: it
/// keeps what it has (its cursor never goes back), and once the node catches up by
/// snapshot the client ends where the cluster is.
fn lite_moved_to_a_node_behind_it(seed: u64) {
    let mut random = Seeded(seed);
    let nodes = start_cluster(3, COMPACTING);
    let all = [0, 1, 2];
    let leader = leader(&nodes, &all);
    let followers: Vec<usize> = all.into_iter().filter(|&i| i != leader).collect();
    let behind = followers[random.below(2) as usize];
    let token = create_lite_token(&nodes[leader], "laptop", EXAMPLE);
    let mut lite = Lite::start(&[sync_url(&nodes[leader])], &token);
    lite.wait_caught_up(&nodes[leader]);

    let partition = Partition::isolate_udp_port(nodes[behind].raft_port());
    let writes = 40 + random.below(20) as usize;
    for i in 0..writes {
        add_record(
            nodes[leader].admin_addr(),
            nodes[leader].token(),
            &format!("m{i}.{EXAMPLE}"),
            "10.4.0.1",
        )
        .unwrap_or_else(|e| panic!("write {i}: {e}"));
    }
    let last = format!("m{}.{EXAMPLE}", writes - 1);
    lite.wait_caught_up(&nodes[leader]);
    let cursor = lite.status_file()["cursor"].as_u64().expect("a cursor");

    let behind_url = sync_url(&nodes[behind]);
    lite.set_appliances(std::slice::from_ref(&behind_url));
    lite.restart();
    let resumed = lite.wait_for_status("a session with the node behind", CLUSTER_WAIT, |status| {
        status["appliance"]
            .as_str()
            .is_some_and(|url| url.starts_with(&behind_url))
            && status["error"].is_null()
            && status["head"].is_u64()
    });
    assert!(
        resumed["cursor"].as_u64() >= Some(cursor),
        "the cursor went back from {cursor}: {resumed}"
    );
    assert_eq!(
        answers(lite.dns_addr(), &last),
        ["10.4.0.1"],
        "the client kept {last}"
    );
    wait_purged_past(&nodes[leader], &nodes[behind]);
    partition.heal();

    let refs: Vec<&Appliance> = nodes.iter().collect();
    assert_converged(&nodes[leader], &[EXAMPLE], &[], &refs, &[&lite]);
}

macro_rules! seeds {
    ($($name:ident => $body:expr;)*) => {
        $(
            #[test]
            fn $name() {
                $body
            }
        )*
    };
}

seeds! {
    follower_behind_the_purged_log_seed_1 => follower_behind_the_purged_log(1, false);
    follower_behind_the_purged_log_seed_2 => follower_behind_the_purged_log(2, false);
    follower_behind_the_purged_log_seed_3 => follower_behind_the_purged_log(3, false);
    plugin_and_zone_delete_in_the_gap_seed_1 => follower_behind_the_purged_log(1, true);
    plugin_and_zone_delete_in_the_gap_seed_2 => follower_behind_the_purged_log(2, true);
    plugin_and_zone_delete_in_the_gap_seed_3 => follower_behind_the_purged_log(3, true);
    isolated_leader_seed_1 => isolated_leader(1);
    isolated_leader_seed_2 => isolated_leader(2);
    isolated_leader_seed_3 => isolated_leader(3);
    lite_moved_to_a_node_behind_it_seed_1 => lite_moved_to_a_node_behind_it(1);
    lite_moved_to_a_node_behind_it_seed_2 => lite_moved_to_a_node_behind_it(2);
    lite_moved_to_a_node_behind_it_seed_3 => lite_moved_to_a_node_behind_it(3);
}
