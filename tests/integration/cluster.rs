//! Clusters of real `outpost` processes on loopback, joined by ticket over iroh: writes through
//! any node, kill -9 of the leader under a stream of writes, catch-up by snapshot after
//! SIGSTOP, a minority that refuses writes, removals, tickets that are refused, and a plugin
//! installed, updated and removed through different nodes.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use nix::sys::signal::Signal;
use outpost_tests::appliance::{allow_root_flag, serve_command};
use outpost_tests::cluster::{
    CLUSTER_WAIT, add_record, assert_answers_everywhere, cluster_config, cluster_status, invite,
    leader, start_cluster,
};
use outpost_tests::dns::{answers_of, describe, query_udp};
use outpost_tests::{
    Appliance, Lite, PATIENT_LITE_PLUGINS, PATIENT_PLUGINS, create_lite_token, install_plugin,
    plugin, sync_url, unused_upstream, wait_until,
};

mod failures;
mod plugins;
#[test]
fn three_boxes_join_by_ticket_and_a_write_through_a_follower_reaches_every_node() {
    let nodes = start_cluster(3, "");
    let all = [0, 1, 2];
    let leader = leader(&nodes, &all);
    let follower = all.into_iter().find(|&i| i != leader).expect("a follower");

    // Every node sees three voters and the same leader; a follower asks the leader for lag.
    let agreed = wait_until(CLUSTER_WAIT, || {
        let status = cluster_status(&nodes[follower]);
        let nodes = status["nodes"].as_array().cloned().unwrap_or_default();
        nodes.len() == 3
            && nodes.iter().all(|node| node["voter"] == true)
            && nodes.iter().all(|node| node["healthy"] == true)
            && status["leader"].is_u64()
    });
    assert!(agreed, "{:#}", cluster_status(&nodes[follower]));
    let text = nodes[follower].cli_ok(["cluster", "status"]);
    assert!(text.contains("leader"), "{text}");
    assert_eq!(
        text.lines()
            .filter(|line| line.contains("@127.0.0.1:"))
            .count(),
        3,
        "{text}"
    );

    // A write through a follower is forwarded, and every node answers it from its replica.
    nodes[follower].cli_ok([
        "record",
        "add",
        "nas.example.internal.",
        "A",
        "10.0.0.50",
        "--ttl",
        "60",
    ]);
    assert_answers_everywhere(&nodes, &all, "nas.example.internal.", "10.0.0.50");

    // Read your writes: once a follower says "done", its own DNS answers the write, at
    // once, without waiting for replication to be seen (one question each, no retry).
    for n in 0..10 {
        let name = format!("ryw{n}.example.internal.");
        let ip = format!("10.0.1.{n}");
        nodes[follower].cli_ok(["record", "add", &name, "A", &ip, "--ttl", "60"]);
        let reply = query_udp(nodes[follower].dns_addr(), &name, RecordType::A, None);
        assert_eq!(
            answers_of(&reply, RecordType::A),
            [ip],
            "{}",
            describe(&reply)
        );
    }

    // A linearizable read on a follower holds the acknowledged write.
    let (code, records) = nodes[follower].api_json(
        "GET",
        "/v1/zones/example.internal./records?consistency=linearizable",
        None,
    );
    assert_eq!(code, 200, "{records}");
    assert!(
        records.to_string().contains("nas.example.internal."),
        "{records}"
    );
    let (code, error) = nodes[follower].api_json("GET", "/v1/zones?consistency=eventual", None);
    assert_eq!(code, 400, "{error}");

    // Restarting a joined node with its (used) ticket still given changes nothing.
    let mut nodes = nodes;
    nodes[2].restart();
    assert!(
        nodes[2].log().contains("the join ticket is ignored"),
        "{}",
        nodes[2].log_tail()
    );
    assert_answers_everywhere(&nodes, &[2], "nas.example.internal.", "10.0.0.50");

    let metrics = nodes[leader].api("GET", "/metrics", None).1;
    assert!(metrics.contains("outpost_raft_voters 3"), "{metrics}");
    assert!(
        metrics.contains("outpost_raft_replication_lag{node="),
        "{metrics}"
    );
}

/// Runs `outpost serve --join TICKET` on a fresh data directory and returns its exit status
/// and log, for a join that must fail.
fn failed_join(ticket: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = vec!["--join", ticket];
    extra.extend_from_slice(allow_root_flag());
    let output = serve_command(dir.path(), &cluster_config(""), &extra)
        .output()
        .expect("run outpost serve");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status, log)
}

#[test]
fn a_used_or_forged_ticket_is_refused_and_the_node_says_why() {
    let nodes = start_cluster(2, "");
    let ticket = invite(&nodes[1]);

    // Forged: one character of the secret changed.
    let mut forged: Vec<char> = ticket.chars().collect();
    let at = forged.len() - 12;
    forged[at] = if forged[at] == 'A' { 'B' } else { 'A' };
    let forged: String = forged.into_iter().collect();
    let (status, log) = failed_join(&forged);
    assert!(!status.success(), "{log}");
    assert!(log.contains("refused to add this node"), "{log}");
    assert!(log.contains("not known to the cluster"), "{log}");

    // Used once by a third node, then refused to a fourth.
    let mut third = Appliance::start_with_args(&cluster_config(""), &["--join", &ticket]);
    third.pin_raft_address();
    let (status, log) = failed_join(&ticket);
    assert!(!status.success(), "{log}");
    assert!(log.contains("already used by node"), "{log}");

    // Not a ticket at all: a config error naming the flag, before anything starts.
    let (status, log) = failed_join("outpost-join-v1:%%%");
    assert!(!status.success(), "{log}");
    assert!(log.contains("--join") && log.contains("damaged"), "{log}");
}

