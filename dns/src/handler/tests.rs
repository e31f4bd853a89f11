//! The redirect verdict through the rest of the query path: no example plugin
//! redirects, so these tests hand the handler a [`Redirect`] as the policy hop would,
//! and check the answer from our zones, from the forwarder (a fake upstream on
//! loopback), and for a client that may not recurse. The other verdicts run through
//! real plugins and sockets in `dns/tests/policies.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::{A, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::wire::encode_records;
use outpost_core::zonefile::parse_zone;

use super::*;
use crate::forward::Upstream;

const ZONE: &str = "
@    300 SOA ns1 hostmaster 1 7200 3600 1209600 60
@    300 NS  ns1
ns1  300 A   10.0.0.1
www  300 A   10.0.0.10
";

/// The address the fake upstream gives every name.
const UPSTREAM_ADDRESS: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn zone_set() -> ZoneSet {
    let origin = name("example.internal.");
    let records = parse_zone(ZONE, &origin, 300).unwrap();
    let mut zones = ReplicatedState::default();
    zones
        .apply(&Command::CreateZone {
            origin: origin.to_string(),
            records: encode_records(&records).unwrap(),
        })
        .unwrap();
    ZoneSet::build(&zones)
}

/// Answers every A query with [`UPSTREAM_ADDRESS`], as a recursive resolver would.
async fn fake_upstream() -> SocketAddr {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok((len, peer)) = socket.recv_from(&mut buffer).await {
            let query = Message::from_vec(&buffer[..len]).unwrap();
            let mut answer = Message::response(query.metadata.id, OpCode::Query);
            answer.metadata.recursion_available = true;
            let question = query.queries[0].clone();
            answer.add_answer(Record::from_rdata(
                question.name().clone(),
                120,
                RData::A(A(UPSTREAM_ADDRESS)),
            ));
            answer.add_query(question);
            let _ = socket.send_to(&answer.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

fn handler(upstream: SocketAddr) -> QueryHandler {
    let metrics = Arc::new(Metrics::default());
    let forward = ForwardConfig {
        upstreams: vec![Upstream::Udp(upstream)],
        timeout: Duration::from_secs(2),
        cache_entries: 100,
        serve_stale: Duration::ZERO,
        tls: None,
        zones: Vec::new(),
    };
    QueryHandler::new(
        Arc::new(ArcSwap::from_pointee(zone_set())),
        Arc::new(Forwarder::new(&forward, metrics.clone())),
        vec!["127.0.0.0/8".parse().unwrap()],
        metrics,
    )
}

/// A handler whose forwarder is never asked (the tests query our zones only).
pub(super) fn handler_without_upstream() -> QueryHandler {
    handler("127.0.0.1:9".parse().unwrap())
}

fn question(qname: &str) -> Question {
    Question {
        id: 7,
        op_code: OpCode::Query,
        recursion_desired: true,
        checking_disabled: false,
        query: Query::query(name(qname), RecordType::A),
        edns: None,
        cookie: None,
        server_cookie: None,
    }
}

fn redirect(from: &str, to: &str) -> Redirect {
    Redirect {
        cname: Record::from_rdata(
            name(from),
            policy::REDIRECT_TTL,
            RData::CNAME(CNAME(name(to))),
        ),
        target: name(to),
        plugin: Arc::from("redirector"),
    }
}

/// The answer section as "owner TTL data" lines, the rcode and AA.
fn show(bytes: &[u8]) -> (ResponseCode, bool, Vec<String>) {
    let message = Message::from_vec(bytes).unwrap();
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert_eq!(message.queries[0].name(), &name("ads.example."));
    let answers = message
        .answers
        .iter()
        .map(|record| format!("{} {} {}", record.name, record.ttl, record.data))
        .collect();
    (
        message.metadata.response_code,
        message.metadata.authoritative,
        answers,
    )
}

/// The handler's answer to a query for `ads.example.` redirected to `to`: what it
/// decided, and the reply it wrote (empty unless it answered).
fn resolve(handler: &QueryHandler, to: &str, may_recurse: bool) -> (Handled, Vec<u8>) {
    let hop = Hop {
        client: IpAddr::from([192, 0, 2, 1]),
        transport: Transport::Udp,
        limit: 512,
        started: Instant::now(),
    };
    let mut reply = Vec::new();
    let handled = handler.resolve(
        question("ads.example."),
        Some(Box::new(redirect("ads.example.", to))),
        may_recurse,
        hop,
        &mut reply,
    );
    (handled, reply)
}

#[tokio::test]
async fn a_redirect_to_our_zones_is_answered_from_them_behind_the_cname() {
    let handler = handler(fake_upstream().await);
    let (Handled::Reply, bytes) = resolve(&handler, "www.example.internal.", true) else {
        panic!("expected an answer from our zones");
    };
    assert_eq!(
        show(&bytes),
        (
            ResponseCode::NoError,
            true,
            vec![
                "ads.example. 60 www.example.internal.".to_string(),
                "www.example.internal. 300 10.0.0.10".to_string(),
            ]
        )
    );
    // The rcode is the target's.
    let (Handled::Reply, bytes) = resolve(&handler, "nothere.example.internal.", true) else {
        panic!("expected an answer from our zones");
    };
    let (rcode, _, answers) = show(&bytes);
    assert_eq!(rcode, ResponseCode::NXDomain);
    assert_eq!(answers, ["ads.example. 60 nothere.example.internal."]);
}

#[tokio::test]
async fn a_redirect_out_of_our_zones_is_forwarded_and_the_cname_prepended() {
    let handler = handler(fake_upstream().await);
    let (Handled::Forward(request), _) = resolve(&handler, "safe.example.org.", true) else {
        panic!("expected the target to be forwarded");
    };
    let bytes = handler.forward(request, Transport::Udp, None).await;
    assert_eq!(
        show(&bytes),
        (
            ResponseCode::NoError,
            false,
            vec![
                "ads.example. 60 safe.example.org.".to_string(),
                format!("safe.example.org. 120 {UPSTREAM_ADDRESS}"),
            ]
        )
    );

    // A client that may not recurse gets the CNAME alone, to follow itself.
    let (Handled::Reply, bytes) = resolve(&handler, "safe.example.org.", false) else {
        panic!("expected an answer without forwarding");
    };
    assert_eq!(
        show(&bytes),
        (
            ResponseCode::NoError,
            true,
            vec!["ads.example. 60 safe.example.org.".to_string()]
        )
    );
}

#[test]
fn without_plugins_the_policy_hop_is_skipped() {
    let handler = handler(SocketAddr::from(([127, 0, 0, 1], 9)));
    assert!(handler.policies().is_empty());
    let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let applied = handler.apply_policies(
        &question("www.example.internal."),
        client,
        Transport::Udp,
        true,
    );
    assert!(matches!(applied, Applied::Continue));
}
