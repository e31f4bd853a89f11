//! The cluster tests again, over real iroh endpoints on 127.0.0.1 (relays, address lookup and
//! port mapping off): replication and relaying, failover and restart, catch-up by snapshot
//! in chunks, and the refusal of endpoints that are not members.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;

use ::iroh::SecretKey;

use super::super::network::codec;
use super::super::network::iroh_transport::{RAFT_ALPN, REFUSED};
use super::super::rpc::{JoinOutcome, JoinRequest, RaftReply, RaftRequest};
use super::super::types::{Vote, VoteRequest};
use super::harness::{CONVERGE_WAIT, TEST_TIMING, TestCluster, TestNetwork};
use super::*;

/// Each node's endpoint, bound under the key in its data directory. A restarted node binds its
/// old address again, as a real node does (its address is in the membership).
#[derive(Default)]
struct IrohNet {
    nodes: BTreeMap<u64, IrohNode>,
}

struct IrohNode {
    addr: PeerAddr,
    /// Bound, not serving yet (between `prepare` and `serve`).
    bound: Option<RaftEndpoint>,
    server: Option<RaftServer>,
}

impl TestNetwork for IrohNet {
    async fn prepare(&mut self, id: u64, dir: &Path) -> (Arc<dyn RaftTransport>, NodeInfo) {
        let key = load_or_create_node_key(dir).expect("node key");
        let at: SocketAddr = match self.nodes.get(&id) {
            Some(node) => node.addr.addr,
            None => "127.0.0.1:0".parse().expect("socket address"),
        };
        let endpoint = RaftEndpoint::bind(key, at).await.expect("bind");
        let transport: Arc<dyn RaftTransport> = endpoint.transport();
        let node_info = endpoint.node_info();
        let node = IrohNode {
            addr: endpoint.addr().clone(),
            bound: Some(endpoint),
            server: None,
        };
        if let Some(old) = self.nodes.insert(id, node) {
            assert!(old.server.is_none(), "node {id} prepared while running");
        }
        (transport, node_info)
    }

    async fn serve(&mut self, handler: RaftRpcHandler) {
        let id = handler.node_id();
        // A joining node expects the first node, as a join ticket will name it.
        let expected: BTreeSet<_> = self
            .nodes
            .get(&1)
            .filter(|_| id != 1)
            .map(|first| first.addr.id)
            .into_iter()
            .collect();
        let node = self.nodes.get_mut(&id).expect("prepared");
        let endpoint = node.bound.take().expect("bound");
        node.server = Some(endpoint.serve(handler, expected));
    }

    async fn crash(&mut self, id: u64) {
        if let Some(server) = self.nodes.get_mut(&id).and_then(|node| node.server.take()) {
            // A crash need not be graceful: peers that do not acknowledge the close in
            // time (a loaded machine) find the endpoint gone all the same.
            if let Err(error) = server.shutdown().await {
                eprintln!("node {id}'s endpoint closed without every acknowledgement: {error}");
            }
        }
    }

    fn address(&self, id: u64) -> NodeInfo {
        self.nodes.get(&id).expect("prepared").addr.node_info()
    }
}

