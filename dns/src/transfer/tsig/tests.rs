use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::*;

const SECRET: &str = "c2VjcmV0IHNoYXJlZCB3aXRoIHRoZSBzZWNvbmRhcnkgMDEyMzQ1Njc4OQ==";

fn keys() -> TsigKeys {
    let mut keys = TsigKeys::default();
    keys.add("xfr.example.", "hmac-sha256", SECRET).unwrap();
    keys
}

/// An AXFR query signed with `key` as a secondary would send it.
fn signed_query(key: &TSigner) -> (Vec<u8>, Message, hickory_proto::rr::TSigVerifier) {
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii("zone.example.").unwrap(),
        RecordType::AXFR,
    ));
    let (tsig, verifier) = key.sign_message(&message, unix_now()).unwrap();
    message.signature = Some(tsig);
    let packet = message.to_vec().unwrap();
    let parsed = Message::from_vec(&packet).unwrap();
    (packet, parsed, verifier.unwrap())
}

fn other_key(name: &str, secret: &str) -> TSigner {
    let mut keys = TsigKeys::default();
    keys.add(name, "hmac-sha256", secret).unwrap();
    keys.get(&Name::from_ascii(name).unwrap()).unwrap().clone()
}

#[test]
fn keys_are_refused_with_the_reason() {
    let mut keys = TsigKeys::default();
    assert_eq!(
        keys.add("k.", "hmac-md5", SECRET),
        Err(KeyError::Algorithm("hmac-md5".into()))
    );
    assert_eq!(
        keys.add("k.", "hmac-sha256", "not base64!"),
        Err(KeyError::Secret("k.".into()))
    );
    assert_eq!(
        keys.add("k.", "hmac-sha256", ""),
        Err(KeyError::EmptySecret("k.".into()))
    );
    keys.add("k.", "HMAC-SHA512", SECRET).unwrap();
    assert_eq!(
        keys.add("K.", "hmac-sha256", SECRET),
        Err(KeyError::Duplicate("k.".into()))
    );
}

#[test]
fn a_query_signed_with_a_known_key_verifies_and_others_do_not() {
    let keys = keys();
    let known = keys
        .get(&Name::from_ascii("xfr.example.").unwrap())
        .unwrap();
    let (packet, message, _) = signed_query(known);
    let signed = keys.verify(&packet, &message).unwrap().unwrap();
    assert_eq!(signed.key_name().to_ascii(), "xfr.example.");

    let (packet, message, _) = signed_query(&other_key("xfr.example.", "d3Jvbmc="));
    let rejected = keys.verify(&packet, &message).unwrap_err();
    assert_eq!(rejected.reason(), "tsig_bad_signature");

    let (packet, message, _) = signed_query(&other_key("stranger.", SECRET));
    let rejected = keys.verify(&packet, &message).unwrap_err();
    assert_eq!(rejected.reason(), "tsig_unknown_key");
    assert_eq!(rejected.key_name().to_ascii(), "stranger.");

    let mut unsigned = Message::new(1, MessageType::Query, OpCode::Query);
    unsigned.add_query(Query::query(Name::root(), RecordType::AXFR));
    let packet = unsigned.to_vec().unwrap();
    assert!(keys.verify(&packet, &unsigned).unwrap().is_none());
}

#[test]
fn every_message_of_a_response_verifies_in_the_chain_a_secondary_keeps() {
    let keys = keys();
    let known = keys
        .get(&Name::from_ascii("xfr.example.").unwrap())
        .unwrap();
    let (packet, message, mut verifier) = signed_query(known);
    let mut signed = keys.verify(&packet, &message).unwrap().unwrap();
    for _ in 0..3 {
        let mut response = Message::new(7, MessageType::Response, OpCode::Query);
        response.add_query(message.queries[0].clone());
        let mut bytes = response.to_vec().unwrap();
        signed.sign(&mut bytes);
        verifier.verify(&bytes).expect("each message verifies");
    }

    // A message out of its place in the chain does not.
    let mut response = Message::new(7, MessageType::Response, OpCode::Query);
    response.add_query(message.queries[0].clone());
    let mut skipped = response.to_vec().unwrap();
    signed.sign(&mut skipped);
    let mut next = response.to_vec().unwrap();
    signed.sign(&mut next);
    verifier
        .verify(&next)
        .expect_err("a message signed after a skipped one");
}

#[test]
fn a_query_signed_by_another_implementation_verifies_up_to_its_old_time() {
    // fuzz/make_corpus.py signs this seed with Python's hmac, from RFC 8945's layout,
    // in 2023: the MAC must verify, and the time must not.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../fuzz/corpus/dns_message/axfr-tsig"
    );
    let packet = std::fs::read(path).unwrap();
    let message = Message::from_vec(&packet).unwrap();
    let mut keys = TsigKeys::default();
    keys.add("fuzz.", "hmac-sha256", "ZnV6emluZyBrZXkgb2Ygb3V0cG9zdA==")
        .unwrap();
    let rejected = keys.verify(&packet, &message).unwrap_err();
    assert_eq!(rejected.reason(), "tsig_bad_time");
}
