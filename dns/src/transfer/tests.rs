use std::net::Ipv4Addr;

use hickory_proto::op::{MessageType, OpCode, Query};
use hickory_proto::rr::{Record, TSigner};
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::wire::encode_records;

use super::*;
use crate::message::{Decoded, decode};

const ZONE: &str = "site.internal.";
const SECRET: &str = "c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBzZWNvbmRhcnkgMDEyMzQ1Njc4OQ==";
const SECONDARY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

fn rec(name: &str, rtype: RecordType, data: &str) -> Record {
    let name = Name::from_ascii(name).unwrap();
    Record::from_rdata(name, 300, RData::try_from_str(rtype, data).unwrap())
}

/// The zone with `hosts` A records.
fn site(hosts: usize) -> ReplicatedState {
    let soa = "ns1.site.internal. hostmaster.site.internal. 1 7200 3600 1209600 300";
    let mut records = vec![rec(ZONE, RecordType::SOA, soa)];
    records.push(rec(ZONE, RecordType::NS, "ns1.site.internal."));
    records.extend((0..hosts).map(|i| {
        let name = format!("host{i}.site.internal.");
        rec(
            &name,
            RecordType::A,
            &Ipv4Addr::from(0x0a00_0000 + i as u32).to_string(),
        )
    }));
    let mut state = ReplicatedState::default();
    let records = encode_records(&records).unwrap();
    let origin = ZONE.into();
    state
        .apply(&Command::CreateZone { origin, records })
        .unwrap();
    state
}

/// Transfers of the state `shared` holds, to [`SECONDARY`], signed with `key` if any.
fn transfers(shared: &Arc<ArcSwap<ReplicatedState>>, key: Option<&str>) -> Transfers {
    let source = shared.clone();
    let transfers = Transfers::new(Box::new(move || source.load_full()));
    let mut keys = TsigKeys::default();
    keys.add("xfr.", "hmac-sha256", SECRET).unwrap();
    transfers.set_rules(TransferRules {
        keys,
        secondaries: vec![Secondary {
            zones: vec![Name::from_ascii(ZONE).unwrap()],
            allow: vec!["192.0.2.0/24".parse().unwrap()],
            key: key.map(|key| Name::from_ascii(key).unwrap()),
            notify: Vec::new(),
        }],
    });
    transfers
}

fn signer(secret: &str) -> TSigner {
    let mut keys = TsigKeys::default();
    keys.add("xfr.", "hmac-sha256", secret).unwrap();
    keys.get(&Name::from_ascii("xfr.").unwrap())
        .unwrap()
        .clone()
}

/// A transfer query for the zone, with the client's SOA serial for IXFR, signed with
/// `key` if any; and the verifier of the answer's TSIG chain.
fn query(
    qtype: RecordType,
    serial: Option<u32>,
    key: Option<&TSigner>,
) -> (Vec<u8>, Option<hickory_proto::rr::TSigVerifier>) {
    let mut message = Message::new(99, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(ZONE).unwrap(), qtype));
    if let Some(serial) = serial {
        let soa = format!("ns1.site.internal. hostmaster.site.internal. {serial} 1 1 1 1");
        message.add_authority(rec(ZONE, RecordType::SOA, &soa));
    }
    let mut verifier = None;
    if let Some(key) = key {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (tsig, chain) = key.sign_message(&message, now).unwrap();
        message.signature = Some(tsig);
        verifier = chain;
    }
    (message.to_vec().unwrap(), verifier)
}

/// What `transfers` answers `packet` from `client`: each message, parsed.
fn ask(transfers: &Transfers, packet: &[u8], client: IpAddr) -> Vec<Vec<u8>> {
    let Decoded::Transfer(query) = decode(packet) else {
        panic!("not a transfer query");
    };
    match transfers.answer(packet, *query, client, &Metrics::default(), false) {
        Transfer::Reply(reply) => vec![reply],
        Transfer::Stream(mut outgoing) => {
            std::iter::from_fn(|| outgoing.next_message().unwrap()).collect()
        }
    }
}

fn records(messages: &[Vec<u8>]) -> Vec<Record> {
    let parsed = messages
        .iter()
        .map(|bytes| Message::from_vec(bytes).unwrap());
    parsed.flat_map(|message| message.answers).collect()
}

fn rcode(messages: &[Vec<u8>]) -> ResponseCode {
    Message::from_vec(&messages[0])
        .unwrap()
        .metadata
        .response_code
}

fn serial_of(record: &Record) -> u32 {
    match &record.data {
        RData::SOA(soa) => soa.serial,
        other => panic!("not an SOA: {other:?}"),
    }
}

