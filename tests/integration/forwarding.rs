//! Forwarding and the cache, against a second real `outpost` started by the test as
//! the upstream (authoritative for `upstream.test.`, recursion for nobody): answers
//! with RA set and AA clear, positive and negative caching for the TTLs given,
//! serve-stale (RFC 8767) once the upstream is killed, TCP upstreams and failover,
//! and REFUSED for clients not allowed to recurse.

use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use outpost_tests::dns::ask_udp_raw;
use outpost_tests::{
    Appliance, Ask, answers_of, ask_tcp, ask_udp, describe, query_udp, unused_upstream, wait_until,
};

/// Long enough for a loaded machine to bring a cached answer past its TTL.
const CHANGE_DEADLINE: Duration = Duration::from_secs(20);

/// The upstream's zone. `short` and the negative TTL (MINIMUM 3) are short so that
/// tests can watch them expire; `stale` is shorter still.
fn upstream_zone() -> String {
    let mut zone = String::from(
        "$ORIGIN upstream.test.
$TTL 3600
@      IN SOA ns1 hostmaster 1 7200 3600 1209600 3
@      IN NS  ns1
ns1    IN A   127.0.0.1
www    IN A   192.0.2.1
www    IN AAAA 2001:db8::1
alias  IN CNAME www
short  3 IN A 192.0.2.2
stale  1 IN A 192.0.2.9
",
    );
    for i in 0..40 {
        zone.push_str(&format!("many IN TXT \"many-{i:02}-{}\"\n", "y".repeat(92)));
    }
    zone
}

/// The second server: authoritative for `upstream.test.` only.
fn start_upstream() -> Appliance {
    let config = format!(
        "example_zone = false\n\n[dns]\nallow_recursion = []\n\n[forward]\nupstreams = [\"{}\"]\n",
        unused_upstream()
    );
    let upstream = Appliance::start(&config);
    upstream.import_zone("upstream.test.", &upstream_zone());
    upstream
}

/// A forwarding server; `forward` and `dns` are extra lines for those sections.
fn start_forwarder(upstreams: &[String], forward: &str, dns: &str) -> Appliance {
    let list: Vec<String> = upstreams.iter().map(|u| format!("\"{u}\"")).collect();
    Appliance::start(&format!(
        "[dns]\n{dns}\n\n[forward]\nupstreams = [{}]\ntimeout_ms = 500\n{forward}\n",
        list.join(", ")
    ))
}

fn hits(appliance: &Appliance) -> f64 {
    appliance.metric("outpost_cache_hits_total")
}

fn misses(appliance: &Appliance) -> f64 {
    appliance.metric("outpost_cache_misses_total")
}

/// Asserts the flags of a forwarded answer: RA set, AA clear, the rcode given.
fn assert_forwarded(answer: &Message, rcode: ResponseCode) {
    let text = describe(answer);
    assert_eq!(answer.metadata.response_code, rcode, "{text}");
    assert!(
        answer.metadata.recursion_available,
        "RA on a forwarded answer\n{text}"
    );
    assert!(
        !answer.metadata.authoritative,
        "AA clear on a forwarded answer\n{text}"
    );
    assert!(answer.metadata.recursion_desired, "RD is echoed\n{text}");
}

