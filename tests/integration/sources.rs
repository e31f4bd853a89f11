//! Record sources: a hosts file and a dnsmasq leases file, watched by one node of a
//! cluster (given them by a reload), feed names into zones; edited while the cluster
//! runs, the names appear and disappear on every node, a lease's expiry included, and a
//! record written by hand is never overwritten.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::rr::RecordType;
use nix::sys::signal::Signal;
use outpost_tests::cluster::{CLUSTER_WAIT, start_cluster};
use outpost_tests::{Appliance, query_udp, rdata_strings, wait_until};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn ptr(node: &Appliance, name: &str) -> Vec<String> {
    rdata_strings(&query_udp(node.dns_addr(), name, RecordType::PTR, None).answers)
}

/// Waits until every node answers `name` A with `expected`.
fn everywhere(nodes: &[Appliance], name: &str, expected: &[&str]) -> bool {
    wait_until(CLUSTER_WAIT, || {
        nodes.iter().all(|node| node.a_records(name) == expected)
    })
}

#[test]
fn hosts_and_leases_edited_while_running_reach_every_node() {
    let nodes = start_cluster(3, "");
    nodes[0].cli_ok(["zone", "create", "site.internal."]);
    nodes[0].cli_ok(["zone", "create", "2.0.192.in-addr.arpa."]);
    nodes[0].cli_ok(["record", "add", "nas.site.internal.", "A", "192.0.2.9"]);
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    let leases = dir.path().join("dnsmasq.leases");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost\n192.0.2.7 printer\n192.0.2.99 nas\n",
    )
    .unwrap();
    let lease = |expiry: u64| format!("{expiry} aa:bb:cc:dd:ee:01 192.0.2.50 laptop *\n");
    std::fs::write(&leases, lease(now() + 3600)).unwrap();

    // The watching node is a follower: its writes go through the leader like any other.
    let watcher = &nodes[1];
    let mut config = std::fs::read_to_string(watcher.config_path()).unwrap();
    config.push_str(&format!(
        "\n[[sources]]\nname = \"office-hosts\"\nkind = \"hosts\"\npath = \"{}\"\nzone = \"site.internal.\"\n\
         \n[[sources]]\nname = \"dhcp\"\nkind = \"dnsmasq\"\npath = \"{}\"\nzone = \"site.internal.\"\nttl = 60\n",
        hosts.display(),
        leases.display()
    ));
    std::fs::write(watcher.config_path(), config).unwrap();
    watcher.signal(Signal::SIGHUP);

    assert!(everywhere(&nodes, "printer.site.internal.", &["192.0.2.7"]));
    assert!(everywhere(&nodes, "laptop.site.internal.", &["192.0.2.50"]));
    for node in &nodes {
        assert_eq!(
            ptr(node, "50.2.0.192.in-addr.arpa."),
            ["laptop.site.internal."]
        );
    }
    // The record written by hand stays; the hosts file's nas is left out.
    assert_eq!(nodes[2].a_records("nas.site.internal."), ["192.0.2.9"]);

    // Edited: the printer goes, a scanner comes; the laptop's lease runs out in 3 s.
    std::fs::write(&hosts, "192.0.2.8 scanner\n").unwrap();
    std::fs::write(&leases, lease(now() + 3)).unwrap();
    assert!(everywhere(&nodes, "scanner.site.internal.", &["192.0.2.8"]));
    assert!(everywhere(&nodes, "printer.site.internal.", &[]));
    assert!(
        wait_until(Duration::from_secs(30), || nodes
            .iter()
            .all(|node| node.a_records("laptop.site.internal.").is_empty())),
        "the expired lease's name is gone"
    );
    assert!(ptr(&nodes[0], "50.2.0.192.in-addr.arpa.").is_empty());
    assert_eq!(nodes[0].a_records("nas.site.internal."), ["192.0.2.9"]);
}
