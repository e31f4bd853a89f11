//! EDNS(0) payload sizes, truncation over UDP and complete answers over TCP.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::dns::{ask_udp_raw, tcp_connect, tcp_read, tcp_send};
use outpost_tests::{
    Appliance, Ask, answers_of, ask_tcp, authoritative_config, describe, send_udp,
};

/// TXT records of 100 characters each: `many` has 40 (about 4.6 KB, more than any UDP
/// answer we send), `mid` has 8 (about 950 bytes: over 512 and 600, under 1232).
fn big_zone() -> (String, Vec<String>, Vec<String>) {
    let text = |name: &str, i: usize| format!("{name}-{i:02}-{}", "x".repeat(100 - name.len() - 4));
    let many: Vec<String> = (0..40).map(|i| text("many", i)).collect();
    let mid: Vec<String> = (0..8).map(|i| text("mid", i)).collect();
    let mut zone = String::from(
        "$ORIGIN big.test.\n$TTL 300\n@ IN SOA ns1 hostmaster 1 7200 3600 1209600 300\n@ IN NS ns1\nns1 IN A 10.3.0.1\n",
    );
    for txt in &many {
        zone.push_str(&format!("many IN TXT \"{txt}\"\n"));
    }
    for txt in &mid {
        zone.push_str(&format!("mid IN TXT \"{txt}\"\n"));
    }
    let quote = |list: &[String]| {
        let mut quoted: Vec<String> = list.iter().map(|t| format!("\"{t}\"")).collect();
        quoted.sort();
        quoted
    };
    (zone, quote(&many), quote(&mid))
}

fn big() -> (Appliance, Vec<String>, Vec<String>) {
    let appliance = Appliance::start(&authoritative_config());
    let (zone, many, mid) = big_zone();
    appliance.import_zone("big.test.", &zone);
    (appliance, many, mid)
}

/// Asserts a UDP answer of at most `limit` bytes, truncated: TC set, the question
/// alone, every section empty.
fn assert_truncated(bytes: &[u8], answer: &Message, limit: usize) {
    let text = describe(answer);
    assert!(
        bytes.len() <= limit,
        "{} bytes over the {limit}-byte limit\n{text}",
        bytes.len()
    );
    assert!(
        answer.metadata.truncation,
        "TC set so the client retries over TCP\n{text}"
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NoError,
        "{text}"
    );
    assert_eq!(answer.queries.len(), 1, "the question is kept\n{text}");
    assert!(
        answer.answers.is_empty() && answer.authorities.is_empty() && answer.additionals.is_empty(),
        "a truncated answer has empty sections\n{text}"
    );
}

fn udp(addr: SocketAddr, name: &str, edns: Option<u16>) -> (Vec<u8>, Message) {
    let mut ask = Ask::new(name, RecordType::TXT);
    ask.edns = edns;
    ask_udp_raw(addr, &ask)
}

#[test]
fn a_large_answer_is_truncated_over_udp_and_complete_over_tcp() {
    let (appliance, many, _) = big();
    let addr = appliance.dns_addr();
    let (bytes, answer) = udp(addr, "many.big.test.", None);
    assert_truncated(&bytes, &answer, 512);
    for payload in [1232, 4096, 65_000] {
        let (bytes, answer) = udp(addr, "many.big.test.", Some(payload));
        assert_truncated(&bytes, &answer, 1232);
        assert!(
            answer.edns.is_some(),
            "an EDNS query gets an OPT record back\n{}",
            describe(&answer)
        );
    }
    // What a client does next: the same question over TCP gets everything.
    for edns in [None, Some(1232)] {
        let mut ask = Ask::new("many.big.test.", RecordType::TXT);
        ask.edns = edns;
        let answer = ask_tcp(addr, &ask);
        let text = describe(&answer);
        assert!(!answer.metadata.truncation, "{text}");
        assert!(answer.metadata.authoritative, "{text}");
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{text}"
        );
        assert_eq!(
            answers_of(&answer, RecordType::TXT),
            many,
            "all 40 TXT records over TCP"
        );
    }
}