#[test]
fn names_outside_our_zones_are_forwarded_with_ra_set_and_aa_clear() {
    let upstream = start_upstream();
    let forwarder = start_forwarder(&[upstream.dns_addr().to_string()], "", "");
    // The upstream itself is authoritative for the name.
    let direct = query_udp(
        upstream.dns_addr(),
        "www.upstream.test.",
        RecordType::A,
        None,
    );
    assert!(direct.metadata.authoritative, "{}", describe(&direct));

    for ask in [
        Ask::new("www.upstream.test.", RecordType::A),
        Ask::new("www.upstream.test.", RecordType::AAAA).edns(1232),
    ] {
        for answer in [
            ask_udp(forwarder.dns_addr(), &ask),
            ask_tcp(forwarder.dns_addr(), &ask),
        ] {
            assert_forwarded(&answer, ResponseCode::NoError);
            let expected = if ask.rtype == RecordType::A {
                "192.0.2.1"
            } else {
                "2001:db8::1"
            };
            assert_eq!(
                answers_of(&answer, ask.rtype),
                [expected],
                "{}",
                describe(&answer)
            );
            assert!(
                answer.answers.iter().all(|r| r.ttl <= 3600),
                "{}",
                describe(&answer)
            );
        }
    }
    let answer = query_udp(
        forwarder.dns_addr(),
        "alias.upstream.test.",
        RecordType::A,
        None,
    );
    assert_forwarded(&answer, ResponseCode::NoError);
    assert_eq!(
        answers_of(&answer, RecordType::CNAME),
        ["www.upstream.test."],
        "{}",
        describe(&answer)
    );
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["192.0.2.1"],
        "{}",
        describe(&answer)
    );

    let answer = query_udp(
        forwarder.dns_addr(),
        "nope.upstream.test.",
        RecordType::A,
        None,
    );
    assert_forwarded(&answer, ResponseCode::NXDomain);
    assert!(
        answer
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "the upstream's SOA is passed on\n{}",
        describe(&answer)
    );
    // Our own zone is still ours: authoritative, not forwarded.
    let answer = query_udp(
        forwarder.dns_addr(),
        "www.example.internal.",
        RecordType::A,
        None,
    );
    assert!(answer.metadata.authoritative, "{}", describe(&answer));
    assert_eq!(answers_of(&answer, RecordType::A), ["10.0.0.10"]);
}

#[test]
fn answers_are_cached_for_their_ttl_and_then_fetched_again() {
    let upstream = start_upstream();
    let forwarder = start_forwarder(&[upstream.dns_addr().to_string()], "", "");
    let ask = Ask::new("short.upstream.test.", RecordType::A);
    let (hits_before, misses_before) = (hits(&forwarder), misses(&forwarder));
    let fetched = Instant::now();
    let first = ask_udp(forwarder.dns_addr(), &ask);
    assert_forwarded(&first, ResponseCode::NoError);
    assert_eq!(answers_of(&first, RecordType::A), ["192.0.2.2"]);
    assert_eq!(
        misses(&forwarder),
        misses_before + 1.0,
        "the first query goes upstream"
    );

    let second = ask_udp(forwarder.dns_addr(), &ask);
    assert_forwarded(&second, ResponseCode::NoError);
    assert_eq!(answers_of(&second, RecordType::A), ["192.0.2.2"]);
    assert!(
        second.answers[0].ttl <= 3,
        "a cached answer's TTL counts down\n{}",
        describe(&second)
    );
    assert_eq!(
        hits(&forwarder),
        hits_before + 1.0,
        "the repeat is a cache hit"
    );
    assert_eq!(
        misses(&forwarder),
        misses_before + 1.0,
        "the repeat does not go upstream"
    );

    // Change the record upstream: the cached answer stands until its TTL runs out.
    let (status, body) = upstream.api(
        "PUT",
        "/v1/records",
        Some(r#"{"name":"short.upstream.test.","type":"A","ttl":3,"data":["192.0.2.3"]}"#),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        answers_of(
            &query_udp(
                upstream.dns_addr(),
                "short.upstream.test.",
                RecordType::A,
                None
            ),
            RecordType::A
        ),
        ["192.0.2.3"],
        "the upstream serves the new data at once"
    );
    // Whichever way the cache answers now, it must follow the TTL: from the cache, the old
    // data; from the upstream, only once the TTL of 3 s ran out.
    let (hits_before, misses_before) = (hits(&forwarder), misses(&forwarder));
    let cached = ask_udp(forwarder.dns_addr(), &ask);
    let went_upstream = misses(&forwarder) > misses_before;
    if went_upstream {
        assert!(
            fetched.elapsed() >= Duration::from_secs(2),
            "the old answer was dropped after {:?}, before its TTL of 3 s",
            fetched.elapsed()
        );
    } else {
        assert_eq!(hits(&forwarder), hits_before + 1.0, "a cache hit");
        assert_eq!(
            answers_of(&cached, RecordType::A),
            ["192.0.2.2"],
            "a cached answer is the data as fetched\n{}",
            describe(&cached)
        );
    }
    let changed = wait_until(CHANGE_DEADLINE, || {
        answers_of(&ask_udp(forwarder.dns_addr(), &ask), RecordType::A) == ["192.0.2.3"]
    });
    assert!(
        changed,
        "the new answer is fetched once the TTL of 3 s ran out"
    );
    assert!(
        fetched.elapsed() >= Duration::from_secs(2),
        "the old answer was dropped after {:?}, before its TTL of 3 s",
        fetched.elapsed()
    );
}

