//! Clusters of real `outpost` processes on loopback, joined by ticket over iroh, and how
//! the tests reach them: the leader, writes through any node, answers on every node.

use std::net::SocketAddr;
use std::time::Duration;

use crate::{Appliance, unused_upstream, wait_until};

/// How long a cluster may take to agree on something (an election, a catch-up, a write
/// reaching every node). Generous: the suite runs in parallel on a loaded two-core machine.
pub const CLUSTER_WAIT: Duration = Duration::from_secs(30);

/// A node's config: a Raft endpoint on loopback, writes that give up after 5 s without a
/// quorum, and `extra` lines of `[cluster]`.
pub fn cluster_config(extra: &str) -> String {
    format!(
        "[forward]\nupstreams = [\"{}\"]\n\n[cluster]\nraft = \"127.0.0.1:0\"\ncommit_timeout_ms = 5000\n{extra}",
        unused_upstream()
    )
}

/// A first node, then `size - 1` nodes joined with tickets it printed. Every node keeps its
/// Raft address across restarts, as a real box does.
pub fn start_cluster(size: usize, extra: &str) -> Vec<Appliance> {
    let config = cluster_config(extra);
    let mut first = Appliance::start(&config);
    first.pin_raft_address();
    let mut nodes = vec![first];
    for _ in 1..size {
        let ticket = invite(&nodes[0]);
        let mut node = Appliance::start_with_args(&config, &["--join", &ticket]);
        node.pin_raft_address();
        nodes.push(node);
    }
    nodes
}

/// The ticket `outpost cluster invite` prints on its last line.
pub fn invite(node: &Appliance) -> String {
    let out = node.cli_ok(["cluster", "invite"]);
    let ticket = out
        .lines()
        .last()
        .expect("a ticket line")
        .trim()
        .to_string();
    assert!(ticket.starts_with("outpost-join-v1:"), "{out}");
    ticket
}

pub fn cluster_status(node: &Appliance) -> serde_json::Value {
    let (code, status) = node.api_json("GET", "/v1/cluster", None);
    assert_eq!(code, 200, "{status}");
    status
}

/// The position in `nodes` of the one that says it leads, once one does (the others given by
/// `alive`).
pub fn leader(nodes: &[Appliance], alive: &[usize]) -> usize {
    let mut found = None;
    let agreed = wait_until(CLUSTER_WAIT, || {
        found = alive.iter().copied().find(|&i| {
            let (code, status) = nodes[i].api_json("GET", "/v1/status", None);
            code == 200 && status["role"] == "leader"
        });
        found.is_some()
    });
    assert!(agreed, "no leader among nodes {alive:?}");
    found.expect("found")
}

/// Adds `name A ip` through the admin API of the node at `admin`: `Ok` on 2xx, else the
/// status and body (a node cut off from the leader refuses, which tests check).
pub fn add_record(admin: SocketAddr, token: &str, name: &str, ip: &str) -> Result<(), String> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent();
    let body = serde_json::json!({ "name": name, "type": "A", "data": ip, "ttl": 60 });
    let mut response = agent
        .post(format!("http://{admin}/v1/records"))
        .header("Authorization", format!("Bearer {token}"))
        .send_json(&body)
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    match status {
        200..=299 => Ok(()),
        _ => Err(format!("{status}: {text}")),
    }
}

/// Every node of `alive` answers `name A ip`, within [`CLUSTER_WAIT`].
pub fn assert_answers_everywhere(nodes: &[Appliance], alive: &[usize], name: &str, ip: &str) {
    for &i in alive {
        let answered = wait_until(CLUSTER_WAIT, || nodes[i].a_records(name) == [ip]);
        assert!(
            answered,
            "node {i} does not answer {name} A {ip}: {:?}\n{}",
            nodes[i].a_records(name),
            nodes[i].log_tail()
        );
    }
}
