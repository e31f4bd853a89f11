//! Authoritative answers from our zones, as `dig` sees them over UDP and TCP: the AA
//! bit, NXDOMAIN versus NODATA with the SOA (RFC 2308), CNAME chains, wildcards
//! (RFC 4592), empty non-terminals, referrals with glue, and REFUSED outside our zones.

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use outpost_tests::{
    Appliance, Ask, answers_of, ask_tcp, ask_udp, authoritative_config, default_config, describe,
    query_udp,
};

/// A zone with every shape the answer engine must get right.
const SITE_ZONE: &str = r#"
$ORIGIN site.test.
$TTL 600
@          3600 IN SOA ns1 hostmaster 2024010101 7200 3600 1209600 120
@               IN NS  ns1
ns1             IN A   10.1.0.1
host            IN A   10.1.0.2
alias1          IN CNAME alias2
alias2          IN CNAME host
dangling        IN CNAME missing
into-example    IN CNAME www.example.internal.
*.dev           IN A   10.1.9.9
*.dev           IN TXT "wild"
known.dev       IN A   10.1.9.1
deep.ent.path   IN A   10.1.0.3
child           IN NS  ns.child
child           IN NS  ns.elsewhere.example.
ns.child        IN A   10.1.5.1
"#;

/// A zone whose SOA TTL is below its MINIMUM: negative answers use the SOA TTL.
const LOW_ZONE: &str = "
$ORIGIN low.test.
@ 60 IN SOA ns1 hostmaster 1 7200 3600 1209600 600
@ 60 IN NS ns1
ns1 60 IN A 10.2.0.1
";

fn site() -> Appliance {
    let appliance = Appliance::start(&authoritative_config());
    appliance.import_zone("site.test.", SITE_ZONE);
    appliance
}

/// Both transports, so every rule is checked over UDP and TCP.
fn both(appliance: &Appliance, ask: &Ask) -> [Message; 2] {
    [
        ask_udp(appliance.dns_addr(), ask),
        ask_tcp(appliance.dns_addr(), ask),
    ]
}

fn owners(message: &Message) -> Vec<String> {
    message
        .answers
        .iter()
        .map(|r| format!("{} {}", r.name, r.record_type()))
        .collect()
}

/// Asserts a negative answer: `rcode`, AA, nothing in the answer section (unless a
/// CNAME led there), exactly the zone's SOA in authority with TTL `soa_ttl`.
fn assert_negative(message: &Message, rcode: ResponseCode, zone: &str, soa_ttl: u32) {
    let text = describe(message);
    assert_eq!(message.metadata.response_code, rcode, "{text}");
    assert!(
        message.metadata.authoritative,
        "AA on a negative answer from our zone\n{text}"
    );
    assert!(
        message
            .answers
            .iter()
            .all(|r| r.record_type() == RecordType::CNAME),
        "no data in the answer section\n{text}"
    );
    assert_eq!(
        message.authorities.len(),
        1,
        "exactly the SOA in authority\n{text}"
    );
    let soa = &message.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA, "{text}");
    assert_eq!(soa.name.to_ascii(), zone, "{text}");
    assert_eq!(
        soa.ttl, soa_ttl,
        "SOA TTL = min(SOA TTL, MINIMUM) (RFC 2308)\n{text}"
    );
}