#[test]
fn negative_answers_are_cached_for_the_soa_minimum() {
    let upstream = start_upstream();
    let forwarder = start_forwarder(&[upstream.dns_addr().to_string()], "", "");
    // NODATA: cached like NXDOMAIN.
    let nodata = Ask::new("www.upstream.test.", RecordType::TXT);
    let answer = ask_udp(forwarder.dns_addr(), &nodata);
    assert_forwarded(&answer, ResponseCode::NoError);
    assert!(answer.answers.is_empty(), "{}", describe(&answer));
    let hits_before = hits(&forwarder);
    let answer = ask_udp(forwarder.dns_addr(), &nodata);
    assert_forwarded(&answer, ResponseCode::NoError);
    assert_eq!(
        hits(&forwarder),
        hits_before + 1.0,
        "a repeated NODATA is a cache hit"
    );

    let ask = Ask::new("later.upstream.test.", RecordType::A);
    let fetched = Instant::now();
    let answer = ask_udp(forwarder.dns_addr(), &ask);
    assert_forwarded(&answer, ResponseCode::NXDomain);
    let soa = answer
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .unwrap_or_else(|| panic!("an SOA in the authority section\n{}", describe(&answer)));
    assert!(
        soa.ttl <= 3,
        "negative TTL = min(SOA TTL, MINIMUM) = 3\n{}",
        describe(&answer)
    );
    let (hits_before, misses_before) = (hits(&forwarder), misses(&forwarder));
    let answer = ask_udp(forwarder.dns_addr(), &ask);
    assert_forwarded(&answer, ResponseCode::NXDomain);
    assert_eq!(
        hits(&forwarder),
        hits_before + 1.0,
        "a repeated NXDOMAIN is a cache hit"
    );
    assert_eq!(
        misses(&forwarder),
        misses_before,
        "and does not go upstream"
    );

    // The name appears upstream: the NXDOMAIN stands until the negative TTL ran out.
    let (status, body) = upstream.api(
        "POST",
        "/v1/records",
        Some(r#"{"name":"later.upstream.test.","type":"A","data":"192.0.2.4","ttl":60}"#),
    );
    assert_eq!(status, 201, "{body}");
    // From the cache, the NXDOMAIN; from the upstream, only once the negative TTL of 3 s
    // ran out.
    let (hits_before, misses_before) = (hits(&forwarder), misses(&forwarder));
    let cached = ask_udp(forwarder.dns_addr(), &ask);
    if misses(&forwarder) > misses_before {
        assert!(
            fetched.elapsed() >= Duration::from_secs(2),
            "the NXDOMAIN was dropped after {:?}, before its TTL of 3 s",
            fetched.elapsed()
        );
    } else {
        assert_eq!(hits(&forwarder), hits_before + 1.0, "a cache hit");
        assert_eq!(
            cached.metadata.response_code,
            ResponseCode::NXDomain,
            "a cached NXDOMAIN stands\n{}",
            describe(&cached)
        );
    }
    let appeared = wait_until(CHANGE_DEADLINE, || {
        answers_of(&ask_udp(forwarder.dns_addr(), &ask), RecordType::A) == ["192.0.2.4"]
    });
    assert!(
        appeared,
        "the new name is fetched once the negative TTL of 3 s ran out"
    );
    assert!(
        fetched.elapsed() >= Duration::from_secs(2),
        "the NXDOMAIN was dropped after {:?}, before its TTL of 3 s",
        fetched.elapsed()
    );
}

#[test]
fn stale_answers_are_served_when_every_upstream_fails_within_serve_stale_secs() {
    let mut upstream = start_upstream();
    let upstream_addr = upstream.dns_addr().to_string();
    let keeps_stale = start_forwarder(
        std::slice::from_ref(&upstream_addr),
        "serve_stale_secs = 3600",
        "",
    );
    let short_window = start_forwarder(&[upstream_addr], "serve_stale_secs = 1", "");
    let ask = Ask::new("stale.upstream.test.", RecordType::A);
    for forwarder in [&keeps_stale, &short_window] {
        let answer = ask_udp(forwarder.dns_addr(), &ask);
        assert_forwarded(&answer, ResponseCode::NoError);
        assert_eq!(answers_of(&answer, RecordType::A), ["192.0.2.9"]);
    }
    let cached = Instant::now();
    upstream.kill9();
    // Let the TTL of 1 s run out (counted from after the answers were cached).
    std::thread::sleep(Duration::from_millis(1200).saturating_sub(cached.elapsed()));

    let stale_before = keeps_stale.metric("outpost_cache_stale_served_total");
    let answer = ask_udp(keeps_stale.dns_addr(), &ask);
    assert_forwarded(&answer, ResponseCode::NoError);
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["192.0.2.9"],
        "the expired answer is served"
    );
    assert!(
        answer.answers.iter().all(|r| r.ttl == 30),
        "stale answers carry TTL 30 (RFC 8767)\n{}",
        describe(&answer)
    );
    assert!(
        keeps_stale.metric("outpost_cache_stale_served_total") >= stale_before + 1.0,
        "serving stale is counted"
    );
    assert!(
        keeps_stale.metric("outpost_upstream_failures_total") >= 1.0,
        "the failed upstream is counted"
    );

    // A name never cached has nothing stale to serve.
    let answer = ask_udp(
        keeps_stale.dns_addr(),
        &Ask::new("www.upstream.test.", RecordType::A),
    );
    assert_eq!(
        answer.metadata.response_code,
        ResponseCode::ServFail,
        "{}",
        describe(&answer)
    );
    assert!(answer.metadata.recursion_available, "{}", describe(&answer));

    // Past serve_stale_secs the expired answer is gone too.
    let gone = wait_until(CHANGE_DEADLINE, || {
        ask_udp(short_window.dns_addr(), &ask)
            .metadata
            .response_code
            == ResponseCode::ServFail
    });
    assert!(
        gone,
        "with serve_stale_secs = 1 the answer is not served forever"
    );
}

