//! `outpost_dns::message::decode` on any UDP payload: the first hop of the query path
//! after the socket.
//!
//! Checks: decoding never panics; only packets shorter than a header and responses
//! are dropped; every early reply is a response with the query's id that hickory reads
//! back; a cleaned question, answered with an empty NOERROR, encodes within the
//! client's UDP limit and reads back too.
#![no_main]

use hickory_proto::op::{Message, MessageType, ResponseCode};
use libfuzzer_sys::fuzz_target;
use outpost_dns::message::{self, Decoded, Outcome};
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
        // A transfer or a signed query: what the handler answers first is the question
        // with a bare reply (a refusal, a TSIG error), so it must encode as any other.
        Decoded::Transfer(query) | Decoded::Signed(query) => {
            let question = &query.question;
            let limit = message::udp_limit(question);
            let reply = message::encode(question, Outcome::bare(ResponseCode::Refused), limit);
            check_reply(packet, &reply);
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
