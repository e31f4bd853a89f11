//! `outpost_dns::message::decode` on any UDP payload: the first hop of the query path
//! after the socket.
//!
//! Checks: decoding never panics; only packets shorter than a header and responses
//! are dropped; every early reply is a response with the query's id that hickory reads
//! back; a cleaned question, answered with an empty NOERROR, encodes within the
//! client's UDP limit and reads back too. A zone transfer query goes through the
//! transfer rules of a node that allows everyone (so the AXFR or IXFR is made), and a
//! signed query through the TSIG check of a node that knows the seeds' key: every
//! message they answer with is a response to the query that hickory reads back.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use outpost_core::state::{Command, ReplicatedState};
use outpost_core::zonefile::parse_zone;
use outpost_core::wire::encode_records;
use outpost_dns::message::{self, Decoded, Outcome, WholeQuery};
use outpost_dns::metrics::Metrics;
use outpost_dns::transfer::tsig::TsigKeys;
use outpost_dns::transfer::{Secondary, Transfer, TransferRules, Transfers};
use outpost_fuzz::{CappedAllocator, check_seed};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// A DNS header is 12 bytes; byte 2 holds the QR bit.
const HEADER_LEN: usize = 12;
const QR_BIT: u8 = 0x80;

fuzz_target!(init: outpost_fuzz::init(), |packet: &[u8]| {
    check_seed(|| match Message::from_vec(packet) {
        Ok(_) => Ok(()),
        Err(e) => Err(format!("hickory does not read it: {e}")),
    });
    match message::decode(packet) {
        Decoded::Drop => assert!(
            packet.len() < HEADER_LEN || packet[2] & QR_BIT != 0,
            "a query with a full header was dropped without a reply"
        ),
        Decoded::Reply(reply) => check_reply(packet, &reply),
        Decoded::Transfer(query) => transfer(packet, *query),
        Decoded::Signed(query) => signed(packet, &query),
        Decoded::Notify(query) => {
            let metrics = Metrics::default();
            check_reply(packet, &transfers().notify(packet, *query, CLIENT, &metrics));
        }
        Decoded::Query(question) => {
            let limit = message::udp_limit(&question);
            let reply = message::encode(&question, Outcome::bare(ResponseCode::NoError), limit);
            assert!(
                reply.len() <= limit,
                "an answer of {} bytes exceeds the UDP limit of {limit}",
                reply.len()
            );
            check_reply(packet, &reply);
        }
    }
});

/// A reply we send must be a response to this query that a client can read.
fn check_reply(packet: &[u8], reply: &[u8]) {
    let message = match Message::from_vec(reply) {
        Ok(message) => message,
        Err(e) => panic!("our reply {reply:02x?} does not decode: {e}"),
    };
    assert_eq!(message.metadata.message_type, MessageType::Response);
    assert_eq!(
        message.metadata.id,
        u16::from_be_bytes([packet[0], packet[1]]),
        "the reply carries another id than the query"
    );
}

/// The seeds' TSIG key (fuzz/make_corpus.py).
const KEY: (&str, &str) = ("fuzz.", "ZnV6emluZyBrZXkgb2Ygb3V0cG9zdA==");
const ZONE: &str = "$ORIGIN example.internal.\n@ 300 IN SOA ns1 hostmaster 1 2 3 4 5\n\
                    @ 300 IN NS ns1\nns1 300 IN A 192.0.2.1\nwww 300 IN A 192.0.2.2\n";

/// Transfers of example.internal. to everyone, knowing the seeds' key.
fn transfers() -> &'static Transfers {
    static TRANSFERS: OnceLock<Transfers> = OnceLock::new();
    TRANSFERS.get_or_init(|| {
        let origin = Name::from_ascii("example.internal.").unwrap();
        let records = parse_zone(ZONE, &origin, 300).unwrap();
        let mut state = ReplicatedState::default();
        let records = encode_records(&records).unwrap();
        let origin = origin.to_ascii();
        state.apply(&Command::CreateZone { origin, records }).unwrap();
        let state = Arc::new(state);
        let transfers = Transfers::new(Box::new(move || state.clone()));
        let mut keys = TsigKeys::default();
        keys.add(KEY.0, "hmac-sha256", KEY.1).unwrap();
        let everyone = Secondary {
            zones: Vec::new(),
            allow: vec!["0.0.0.0/0".parse().unwrap()],
            key: None,
            notify: Vec::new(),
        };
        transfers.set_rules(TransferRules {
            keys,
            secondaries: vec![everyone],
        });
        transfers
    })
}

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// An AXFR or IXFR as TCP would serve it: each message a response to the query.
fn transfer(packet: &[u8], query: WholeQuery) {
    match transfers().answer(packet, query, CLIENT, &Metrics::default(), false) {
        Transfer::Reply(reply) => check_reply(packet, &reply),
        Transfer::Stream(mut outgoing) => {
            while let Some(message) = outgoing.next_message().unwrap() {
                check_reply(packet, &message);
            }
        }
    }
}

/// A signed query: a TSIG error, or a reply signed in the key's chain.
fn signed(packet: &[u8], query: &WholeQuery) {
    let WholeQuery { question, message } = query;
    match transfers().verify(packet, question, message, CLIENT) {
        Err(reply) => check_reply(packet, &reply),
        Ok(signing) => {
            let mut reply = message::encode(question, Outcome::bare(ResponseCode::NoError), 512);
            if let Some(mut signing) = signing {
                signing.sign(&mut reply);
            }
            check_reply(packet, &reply);
        }
    }
}