#[test]
fn clients_outside_allow_recursion_are_refused_and_nothing_is_forwarded() {
    let upstream = start_upstream();
    let upstreams = [upstream.dns_addr().to_string()];
    for dns in [
        "allow_recursion = []",
        "allow_recursion = [\"10.0.0.0/8\", \"192.168.0.0/16\", \"::1/128\"]",
    ] {
        let forwarder = start_forwarder(&upstreams, "", dns);
        for ask in [
            Ask::new("www.upstream.test.", RecordType::A),
            Ask::new("nope.upstream.test.", RecordType::A),
        ] {
            for answer in [
                ask_udp(forwarder.dns_addr(), &ask),
                ask_tcp(forwarder.dns_addr(), &ask),
            ] {
                let text = describe(&answer);
                assert_eq!(
                    answer.metadata.response_code,
                    ResponseCode::Refused,
                    "{dns}\n{text}"
                );
                assert!(!answer.metadata.recursion_available, "{dns}\n{text}");
                assert!(answer.answers.is_empty(), "{dns}\n{text}");
            }
        }
        assert_eq!(misses(&forwarder), 0.0, "{dns}: nothing was sent upstream");
        // Our own zones are answered for everyone.
        let answer = query_udp(
            forwarder.dns_addr(),
            "www.example.internal.",
            RecordType::A,
            None,
        );
        assert_eq!(
            answers_of(&answer, RecordType::A),
            ["10.0.0.10"],
            "{dns}\n{}",
            describe(&answer)
        );
    }
}

