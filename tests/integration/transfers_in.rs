//! outpost as the secondary of a real Knot primary (`outpost zone follow`): the cluster
//! takes the zone by AXFR, then by IXFR after a change made in Knot, woken by Knot's
//! NOTIFY, signed with TSIG; every node and a Lite client answer the new data. A wrong
//! key, a NOTIFY from a stranger, a primary that breaks off mid-transfer and a primary
//! gone past the SOA's expire each leave the zone as the RFCs say, with the reason shown.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::Duration;

use hickory_proto::op::{OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::cluster::{CLUSTER_WAIT, leader, start_cluster};
use outpost_tests::knot::{self, Knot, TSIG_KEY, TSIG_SECRET, free_port};
use outpost_tests::{
    Appliance, Ask, Lite, ask_udp_from, authoritative_config, create_lite_token, query_udp,
    sync_url, wait_until,
};

const ZONE: &str = "hq.test.";

/// The primary's zone at `serial`: refresh 2 s, retry 1 s, expire `expire` s.
fn zone_text(serial: u32, expire: u32, extra: &str) -> String {
    zone_timed(serial, 2, expire, extra)
}

/// The primary's zone at `serial`: refresh `refresh` s, retry 1 s, expire `expire` s.
fn zone_timed(serial: u32, refresh: u32, expire: u32, extra: &str) -> String {
    format!(
        "$ORIGIN hq.test.\n$TTL 300\n@ SOA ns1 hostmaster {serial} {refresh} 1 {expire} 300\n\
         @ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.80\n{extra}"
    )
}

/// Knot in `dir` on `port` as the primary of [`ZONE`], notifying `notify` (outpost's DNS
/// addresses), transferring to 127.0.0.1 with the TSIG key.
fn primary(dir: &Path, port: u16, notify: &[SocketAddr], text: &str) -> Knot {
    std::fs::write(dir.join("hq.test.zone"), text).unwrap();
    let names: Vec<String> = (0..notify.len())
        .map(|index| format!("node{index}"))
        .collect();
    let zones = format!(
        "  - domain: {ZONE}\n    file: hq.test.zone\n    zonefile-load: difference\n    \
         journal-content: changes\n    notify: [{}]\n    acl: transfer_to_outpost\n",
        names.join(", ")
    );
    Knot::start(dir, port, notify, &zones)
}

fn follow(node: &Appliance, primary: SocketAddr, secret: &str) -> String {
    let tsig = format!("{TSIG_KEY}:hmac-sha256:{secret}");
    node.cli_ok([
        "zone",
        "follow",
        ZONE,
        "--primary",
        &primary.to_string(),
        "--tsig",
        &tsig,
    ])
}

fn follows(node: &Appliance) -> String {
    node.cli_ok(["zone", "follows"])
}

fn rcode(addr: SocketAddr, name: &str) -> ResponseCode {
    query_udp(addr, name, RecordType::A, None)
        .metadata
        .response_code
}

#[test]
fn a_cluster_follows_knot_by_axfr_then_ixfr_woken_by_notify() {
    let knot_port = free_port();
    let nodes = start_cluster(3, "");
    let addrs: Vec<SocketAddr> = nodes.iter().map(Appliance::dns_addr).collect();
    let dir = tempfile::tempdir().unwrap();
    let knot = primary(dir.path(), knot_port, &addrs, &zone_text(1, 600, ""));
    let serial_on = |addr| knot::serial(addr, ZONE);
    assert!(
        wait_until(Duration::from_secs(10), || serial_on(knot.addr) == Some(1)),
        "Knot serves the zone; its log:\n{}",
        knot.log()
    );
    follow(&nodes[1], knot.addr, TSIG_SECRET);
    let everywhere = |serial| knot::serial_everywhere(&addrs, ZONE, serial, CLUSTER_WAIT);
    assert!(
        everywhere(1),
        "AXFR reached every node:\n{}",
        follows(&nodes[0])
    );
    let token = create_lite_token(&nodes[0], "laptop", ZONE);
    let lite = Lite::start(&[sync_url(&nodes[2])], &token);
    assert!(wait_until(CLUSTER_WAIT, || lite.a_records("www.hq.test.")
        == ["192.0.2.80"]));

    // A change in Knot: a record added, one changed; Knot notifies every node.
    let text = zone_text(2, 600, "new A 192.0.2.99\n").replace("192.0.2.80", "192.0.2.81");
    std::fs::write(dir.path().join("hq.test.zone"), text).unwrap();
    knot.control(&["zone-reload", ZONE]);
    assert!(
        everywhere(2),
        "IXFR reached every node:\n{}",
        follows(&nodes[0])
    );
    for node in &nodes {
        assert_eq!(node.a_records("new.hq.test."), ["192.0.2.99"]);
        assert_eq!(node.a_records("www.hq.test."), ["192.0.2.81"]);
    }
    assert!(wait_until(CLUSTER_WAIT, || lite.a_records("new.hq.test.")
        == ["192.0.2.99"]));
    let received: f64 = nodes
        .iter()
        .map(|node| node.metric("outpost_notify_received_total"))
        .sum();
    assert!(received >= 1.0, "Knot's NOTIFY was taken");
    let log = knot.log();
    assert!(
        log.contains("IXFR, outgoing"),
        "the change went by IXFR:\n{log}"
    );

    // Local writes to a followed zone are refused with the reason.
    let refused = nodes[0].cli(["record", "add", "x.hq.test.", "A", "192.0.2.7"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("is followed from its primary"), "{stderr}");
}

#[test]
fn a_notify_to_a_follower_alone_is_taken_without_waiting_for_the_refresh() {
    let knot_port = free_port();
    let nodes = start_cluster(3, "");
    let lead = leader(&nodes, &[0, 1, 2]);
    let follower = (lead + 1) % nodes.len();
    let addrs: Vec<SocketAddr> = nodes.iter().map(Appliance::dns_addr).collect();
    let dir = tempfile::tempdir().unwrap();
    // A one-hour refresh: only the NOTIFY can bring the change within the test's wait.
    let text = zone_timed(1, 3600, 600, "");
    let knot = primary(dir.path(), knot_port, &[addrs[follower]], &text);
    let serial_on = |addr| knot::serial(addr, ZONE);
    assert!(wait_until(Duration::from_secs(10), || serial_on(knot.addr) == Some(1)));
    follow(&nodes[lead], knot.addr, TSIG_SECRET);
    let everywhere = |serial| knot::serial_everywhere(&addrs, ZONE, serial, CLUSTER_WAIT);
    assert!(
        everywhere(1),
        "AXFR reached every node:\n{}",
        follows(&nodes[0])
    );

    let changed = zone_timed(2, 3600, 600, "new A 192.0.2.99\n");
    std::fs::write(dir.path().join("hq.test.zone"), changed).unwrap();
    knot.control(&["zone-reload", ZONE]);
    assert!(
        everywhere(2),
        "the follower took the change:\n{}",
        follows(&nodes[0])
    );
    assert_eq!(nodes[lead].a_records("new.hq.test."), ["192.0.2.99"]);
    assert_eq!(nodes[lead].metric("outpost_notify_received_total"), 0.0);
    assert!(nodes[follower].metric("outpost_notify_received_total") >= 1.0);
    assert!(
        follows(&nodes[0]).contains("current"),
        "{}",
        follows(&nodes[0])
    );
}

#[test]
fn a_wrong_key_a_stranger_and_an_expired_zone() {
    let knot_port = free_port();
    let node = Appliance::start(&authoritative_config());
    let dir = tempfile::tempdir().unwrap();
    let knot = primary(
        dir.path(),
        knot_port,
        &[node.dns_addr()],
        &zone_text(1, 8, ""),
    );
    assert!(wait_until(Duration::from_secs(10), || knot::serial(
        knot.addr, ZONE
    ) == Some(1)));

    // A wrong secret: Knot refuses the transfer, the zone stays SERVFAIL, the status says.
    follow(&node, knot.addr, "d3JvbmcgYnV0IGJhc2U2NA==");
    assert!(
        wait_until(CLUSTER_WAIT, || follows(&node).contains("TSIG")),
        "{}",
        follows(&node)
    );
    assert_eq!(
        rcode(node.dns_addr(), "www.hq.test."),
        ResponseCode::ServFail
    );

    // The right one: the zone comes.
    follow(&node, knot.addr, TSIG_SECRET);
    assert!(wait_until(CLUSTER_WAIT, || node.a_records("www.hq.test.")
        == ["192.0.2.80"]));
    assert!(follows(&node).contains("current"), "{}", follows(&node));

    // A NOTIFY from an address that is not the primary is refused and counted.
    let notify = Ask::new(ZONE, RecordType::SOA).op_code(OpCode::Notify);
    let stranger = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let answer = ask_udp_from(stranger, node.dns_addr(), &notify);
    assert_eq!(answer.metadata.response_code, ResponseCode::Refused);
    assert!(node.metric("outpost_notify_refused_total") >= 1.0);

    // The primary gone: past the SOA's expire (8 s) the zone is answered SERVFAIL.
    drop(knot);
    assert!(
        wait_until(Duration::from_secs(40), || rcode(
            node.dns_addr(),
            "www.hq.test."
        ) == ResponseCode::ServFail),
        "{}",
        follows(&node)
    );
    assert!(follows(&node).contains("EXPIRED"), "{}", follows(&node));
}

#[test]
fn a_transfer_that_breaks_off_changes_nothing() {
    // A primary that sends the SOA and one record, then closes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut length = [0u8; 2];
            if stream.read_exact(&mut length).is_err() {
                continue;
            }
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
            if stream.read_exact(&mut query).is_err() {
                continue;
            }
            let reply = broken_reply(&query);
            let _ = stream.write_all(&(reply.len() as u16).to_be_bytes());
            let _ = stream.write_all(&reply);
        }
    });
    let node = Appliance::start(&authoritative_config());
    node.cli_ok(["zone", "follow", ZONE, "--primary", &addr.to_string()]);
    assert!(
        wait_until(CLUSTER_WAIT, || follows(&node)
            .contains("broke off after 2 records")),
        "{}",
        follows(&node)
    );
    assert_eq!(
        rcode(node.dns_addr(), "www.hq.test."),
        ResponseCode::ServFail
    );
}

/// The first message of an AXFR of [`ZONE`] (SOA and one A record), answering `query`.
fn broken_reply(query: &[u8]) -> Vec<u8> {
    use hickory_proto::op::{Message, MessageType};
    use hickory_proto::rr::{Name, RData, Record};
    let query = Message::from_vec(query).unwrap();
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.add_queries(query.queries.clone());
    let zone = Name::from_ascii(ZONE).unwrap();
    let soa = "ns1.hq.test. hostmaster.hq.test. 5 2 1 600 300";
    reply.add_answer(Record::from_rdata(
        zone.clone(),
        300,
        RData::try_from_str(RecordType::SOA, soa).unwrap(),
    ));
    let www = Name::from_ascii("www.hq.test.").unwrap();
    reply.add_answer(Record::from_rdata(
        www,
        300,
        RData::try_from_str(RecordType::A, "192.0.2.5").unwrap(),
    ));
    reply.to_vec().unwrap()
}
