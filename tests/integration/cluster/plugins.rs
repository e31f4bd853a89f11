//! A plugin installed, updated and removed through different nodes runs on every node
//! and Lite client without restarts.

use super::*;

/// The answer code every node in `alive` gives for `name A`, once all give `expected`.
fn assert_rcode_everywhere(
    nodes: &[Appliance],
    alive: &[usize],
    name: &str,
    expected: hickory_proto::op::ResponseCode,
    when: &str,
) {
    for &i in alive {
        let mut last = None;
        let agreed = wait_until(CLUSTER_WAIT, || {
            let answer = outpost_tests::query_udp(nodes[i].dns_addr(), name, RecordType::A, None);
            let done = answer.metadata.response_code == expected;
            last = Some(answer);
            done
        });
        assert!(
            agreed,
            "node {i} {when}: {name} A is not {expected:?}: {}\n{}",
            last.as_ref()
                .map(outpost_tests::describe)
                .unwrap_or_default(),
            nodes[i].log_tail()
        );
    }
}

/// Every node of `alive` runs version `version` of plugin `name`, and all run the same
/// component; returns its SHA-256.
fn assert_plugin_version_everywhere(
    nodes: &[Appliance],
    alive: &[usize],
    name: &str,
    version: u64,
) -> String {
    let mut hashes = Vec::new();
    for &i in alive {
        let mut last = serde_json::Value::Null;
        let running = wait_until(CLUSTER_WAIT, || {
            last = plugin(&nodes[i], name).unwrap_or_default();
            last["state"] == "running" && last["loaded_version"] == version
        });
        assert!(
            running,
            "node {i} does not run version {version} of {name}: {last}\n{}",
            nodes[i].log_tail()
        );
        hashes.push(last["sha256"].as_str().expect("a sha256").to_string());
    }
    hashes.dedup();
    assert_eq!(
        hashes.len(),
        1,
        "the nodes run different components: {hashes:?}"
    );
    hashes.remove(0)
}

#[test]
fn a_plugin_installed_through_a_follower_runs_on_every_node_and_lite_client_without_restarts() {
    const BLOCKED: &str = "printer.example.internal.";
    const LATER: &str = "www.example.internal.";
    let mut nodes = start_cluster(3, PATIENT_PLUGINS);
    let all = [0, 1, 2];
    let leader = leader(&nodes, &all);
    let follower = all.into_iter().find(|&i| i != leader).expect("a follower");
    let other = all
        .into_iter()
        .find(|&i| i != leader && i != follower)
        .expect("a second follower");
    let pids: Vec<u32> = nodes.iter().map(Appliance::pid).collect();
    assert_answers_everywhere(&nodes, &all, BLOCKED, "10.0.0.7");

    // A Lite client syncing from the other follower.
    let token = create_lite_token(&nodes[leader], "laptop", "example.internal.");
    let lite = Lite::start_with_args(&[sync_url(&nodes[other])], &token, &PATIENT_LITE_PLUGINS);
    lite.wait_synced();
    lite.wait_for_a(BLOCKED, &["10.0.0.7"]);

    // Installed through a follower: every node and the client block the name.
    install_plugin(
        &nodes[follower],
        "blocklist",
        "ads",
        "query-policy",
        "printer.example.internal\n",
        &[],
    );
    let installed = assert_plugin_version_everywhere(&nodes, &all, "ads", 1);
    assert_rcode_everywhere(
        &nodes,
        &all,
        BLOCKED,
        ResponseCode::NXDomain,
        "after the install",
    );
    assert_answers_everywhere(&nodes, &all, LATER, "10.0.0.10");
    let blocked_on_lite = wait_until(CLUSTER_WAIT, || {
        lite.query(BLOCKED, RecordType::A).metadata.response_code == ResponseCode::NXDomain
    });
    assert!(blocked_on_lite, "the Lite client: {}", lite.log_tail());

    // An update through the leader (a new configuration) replaces version 1 everywhere.
    install_plugin(
        &nodes[leader],
        "blocklist",
        "ads",
        "query-policy",
        "www.example.internal\n",
        &[],
    );
    let updated = assert_plugin_version_everywhere(&nodes, &all, "ads", 2);
    assert_eq!(
        updated, installed,
        "the same component with a new configuration"
    );
    assert_rcode_everywhere(
        &nodes,
        &all,
        LATER,
        ResponseCode::NXDomain,
        "after the update",
    );
    assert_answers_everywhere(&nodes, &all, BLOCKED, "10.0.0.7");
    lite.wait_for_a(BLOCKED, &["10.0.0.7"]);
    assert_eq!(
        lite.query(LATER, RecordType::A).metadata.response_code,
        ResponseCode::NXDomain,
        "the Lite client after the update"
    );

    // Removed through the other follower: every node and the client answer again.
    nodes[other].cli_ok(["plugin", "rm", "ads"]);
    assert_answers_everywhere(&nodes, &all, LATER, "10.0.0.10");
    lite.wait_for_a(LATER, &["10.0.0.10"]);
    for i in all {
        assert!(
            plugin(&nodes[i], "ads").is_none(),
            "node {i} still lists ads"
        );
    }

    // All of it without a restart.
    for (i, node) in nodes.iter_mut().enumerate() {
        assert!(node.is_running(), "node {i} stopped: {}", node.log_tail());
        assert_eq!(node.pid(), pids[i], "node {i} was restarted");
    }
}