#[test]
fn a_forwarded_answer_too_big_for_udp_is_truncated_and_complete_over_tcp() {
    let upstream = start_upstream();
    let forwarder = start_forwarder(&[upstream.dns_addr().to_string()], "", "");
    let ask = Ask::new("many.upstream.test.", RecordType::TXT).edns(1232);
    let (bytes, answer) = ask_udp_raw(forwarder.dns_addr(), &ask);
    assert!(bytes.len() <= 1232, "{} bytes", bytes.len());
    assert!(answer.metadata.truncation, "TC set\n{}", describe(&answer));
    assert!(answer.answers.is_empty(), "{}", describe(&answer));
    let answer = ask_tcp(forwarder.dns_addr(), &ask);
    assert_forwarded(&answer, ResponseCode::NoError);
    assert!(!answer.metadata.truncation, "{}", describe(&answer));
    assert_eq!(
        answers_of(&answer, RecordType::TXT).len(),
        40,
        "every record, fetched from the upstream over TCP after its truncated UDP answer"
    );
}

#[test]
fn tcp_upstreams_are_used_over_tcp_and_a_dead_upstream_is_skipped() {
    let upstream = start_upstream();
    let forwarder = start_forwarder(
        &[unused_upstream(), format!("tcp://{}", upstream.dns_addr())],
        "",
        "",
    );
    let answer = ask_udp(
        forwarder.dns_addr(),
        &Ask::new("www.upstream.test.", RecordType::A),
    );
    assert_forwarded(&answer, ResponseCode::NoError);
    assert_eq!(
        answers_of(&answer, RecordType::A),
        ["192.0.2.1"],
        "{}",
        describe(&answer)
    );
    assert!(
        forwarder.metric("outpost_upstream_failures_total") >= 1.0,
        "the dead first upstream was tried and counted"
    );
    assert!(
        upstream.metric(r#"outpost_dns_queries_total{protocol="tcp",rcode="NOERROR"}"#) >= 1.0,
        "the tcp:// upstream was asked over TCP"
    );
    assert_eq!(
        upstream.metric(r#"outpost_dns_queries_total{protocol="udp",rcode="NOERROR"}"#),
        0.0,
        "and never over UDP"
    );
}

#[test]
fn the_cache_holds_at_most_cache_entries_answers() {
    let upstream = start_upstream();
    let forwarder = start_forwarder(&[upstream.dns_addr().to_string()], "cache_entries = 2", "");
    // Five answers with an hour of TTL each: only two fit.
    let asks = [
        Ask::new("www.upstream.test.", RecordType::A),
        Ask::new("www.upstream.test.", RecordType::AAAA),
        Ask::new("ns1.upstream.test.", RecordType::A),
        Ask::new("alias.upstream.test.", RecordType::A),
        Ask::new("upstream.test.", RecordType::NS),
    ];
    for ask in &asks {
        assert_forwarded(&ask_udp(forwarder.dns_addr(), ask), ResponseCode::NoError);
    }
    let misses_before = misses(&forwarder);
    for ask in &asks {
        assert_forwarded(&ask_udp(forwarder.dns_addr(), ask), ResponseCode::NoError);
    }
    assert!(
        misses(&forwarder) - misses_before >= 3.0,
        "with cache_entries = 2, at least 3 of 5 repeated questions go upstream again (hits: {})",
        hits(&forwarder)
    );
    // The same five questions all stay cached when the cache is large enough.
    let roomy = start_forwarder(
        &[upstream.dns_addr().to_string()],
        "cache_entries = 100",
        "",
    );
    for ask in &asks {
        ask_udp(roomy.dns_addr(), ask);
    }
    let misses_before = misses(&roomy);
    for ask in &asks {
        ask_udp(roomy.dns_addr(), ask);
    }
    assert_eq!(
        misses(&roomy),
        misses_before,
        "every repeat is a hit in a cache with room"
    );
}