#[test]
fn axfr_sends_the_zone_between_its_soa_in_several_messages() {
    let state = site(3_000);
    let expected: Vec<Record> = state.iter().flat_map(|zone| zone.records()).collect();
    let shared = Arc::new(ArcSwap::from_pointee(state));
    let (packet, _) = query(RecordType::AXFR, None, None);
    let messages = ask(&transfers(&shared, None), &packet, SECONDARY);
    assert!(messages.len() > 3, "{} messages", messages.len());
    assert!(messages.iter().all(|m| m.len() <= TRANSFER_BYTES_WITH_TSIG));
    let got = records(&messages);
    assert_eq!(got.first().unwrap().record_type(), RecordType::SOA);
    assert_eq!(got.last(), got.first());
    let mut body = got[1..got.len() - 1].to_vec();
    body.insert(0, got[0].clone());
    assert_eq!(body.len(), expected.len());
    for record in &expected {
        assert!(body.contains(record), "{record} missing");
    }
}

const TRANSFER_BYTES_WITH_TSIG: usize = stream::TRANSFER_MESSAGE_BYTES + 1024;

#[test]
fn transfers_are_refused_to_everyone_the_rules_do_not_name() {
    let shared = Arc::new(ArcSwap::from_pointee(site(1)));
    let (packet, _) = query(RecordType::AXFR, None, None);
    let stranger = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1));
    let open = transfers(&shared, None);
    assert_eq!(rcode(&ask(&open, &packet, stranger)), ResponseCode::Refused);

    // The secondary's rule names a key: unsigned, refused; signed with another secret,
    // NOTAUTH (BADSIG); signed right, the zone.
    let keyed = transfers(&shared, Some("xfr."));
    assert_eq!(
        rcode(&ask(&keyed, &packet, SECONDARY)),
        ResponseCode::Refused
    );
    let (forged, _) = query(RecordType::AXFR, None, Some(&signer("d3Jvbmc=")));
    assert_eq!(
        rcode(&ask(&keyed, &forged, SECONDARY)),
        ResponseCode::NotAuth
    );
    let (signed, _) = query(RecordType::AXFR, None, Some(&signer(SECRET)));
    assert_eq!(records(&ask(&keyed, &signed, SECONDARY)).len(), 4);
}

#[test]
fn a_signed_transfer_verifies_message_after_message() {
    let shared = Arc::new(ArcSwap::from_pointee(site(3_000)));
    let (packet, verifier) = query(RecordType::AXFR, None, Some(&signer(SECRET)));
    let mut verifier = verifier.unwrap();
    let messages = ask(&transfers(&shared, Some("xfr.")), &packet, SECONDARY);
    assert!(messages.len() > 3);
    for message in &messages {
        verifier.verify(message).expect("every message verifies");
    }
}

#[test]
fn ixfr_sends_the_steps_since_the_clients_serial_or_the_zone() {
    let mut state = site(2);
    let shared = Arc::new(ArcSwap::from_pointee(state.clone()));
    let transfers = transfers(&shared, None);
    let change = Command::ReplaceRRset {
        owner: "host0.site.internal.".into(),
        rtype: RecordType::A.into(),
        records: encode_records(&[rec("host0.site.internal.", RecordType::A, "10.9.9.9")]).unwrap(),
    };
    transfers.journal().reset(shared.load_full(), 1);
    let changes = state.apply(&change).unwrap();
    shared.store(Arc::new(state.clone()));
    transfers
        .journal()
        .applied(2, 2, shared.load_full(), [changes.as_slice()]);

    // From serial 1: current SOA, old SOA, removed, new SOA, added, current SOA.
    let (packet, _) = query(RecordType::IXFR, Some(1), None);
    let got = records(&ask(&transfers, &packet, SECONDARY));
    let serials: Vec<Option<u32>> = got
        .iter()
        .map(|record| (record.record_type() == RecordType::SOA).then(|| serial_of(record)))
        .collect();
    assert_eq!(serials, [Some(2), Some(1), None, Some(2), None, Some(2)]);
    assert_eq!(
        got[2],
        rec("host0.site.internal.", RecordType::A, "10.0.0.0")
    );
    assert_eq!(
        got[4],
        rec("host0.site.internal.", RecordType::A, "10.9.9.9")
    );

    // Current: the SOA alone. From a serial the journal never had: the whole zone.
    let (current, _) = query(RecordType::IXFR, Some(2), None);
    let got = records(&ask(&transfers, &current, SECONDARY));
    assert_eq!(got.iter().map(serial_of).collect::<Vec<_>>(), [2]);
    let (ahead, _) = query(RecordType::IXFR, Some(1_000), None);
    let got = records(&ask(&transfers, &ahead, SECONDARY));
    assert_eq!(got.len(), 1, "a serial ahead of ours is current too");
    let transfers_again = super::Transfers::new(Box::new({
        let shared = shared.clone();
        move || shared.load_full()
    }));
    transfers_again.set_rules(transfers.rules().as_ref().clone());
    let got = records(&ask(&transfers_again, &packet, SECONDARY));
    assert_eq!(
        got.len(),
        5,
        "SOA, NS, two hosts, SOA: the journal is empty"
    );
}

#[test]
fn serials_compare_as_rfc_1982_says() {
    assert!(serial_is_older(1, 2));
    assert!(!serial_is_older(2, 2));
    assert!(!serial_is_older(3, 2));
    assert!(serial_is_older(u32::MAX, 1), "wraps");
    assert!(!serial_is_older(1, u32::MAX));
}