async fn iroh_cluster(nodes: u64, tuning: Tuning) -> TestCluster<IrohNet> {
    TestCluster::start_on(IrohNet::default(), nodes, tuning, TEST_TIMING).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_stores_replicate_over_iroh_and_followers_relay_theirs() {
    let cluster = iroh_cluster(3, Tuning::DEFAULT).await;
    let members = cluster.store(1).members();
    assert_eq!(members.len(), 3);
    for member in &members {
        let addr: PeerAddr = member.node.addr.parse().expect("an iroh address");
        assert_eq!(member.node, cluster.net.address(member.id));
        assert!(addr.addr.ip().is_loopback(), "{addr}");
        assert!(member.voter, "{member:?}");
    }

    let mut last = cluster
        .store(1)
        .write(create_zone(SITE))
        .await
        .expect("create")
        .index;
    for number in 1..=5 {
        last = cluster
            .store(1)
            .write(add_host(number))
            .await
            .expect("add")
            .index;
    }
    cluster.converge(last).await;

    let relayed = cluster
        .store(3)
        .write(add_host(9))
        .await
        .expect("relayed to the leader over iroh");
    assert!(relayed.index > last, "{relayed:?}");
    let zones = cluster.converge(relayed.index).await;
    assert!(
        zones.iter().any(|change| matches!(change,
            Change::RRsetPut { owner, .. } if owner == "host9.site.internal.")),
        "the relayed write reached every node"
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_iroh_a_new_leader_takes_over_and_the_restarted_node_catches_up_by_snapshot() {
    let tuning = Tuning {
        snapshot_every_entries: 10,
        log_entries_kept_after_snapshot: 2,
    };
    let mut cluster = iroh_cluster(3, tuning).await;
    let wait = CONVERGE_WAIT;
    cluster
        .write(create_zone(SITE), wait)
        .await
        .expect("create");

    cluster.crash(1).await;
    let leader = cluster.wait_for_leader(&[1]).await;
    assert_ne!(leader, 1);
    let mut last = 0;
    for number in 1..=30 {
        last = cluster
            .write(add_host(number), wait)
            .await
            .expect("write after failover")
            .index;
    }
    // Snapshots are built, and the log purged, in the background.
    cluster
        .store(leader)
        .inner
        .raft
        .wait(Some(CONVERGE_WAIT))
        .metrics(
            |m| m.purged.as_ref().is_some_and(|purged| purged.index > 10),
            "the leader purged the entries node 1 lacks",
        )
        .await
        .expect("purge");

    // Same key, same address: the membership's record of node 1 still reaches it.
    cluster.restart(1).await;
    let zones = cluster.converge(last).await;
    let status = cluster.store(1).status();
    assert!(
        status.snapshot_index.is_some(),
        "node 1 took a snapshot in chunks over iroh: {status:?}"
    );
    for number in 1..=30 {
        let owner = format!("host{number}.{SITE}");
        assert!(
            zones.iter().any(|change| matches!(change,
                Change::RRsetPut { owner: o, .. } if *o == owner)),
            "{owner} lost"
        );
    }
    cluster.shutdown().await;
}

/// A vote request with a term far ahead: served, it would make the node step up its term.
fn disruptive_vote() -> Vec<u8> {
    codec::encode(&RaftRequest::Vote(VoteRequest::new(
        Vote::new(1_000, 9),
        None,
    )))
    .expect("encode")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_outside_the_membership_is_refused_and_a_removed_member_too() {
    let cluster = iroh_cluster(3, Tuning::DEFAULT).await;
    let term = cluster.store(1).status().term;
    let node_1 = cluster.net.address(1);

    let stranger_dir = tempfile::tempdir().expect("tempdir");
    let stranger_key = load_or_create_node_key(stranger_dir.path()).expect("key");
    let stranger = RaftEndpoint::bind(stranger_key, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let refused = stranger
        .transport()
        .call(1, &node_1, disruptive_vote())
        .await;
    match refused {
        Err(TransportError::Unreachable { node: 1, reason }) => {
            assert!(reason.contains("not a member"), "{reason}");
        }
        other => panic!("a stranger was served: {other:?}"),
    }
    assert_eq!(
        cluster.store(1).status().term,
        term,
        "the vote was not served"
    );

    // Node 3's own key, at another address: still a member, so served (the request is checked
    // by id, not by address).
    let member_key = load_or_create_node_key(cluster.dir(3)).expect("node 3's key");
    let member = RaftEndpoint::bind(member_key, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let probe =
        codec::encode(&RaftRequest::Vote(VoteRequest::new(Vote::new(0, 3), None))).expect("encode");
    let reply = member
        .transport()
        .call(1, &node_1, probe.clone())
        .await
        .expect("a member is served");
    let reply: RaftReply = codec::decode(&reply).expect("a reply");
    assert!(matches!(reply, RaftReply::Vote(_)), "{reply:?}");

    // Once node 3 is removed, the same key is refused from its next RPC on.
    cluster
        .store(1)
        .remove_voters(BTreeSet::from([3]))
        .await
        .expect("remove node 3");
    let refused = member.transport().call(1, &node_1, probe).await;
    assert!(
        matches!(&refused, Err(TransportError::Unreachable { reason, .. }) if reason.contains("not a member")),
        "{refused:?}"
    );

    stranger.close().await;
    member.close().await;
    cluster.shutdown().await;
}

#[tokio::test]
async fn an_unspecified_raft_address_is_refused_with_the_fix() {
    let error = RaftEndpoint::bind(
        SecretKey::from_bytes(&[3; 32]),
        "0.0.0.0:7400".parse().expect("address"),
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(error.contains("0.0.0.0:7400"), "{error}");
    assert!(error.contains("give the address peers dial"), "{error}");
}

/// A stranger's join request, and what it got back.
async fn join_from(
    stranger: &RaftEndpoint,
    to: &NodeInfo,
    secret: [u8; 32],
    node_id: u64,
    addr: String,
) -> Result<JoinOutcome, TransportError> {
    let request = RaftRequest::Join(JoinRequest {
        secret,
        node_id,
        addr,
    });
    let reply = stranger
        .transport()
        .call(1, to, codec::encode(&request).expect("encode"))
        .await?;
    match codec::decode(&reply).expect("a reply") {
        RaftReply::Join(outcome) => Ok(outcome),
        other => panic!("a join answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_may_only_ask_to_join_and_only_as_itself() {
    let cluster = iroh_cluster(1, Tuning::DEFAULT).await;
    let node_1 = cluster.net.address(1);
    let ticket = cluster
        .store(1)
        .invite(Duration::from_secs(60))
        .await
        .expect("invite");
    assert_eq!(ticket.nodes, vec![(1, node_1.addr.clone())]);
    let parsed: JoinTicket = ticket.to_string().parse().expect("the ticket reads back");
    assert_eq!(parsed, ticket);

    let key = SecretKey::from_bytes(&[21; 32]);
    let other = SecretKey::from_bytes(&[22; 32]).public();
    let stranger = RaftEndpoint::bind(key.clone(), "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let own = stranger.addr().clone();
    let id = node_id_for(&own.id);

    // Naming another endpoint's address, or another node id, or a wrong secret: refused,
    // and nothing was used up.
    let elsewhere = PeerAddr {
        id: other,
        addr: own.addr,
    };
    let cases = [
        (
            ticket.secret,
            node_id_for(&other),
            elsewhere.to_string(),
            "another endpoint",
        ),
        (
            ticket.secret,
            id + 1,
            own.to_string(),
            "is not the one endpoint",
        ),
        ([0; 32], id, own.to_string(), "not known to the cluster"),
    ];
    for (secret, node_id, addr, expected) in cases {
        let outcome = join_from(&stranger, &node_1, secret, node_id, addr)
            .await
            .expect("answered");
        assert!(
            matches!(&outcome, JoinOutcome::Refused(reason) if reason.contains(expected)),
            "{outcome:?}"
        );
    }
    let invite = cluster
        .store(1)
        .zones()
        .join_invites()
        .next()
        .cloned()
        .expect("the invite");
    assert_eq!(invite.used_by, None);

    // Anything but a join closes the stranger's connection.
    let refused = stranger
        .transport()
        .call(1, &node_1, disruptive_vote())
        .await;
    assert!(
        matches!(&refused, Err(TransportError::Unreachable { reason, .. }) if reason.contains("not a member")),
        "{refused:?}"
    );
    stranger.close().await;
    cluster.shutdown().await;
}

/// A bare iroh endpoint on 127.0.0.1 that keeps its connections alive (QUIC keep-alives) while
/// it sends nothing: the silent stranger a deadline has to close.
async fn bare_endpoint(key: u8) -> ::iroh::Endpoint {
    use ::iroh::endpoint::{QuicTransportConfig, presets};
    let transport = QuicTransportConfig::builder()
        .keep_alive_interval(Duration::from_secs(1))
        .build();
    ::iroh::Endpoint::builder(presets::Minimal)
        .secret_key(SecretKey::from_bytes(&[key; 32]))
        .relay_mode(::iroh::RelayMode::Disabled)
        .transport_config(transport)
        .clear_ip_transports()
        .bind_addr("127.0.0.1:0".parse::<SocketAddr>().expect("address"))
        .expect("bind address")
        .bind()
        .await
        .expect("bind")
}

/// How a connection ended, once it did, within a generous wait.
async fn closed_by_peer(connection: &::iroh::endpoint::Connection) -> (u64, String) {
    let wait = Duration::from_secs(60);
    match tokio::time::timeout(wait, connection.closed()).await {
        Ok(::iroh::endpoint::ConnectionError::ApplicationClosed(close)) => (
            close.error_code.into_inner(),
            String::from_utf8_lossy(&close.reason).into_owned(),
        ),
        Ok(other) => panic!("the connection ended otherwise: {other}"),
        Err(_elapsed) => panic!("a stranger's connection was still open after {wait:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_or_dripping_stranger_is_closed_at_its_deadline() {
    let cluster = iroh_cluster(1, Tuning::DEFAULT).await;
    let node_1: PeerAddr = cluster
        .net
        .address(1)
        .addr
        .parse()
        .expect("an iroh address");
    let target = ::iroh::EndpointAddr::new(node_1.id).with_ip_addr(node_1.addr);

    // One connects and opens nothing; the other opens a stream and sends one byte of a request.
    let silent = bare_endpoint(31).await;
    let dripping = bare_endpoint(32).await;
    let silent_connection = silent
        .connect(target.clone(), RAFT_ALPN)
        .await
        .expect("connect");
    let dripping_connection = dripping.connect(target, RAFT_ALPN).await.expect("connect");
    let (mut send, _recv) = dripping_connection.open_bi().await.expect("a stream");
    send.write_all(&[0]).await.expect("one byte");

    for connection in [&silent_connection, &dripping_connection] {
        let (code, reason) = closed_by_peer(connection).await;
        assert_eq!(code, REFUSED.into_inner(), "{reason}");
        assert!(reason.contains("deadline"), "{reason}");
    }

    // A stranger's slot came back: a join request on a new connection is answered.
    let key = SecretKey::from_bytes(&[33; 32]);
    let stranger = RaftEndpoint::bind(key, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let own = stranger.addr().clone();
    let outcome = join_from(
        &stranger,
        &cluster.net.address(1),
        [0; 32],
        node_id_for(&own.id),
        own.to_string(),
    )
    .await
    .expect("answered");
    assert!(matches!(outcome, JoinOutcome::Refused(_)), "{outcome:?}");

    silent.close().await;
    dripping.close().await;
    stranger.close().await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_with_a_wrong_secret_learns_no_leader_address() {
    let cluster = iroh_cluster(3, Tuning::DEFAULT).await;
    let leader = cluster.wait_for_leader(&[]).await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let ticket = cluster
        .store(follower)
        .invite(Duration::from_secs(60))
        .await
        .expect("invite");
    let leader_addr = cluster.net.address(leader).addr;

    let key = SecretKey::from_bytes(&[34; 32]);
    let stranger = RaftEndpoint::bind(key, "127.0.0.1:0".parse().expect("address"))
        .await
        .expect("bind");
    let own = stranger.addr().clone();
    let id = node_id_for(&own.id);
    let to_follower = cluster.net.address(follower);

    let outcome = join_from(&stranger, &to_follower, [7; 32], id, own.to_string())
        .await
        .expect("answered");
    match &outcome {
        JoinOutcome::Refused(reason) => {
            assert!(reason.contains("not known to the cluster"), "{reason}");
            assert!(!reason.contains(&leader_addr), "{reason}");
        }
        other => panic!("a wrong secret was answered {other:?}"),
    }

    // The invite's own secret is pointed to the leader, as a joiner needs.
    let outcome = join_from(&stranger, &to_follower, ticket.secret, id, own.to_string())
        .await
        .expect("answered");
    assert!(
        matches!(&outcome, JoinOutcome::NotLeader { leader: Some((id, addr)) }
            if *id == leader && *addr == leader_addr),
        "{outcome:?}"
    );
    stranger.close().await;
    cluster.shutdown().await;
}