#[test]
fn a_removal_that_would_lose_quorum_is_refused_and_a_removed_node_is_refused_by_raft() {
    let mut nodes = start_cluster(3, "");
    let leader = leader(&nodes, &[0, 1, 2]);
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let (down, removed) = (followers[0], followers[1]);
    let removed_id = nodes[removed].api_json("GET", "/v1/status", None).1["node_id"]
        .as_u64()
        .expect("node id");

    // With one follower down, removing the other would leave 2 voters, 1 reachable.
    nodes[down].kill9();
    let refused = wait_until(CLUSTER_WAIT, || {
        let (code, body) =
            nodes[leader].api("DELETE", &format!("/v1/cluster/nodes/{removed_id}"), None);
        code == 409 && body.contains("quorum")
    });
    assert!(
        refused,
        "{:?}",
        nodes[leader].api("DELETE", &format!("/v1/cluster/nodes/{removed_id}"), None)
    );
    let (code, body) = nodes[leader].api("DELETE", "/v1/cluster/nodes/424242", None);
    assert_eq!(code, 404, "{body}");

    // Back to three healthy nodes, the removal goes through (asked of any node).
    nodes[down].restart();
    let asked = down;
    let removed_ok = wait_until(CLUSTER_WAIT, || {
        nodes[asked]
            .cli(["cluster", "remove", &removed_id.to_string()])
            .status
            .success()
    });
    assert!(removed_ok, "{}", nodes[asked].log_tail());
    let two = wait_until(CLUSTER_WAIT, || {
        cluster_status(&nodes[leader])["nodes"]
            .as_array()
            .map(Vec::len)
            == Some(2)
    });
    assert!(two, "{:#}", cluster_status(&nodes[leader]));

    // The removed node still runs; the members' Raft endpoints refuse it from now on.
    let refused = wait_until(CLUSTER_WAIT, || {
        [leader, down]
            .iter()
            .any(|&i| nodes[i].log().contains("raft rpc refused"))
    });
    assert!(
        refused,
        "{}\n{}",
        nodes[leader].log_tail(),
        nodes[removed].log_tail()
    );
    // And the two left still take writes.
    nodes[down].cli_ok(["record", "add", "after.example.internal.", "A", "10.0.0.9"]);
    assert_answers_everywhere(
        &nodes,
        &[leader, down],
        "after.example.internal.",
        "10.0.0.9",
    );
}

#[test]
fn a_node_without_a_raft_address_cannot_invite_and_says_how_to_fix_it() {
    let node = Appliance::start(&format!(
        "[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    let output = node.cli(["cluster", "invite"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--raft"), "{stderr}");

    // Alone, it is its own leader, and says so.
    let status = cluster_status(&node);
    assert_eq!(status["role"], "leader", "{status:#}");
    assert_eq!(
        status["nodes"].as_array().map(Vec::len),
        Some(1),
        "{status:#}"
    );
    let text = node.cli_ok(["status", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&text).expect("status --json is JSON");
    assert_eq!(json["role"], "leader", "{text}");
}

/// A removed node cannot rejoin with the ticket it joined with, even keeping its key: the
/// removal retires its invite. Wiped and given a new ticket, the box joins as a new node.
#[test]
fn a_removed_node_cannot_rejoin_with_its_old_ticket() {
    let config = cluster_config("");
    let mut first = Appliance::start(&config);
    first.pin_raft_address();
    let ticket = invite(&first);
    let mut second = Appliance::start_with_args(&config, &["--join", &ticket]);
    second.pin_raft_address();
    let second_id = second.api_json("GET", "/v1/status", None).1["node_id"]
        .as_u64()
        .expect("node id");
    let nodes = vec![first, second];
    let leader = leader(&nodes, &[0, 1]);
    let removed = wait_until(CLUSTER_WAIT, || {
        nodes[leader]
            .cli(["cluster", "remove", &second_id.to_string()])
            .status
            .success()
    });
    assert!(removed, "{}", nodes[leader].log_tail());

    // The same box (its key) presents the same ticket from a fresh data directory.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        nodes[1].data_dir().join("node.key"),
        dir.path().join("node.key"),
    )
    .expect("copy the node key");
    let mut extra = vec!["--join", ticket.as_str()];
    extra.extend_from_slice(allow_root_flag());
    let output = serve_command(dir.path(), &config, &extra)
        .output()
        .expect("run outpost serve");
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    assert!(log.contains("removed"), "{log}");
    assert!(log.contains("new ticket"), "{log}");

    // Wiped (a new key) and with a new ticket, it joins as a new node.
    let fresh = invite(&nodes[leader]);
    let back = Appliance::start_with_args(&config, &["--join", &fresh]);
    let back_id = back.api_json("GET", "/v1/status", None).1["node_id"]
        .as_u64()
        .expect("node id");
    assert_ne!(back_id, second_id, "a wiped box is a new node");
}