#[test]
fn example_zone_is_answered_authoritatively_over_udp_and_tcp() {
    let appliance = Appliance::start(&default_config());
    let cases: &[(&str, RecordType, &[&str], u32)] = &[
        ("www.example.internal.", RecordType::A, &["10.0.0.10"], 300),
        (
            "www.example.internal.",
            RecordType::AAAA,
            &["fd00::10"],
            300,
        ),
        (
            "printer.example.internal.",
            RecordType::A,
            &["10.0.0.7"],
            300,
        ),
        ("ns1.example.internal.", RecordType::A, &["127.0.0.1"], 300),
        (
            "mail.example.internal.",
            RecordType::MX,
            &["10 www.example.internal."],
            300,
        ),
        (
            "example.internal.",
            RecordType::NS,
            &["ns1.example.internal."],
            300,
        ),
        (
            "example.internal.",
            RecordType::SOA,
            &["ns1.example.internal. hostmaster.example.internal. 1 7200 3600 1209600 300"],
            3600,
        ),
    ];
    for (name, rtype, expected, ttl) in cases {
        for answer in both(&appliance, &Ask::new(name, *rtype)) {
            let text = describe(&answer);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{name} {rtype}\n{text}"
            );
            assert!(
                answer.metadata.authoritative,
                "AA for {name} {rtype}\n{text}"
            );
            assert!(!answer.metadata.truncation, "{text}");
            assert_eq!(answer.queries.len(), 1, "the question is echoed\n{text}");
            assert_eq!(answer.queries[0].name().to_ascii(), *name, "{text}");
            assert_eq!(
                answers_of(&answer, *rtype),
                *expected,
                "{name} {rtype}\n{text}"
            );
            assert!(
                answer.answers.iter().all(|r| r.ttl == *ttl),
                "TTL {ttl}\n{text}"
            );
        }
    }
}

#[test]
fn negative_answers_distinguish_nxdomain_from_nodata_and_carry_the_soa() {
    let appliance = site();
    appliance.import_zone("low.test.", LOW_ZONE);
    for answer in both(
        &appliance,
        &Ask::new("nope.example.internal.", RecordType::A),
    ) {
        assert_negative(&answer, ResponseCode::NXDomain, "example.internal.", 300);
    }
    // The name exists, the type does not: NODATA, never NXDOMAIN.
    for answer in both(
        &appliance,
        &Ask::new("www.example.internal.", RecordType::TXT),
    ) {
        assert_negative(&answer, ResponseCode::NoError, "example.internal.", 300);
    }
    for answer in both(&appliance, &Ask::new("nope.site.test.", RecordType::AAAA)) {
        assert_negative(&answer, ResponseCode::NXDomain, "site.test.", 120);
    }
    for answer in both(&appliance, &Ask::new("host.site.test.", RecordType::MX)) {
        assert_negative(&answer, ResponseCode::NoError, "site.test.", 120);
    }
    // SOA TTL 60 below MINIMUM 600: the lesser is 60.
    for answer in both(&appliance, &Ask::new("nope.low.test.", RecordType::A)) {
        assert_negative(&answer, ResponseCode::NXDomain, "low.test.", 60);
    }
    for answer in both(&appliance, &Ask::new("ns1.low.test.", RecordType::AAAA)) {
        assert_negative(&answer, ResponseCode::NoError, "low.test.", 60);
    }
}

#[test]
fn cname_chains_are_followed_through_our_zones() {
    let appliance = site();
    for answer in both(
        &appliance,
        &Ask::new("docs.example.internal.", RecordType::A),
    ) {
        let text = describe(&answer);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{text}"
        );
        assert!(answer.metadata.authoritative, "{text}");
        assert_eq!(
            owners(&answer),
            ["docs.example.internal. CNAME", "www.example.internal. A"],
            "the CNAME, then its target's A\n{text}"
        );
        assert_eq!(answers_of(&answer, RecordType::A), ["10.0.0.10"], "{text}");
    }
    for answer in both(&appliance, &Ask::new("alias1.site.test.", RecordType::A)) {
        let text = describe(&answer);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{text}"
        );
        assert!(answer.metadata.authoritative, "{text}");
        assert_eq!(
            owners(&answer),
            [
                "alias1.site.test. CNAME",
                "alias2.site.test. CNAME",
                "host.site.test. A"
            ],
            "the whole chain in order\n{text}"
        );
        assert_eq!(answers_of(&answer, RecordType::A), ["10.1.0.2"], "{text}");
    }
    // A chain from one of our zones into another.
    for answer in both(
        &appliance,
        &Ask::new("into-example.site.test.", RecordType::AAAA),
    ) {
        let text = describe(&answer);
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::NoError,
            "{text}"
        );
        assert_eq!(
            owners(&answer),
            [
                "into-example.site.test. CNAME",
                "www.example.internal. AAAA"
            ],
            "{text}"
        );
    }
    // Asking for the CNAME itself gives the CNAME only.
    let answer = query_udp(
        appliance.dns_addr(),
        "alias1.site.test.",
        RecordType::CNAME,
        None,
    );
    assert_eq!(
        owners(&answer),
        ["alias1.site.test. CNAME"],
        "{}",
        describe(&answer)
    );
    // A CNAME to a missing name: the CNAME, NXDOMAIN for the target (RFC 6604), SOA.
    for answer in both(&appliance, &Ask::new("dangling.site.test.", RecordType::A)) {
        assert_eq!(
            owners(&answer),
            ["dangling.site.test. CNAME"],
            "{}",
            describe(&answer)
        );
        assert_negative(&answer, ResponseCode::NXDomain, "site.test.", 120);
    }
}

