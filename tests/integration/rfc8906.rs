//! The shapes of query real resolvers send (RFC 8906, "A Common Operational Problem in
//! DNS Servers: Failure to Communicate"): every query type gets an answer, unknown EDNS
//! options and flags are ignored (and not echoed), unknown header flags are ignored,
//! and ANY gets one RRset (RFC 8482), over UDP and, unless configured, TCP.

use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::{
    Appliance, Ask, answers_of, ask_tcp, ask_udp, authoritative_config, describe, send_udp,
    unused_upstream,
};

/// How long to wait for an answer that should come (a loaded machine is slow).
const ANSWER_WAIT: Duration = Duration::from_secs(10);

/// Types that only ever travel outside the question, or ask for a transfer: they have
/// answers of their own (FORMERR, REFUSED), tested in `malformed.rs`.
const META: [u16; 4] = [41, 250, 251, 252];

/// `packet` sent over UDP, its answer decoded.
fn exchange(appliance: &Appliance, packet: &[u8], what: &str) -> (Vec<u8>, Message) {
    let bytes = send_udp(appliance.dns_addr(), packet, ANSWER_WAIT)
        .unwrap_or_else(|| panic!("{what}: no answer"));
    let message = Message::from_vec(&bytes).unwrap_or_else(|e| panic!("{what}: the answer: {e}"));
    (bytes, message)
}

#[test]
fn every_query_type_gets_an_answer_and_only_its_own_records() {
    let appliance = Appliance::start(&authoritative_config());
    let types = (1..=260).chain([32768, 32769, 65280, 65534]);
    for code in types.filter(|code| !META.contains(code)) {
        let rtype = RecordType::from(code);
        let answer = ask_udp(
            appliance.dns_addr(),
            &Ask::new("www.example.internal.", rtype).no_recursion(),
        );
        let text = describe(&answer);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "type {code}\n{text}"
        );
        assert!(answer.metadata.authoritative, "type {code}\n{text}");
        assert_eq!(answer.queries[0].query_type(), rtype, "type {code}\n{text}");
        let expected: &[RecordType] = match rtype {
            RecordType::A => &[RecordType::A],
            RecordType::AAAA => &[RecordType::AAAA],
            RecordType::ANY => &[RecordType::A],
            _ => &[],
        };
        let got: Vec<RecordType> = answer.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(got, expected, "type {code}\n{text}");
        if expected.is_empty() {
            // NODATA: the zone's SOA says how long to remember it.
            assert!(
                (answer.authorities.iter()).any(|r| r.record_type() == RecordType::SOA),
                "type {code}\n{text}"
            );
        }
    }
}

#[test]
fn any_gets_one_rrset_over_udp_and_tcp_unless_full_answers_over_tcp_are_asked_for() {
    let appliance = Appliance::start(&authoritative_config());
    // www owns an A and an AAAA RRset, the apex an SOA and an NS: one of each is given.
    for (name, kept) in [
        ("www.example.internal.", RecordType::A),
        ("example.internal.", RecordType::NS),
    ] {
        let ask = Ask::new(name, RecordType::ANY);
        for answer in [
            ask_udp(appliance.dns_addr(), &ask),
            ask_tcp(appliance.dns_addr(), &ask),
        ] {
            let text = describe(&answer);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{text}"
            );
            assert!(!answer.answers.is_empty(), "{text}");
            assert!(
                answer.answers.iter().all(|r| r.record_type() == kept),
                "{name}: one RRset, {kept}\n{text}"
            );
        }
    }
    // Asked for, every RRset over TCP; still one over UDP.
    let full = Appliance::start(&format!(
        "[dns]\nallow_recursion = []\nfull_any_over_tcp = true\n\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    ));
    let ask = Ask::new("www.example.internal.", RecordType::ANY);
    let answer = ask_tcp(full.dns_addr(), &ask);
    let mut types: Vec<RecordType> = answer.answers.iter().map(|r| r.record_type()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [RecordType::A, RecordType::AAAA],
        "{}",
        describe(&answer)
    );
    let answer = ask_udp(full.dns_addr(), &ask);
    assert!(
        answer
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::A),
        "{}",
        describe(&answer)
    );

    // A name that does not exist is still NXDOMAIN.
    let answer = ask_udp(
        appliance.dns_addr(),
        &Ask::new("nothing.example.internal.", RecordType::ANY),
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::NXDomain,
        "{}",
        describe(&answer)
    );
}

#[test]
fn unknown_edns_options_and_flags_are_ignored_and_not_echoed() {
    let appliance = Appliance::start(&authoritative_config());
    let ask = Ask::new("www.example.internal.", RecordType::A).edns(1232);
    let plain = ask.to_bytes(0x8906);
    // The OPT record ends the packet: ... TTL (extended rcode, version, flags: 4 bytes),
    // RDLENGTH (2 bytes, 0 here), no options.
    let len = plain.len();
    assert_eq!(
        &plain[len - 2..],
        [0, 0],
        "an OPT without options ends the query"
    );

    // An unknown option (code 65001, 4 bytes of data).
    let mut with_option = plain.clone();
    let option = [0xfd, 0xe9, 0, 4, 1, 2, 3, 4];
    with_option[len - 2..].copy_from_slice(&u16::try_from(option.len()).unwrap().to_be_bytes());
    with_option.extend_from_slice(&option);
    // An unknown EDNS flag (the bit after DO).
    let mut with_flag = plain.clone();
    with_flag[len - 4] |= 0x40;
    // An unknown header flag (the Z bit, between RA and AD).
    let mut with_z = plain.clone();
    with_z[3] |= 0x40;

    for (what, packet) in [
        ("an unknown EDNS option", with_option),
        ("an unknown EDNS flag", with_flag),
        ("the header's Z bit", with_z),
    ] {
        let (bytes, answer) = exchange(&appliance, &packet, what);
        let text = describe(&answer);
        assert_eq!(answer.metadata.id, 0x8906, "{what}\n{text}");
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{what}\n{text}"
        );
        assert_eq!(
            answers_of(&answer, RecordType::A),
            ["10.0.0.10"],
            "{what}\n{text}"
        );
        let edns = answer
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("{what}: an EDNS query gets an OPT back\n{text}"));
        assert_eq!(edns.version(), 0, "{what}\n{text}");
        assert!(
            edns.options().options.is_empty(),
            "{what}: nothing echoed\n{text}"
        );
        // Flags we do not know are not set in the answer.
        assert_eq!(bytes[3] & 0x40, 0, "{what}: the header's Z bit is clear");
        let opt_flags = &bytes[bytes.len() - 4..bytes.len() - 2];
        assert_eq!(opt_flags[0] & 0x7f, 0, "{what}: no EDNS flag but DO");
        assert_eq!(opt_flags[1], 0, "{what}: no EDNS flag but DO");
    }
}