#[test]
fn the_client_edns_payload_size_is_honoured_up_to_1232() {
    let (appliance, _, mid) = big();
    let addr = appliance.dns_addr();
    // About 950 bytes: too big without EDNS, for 512 or 600, and for sizes under 512,
    // which count as 512 (RFC 6891 section 6.2.5).
    let (bytes, answer) = udp(addr, "mid.big.test.", None);
    assert_truncated(&bytes, &answer, 512);
    assert!(
        answer.edns.is_none(),
        "no OPT record for a client that sent none\n{}",
        describe(&answer)
    );
    for payload in [100, 512, 600] {
        let (bytes, answer) = udp(addr, "mid.big.test.", Some(payload));
        assert_truncated(&bytes, &answer, usize::from(payload.max(512)));
    }
    for payload in [1000, 1232, 4096] {
        let (bytes, answer) = udp(addr, "mid.big.test.", Some(payload));
        let text = describe(&answer);
        assert!(
            bytes.len() <= usize::from(payload.min(1232)),
            "{} bytes\n{text}",
            bytes.len()
        );
        assert!(!answer.metadata.truncation, "fits in {payload}\n{text}");
        assert_eq!(answers_of(&answer, RecordType::TXT), mid, "{text}");
        let edns = answer.edns.as_ref().expect("an OPT record in the answer");
        assert_eq!(edns.max_payload(), 1232, "we advertise 1232\n{text}");
        assert_eq!(edns.version(), 0, "{text}");
    }
    // Small answers are not affected.
    let (_, answer) = udp(addr, "ns1.big.test.", None);
    assert!(!answer.metadata.truncation, "{}", describe(&answer));
}

#[test]
fn an_unknown_edns_version_gets_badvers() {
    let appliance = Appliance::start(&authoritative_config());
    let mut query = Message::query();
    query.metadata.id = 4242;
    query.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("www.example.internal.").unwrap(),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_version(1);
    edns.set_max_payload(1232);
    query.set_edns(edns);
    let bytes = send_udp(
        appliance.dns_addr(),
        &query.to_vec().unwrap(),
        std::time::Duration::from_secs(10),
    )
    .expect("an answer to an EDNS version 1 query");
    let answer = Message::from_vec(&bytes).expect("the answer decodes");
    let text = describe(&answer);
    assert_eq!(answer.metadata.id, 4242, "{text}");
    // BADVERS is 16 (RFC 6891); hickory decodes 16 as BADSIG, which shares the value.
    assert_eq!(
        u16::from(answer.metadata.response_code),
        16,
        "BADVERS\n{text}"
    );
    assert_eq!(
        answer.edns.as_ref().map(Edns::version),
        Some(0),
        "we speak version 0\n{text}"
    );
    assert!(answer.answers.is_empty(), "{text}");
}

#[test]
fn one_tcp_connection_serves_several_queries_in_order() {
    let (appliance, many, mid) = big();
    let mut stream = tcp_connect(appliance.dns_addr());
    let questions = [
        (101, "many.big.test.", RecordType::TXT),
        (102, "www.example.internal.", RecordType::A),
        (103, "mid.big.test.", RecordType::TXT),
        (104, "nope.big.test.", RecordType::A),
    ];
    // Pipelined: all questions first, then the answers (RFC 7766 section 6.2.1).
    for (id, name, rtype) in questions {
        tcp_send(&mut stream, &Ask::new(name, rtype).to_bytes(id));
    }
    let mut answers = Vec::new();
    for _ in questions {
        let bytes = tcp_read(&mut stream).expect("an answer on the same connection");
        answers.push(Message::from_vec(&bytes).expect("the answer decodes"));
    }
    answers.sort_by_key(|answer| answer.metadata.id);
    let ids: Vec<u16> = answers.iter().map(|a| a.metadata.id).collect();
    assert_eq!(ids, [101, 102, 103, 104]);
    assert_eq!(answers_of(&answers[0], RecordType::TXT), many);
    assert_eq!(answers_of(&answers[1], RecordType::A), ["10.0.0.10"]);
    assert_eq!(answers_of(&answers[2], RecordType::TXT), mid);
    assert_eq!(
        answers[3].metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&answers[3])
    );
}