#[test]
fn wildcards_follow_rfc_4592() {
    let appliance = site();
    for name in ["anything.dev.site.test.", "a.b.dev.site.test."] {
        for answer in both(&appliance, &Ask::new(name, RecordType::A)) {
            let text = describe(&answer);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::NoError,
                "{text}"
            );
            assert!(answer.metadata.authoritative, "{text}");
            assert_eq!(answers_of(&answer, RecordType::A), ["10.1.9.9"], "{text}");
            assert_eq!(
                answer.answers[0].name.to_ascii(),
                name,
                "the owner is the query name, not *\n{text}"
            );
            assert_eq!(answer.answers[0].ttl, 600, "{text}");
        }
        let answer = query_udp(appliance.dns_addr(), name, RecordType::TXT, None);
        assert_eq!(
            answers_of(&answer, RecordType::TXT),
            ["\"wild\""],
            "{}",
            describe(&answer)
        );
    }
    // The wildcard has no AAAA: NODATA, with the SOA.
    for answer in both(
        &appliance,
        &Ask::new("anything.dev.site.test.", RecordType::AAAA),
    ) {
        assert_negative(&answer, ResponseCode::NoError, "site.test.", 120);
    }
    // A name that exists is never covered by the wildcard, for any type.
    for answer in both(&appliance, &Ask::new("known.dev.site.test.", RecordType::A)) {
        assert_eq!(
            answers_of(&answer, RecordType::A),
            ["10.1.9.1"],
            "{}",
            describe(&answer)
        );
    }
    for answer in both(
        &appliance,
        &Ask::new("known.dev.site.test.", RecordType::TXT),
    ) {
        assert_negative(&answer, ResponseCode::NoError, "site.test.", 120);
    }
    // Below an existing name the closest encloser is that name, which has no wildcard.
    for answer in both(
        &appliance,
        &Ask::new("sub.known.dev.site.test.", RecordType::A),
    ) {
        assert_negative(&answer, ResponseCode::NXDomain, "site.test.", 120);
    }
    // The wildcard's parent exists (as an empty non-terminal) and is not covered.
    for answer in both(&appliance, &Ask::new("dev.site.test.", RecordType::A)) {
        assert_negative(&answer, ResponseCode::NoError, "site.test.", 120);
    }
}

#[test]
fn empty_non_terminals_are_nodata_not_nxdomain() {
    let appliance = site();
    for name in ["path.site.test.", "ent.path.site.test."] {
        for answer in both(&appliance, &Ask::new(name, RecordType::A)) {
            assert_negative(&answer, ResponseCode::NoError, "site.test.", 120);
        }
    }
    let answer = query_udp(
        appliance.dns_addr(),
        "deep.ent.path.site.test.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.1.0.3"],
        "{}",
        describe(&answer)
    );
    let answer = query_udp(
        appliance.dns_addr(),
        "other.path.site.test.",
        RecordType::A,
        None,
    );
    assert_negative(&answer, ResponseCode::NXDomain, "site.test.", 120);
}

#[test]
fn delegations_are_answered_with_referrals_and_glue() {
    let appliance = site();
    for name in [
        "www.child.site.test.",
        "child.site.test.",
        "deep.www.child.site.test.",
    ] {
        for rtype in [RecordType::A, RecordType::NS] {
            for answer in both(&appliance, &Ask::new(name, rtype)) {
                let text = describe(&answer);
                assert_eq!(
                    answer.metadata.response_code,
                    ResponseCode::NoError,
                    "{name} {rtype}\n{text}"
                );
                assert!(
                    !answer.metadata.authoritative,
                    "a referral is not authoritative\n{text}"
                );
                assert!(
                    answer.answers.is_empty(),
                    "a referral has no answers\n{text}"
                );
                let ns: Vec<String> = answer
                    .authorities
                    .iter()
                    .filter(|r| r.record_type() == RecordType::NS)
                    .map(|r| format!("{} {}", r.name, r.data))
                    .collect::<Vec<_>>();
                let mut ns = ns;
                ns.sort();
                assert_eq!(
                    ns,
                    [
                        "child.site.test. ns.child.site.test.",
                        "child.site.test. ns.elsewhere.example."
                    ],
                    "the delegation's NS in authority\n{text}"
                );
                assert!(
                    answer
                        .authorities
                        .iter()
                        .all(|r| r.record_type() != RecordType::SOA),
                    "no SOA in a referral\n{text}"
                );
                let glue: Vec<String> = answer
                    .additionals
                    .iter()
                    .filter(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
                    .map(|r| format!("{} {}", r.name, r.data))
                    .collect();
                assert_eq!(
                    glue,
                    ["ns.child.site.test. 10.1.5.1"],
                    "glue for the in-zone server only\n{text}"
                );
            }
        }
    }
}

#[test]
fn names_outside_our_zones_are_refused_when_the_client_may_not_recurse() {
    let appliance = site();
    for name in ["example.com.", "internal.", "test.", "www.example.org."] {
        for answer in both(&appliance, &Ask::new(name, RecordType::A)) {
            let text = describe(&answer);
            assert_eq!(
                answer.metadata.response_code,
                ResponseCode::Refused,
                "{name}\n{text}"
            );
            assert!(!answer.metadata.authoritative, "{text}");
            assert!(
                !answer.metadata.recursion_available,
                "no recursion offered to this client\n{text}"
            );
            assert!(
                answer.answers.is_empty() && answer.authorities.is_empty(),
                "{text}"
            );
        }
    }
    // Our own zones are still answered for the same client.
    let answer = query_udp(appliance.dns_addr(), "host.site.test.", RecordType::A, None);
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["10.1.0.2"],
        "{}",
        describe(&answer)
    );
    // Zone transfers are not offered, over either transport.
    for answer in both(&appliance, &Ask::new("site.test.", RecordType::AXFR)) {
        assert_eq!(
            answer.metadata.response_code,
            ResponseCode::Refused,
            "{}",
            describe(&answer)
        );
        assert!(answer.answers.is_empty(), "{}", describe(&answer));
    }
}

#[test]
fn names_match_case_insensitively_and_the_question_is_echoed_as_asked() {
    let appliance = Appliance::start(&authoritative_config());
    for answer in both(
        &appliance,
        &Ask::new("WwW.ExAmPlE.InTeRnAl.", RecordType::A),
    ) {
        let text = describe(&answer);
        assert_eq!(answers_of(&answer, RecordType::A), ["10.0.0.10"], "{text}");
        assert!(answer.metadata.authoritative, "{text}");
        assert_eq!(
            answer.queries[0].name().to_string(),
            "WwW.ExAmPlE.InTeRnAl.",
            "0x20 case kept\n{text}"
        );
    }
}

#[test]
fn a_disabled_example_zone_is_not_served() {
    let config = authoritative_config().replace("[dns]", "example_zone = false\n\n[dns]");
    let appliance = Appliance::start(&config);
    let answer = query_udp(
        appliance.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::Refused,
        "{}",
        describe(&answer)
    );
    let (status, zones) = appliance.api_json("GET", "/v1/zones", None);
    assert_eq!(status, 200);
    assert_eq!(
        zones,
        serde_json::json!([]),
        "no zone on a node started with example_zone = false"
    );
}
